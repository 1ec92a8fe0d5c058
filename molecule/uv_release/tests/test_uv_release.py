"""Release installs: upgrade, a tampered mirror refused, removal of exactly what was installed."""

from __future__ import annotations

import re

import pytest
from conftest import UV_NEW, assert_uv_builds_offline, node, read_json


@pytest.fixture(scope="module")
def upgraded():
    return node("uv-release-upgrade")


@pytest.fixture(scope="module")
def removed():
    return node("uv-release-absent")


def test_upgrade_replaced_both_binaries(upgraded) -> None:
    assert upgraded.check_output("/usr/local/bin/uv --version").startswith(f"uv {UV_NEW} ")
    assert upgraded.check_output("/usr/local/bin/uvx --version").startswith(f"uvx {UV_NEW} ")
    assert read_json(upgraded, "/var/lib/hpc_globus_compute/uv.json")["version"] == UV_NEW


def test_tampered_mirror_failed_the_play_with_a_clear_message(upgraded) -> None:
    message = upgraded.file("/var/tmp/tampered-mirror.txt").content_string
    assert "uv_release_base_url" in message
    assert "0.13.8" in message
    # Only a mismatch prints both digests: the mirror's (all zeros) and the
    # tarball's; any failure to fetch would print the word "checksum" too.
    assert "0" * 64 in message
    assert re.search(r"\b(?!0{64}\b)[0-9a-f]{64}\b", message), message
    assert "No such file" not in message
    assert "unchanged" in message


def test_uv_still_works_after_the_refused_downgrade(upgraded) -> None:
    assert_uv_builds_offline(upgraded, "alice", "uv", "3.11")


def test_absent_removed_the_binaries_policy_and_manifest(removed) -> None:
    for path in ("/usr/local/bin/uv", "/usr/local/bin/uvx", "/etc/uv/uv.toml", "/var/lib/hpc_globus_compute/uv.json"):
        assert not removed.file(path).exists, path


def test_absent_left_everything_else(removed) -> None:
    # Whole listings of /usr, /etc, /var/lib and /opt, hidden files too,
    # taken right before and after the removal: only uv's own files went.
    before = removed.check_output("cat /var/tmp/absent-before.txt").splitlines()
    after = removed.check_output("cat /var/tmp/absent-after.txt").splitlines()
    assert len(before) > 1000 and not set(after) - set(before)
    gone = sorted(line.split()[-1] for line in set(before) - set(after))
    assert gone == sorted(
        ["/usr/local/bin/uv", "/usr/local/bin/uvx", "/etc/uv/uv.toml", "/var/lib/hpc_globus_compute/uv.json"]
    )
