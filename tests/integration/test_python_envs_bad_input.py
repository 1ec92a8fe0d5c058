"""The python_envs role refuses a bad matrix or a missing interpreter before building anything."""

from __future__ import annotations

import getpass
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from accounts import accounts, is_root
from artifacts import artifacts
from role_runner import ROOT, assert_fails_with, run_role
from versions import UV_TOO_OLD


def run_python_envs(
    tmp_path: Path, args: list[str] | None = None, env: dict[str, str] | None = None, **variables: object
):
    base = {
        "python_envs_runtime_dir": str(tmp_path / "runtime"),
        # Its fact too: a refused run records nothing, here or in /etc/ansible.
        "python_envs_facts_dir": str(tmp_path / "facts"),
        "python_envs_owner": getpass.getuser(),
        "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
    }
    # Every system tree watched too (/etc/ansible, /opt/hpc_globus_compute ...).
    return run_role(tmp_path, "python_envs", {**base, **variables}, args=args, env=env, private_system=True)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"python": "3.12; rm -rf /", "endpoint": "4.19.0"}, "3.12; rm -rf /"),
        ({"python": "3.12", "endpoint": "latest"}, "latest"),
        ({"python": "3.12", "endpoint": "4.19.0", "packages": ["--index-url=http://evil"]}, "--index-url"),
    ],
    ids=["python", "endpoint", "package-option"],
)
def test_a_bad_matrix_entry_is_named(tmp_path: Path, entry: dict, shown: str) -> None:
    assert_fails_with(run_python_envs(tmp_path, python_envs_matrix=[entry]), "python_envs_matrix", shown)
    assert not (tmp_path / "runtime").exists()
    assert not (tmp_path / "facts").exists()


def test_a_default_outside_the_matrix_is_refused(tmp_path: Path) -> None:
    result = run_python_envs(tmp_path, python_envs_default={"python": "3.10", "endpoint": "4.19.0"})
    assert_fails_with(result, "python_envs_default", "3.10", "py3.11-gce4.19.0")


def test_a_missing_interpreter_is_named_with_what_was_found(tmp_path: Path) -> None:
    result = run_python_envs(
        tmp_path, python_envs_matrix=[{"python": "3.99", "endpoint": "4.19.0"}], python_envs_runtime_fallback="error"
    )
    assert_fails_with(result, "no Python 3.99 on localhost", "found: ", "python3.")
    assert not (tmp_path / "runtime" / "envs").exists()


# No uv role in the play installs it, so check mode refuses what the real run would.
@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
def test_a_missing_uv_is_named(tmp_path: Path, args: list[str]) -> None:
    result = run_python_envs(tmp_path, args, python_envs_uv="/nonexistent/uv")
    assert_fails_with(result, "python_envs_uv: /nonexistent/uv is not an executable uv")


@pytest.mark.skipif(not is_root(), reason="needs root: the uv belongs to a test account")
@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
def test_another_accounts_uv_is_refused(tmp_path: Path, args: list[str]) -> None:
    """Root would run a binary that account can change: the probe does not even ask its version."""
    with accounts("uvowner") as made:
        [(login, home)] = made.items()
        uv = uv_from_wheel(artifacts() / "uv" / UV_TOO_OLD, home / "uv")
        shutil.chown(uv, login, login)
        result = run_python_envs(tmp_path, args, python_envs_uv=str(uv))
    assert_fails_with(result, f"python_envs_uv: {uv} could be changed by an account other than root and root")


