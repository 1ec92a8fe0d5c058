"""System-wide uv: root-owned binaries, the site policy, offline builds for everybody."""

from __future__ import annotations

import pytest
from conftest import OFFLINE_POLICY, UV_NEW, assert_uv_builds_offline, read_json, read_toml


@pytest.mark.parametrize("name", ["uv", "uvx"])
def test_binaries_are_root_owned_and_report_the_pinned_version(host, name: str) -> None:
    binary = host.file(f"/usr/local/bin/{name}")
    assert binary.user == "root"
    assert binary.mode == 0o755
    assert host.check_output(f"/usr/local/bin/{name} --version").startswith(f"{name} {UV_NEW} ")


def test_no_virtualenv_or_wheel_is_left_on_the_node(host) -> None:
    archives = host.run("find / -xdev -name 'uv-*.whl' -o -xdev -name 'uv-*.tar.gz'")
    assert (archives.rc, archives.stdout) == (0, "")
    binaries = host.run("find / -xdev -path /proc -prune -o -name 'uv' -type f -print")
    assert binaries.rc == 0, binaries.stderr
    assert binaries.stdout.split() == ["/usr/local/bin/uv"]


def test_site_policy_is_the_uv_config_variable(host) -> None:
    policy = host.file("/etc/uv/uv.toml")
    assert policy.user == "root"
    assert policy.mode == 0o644
    assert read_toml(host, "/etc/uv/uv.toml") == OFFLINE_POLICY


def test_manifest_records_what_was_installed(host) -> None:
    manifest = read_json(host, "/var/lib/hpc_globus_compute/uv.json")
    assert manifest["version"] == UV_NEW
    assert manifest["files"] == ["/usr/local/bin/uv", "/usr/local/bin/uvx", "/etc/uv/uv.toml"]


@pytest.mark.parametrize("user", ["root", "alice"])
def test_uv_builds_environments_offline_for_each_python(host, pythons: list[str], user: str) -> None:
    for python in pythons:
        assert_uv_builds_offline(host, user, "uv", python)
