"""The uv role refuses bad input early, with the variable and value named.

These run the real role against this machine (connection local) with a private
HOME and, as root, every system tree (/etc, /var, /usr, ...) an overlay of the
case's own: the stage under /var/lib, the install directory and the policy are
private to each case, and each case shows that nothing was written in the home
or anywhere in the system trees (role_runner.assert_fails_with). The version
asked for is one no earlier run can have left a stage for.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import pytest
import role_runner
from accounts import accounts, as_user, is_root, uv_release
from role_runner import assert_fails_with

# A release nobody has: unique to this run, so no stage of it exists on the machine.
VERSION = f"99.0.1+t{uuid.uuid4().hex[:8]}"


def run_role(tmp_path: Path, **variables: object):
    base = {
        "uv_scope": "user",
        "uv_users": [getpass.getuser()],
        # The controller's download cache sits with Ansible's own files, outside what a refused run
        # must leave as it was: a download the role then refuses stays cached on the controller
        # (its checksums are fetched afresh every run), and nothing reaches the node.
        "uv_controller_cache_dir": str(tmp_path / "ansible" / "uv-cache"),
    }
    return role_runner.run_role(tmp_path, "uv", {**base, **variables}, private_system=True)


def assert_refused_after_download(result, *fragments: str) -> None:
    """As assert_fails_with, for a refusal that comes once the download was tried: no stage is left either."""
    assert_fails_with(result, *fragments)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("uv_scope", "cluster"), ("uv_source", "ftp"), ("uv_state", "gone"), ("uv_libc", "bionic")],
)
def test_unknown_choices_are_refused_by_the_argument_spec(tmp_path: Path, variable: str, value: str) -> None:
    assert_fails_with(run_role(tmp_path, **{variable: value}), variable, value)


def test_a_missing_user_is_named(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_users=["no-such-user-here"]), "uv_users", "no-such-user-here")


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        (["a\u0000b"], '"a\\u0000b" is not an account name'),
        (["--help", "x/y", "a b"], '"--help", "x/y", "a b" are not account names'),
        # -e uv_users=[alice] and -e uv_users= : one string, which the spec makes a list of one.
        (["[alice]"], '"[alice]" is not an account name'),
        ([""], '"" is not an account name'),
    ],
    ids=["null-byte", "option-slash-space", "list-spelt-as-key-value", "empty"],
)
def test_a_user_name_no_account_can_have_is_named(tmp_path: Path, names: list[str], shown: str) -> None:
    """Before, getent failed on a null byte ("embedded null byte", naming nothing) and took '--help' as its option."""
    assert_fails_with(run_role(tmp_path, uv_users=names), f"uv_users: {shown} (no leading '-'", "-e uv_users=alice,bob")


def test_an_unknown_architecture_is_named(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_arch="sparc64"), "uv_arch", "sparc64")


def test_user_scope_without_users_is_refused(tmp_path: Path) -> None:
    assert_fails_with(run_role(tmp_path, uv_users=[]), "uv_scope=user needs uv_users (got []).")


def test_values_that_depend_on_each_other_are_named_together_and_only_those_that_fail(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_users=[], uv_version="0.5.0")
    assert_fails_with(result, "uv_scope=user needs uv_users (got []). uv_version: 0.5.0 is older than uv 0.6.8")
    assert "uv_controller_archive" not in result.stdout and "a release number" not in result.stdout


def test_an_unreachable_mirror_is_named(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_version=VERSION, uv_release_base_url=f"file://{tmp_path}/no-mirror")
    assert_refused_after_download(result, "uv_release_base_url", f"file://{tmp_path}/no-mirror", "unchanged")


def test_a_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / VERSION
    mirror.mkdir(parents=True)
    tarball = mirror / "uv-x86_64-unknown-linux-gnu.tar.gz"
    with tarfile.open(tarball, "w:gz"):
        pass
    wrong = hashlib.sha256(b"something else").hexdigest()
    Path(f"{tarball}.sha256").write_text(f"{wrong}  {tarball.name}\n")
    actual = hashlib.sha256(tarball.read_bytes()).hexdigest()
    result = run_role(tmp_path, uv_version=VERSION, uv_arch="x86_64", uv_release_base_url=f"file://{mirror.parent}")
    # Only a mismatch prints both digests; the temp directory's name holds the
    # word "checksum", so any failure to fetch would print that word too.
    assert "No such file" not in result.stdout + result.stderr
    assert_refused_after_download(result, "uv_release_base_url", wrong, actual)


def test_a_missing_controller_archive_is_named(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_version=VERSION, uv_source="controller", uv_controller_archive="/nonexistent/uv.whl")
    assert_refused_after_download(result, "uv_controller_archive", "/nonexistent/uv.whl", "does not exist")


def test_a_wrong_controller_archive_checksum_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "uv.tar.gz"
    archive.write_bytes(b"not really")
    result = run_role(
        tmp_path,
        uv_version=VERSION,
        uv_source="controller",
        uv_controller_archive=str(archive),
        uv_controller_archive_sha256="0" * 64,
    )
    assert_refused_after_download(result, "uv_controller_archive_sha256", "0" * 64)


def test_a_uv_version_older_than_the_roles_flags_is_named(tmp_path: Path) -> None:
    result = run_role(tmp_path, uv_version="0.5.31", uv_source="controller", uv_controller_archive="/nonexistent")
    assert_fails_with(result, "uv_version: 0.5.31 is older than uv 0.6.8", "--managed-python")


@pytest.mark.skipif(not is_root(), reason="the system trees are watched as root")
def test_the_watch_sees_every_file_an_install_writes(tmp_path: Path) -> None:
    """The other cases' "nothing written" is worth something only if a write shows: a
    system install's writes are exactly what its manifest records, and none reach the machine."""
    tarball, version = uv_release(tmp_path)
    bin_dir = f"/opt/hgc-test-{uuid.uuid4().hex[:8]}/bin"
    result = run_role(
        tmp_path,
        uv_scope="system",
        uv_version=version,
        uv_source="controller",
        uv_controller_archive=str(tarball),
        uv_bin_dir=bin_dir,
        # Unique, so that it differs from any policy a deployment of this machine wrote.
        uv_config={"cache-dir": str(tmp_path / "uv-cache")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = "/var/lib/hpc_globus_compute/uv.json"
    recorded = json.loads((tmp_path / "system" / "upper" / manifest.lstrip("/")).read_text())["files"]
    assert recorded == [f"{bin_dir}/uv", f"{bin_dir}/uvx", "/etc/uv/uv.toml"]
    assert result.system_changes == sorted(f"{path} file" for path in [*recorded, manifest])
    assert not result.home_changes, result.home_changes
    assert not Path(bin_dir).parent.exists()


@pytest.mark.skipif(not is_root(), reason="a system install is root's")
@pytest.mark.parametrize("open_one", ["bin_dir", "above"])
def test_a_uv_bin_dir_another_account_can_change_is_refused(tmp_path: Path, open_one: str) -> None:
    """Another account could put its own uv there, which root and every worker would then run: before, the
    probe ran nothing there and every run installed uv again, reporting a change and naming nothing."""
    above = tmp_path / "shared"
    bin_dir = above / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir if open_one == "bin_dir" else above).chmod(0o777)
    result = run_role(tmp_path, uv_scope="system", uv_version=VERSION, uv_bin_dir=str(bin_dir))
    assert_fails_with(result, f"{bin_dir}: another account can change it", "Nothing was changed")
    assert list(bin_dir.iterdir()) == []


# The controller's Python lies under /root, which no other account can enter: the account runs the same
# ansible-core with the system's Python 3.11 (the same ABI).
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


@pytest.mark.skipif(not is_root() or not SYSTEM_PYTHON.exists(), reason="makes the account it runs the role as")
@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("scope", ["system", "other-users", "list-spelt-as-key-value"])
def test_what_only_root_may_write_is_refused_for_another_account(tmp_path: Path, scope: str, check: bool) -> None:
    """Before, a system install by an account other than root failed on the probe's Permission denied for
    /var/lib/hpc_globus_compute/uv.json, naming neither uv_scope nor root."""
    root = role_runner.ROOT
    site_packages = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    with accounts("uvadmin") as made:
        [(login, home)] = made.items()
        variables = {
            "system": {"uv_scope": "system"},
            "other-users": {"uv_scope": "user", "uv_users": [login, "root"]},
            # What -e uv_users=[login] gives: before, refused as another account's home, advising uv_users=[login].
            "list-spelt-as-key-value": {"uv_scope": "user", "uv_users": [f"[{login}]"]},
        }[scope]
        playbook = home / "uv.yml"
        playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [hpc.globus_compute.uv]\n")
        before = sorted(str(p) for p in home.rglob("*"))
        command = (
            f"cd {home} && ANSIBLE_COLLECTIONS_PATH={root}/.cache/collections PYTHONPATH={site_packages}"
            f" {SYSTEM_PYTHON} -m ansible playbook -i localhost, -c local {playbook} -e '{json.dumps(variables)}'"
            f" -e ansible_python_interpreter={SYSTEM_PYTHON} {'--check' if check else ''}"
        )
        result = as_user(login, command)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        wrote = "uv_scope=system writes /usr/local/bin, /etc/uv and /var/lib/hpc_globus_compute"
        others = "uv_users: root is another account, whose home"
        if scope == "list-spelt-as-key-value":
            assert f'uv_users: "[{login}]" is not an account name' in output and "other account" not in output
        else:
            assert f"{wrote if scope == 'system' else others} only root can write, and {login} is not root" in output
            assert "Nothing was changed" in output
        assert sorted(str(p) for p in home.rglob("*") if ".ansible" not in p.parts) == before
