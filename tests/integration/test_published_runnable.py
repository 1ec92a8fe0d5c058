"""What the roles publish, every user can run: root's interpreters are refused first.

The roles run for real as root on this machine, with the project's uv and the
offline wheelhouse. An interpreter that root can run and users cannot (a copy
of the system's python in a 0700 directory, as pyenv's under root's home is,
and the same reached as `python3` on root's PATH) is refused before anything
is built, in one line naming the variable and the path. uv-managed
interpreters are looked up under the environments' root, where users read
them, and never in root's home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import accounts, as_user, is_root
from artifacts import offline_policy
from role_runner import ROOT, assert_fails_with, run_role

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the check runs as an unprivileged account")

UV = ROOT / ".venv" / "bin" / "uv"
BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
PYTHON = "/usr/bin/python3.11"
NAME = "py3.11-gce4.19.0"


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse, as a site's runtime directory is."""
    base = Path(tempfile.mkdtemp(prefix="hgc-runnable-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def python_envs(tmp_path: Path, site: Path, env: dict[str, str] | None = None, **variables: object):
    base = {
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_uv": str(UV),
        "python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}],
    }
    return run_role(tmp_path, "python_envs", {**base, **variables}, env={**offline_policy(tmp_path), **(env or {})})


def test_an_interpreter_only_root_can_run_is_refused_before_building(
    tmp_path: Path, site: Path, root_only: Path
) -> None:
    python = root_only / "python3.11"
    result = python_envs(tmp_path, site, python_envs_interpreter_paths={"3.11": str(python)})
    assert_fails_with(
        result,
        f"python_envs_interpreter_paths['3.11']: {python} cannot be run by nobody: Permission denied;"
        " nothing was built.",
    )
    assert not (site / "runtime" / "envs").exists()


def test_the_endpoints_python_on_roots_path_only_root_can_run_is_refused_before_building(
    tmp_path: Path, site: Path, root_only: Path
) -> None:
    """endpoint_python: python3, found first on root's PATH in root's home (a pyenv shim)."""
    path = {"PATH": f"{root_only}:{os.environ['PATH']}", **offline_policy(tmp_path)}
    result = run_role(tmp_path, "endpoint", endpoint_vars(site), env=path)
    assert_fails_with(
        result, f"endpoint_python: {root_only}/python3 cannot be run by nobody: Permission denied; nothing was built."
    )
    assert not (site / "install").exists()
    assert not (site / "gc").exists()


def endpoint_vars(site: Path, **variables: object) -> dict[str, object]:
    """A single-user endpoint of root's, installed under the site directory."""
    return {
        "endpoint_owner": "root",
        "endpoint_mode": "single_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_uv": str(UV),
        "endpoint_service": False,
        **variables,
    }


def wrapper(directory: Path, log: Path) -> Path:
    """A python3.11 that says which uid ran it, as a user's own wrapper could run anything."""
    log.touch()
    log.chmod(0o666)
    py = directory / "py"
    py.write_text(f'#!/bin/sh\nid -u >>{log}\nexec {PYTHON} "$@"\n')
    py.chmod(0o755)
    return py


@pytest.fixture(params=["another-account", "writable-by-others", "link-through-theirs", "interpreter-theirs"])
def untrusted(request: pytest.FixtureRequest, site: Path) -> Iterator[tuple[Path, str, Path]]:
    """A wrapper root must not run, why it must not, and the log of the uids that ran it."""
    log = site / "ran.log"
    if request.param == "writable-by-others":
        shared = site / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        yield wrapper(shared, log), f"{shared} is writable by its group or others", log
        return
    with accounts("brk") as homes:
        (login, home), *_ = homes.items()
        theirs = f"{home} belongs to {login}; root reads and runs only what root or it owns"
        if request.param == "link-through-theirs":
            # Root's own link and wrapper, but the hop between is a link of theirs, theirs to re-point.
            (site / "bin").mkdir()
            (home / "py").symlink_to(wrapper(site / "bin", log))
            (site / "py").symlink_to(home / "py")
            yield site / "py", theirs, log
            return
        if request.param == "interpreter-theirs":
            # Root's script, whose #! line names a program of theirs.
            (site / "bin").mkdir()
            sh = home / "sh"
            sh.symlink_to("/bin/sh")
            py = wrapper(site / "bin", log)
            py.write_text(py.read_text().replace("#!/bin/sh", f"#!{sh}"))
            yield py, f"its #! interpreter {sh}: {theirs}", log
            return
        py = wrapper(home, log)
        os.chown(py, home.stat().st_uid, home.stat().st_gid)
        yield py, theirs, log


def test_an_interpreter_others_can_change_is_refused_and_root_never_runs_it(
    tmp_path: Path, site: Path, untrusted: tuple[Path, str, Path]
) -> None:
    py, why, log = untrusted
    result = python_envs(tmp_path, site, python_envs_interpreter_paths={"3.11": str(py)})
    assert_fails_with(result, f"python_envs_interpreter_paths['3.11']: {py}: {why}; nothing was built.")
    assert "0" not in log.read_text().split(), "root ran it"
    assert not (site / "runtime" / "envs").exists()


def test_an_endpoint_python_others_can_change_is_refused_and_root_never_runs_it(
    tmp_path: Path, site: Path, untrusted: tuple[Path, str, Path]
) -> None:
    py, why, log = untrusted
    result = run_role(tmp_path, "endpoint", endpoint_vars(site, endpoint_python=str(py)), env=offline_policy(tmp_path))
    assert_fails_with(result, f"endpoint_python: {py}: {why}; nothing was built.")
    assert "0" not in log.read_text().split(), "root ran it"
    assert not (site / "install").exists()


def test_build_env_trusted_prints_the_paths_or_names_the_first_part_another_can_change(site: Path) -> None:
    mine = site / "mine"
    mine.mkdir()
    (mine / "a").touch()
    (mine / "b").symlink_to(PYTHON)
    shared = site / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    (shared / "c").touch()
    (mine / "d").symlink_to(shared / "c")

    def trusted(*paths: object) -> tuple[int, str, str]:
        run = subprocess.run(["bash", str(BUILD_ENV), "--trusted", *map(str, paths)], capture_output=True, text=True)
        return run.returncode, run.stdout, run.stderr

    assert trusted(mine / "a", mine / "b") == (0, f"{mine / 'a'}\n{mine / 'b'}\n", "")
    assert trusted() == (0, "", "")
    assert trusted(mine / "a", shared / "c") == (
        1,
        f"{mine / 'a'}\n",
        f"{shared / 'c'}: {shared} is writable by its group or others\n",
    )
    # As resolved too: a link of root's to a file others can swap.
    assert trusted(mine / "d") == (1, "", f"{mine / 'd'}: {shared} is writable by its group or others\n")
    assert trusted("mine/a") == (1, "", "mine/a: not an absolute path\n")
    assert trusted(mine / "e") == (1, "", f"{mine / 'e'}: does not exist\n")
    with accounts("brk") as homes:
        (login, home), *_ = homes.items()
        assert trusted(home) == (
            1,
            "",
            f"{home}: {home} belongs to {login}; root reads and runs only what root or it owns\n",
        )


def managed_python(install_dir: Path) -> Path:
    """An interpreter laid out as uv's own installs are (what `uv python install 3.11` left there)."""
    home = install_dir / "cpython-3.11.2-linux-x86_64-gnu"
    (home / "bin").mkdir(parents=True)
    lib = home / "lib" / "python3.11"
    lib.mkdir(parents=True)
    shutil.copy2(os.path.realpath(PYTHON), home / "bin" / "python3.11")
    (home / "bin" / "python3").symlink_to("python3.11")
    for data in Path("/usr/lib/python3.11").glob("_sysconfigdata_*.py"):
        shutil.copy2(data, lib / data.name)
    return home / "bin" / "python3.11"


def test_uv_managed_interpreters_are_under_the_root_and_users_run_their_environments(
    tmp_path: Path, site: Path
) -> None:
    envs = site / "runtime" / "envs"
    python = managed_python(envs / ".python")
    result = python_envs(tmp_path, site, python_envs_interpreter_source="uv")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Nothing of uv's went into root's home: no interpreter, no link in ~/.local/bin.
    assert [c for c in result.home_changes if c.startswith(".local")] == [], result.home_changes
    target = (envs / NAME).resolve()
    assert os.path.realpath(target / "bin" / "python") == str(python)
    ran = as_user("nobody", f"{envs / NAME}/bin/python -c 'import globus_compute_endpoint as g; print(g.__version__)'")
    assert (ran.returncode, ran.stdout) == (0, "4.19.0\n"), ran.stderr
    conf = (site / "runtime" / "worker-env.conf").read_text().splitlines()
    assert [line for line in conf if line.startswith("WORKER_ENV_PYTHON_INSTALL_DIR=")] == [
        f"WORKER_ENV_PYTHON_INSTALL_DIR={envs / '.python'}"
    ]
    # A per-user build with no site environment under it finds the same interpreter there.
    user_home = site / "home"
    user_home.mkdir()
    env = user_home / ".globus_compute" / "envs" / NAME
    built = subprocess.run(
        [
            "bash",
            str(site / "runtime" / "worker-env-build"),
            str(site / "runtime" / "worker-env.conf"),
            str(env),
            "3.11",
            "4.19.0",
            "",
        ],
        capture_output=True,
        text=True,
        env={"HOME": str(user_home), "PATH": "/usr/bin:/bin", **offline_policy(tmp_path)},
        timeout=300,
    )
    assert (built.returncode, built.stdout) == (0, "built\n"), built.stderr
    interpreter = (env / ".ready").read_text().splitlines()[1]
    assert interpreter.startswith(f"interpreter={envs / '.python'}/"), interpreter


def test_a_root_users_cannot_reach_publishes_nothing(tmp_path: Path) -> None:
    """python_envs_root under a 0700 directory (pytest's own, like root's home): built, refused, removed."""
    hidden = tmp_path / "root-home"
    hidden.mkdir(mode=0o700)
    result = python_envs(tmp_path, hidden, python_envs_interpreter_paths={"3.11": PYTHON})
    envs = hidden / "runtime" / "envs"
    assert_fails_with(
        result,
        f"python_envs_root: {envs}/.builds/{NAME}-",
        "/bin/python cannot be run by nobody",
        written=("root-home", "uv-cache"),
    )
    assert "Permission denied; nothing was published." in result.stdout + result.stderr
    # What is left of the build: the root and the builders' lock, no build and no environment.
    left = [c.split(" ", 1)[0] for c in result.test_changes if c.startswith("root-home/")]
    assert left == [
        "root-home/runtime",
        "root-home/runtime/envs",
        "root-home/runtime/envs/.builds",
        "root-home/runtime/envs/.builds/.build.lock",
    ], left


def test_a_build_uv_cannot_resolve_is_refused_in_one_line_and_publishes_nothing(tmp_path: Path, site: Path) -> None:
    """uv's reason takes several lines; the refusal gives them in the one line that names the entry."""
    entry = {"python": "3.11", "endpoint": "4.19.0", "packages": ["hgc-no-such-package"]}
    result = python_envs(tmp_path, site, python_envs_matrix=[entry], python_envs_interpreter_paths={"3.11": PYTHON})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    refused = [line for line in output.splitlines() if line.startswith("[ERROR]:") and "cannot be built on" in line]
    assert len(refused) == 1, output
    assert "No solution found when resolving dependencies" in refused[0], refused[0]
    assert refused[0].endswith("(a list of minors instead of found)."), refused[0]
    assert not (site / "runtime" / "envs" / NAME).exists()
