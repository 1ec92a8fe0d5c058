"""Site builds (build-env.sh) are correct whatever the locks do, no user can stall them,
and what they publish every user can run.

Each test runs the real script with the real uv against the offline
wheelhouse: storms of builders with locks that exclude, locks that exclude
nothing (a filesystem mounted with localflock or nolock, seen from several
nodes), locks that fail (ENOSYS, ENOLCK); a builder killed at each step; a
user holding a lock on every file under the root that they can read; a uv
cache filled under umask 077; an interpreter only root can run. The root
of every build is one that all accounts can reach, as a site's is.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import accounts, as_user, is_root
from artifacts import artifacts
from collection_plugins import read_stamp
from role_runner import ROOT

BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
UV = ROOT / ".venv" / "bin" / "uv"
PYTHON = "/usr/bin/python3"
NAME = "py3.11-gce4.19.0"


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The offline wheelhouse of the test artifacts (built once, then cached)."""
    return artifacts() / "wheelhouse"


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse, as a site's root is (pytest's own are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="hgc-site-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def fake_flock(directory: Path, behaviour: str) -> Path:
    """A flock(1) on PATH that fails as on a filesystem without locks, or grants every lock at once.
    Each call appends its caller's pid and its arguments to flock.log beside it, so that a test
    shows the shim, not the real flock, was the one the builders ran."""
    directory.mkdir(exist_ok=True)
    script = directory / "flock"
    log = f'echo "$PPID $*" >>{directory / "flock.log"}\n'
    if behaviour == "fails":
        script.write_text(f'#!/bin/sh\n{log}echo "flock: 11: Function not implemented" >&2\nexit 1\n')
    else:
        script.write_text(f"#!/bin/sh\n{log}exit 0\n")
    script.chmod(0o755)
    return directory


def uv_policy(root: Path, wheelhouse: Path) -> Path:
    """The site policy, as the building account's own uv.toml (as for root's); returns XDG_CONFIG_HOME."""
    config = root.parent / "config"
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{wheelhouse}"]\npython-downloads = "never"\n'
        f'cache-dir = "{root.parent / "uv-cache"}"\n'
    )
    return config


def build(
    wheelhouse: Path,
    root: Path,
    spec: str,
    *packages: str,
    path_first: Path | None = None,
    uv: Path = UV,
    python: str = PYTHON,
    account: str | None = None,
    own_group: bool = False,
    stage: bool = False,
    replace: str = "",
) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(uv_policy(root, wheelhouse))}
    if path_first:
        env["PATH"] = f"{path_first}:{env['PATH']}"
    options = (
        (["--as", account] if account else [])
        + (["--stage"] if stage else [])
        + (["--replace", replace] if replace else [])
    )
    argv = ["bash", str(BUILD_ENV), *options, str(uv), str(root), NAME, spec, python, "4.19.0", *packages]
    # own_group: a builder that can be killed with everything it started, and nothing else.
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=own_group
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def published(root: Path) -> Path:
    link = root / NAME
    assert link.is_symlink()
    target = root / os.readlink(link)
    assert (target / ".ready").is_file()
    return target


