from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hpc.globus_compute.plugins.filter.chmod import chmod

# The symbolic modes the roles give (the uv role's directories, the endpoint's parent directory) and the
# other forms a symbolic mode takes.
SYMBOLIC = ["u+rwx,go+rx", "u+rwx,go-w", "u=rwx,g=rx,o=", "a+X", "ug+s,o-rwx", "u+t,g-x", "o=u", "a-w,u+w"]
FOUND = ["0000", "0700", "0750", "0755", "0775", "0777", "1777", "0640", "0644", "2755"]


@pytest.mark.parametrize("directory", [True, False])
@pytest.mark.parametrize("symbolic", SYMBOLIC)
def test_symbolic_modes_give_what_chmod_gives(tmp_path: Path, symbolic: str, directory: bool) -> None:
    """Each symbolic mode, on each starting mode, leaves what coreutils' chmod leaves on a real file.

    GNU chmod alone keeps a directory's set-user-ID and set-group-ID bits that ``=`` does not name; the
    modules, and this filter, give the mode the symbolic mode says.
    """
    path = tmp_path / "d"
    path.mkdir() if directory else path.touch()
    for found in FOUND:
        if directory and "=" in symbolic and int(found, 8) & 0o6000:
            continue
        os.chmod(path, int(found, 8))
        subprocess.run(["chmod", symbolic, str(path)], check=True)
        assert chmod(found, symbolic, directory=directory) == f"{stat.S_IMODE(path.stat().st_mode):04o}", found


def test_octal_modes_replace_the_mode() -> None:
    assert chmod("0777", "0700") == "0700"
    assert chmod("0644", "755") == "0755"
    assert chmod("0700", "2775") == "2775"


def test_equals_clears_a_directorys_setgid_bit_as_the_modules_do() -> None:
    assert chmod("2755", "u=rwx,g=rx,o=", directory=True) == "0750"


def test_a_fitting_mode_is_left_alone_and_a_narrow_one_widened() -> None:
    assert chmod("0775", "u+rwx,go+rx", directory=True) == "0775"
    assert chmod("0700", "u+rwx,go+rx", directory=True) == "0755"
    assert chmod("0777", "u+rwx,go-w", directory=True) == "0755"


@pytest.mark.parametrize(
    ("found", "mode", "named"),
    [
        ("", "0755", "the file's mode"),
        (None, "0755", "the file's mode"),
        ("0x1ed", "0755", "the file's mode"),
        ("07777", "0755", "the file's mode"),
        ("0755", "", "mode must be"),
        ("0755", None, "mode must be"),
        ("0755", "u+q", "mode 'u+q'"),
        ("0755", "rwx", "mode 'rwx'"),
        ("0755", "08", "mode '08'"),
    ],
)
def test_bad_input_is_refused_by_name(found: object, mode: object, named: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(named)):
        chmod(found, mode)
