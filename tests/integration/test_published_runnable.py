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
from accounts import as_user, is_root
from artifacts import artifacts
from role_runner import ROOT, assert_fails_with, run_role

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the check runs as an unprivileged account")

UV = ROOT / ".venv" / "bin" / "uv"
PYTHON = "/usr/bin/python3.11"
NAME = "py3.11-gce4.19.0"


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse, as a site's runtime directory is."""
    base = Path(tempfile.mkdtemp(prefix="hgc-runnable-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def root_only(tmp_path: Path) -> Path:
    """A 0700 directory holding a working python3.11 (a copy) and python3 (a link to it), like ~root/.pyenv."""
    private = tmp_path / "root-home" / "bin"
    private.mkdir(parents=True)
    private.parent.chmod(0o700)
    shutil.copy2(os.path.realpath(PYTHON), private / "python3.11")
    (private / "python3").symlink_to("python3.11")
    return private


def offline(tmp_path: Path) -> dict[str, str]:
    """The site's uv policy: the building account's own uv.toml (build-env.sh drops UV_* variables)."""
    config = tmp_path / "config"
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{artifacts() / "wheelhouse"}"]\n'
        f'python-downloads = "never"\ncache-dir = "{tmp_path / "uv-cache"}"\n'
    )
    return {"XDG_CONFIG_HOME": str(config)}


def python_envs(tmp_path: Path, site: Path, env: dict[str, str] | None = None, **variables: object):
    base = {
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_uv": str(UV),
        "python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}],
    }
    return run_role(tmp_path, "python_envs", {**base, **variables}, env={**offline(tmp_path), **(env or {})})


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
    variables = {
        "endpoint_owner": "root",
        "endpoint_mode": "single_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_uv": str(UV),
        "endpoint_service": False,
    }
    path = {"PATH": f"{root_only}:{os.environ['PATH']}", **offline(tmp_path)}
    result = run_role(tmp_path, "endpoint", variables, env=path)
    assert_fails_with(
        result, f"endpoint_python: {root_only}/python3 cannot be run by nobody: Permission denied; nothing was built."
    )
    assert not (site / "install").exists()
    assert not (site / "gc").exists()


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
    assert conf[-1] == f"WORKER_ENV_PYTHON_INSTALL_DIR={envs / '.python'}"
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
        env={"HOME": str(user_home), "PATH": "/usr/bin:/bin", **offline(tmp_path)},
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
    assert_fails_with(result, f"python_envs_root: {envs}/.builds/{NAME}-", "/bin/python cannot be run by nobody")
    assert "Permission denied; nothing was published." in result.stdout + result.stderr
    assert not (envs / NAME).exists()
    assert [p.name for p in (envs / ".builds").iterdir() if p.is_dir()] == []
