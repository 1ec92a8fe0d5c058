"""Root never writes through a link another account planted, and a start never empties a file it did not make.

A site root (or its .builds) that another account can change is refused before
a build or a prune writes anything; a start or a build with another account's
HOME (root after a sudo that keeps it) is refused in one line; HOME spelt as
the filesystem root (/., /..) is refused like /; a start's record of its time
never truncates a file with content (a hard link to one of the user's files).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from collection_plugins import CONTRACT
from role_runner import ROOT

FILES = ROOT / "roles" / "python_envs" / "files"
BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
NAME = "py3.11-gce4.19.0"
NOBODY = pwd.getpwnam("nobody")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root's own behaviour")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    return victim


def planted_root(tmp_path: Path, owner_of_root: bool) -> Path:
    """A site root (or only its .builds) that nobody, an account other than root, owns."""
    root = tmp_path / "root"
    (root / ".builds").mkdir(parents=True)
    os.chown(root / ".builds", NOBODY.pw_uid, NOBODY.pw_gid)
    if owner_of_root:
        os.chown(root, NOBODY.pw_uid, NOBODY.pw_gid)
    return root


@pytest.mark.parametrize("owned", ["root", ".builds"])
def test_a_prune_refuses_a_root_another_account_can_change(tmp_path: Path, victim: Path, owned: str) -> None:
    root = planted_root(tmp_path, owned == "root")
    evil = root / ".builds" / "evil"
    evil.mkdir()
    (evil / ".ready").touch()
    (evil / ".unpublished").symlink_to(victim)
    (root / NAME).symlink_to(".builds/evil")
    result = subprocess.run(
        ["bash", str(BUILD_ENV), "--prune", str(root), "7"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "belongs to nobody" in result.stderr and result.stdout == ""
    assert victim.read_text() == "precious\n"
    assert (root / NAME).is_symlink()


def test_a_build_refuses_a_root_whose_builds_another_account_owns(tmp_path: Path) -> None:
    root = planted_root(tmp_path, owner_of_root=False)
    created = tmp_path / "created-by-root"
    (root / ".builds" / ".build.lock").symlink_to(created)
    argv = [str(BUILD_ENV), "/bin/false", str(root), NAME, "abc", "/usr/bin/python3", "4.19.0"]
    result = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{root}/.builds: {root}/.builds belongs to nobody" in result.stderr
    assert not created.exists()


def test_a_build_runs_no_uv_another_account_could_swap(tmp_path: Path) -> None:
    """A link to root's uv in another account's directory, then root's uv its group can write: status 4 before
    anything runs, naming the part, and nothing made."""
    ran = tmp_path / "ran"
    program = tmp_path / "bin" / "uv"
    program.parent.mkdir()
    program.write_text(f"#!/bin/sh\ntouch {ran}\n")
    program.chmod(0o755)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "uv").symlink_to(program)
    os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
    root = tmp_path / "root"
    refusals = [
        (theirs / "uv", f"{theirs} belongs to nobody"),
        (program, f"{program} is writable by its group or others"),
    ]
    for uv, named in refusals:
        if uv == program:
            program.chmod(0o775)
        argv = [str(BUILD_ENV), str(uv), str(root), NAME, "abc", "/usr/bin/python3", "4.19.0"]
        result = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (4, ""), result.stderr
        assert result.stderr.startswith(f"{uv}: ") and named in result.stderr, result.stderr
    assert not ran.exists() and not root.exists()


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    """The runtime, per-user builds on, over a site root with no environment."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for path in (FILES / "worker-env.sh", FILES / "worker-env-build", BUILD_ENV):
        shutil.copy(path, runtime)
    (tmp_path / "site").mkdir()
    parts = " ".join(map(str, CONTRACT["env_name_parts"]))  # type: ignore[call-overload]
    (runtime / "worker-env.conf").write_text(
        f"WORKER_ENV_NAME=({parts})\n"
        f"WORKER_ENV_SITE_ROOT={tmp_path / 'site'}\nWORKER_ENV_USER_BUILDS=true\nWORKER_ENV_UV=/bin/false\n"
        # The contract's rules, as the role writes them: without them every version is refused.
        + "".join(
            f"WORKER_ENV_{key.split('_')[0].upper()}_PATTERN={shlex.quote(str(CONTRACT[key]))}\n"
            for key in ("python_ere", "endpoint_ere", "requirement_ere")
        )
        + f"WORKER_ENV_USER_ENV_PATTERN={shlex.quote(str(CONTRACT['user_env_ere']))}\n"
    )
    return runtime


def start(runtime: Path, home: str) -> subprocess.CompletedProcess[str]:
    script = f"set -euo pipefail\nsource {runtime}/worker-env.sh 3.11 4.19.0 || exit $?\necho ran"
    env = {"PATH": "/usr/bin:/bin", "HOME": home}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_a_start_with_another_accounts_home_is_refused_and_writes_nothing(tmp_path: Path, runtime: Path) -> None:
    home = tmp_path / "theirs"
    home.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (home / ".globus_compute").symlink_to(tmp_path / "elsewhere")
    os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
    os.lchown(home / ".globus_compute", NOBODY.pw_uid, NOBODY.pw_gid)
    result = start(runtime, str(home))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint 4.19.0: HOME {home} is not this"
        " account's; per-user environments live only in one's own home\n"
    )
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("home", ["/.", "/..", "//.", "/./"])
def test_a_home_that_is_the_filesystem_root_however_spelt_is_refused(runtime: Path, home: str) -> None:
    result = start(runtime, home)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint 4.19.0: HOME is '{home}', "
    )
    assert not Path("/.globus_compute").exists()


def test_a_start_never_empties_a_file_hard_linked_as_its_record(tmp_path: Path, runtime: Path) -> None:
    home = tmp_path / "home"
    env = home / ".globus_compute" / "envs" / NAME
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to("/usr/bin/python3")
    (env / "bin" / "activate").write_text("true\n")
    (env / ".ready").write_text("ready\n")
    notes = home / "notes.txt"
    notes.write_text("my notes\n")
    os.link(notes, env.parent / f".{NAME}.lock")
    result = start(runtime, str(home))
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr
    lock = env.parent / f".{NAME}.lock"
    assert result.stderr.rstrip("\n").endswith(f"; {lock} is not an empty regular file: this start is not recorded")
    assert notes.read_text() == "my notes\n"
