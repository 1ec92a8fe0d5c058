"""Per-user uv: each user's own binaries and policy, nothing system-wide."""

from __future__ import annotations

import pytest
from conftest import OFFLINE_POLICY, UV_NEW, assert_uv_builds_offline, read_json, read_toml

USERS = ["alice", "bob"]


@pytest.mark.parametrize("user", USERS)
def test_each_user_owns_a_runnable_uv(host, user: str) -> None:
    for name in ("uv", "uvx"):
        binary = host.file(f"/home/{user}/.local/bin/{name}")
        assert binary.user == user
        assert binary.mode == 0o755
    version = host.check_output(f"runuser -u {user} -- /home/{user}/.local/bin/uv --version")
    assert version.startswith(f"uv {UV_NEW} ")


@pytest.mark.parametrize("user", USERS)
def test_no_directory_in_the_home_is_left_to_root(host, user: str) -> None:
    assert host.check_output(f"find /home/{user} ! -user {user}") == ""


def test_a_users_own_uv_is_never_run_by_root(host) -> None:
    # The side effect forged alice's uv and ran the role again as root: the
    # forgery ran once, as alice (so its record works), and never as root.
    assert host.check_output("cat /tmp/forged-uv-ran").splitlines() == ["alice --version"]
    # The role put the real one back, the same binary as bob's.
    assert host.file("/home/alice/.local/bin/uv").sha256sum == host.file("/home/bob/.local/bin/uv").sha256sum
    assert host.check_output("runuser -u alice -- /home/alice/.local/bin/uv --version").startswith(f"uv {UV_NEW} ")


@pytest.mark.parametrize("user", USERS)
def test_each_user_has_the_policy_and_a_manifest(host, user: str) -> None:
    assert host.file(f"/home/{user}/.config/uv/uv.toml").user == user
    assert read_toml(host, f"/home/{user}/.config/uv/uv.toml") == OFFLINE_POLICY
    assert read_json(host, f"/home/{user}/.local/share/hpc_globus_compute/uv.json")["version"] == UV_NEW


def test_nothing_is_installed_system_wide(host) -> None:
    for path in ("/usr/local/bin/uv", "/usr/local/bin/uvx", "/etc/uv"):
        assert not host.file(path).exists
    # Only the stage the users' copies come from, root's alone.
    assert host.check_output("ls -A /var/lib/hpc_globus_compute") == "stage"
    stage = host.file(f"/var/lib/hpc_globus_compute/stage/uv-{UV_NEW}")
    assert (stage.user, stage.mode) == ("root", 0o700)


@pytest.mark.parametrize("user", USERS)
def test_uv_builds_offline_with_the_users_own_policy(host, pythons: list[str], user: str) -> None:
    for python in pythons:
        assert_uv_builds_offline(host, user, f"/home/{user}/.local/bin/uv", python)
