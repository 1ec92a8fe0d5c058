"""What root runs or reads is trusted only when nobody but root and the account can change anything its lookup
visits: the probe's trusted() and build-env.sh --trusted hold one rule, and agree on every case here.

Each case is a path into a tree made afresh, where "theirs" is a directory of another account's (nobody).
Before, both looked only at the path as written and as fully resolved: a link of root's to a link of theirs
to root's uv passed, as did a directory reached that way, a root's script whose #! names their program, and
(in build-env.sh) a name holding a newline, checked only up to it.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from ansible_collections.hpc.globus_compute.plugins.modules.probe import trusted
from role_runner import ROOT

BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
NOBODY = pwd.getpwnam("nobody")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another account")


def script(path: Path, first_line: str) -> Path:
    path.write_bytes(f"{first_line}\necho uv 0.13.9\n".encode())
    path.chmod(0o755)
    return path


def theirs_in(directory: Path, name: str) -> None:
    """A program of theirs, as another account could make it in a sticky directory."""
    os.chown(script(directory / name, "#!/bin/sh"), NOBODY.pw_uid, NOBODY.pw_gid)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    base = tmp_path / "t"
    (base / "bin").mkdir(parents=True)
    (base / "theirs").mkdir()
    uv = script(base / "bin" / "uv", "#!/bin/sh")
    os.chown(base / "theirs", NOBODY.pw_uid, NOBODY.pw_gid)
    # A link of root's to a link of theirs to root's uv; the same for a directory on the way.
    (base / "theirs" / "uv").symlink_to(uv)
    (base / "hop").symlink_to(base / "theirs" / "uv")
    (base / "theirs" / "dir").symlink_to(base / "bin")
    (base / "via").symlink_to(base / "theirs" / "dir")
    (base / "mine").symlink_to(uv)
    script(base / "bin" / "theirs-sh", f"#!{base}/theirs/sh")
    script(base / "bin" / "relative", "#!sh -e")
    script(base / "bin" / "spaced", "#!  /bin/sh  -e")
    # Five #! levels: one more than the kernel follows.
    script(base / "bin" / "deep0", "#!/bin/sh")
    for level in range(1, 6):
        script(base / "bin" / f"deep{level}", f"#!{base}/bin/deep{level - 1}")
    # A name with a newline: its first line is root's directory, the whole of it theirs.
    (base / "nl").mkdir()
    (base / "nl\nz").mkdir()
    script(base / "nl\nz" / "uv", "#!/bin/sh")
    os.chown(base / "nl\nz", NOBODY.pw_uid, NOBODY.pw_gid)
    (base / "group").mkdir()
    script(base / "group" / "uv", "#!/bin/sh").chmod(0o775)
    (base / "sticky").mkdir()
    (base / "sticky").chmod(0o1777)
    script(base / "sticky" / "uv", "#!/bin/sh")
    # Where a #! line's name ends for Linux, and for a reading that split it otherwise: at a carriage return
    # (Linux: part of the name), at a NUL (Linux: the end of the line), at a Unicode blank (Linux: part of it).
    (base / "sticky" / "sh").symlink_to("/bin/sh")
    (base / "sticky" / "ab").symlink_to("/bin/sh")
    for case, name, line in [("cr", "sh\r", "sh\r"), ("nul", "a", "a\0b"), ("unicode-blank", "sh\u3000x", "sh\u3000x")]:
        theirs_in(base / "sticky", name)
        script(base / "bin" / f"names-{case}", f"#!{base}/sticky/{line}")
    (base / "loop").symlink_to(base / "loop")
    (base / "open").mkdir()
    (base / "open").chmod(0o777)
    return base


CASES = {
    "bin/uv": True,
    "mine": True,
    "bin/spaced": True,
    "sticky/uv": True,
    "bin/deep4": True,
    "hop": False,
    "via/uv": False,
    "theirs/uv": False,
    "bin/theirs-sh": False,
    "bin/relative": False,
    "bin/deep5": False,
    "nl\nz/uv": False,
    "group/uv": False,
    "loop": False,
    "open/../bin/uv": False,
    "bin/names-cr": False,
    "bin/names-nul": False,
    "bin/names-unicode-blank": False,
}


@pytest.mark.parametrize(("name", "expected"), CASES.items(), ids=[n.replace("\n", "\\n") for n in CASES])
def test_the_probe_and_build_env_agree_on_what_is_trusted(tree: Path, name: str, expected: bool) -> None:
    path = f"{tree}/{name}"
    # A locale whose blanks include Unicode ones: the #! line is read as Linux reads it all the same.
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    checked = subprocess.run(
        ["bash", str(BUILD_ENV), "--trusted", path], capture_output=True, text=True, timeout=60, env=env
    )
    assert (trusted(path), checked.returncode == 0) == (expected, expected), checked.stderr
    if not expected:
        assert checked.stderr.startswith(f"{path}: ") and checked.stdout == "", checked.stderr


def test_a_name_not_made_yet_is_trusted_where_nobody_else_could_make_it_first(tree: Path) -> None:
    """The probe's case alone (uv_bin_dir before uv makes it); build-env.sh --trusted needs the path there."""
    assert trusted(f"{tree}/bin/new/uv")
    assert not trusted(f"{tree}/sticky/new")
    assert not trusted(f"{tree}/theirs/new")
