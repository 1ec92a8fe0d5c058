"""Site builds (build-env.sh) are correct whatever the locks do, and no user can stall them.

Each test runs the real script with the real uv against the offline
wheelhouse: locks that exclude, locks that exclude nothing (a filesystem
mounted with localflock or nolock, seen from several nodes), locks that fail
(ENOSYS, ENOLCK), a builder killed midway, and a user holding a lock on every
file under the root that they can read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from accounts import accounts, is_root
from artifacts import artifacts
from role_runner import ROOT

BUILD_ENV = ROOT / "roles" / "python_envs" / "files" / "build-env.sh"
UV = ROOT / ".venv" / "bin" / "uv"
PYTHON = "/usr/bin/python3"
NAME = "py3.11-gce4.19.0"


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The offline wheelhouse of the test artifacts (built once, then cached)."""
    return artifacts() / "wheelhouse"


def fake_flock(directory: Path, behaviour: str) -> Path:
    """A flock(1) on PATH that fails as on a filesystem without locks, or grants every lock at once."""
    directory.mkdir(exist_ok=True)
    script = directory / "flock"
    if behaviour == "fails":
        script.write_text('#!/bin/sh\necho "flock: 9: Function not implemented" >&2\nexit 1\n')
    else:
        script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return directory


def build(
    wheelhouse: Path, root: Path, spec: str, *packages: str, path_first: Path | None = None, uv: Path = UV
) -> subprocess.Popen[str]:
    # The site policy, as the building account's own uv.toml (as for root's).
    config = root.parent / "config"
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{wheelhouse}"]\npython-downloads = "never"\n'
        f'cache-dir = "{root.parent / "uv-cache"}"\n'
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    if path_first:
        env["PATH"] = f"{path_first}:{env['PATH']}"
    argv = ["bash", str(BUILD_ENV), str(uv), str(root), NAME, spec, PYTHON, "4.19.0", *packages]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


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


def test_a_build_is_published_ready_and_the_lock_is_the_owners_alone(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "envs"
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "built\n")
    target = published(root)
    assert imports_endpoint(target) == "4.19.0"
    assert json.loads((target / ".ready").read_text())["spec"] == "aaaa"
    assert target.stat().st_mode & 0o777 == 0o755
    lock = root / ".builds" / ".build.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    assert finish(build(wheelhouse, root, "aaaa"))[:2] == (0, "unchanged\n")


def test_locks_that_fail_cost_no_wait_and_the_build_still_lands(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "envs"
    start = time.monotonic()
    rc, out, err = finish(build(wheelhouse, root, "bbbb", path_first=fake_flock(tmp_path / "bin", "fails")))
    assert (rc, out) == (0, "built\n"), err
    assert time.monotonic() - start < 60
    assert err.count("building without it") == 1, err
    assert imports_endpoint(published(root)) == "4.19.0"


def test_locks_that_exclude_nothing_give_duplicate_builds_all_complete(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "envs"
    no_locks = fake_flock(tmp_path / "bin", "grants")
    storm = [build(wheelhouse, root, "cccc", "six==1.17.0", path_first=no_locks) for _ in range(4)]
    results = [finish(p) for p in storm]
    assert all(rc == 0 and out == "built\n" for rc, out, _ in results), results
    target = published(root)
    assert imports_endpoint(target) == "4.19.0"
    # Each builder made its own; every one of them is complete.
    assert len(builds(root)) >= 1
    assert all((b / ".ready").is_file() for b in builds(root)), builds(root)


def test_a_killed_build_is_never_used_and_the_next_run_removes_it(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "envs"
    assert finish(build(wheelhouse, root, "dddd"))[0] == 0
    before = published(root)
    # A uv that kills its caller (the builder) while it installs.
    killer = tmp_path / "uv-killer"
    killer.write_text(f'#!/bin/sh\nif [ "$1" = pip ]; then kill -KILL "$PPID"; exit 137; fi\nexec {UV} "$@"\n')
    killer.chmod(0o755)
    rc, _, _ = finish(build(wheelhouse, root, "eeee", uv=killer))
    assert rc == -9
    partial = [b for b in builds(root) if not (b / ".ready").exists()]
    assert len(partial) == 1 and partial[0].name.startswith(f"{NAME}-eeee."), builds(root)
    assert published(root) == before
    assert finish(build(wheelhouse, root, "eeee"))[:2] == (0, "built\n")
    assert not partial[0].exists()
    assert published(root).name.startswith(f"{NAME}-eeee.")


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