def imports_endpoint(build_dir: Path) -> str:
    result = subprocess.run(
        [str(build_dir / "bin" / "python"), "-c", "import globus_compute_endpoint as g; print(g.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def builds(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".builds").iterdir() if p.is_dir())


def test_a_build_is_published_ready_and_the_lock_is_the_owners_alone(wheelhouse: Path, site: Path) -> None:
    root = site / "envs"
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    target = published(root)
    assert imports_endpoint(target) == "4.19.0"
    assert read_stamp((target / ".ready").read_text())["spec"] == "aaaa"
    assert target.stat().st_mode & 0o777 == 0o755
    lock = root / ".builds" / ".build.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "unchanged\n")


def test_a_ready_build_whose_link_is_gone_is_linked_again_not_built(wheelhouse: Path, site: Path) -> None:
    root = site / "envs"
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    target, made = os.readlink(root / NAME), builds(root)
    (root / NAME).unlink()
    argv = ["bash", str(BUILD_ENV), "--check", str(UV), str(root), NAME, "aaaa", PYTHON, "4.19.0"]
    checked = subprocess.run(argv, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout) == (0, f"would link {target}\n"), checked.stderr
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    assert os.readlink(root / NAME) == target and builds(root) == made
    assert len((root / ".builds" / "builds.log").read_text().splitlines()) == 1


def test_replace_builds_anew_what_the_link_names_and_retires_it(wheelhouse: Path, site: Path) -> None:
    """--replace BUILD: the caller read that build's stamp and could not take it as one of its spec."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    old = published(root)
    (old / ".ready").write_text((old / ".ready").read_text() + "x\n")
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "unchanged\n")
    target = os.readlink(root / NAME)
    argv = ["bash", str(BUILD_ENV), "--check", "--replace", target, str(UV), str(root), NAME, "aaaa", PYTHON, "4.19.0"]
    checked = subprocess.run(argv, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout) == (0, f"would build .builds/{NAME}-aaaa\n"), checked.stderr
    assert finish(build(wheelhouse, root, "aaaa", replace=target))[:2] == (0, "built\n")
    new = published(root)
    assert new != old and (old / ".unpublished").is_file()
    assert read_stamp((new / ".ready").read_text())["spec"] == "aaaa"
    # Another host that found the same build so: the new one is ready, and nothing is built again.
    assert finish(build(wheelhouse, root, "aaaa", replace=target))[:2] == (0, "unchanged\n")
    assert published(root) == new


def test_a_staged_build_is_ready_and_unpublished_until_a_build_publishes_it(wheelhouse: Path, site: Path) -> None:
    """--stage, as the role builds every environment of a run before it publishes any."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    old = published(root)
    assert finish(build(wheelhouse, root, "bbbb", "six==1.17.0", stage=True))[:2] == (0, "staged\n")
    assert published(root) == old
    staged = [b for b in builds(root) if b.name.startswith(f"{NAME}-bbbb.")]
    assert len(staged) == 1 and (staged[0] / ".ready").is_file(), builds(root)
    # Staged again: the ready build is found, nothing more is built.
    assert finish(build(wheelhouse, root, "bbbb", "six==1.17.0", stage=True))[:2] == (0, "staged\n")
    assert builds(root) == sorted([old, staged[0]])
    # The publishing run only switches the link, and retires the build it replaces.
    assert finish(build(wheelhouse, root, "bbbb", "six==1.17.0"))[:2] == (0, "built\n")
    assert published(root) == staged[0]
    assert builds(root) == sorted([old, staged[0]])
    assert (old / ".unpublished").is_file() and not (staged[0] / ".unpublished").exists()


@pytest.mark.skipif(not is_root(), reason="needs root to run the build as another account")
def test_a_staged_build_that_no_longer_runs_is_retired_and_built_anew_not_published(
    wheelhouse: Path, site: Path
) -> None:
    """A staged build may wait days for its publishing run: its modes are made again as a build's, and it
    is run again by the unprivileged account first. One that no longer runs is never published."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "dddd", stage=True))[:2] == (0, "staged\n")
    (staged,) = builds(root)
    lib = staged / "lib"
    # Writable by others meanwhile: published only with a build's modes again.
    (staged / "bin" / "activate").chmod(0o666)
    assert finish(build(wheelhouse, root, "dddd"))[:2] == (0, "built\n")
    assert published(root) == staged and (staged / "bin" / "activate").stat().st_mode & 0o777 == 0o644
    # Unpublished by hand, then changed so that its endpoint no longer imports.
    (root / NAME).unlink()
    (module,) = lib.glob("python3.*/site-packages/globus_compute_endpoint/__init__.py")
    module.write_text(module.read_text() + "\nraise SystemExit('changed since it was staged')\n")
    assert finish(build(wheelhouse, root, "dddd"))[:2] == (0, "built\n")
    new = published(root)
    assert new != staged and new.name.startswith(f"{NAME}-dddd."), builds(root)
    assert (staged / ".unpublished").is_file() and not (new / ".unpublished").exists()
    assert (new / "lib").stat().st_mode & 0o005 == 0o005
    assert builds(root) == sorted([staged, new])


# Builders started at once on one root, as hosts sharing it do: with locks
# that exclude (one build, the others publish it), that exclude nothing
# (duplicate builds, each complete), and that fail (each builds without).
STORM = 6


@pytest.mark.skipif(not is_root(), reason="needs root to make an unprivileged account")
@pytest.mark.parametrize("locks", ["coherent", "grants", "fails"])
def test_a_storm_of_builders_each_ends_with_a_published_environment_users_run(
    wheelhouse: Path, site: Path, tmp_path: Path, locks: str
) -> None:
    root = site / "envs"
    shim = None if locks == "coherent" else fake_flock(tmp_path / "bin", locks)
    with accounts("stormuser") as homes:
        (login, _), *_ = homes.items()
        start = time.monotonic()
        storm = [build(wheelhouse, root, "cccc", "six==1.17.0", path_first=shim) for _ in range(STORM)]
        results = [finish(p, timeout=300) for p in storm]
        elapsed = time.monotonic() - start
        assert all(rc == 0 and out in ("built\n", "unchanged\n") for rc, out, _ in results), results
        # Bounded: far below one lock wait (120 s) per builder.
        assert elapsed < 100, elapsed
        made = (root / ".builds" / "builds.log").read_text().splitlines()
        if locks == "coherent":
            assert len(made) == 1, made
            assert all(err == "" for _, _, err in results), results
        else:
            # Each build made is named for its builder's pid: the builders
            # that said "built" are those that made one, each once, and the
            # others found one linked ("unchanged"). (A builder that found a
            # build complete but not yet linked would only link it and say
            # "built" too: a window of milliseconds against builds of seconds,
            # all started at once.)
            makers = [int(line.split()[-1].rsplit("-", 1)[1]) for line in made]
            said = {p.pid: out for p, (_, out, _) in zip(storm, results, strict=True)}
            assert len(set(makers)) == len(makers) >= 1, made
            assert sorted(pid for pid, out in said.items() if out == "built\n") == sorted(makers), (made, said)
            # Every builder asked the shim for the one build lock, once.
            calls = sorted((shim / "flock.log").read_text().splitlines())
            assert calls == sorted(f"{p.pid} -w 120 9" for p in storm), calls
        if locks == "fails":
            assert all(err.count("building without it") == 1 for _, _, err in results), results
        # Every build left is complete; the published one runs for a user.
        assert all((b / ".ready").is_file() for b in builds(root)), builds(root)
        ran = as_user(
            login, f"{root / NAME}/bin/python -c 'import globus_compute_endpoint as g, six; print(g.__version__)'"
        )
        assert (ran.returncode, ran.stdout) == (0, "4.19.0\n"), ran.stderr


def killer(directory: Path, name: str, condition: str) -> Path:
    """`name` on PATH: kills the builder's whole process group when `condition` holds, else runs the real one."""
    directory.mkdir(exist_ok=True)
    real = UV if name == "uv" else shutil.which(name)
    script = directory / name
    script.write_text(f'#!/bin/sh\nif {condition}; then kill -KILL 0; fi\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script


# Where a builder can die: while uv makes the venv, while it installs, once
# the build is complete but not yet proved runnable and stamped (the chmod
# that opens it to users comes first), once stamped but not yet published.
KILL_POINTS = {
    "uv-venv": ("uv", '[ "$1" = venv ]'),
    "uv-pip": ("uv", '[ "$1" = pip ]'),
    "before-stamp": ("chmod", "true"),
    "before-publish": ("ln", "true"),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_build_is_never_used_and_the_next_run_cleans_it(
    wheelhouse: Path, site: Path, tmp_path: Path, point: str
) -> None:
    root = site / "envs"
    assert finish(build(wheelhouse, root, "dddd"))[0] == 0
    before = published(root)
    command, condition = KILL_POINTS[point]
    shim = killer(tmp_path / "bin", command, condition)
    if command == "uv":
        killed = build(wheelhouse, root, "eeee", uv=shim, own_group=True)
    else:
        killed = build(wheelhouse, root, "eeee", path_first=shim.parent, own_group=True)
    rc, _, _ = finish(killed)
    assert rc == -9
    left = [b for b in builds(root) if b.name.startswith(f"{NAME}-eeee.")]
    assert len(left) == 1, builds(root)
    # The old environment is still the one published.
    assert published(root) == before
    rc, out, err = finish(build(wheelhouse, root, "eeee"))
    assert (rc, out) == (0, "built\n"), err
    now = published(root)
    assert now.name.startswith(f"{NAME}-eeee.")
    assert imports_endpoint(now) == "4.19.0"
    if point == "before-publish":
        # Complete, proved and stamped: only its link was missing, and nothing is built again.
        assert now == left[0]
        assert len((root / ".builds" / "builds.log").read_text().splitlines()) == 2
    else:
        assert not left[0].exists()
        assert [b for b in builds(root) if b.name.startswith(f"{NAME}-eeee.")] == [now]


def modes(tree: Path) -> dict[str, int]:
    return {str(p.relative_to(tree)): p.lstat().st_mode for p in tree.rglob("*")}


@pytest.mark.skipif(not is_root(), reason="needs root to make an unprivileged account")
def test_a_cache_filled_under_umask_077_gives_users_a_build_they_can_run_and_stays_as_it_was(
    wheelhouse: Path, site: Path
) -> None:
    root = site / "envs"
    config = uv_policy(root, wheelhouse)
    # Root's hardened umask fills uv's cache with files only root can read.
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    filled = subprocess.run(
        [
            "bash",
            "-c",
            'umask 077 && "$0" venv -q --python "$1" "$2" && "$0" pip install -q --python "$2/bin/python" '
            "globus-compute-endpoint==4.19.0",
            str(UV),
            PYTHON,
            str(site / "scratch"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert filled.returncode == 0, filled.stderr
    cache = site / "uv-cache"
    before = modes(cache)
    private = [k for k, m in before.items() if stat.S_ISREG(m) and not m & 0o004]
    assert len(private) > 1000, len(private)
    with accounts("cacheuser") as homes:
        (login, _), *_ = homes.items()
        rc, out, err = finish(build(wheelhouse, root, "ffff"))
        assert (rc, out, err) == (0, "built\n", "")
        target = published(root)
        ran = as_user(login, f"{root / NAME}/bin/python -c 'import globus_compute_endpoint as g; print(g.__version__)'")
        assert (ran.returncode, ran.stdout) == (0, "4.19.0\n"), ran.stderr
        unreadable = as_user(login, f"find {target}/ ! -readable")
        assert (unreadable.returncode, unreadable.stdout) == (0, "")
    # The build changed no mode in the cache (it may have added entries).
    after = modes(cache)
    assert {k: after.get(k) for k in before} == before


@pytest.mark.skipif(not is_root(), reason="needs root to make an unprivileged account")
def test_an_environment_only_root_can_run_is_not_published(wheelhouse: Path, site: Path) -> None:
    """Its interpreter in a 0700 directory, as one under root's home (a pyenv install) is."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "gggg"))[:2] == (0, "built\n")
    before = published(root)
    private = site / "root-home"
    private.mkdir(mode=0o700)
    python = private / "python3.11"
    shutil.copy2(os.path.realpath(PYTHON), python)
    rc, out, err = finish(build(wheelhouse, root, "hhhh", python=str(python)))
    assert (rc, out) == (3, "")
    [line] = err.splitlines()
    assert line.startswith(f"{root}/.builds/{NAME}-hhhh."), line
    assert line.endswith("/bin/python cannot be run by nobody: Permission denied"), line
    assert published(root) == before
    assert [b.name for b in builds(root) if "-hhhh." in b.name] == []


@pytest.mark.parametrize(
    ("python", "account", "expected"),
    [
        ("private", None, "{python} cannot be run by nobody: Permission denied"),
        (PYTHON, "no-such-account", "{python} cannot be run by no-such-account: no such account"),
        ("/nonexistent/python3", None, "{python}: does not exist"),
    ],
    ids=["in-0700-dir", "no-account", "missing"],
)
@pytest.mark.skipif(not is_root(), reason="the account check applies to root's builds")
def test_an_interpreter_users_cannot_run_is_named_in_one_line(
    site: Path, python: str, account: str | None, expected: str
) -> None:
    if python == "private":
        private = site / "root-home"
        private.mkdir(mode=0o700)
        (private / "python3").symlink_to(PYTHON)
        python = str(private / "python3")
    options = ["--as", account] if account else []
    probe = subprocess.run(
        ["bash", str(BUILD_ENV), "--probe", *options, python], capture_output=True, text=True, check=False
    )
    # 4: refused before anything ran it (here: nothing is there to trust).
    status = 3 if "cannot be run by" in expected else 4
    assert (probe.returncode, probe.stdout, probe.stderr) == (status, "", expected.format(python=python) + "\n")
    ok = subprocess.run(["bash", str(BUILD_ENV), "--probe", PYTHON], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    # Run as the account, it says its X.Y: another than the one asked for is named.
    version = subprocess.run(
        [PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    other = subprocess.run(
        ["bash", str(BUILD_ENV), "--probe", "--python-version", "3.99", PYTHON], capture_output=True, text=True
    )
    assert (other.returncode, other.stdout, other.stderr) == (3, "", f"{PYTHON} is Python {version}\n")
    same = subprocess.run(
        ["bash", str(BUILD_ENV), "--probe", "--python-version", version, PYTHON], capture_output=True, text=True
    )
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")


@pytest.mark.skipif(not is_root(), reason="needs root to make an unprivileged account")
def test_a_user_holding_every_lock_they_can_open_does_not_stall_the_build(wheelhouse: Path) -> None:
    with accounts("locker") as homes:
        (login, home), *_ = homes.items()
        root = home.parent / "site" / "envs"
        root.parent.mkdir()
        root.parent.chmod(0o755)
        assert finish(build(wheelhouse, root, "ffff"))[0] == 0
        # The old, readable lock file of earlier releases is there too.
        (root / ".builds" / ".lock").touch(mode=0o644)
        holder = subprocess.Popen(
            [
                "su",
                "-s",
                "/bin/bash",
                login,
                "-c",
                f"find {root} -readable -print0 | while IFS= read -r -d '' f; do "
                'exec {fd}<"$f" && flock -s -n "$fd" && echo "$f"; done; echo holding; sleep 300',
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            held = []
            for line in holder.stdout:
                if line.strip() == "holding":
                    break
                held.append(line.strip())
            assert held, "the user could lock nothing"
            start = time.monotonic()
            rc, out, err = finish(build(wheelhouse, root, "gggg"), timeout=60)
            assert (rc, out) == (0, "built\n"), err
            assert time.monotonic() - start < 60
            assert published(root).name.startswith(f"{NAME}-gggg.")
        finally:
            subprocess.run(["pkill", "-KILL", "-u", login], check=False)
            holder.wait()
            shutil.rmtree(root.parent, ignore_errors=True)
