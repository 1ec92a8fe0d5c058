"""The uv role refuses bad input early, with the variable and value named.

These run the real role against this machine (connection local) in a private
HOME; every case fails before anything is installed.
"""

from __future__ import annotations

import getpass
import hashlib
import tarfile
from pathlib import Path

import pytest
import role_runner
from role_runner import assert_fails_with


def run_role(tmp_path: Path, **variables: object):
    base = {
        "uv_scope": "user",
        "uv_users": [getpass.getuser()],
        "uv_controller_cache_dir": str(tmp_path / "cache"),
    }
    return role_runner.run_role(tmp_path, "uv", {**base, **variables})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("uv_scope", "cluster"), ("uv_source", "ftp"), ("uv_state", "gone"), ("uv_libc", "bionic")],
)
def test_unknown_choices_are_refused_by_the_argument_spec(tmp_path: Path, variable: str, value: str) -> None:
    assert_fails_with(run_role(tmp_path, **{variable: value}), variable, value)


def test_a_missing_user_is_named(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_users=["no-such-user-here"]), "uv_users", "no-such-user-here")


def test_an_unknown_architecture_is_named(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_arch="sparc64"), "uv_arch", "sparc64")


def test_user_scope_without_users_is_refused(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_users=[]), "uv_scope=user needs uv_users")


def test_an_unreachable_mirror_is_named(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_version="99.0.1", uv_release_base_url=f"file://{tmp_path}/no-mirror")
    assert_fails_with(result, "uv_release_base_url", f"file://{tmp_path}/no-mirror", "unchanged")


def test_a_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "99.0.1"
    mirror.mkdir(parents=True)
    tarball = mirror / "uv-x86_64-unknown-linux-gnu.tar.gz"
    with tarfile.open(tarball, "w:gz"):
        pass
    wrong = hashlib.sha256(b"something else").hexdigest()
    Path(f"{tarball}.sha256").write_text(f"{wrong}  {tarball.name}\n")
    actual = hashlib.sha256(tarball.read_bytes()).hexdigest()
    result = run_role(tmp_path, uv_version="99.0.1", uv_arch="x86_64", uv_release_base_url=f"file://{mirror.parent}")
    # Only a mismatch prints both digests; the temp directory's name holds the
    # word "checksum", so any failure to fetch would print that word too.
    assert_fails_with(result, "uv_release_base_url", wrong, actual)
    assert "No such file" not in result.stdout + result.stderr


def test_a_missing_controller_archive_is_named(tmp_path: Path) -> None:
    result = run_role(
        tmp_path, uv_version="99.0.1", uv_source="controller", uv_controller_archive="/nonexistent/uv.whl"
    )
    assert_fails_with(result, "uv_controller_archive", "/nonexistent/uv.whl", "does not exist")


def test_a_wrong_controller_archive_checksum_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "uv.tar.gz"
    archive.write_bytes(b"not really")
    result = run_role(
        tmp_path,
        uv_version="99.0.1",
        uv_source="controller",
        uv_controller_archive=str(archive),
        uv_controller_archive_sha256="0" * 64,
    )
    assert_fails_with(result, "uv_controller_archive_sha256", "0" * 64)


def test_a_uv_version_older_than_the_roles_flags_is_named(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_version="0.5.31", uv_source="controller", uv_controller_archive="/nonexistent")
    assert_fails_with(result, "uv_version: 0.5.31 is older than uv 0.6.8", "--managed-python")