@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
def test_a_uv_in_a_directory_others_can_write_is_refused(tmp_path: Path, args: list[str]) -> None:
    """The connecting account's own uv is not run either where anyone could swap it."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    uv = uv_from_wheel(artifacts() / "uv" / UV_TOO_OLD, open_dir / "uv")
    open_dir.chmod(0o777)
    result = run_python_envs(tmp_path, args, python_envs_uv=str(uv))
    user = getpass.getuser()
    assert_fails_with(result, f"python_envs_uv: {uv} could be changed by an account other than root and {user}")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another account")
@pytest.mark.parametrize("shape", ["link-in-another-accounts-directory", "link-to-their-link", "group-writable"])
def test_a_uv_another_account_could_swap_is_neither_run_nor_built_with(tmp_path: Path, shape: str) -> None:
    """As named and as resolved: a link to root's program, in a directory of another account's, is theirs to
    point elsewhere; a program its group can write is its group's members'."""
    ran = tmp_path / "ran"
    real_bin = tmp_path / "bin"
    real_bin.mkdir()
    program = real_bin / "uv"
    program.write_text(f"#!/bin/sh\ntouch {ran}\necho uv 0.13.9\n")
    program.chmod(0o755)
    uv = program
    if shape == "group-writable":
        os.chown(program, 0, 65534)
        program.chmod(0o775)
    else:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        uv = theirs / "uv"
        uv.symlink_to(program)
        os.chown(theirs, 65534, 65534)
        if shape == "link-to-their-link":
            # Root's link, in root's directory, to theirs: only the hop between is theirs.
            uv = real_bin / "uv-link"
            uv.symlink_to(theirs / "uv")
    for args in ([], ["--check"]):
        result = run_python_envs(tmp_path, args, python_envs_uv=str(uv))
        assert_fails_with(result, f"python_envs_uv: {uv} could be changed by an account other than root and root")
    assert not ran.exists()


def test_a_bash_in_a_directory_others_can_write_is_not_run(tmp_path: Path) -> None:
    """The first bash on the PATH is run for its version only where nobody else could swap it."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    bash = open_dir / "bash"
    shutil.copy2(shutil.which("bash") or "/bin/bash", bash)
    open_dir.chmod(0o777)
    result = run_python_envs(tmp_path, env={"PATH": f"{open_dir}:{os.environ['PATH']}"})
    assert_fails_with(result, f"bash: {bash} on localhost is not a program that only root and {getpass.getuser()} can")


@pytest.mark.parametrize(
    ("variables", "shown"),
    [
        ({"python_envs_user_indexes": ["https://pypi.example.org/simple'; touch /tmp/x"]}, "python_envs_user_indexes"),
        ({"python_envs_user_indexes": ["ftp://mirror.example.org/"]}, "ftp://mirror.example.org/"),
        ({"python_envs_user_envs_max": 0}, "python_envs_user_envs_max"),
        ({"python_envs_user_requirements_max": -1}, "python_envs_user_requirements_max"),
        ({"python_envs_user_requirements": "perhaps"}, "python_envs_user_requirements"),
    ],
    ids=["index-with-quote", "index-not-http", "no-environments", "negative-requirements", "not-a-bool"],
)
def test_a_bad_user_package_policy_is_named(tmp_path: Path, variables: dict, shown: str) -> None:
    assert_fails_with(run_python_envs(tmp_path, **variables), shown)
    assert not (tmp_path / "runtime").exists()


def uv_from_wheel(wheel_dir: Path, dest: Path) -> Path:
    wheels = sorted(wheel_dir.glob("*.whl"))
    assert wheels, f"no uv wheel in {wheel_dir}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(("/scripts/uv", "/bin/uv")))
        dest.write_bytes(wheel.read(member))
    dest.chmod(0o755)
    return dest


def test_a_uv_too_old_for_the_roles_flags_is_named_with_both_versions(tmp_path: Path) -> None:
    uv = uv_from_wheel(artifacts() / "uv" / UV_TOO_OLD, tmp_path / "uv")
    result = run_python_envs(tmp_path, python_envs_uv=str(uv), python_envs_interpreter_source="uv")
    assert_fails_with(result, f"python_envs_uv: {uv} is uv {UV_TOO_OLD}", "uv 0.6.8 or later", "--managed-python")
    assert not (tmp_path / "runtime").exists()


def test_a_uv_that_prints_its_version_alone_is_named_on_one_line(tmp_path: Path) -> None:
    # Without a build suffix, `uv --version` is the version and a newline.
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\necho 'uv 0.1.0'\n")
    uv.chmod(0o755)
    result = run_python_envs(tmp_path, python_envs_uv=str(uv), python_envs_interpreter_source="uv")
    assert_fails_with(result, f"python_envs_uv: {uv} is uv 0.1.0; these roles need uv 0.6.8 or later")


def test_a_uv_that_does_not_run_is_shown_with_its_own_message(tmp_path: Path) -> None:
    """A truncated binary (a copy cut short): its status, and its own message if it left one."""
    broken = tmp_path / "uv"
    broken.write_bytes((ROOT / ".venv" / "bin" / "uv").read_bytes()[:4096])
    broken.chmod(0o755)
    result = run_python_envs(tmp_path, python_envs_uv=str(broken))
    assert_fails_with(result, f"python_envs_uv: {broken} --version failed on localhost (status ")
    assert not (tmp_path / "runtime").exists()
