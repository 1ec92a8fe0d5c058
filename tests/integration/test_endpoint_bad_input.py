"""The endpoint role refuses bad variables, naming them, before it installs or writes anything."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from role_runner import assert_fails_with, run_role


def run_endpoint(tmp_path: Path, args: list[str] | None = None, **variables: object):
    base = {
        "endpoint_owner": getpass.getuser(),
        "endpoint_mode": "single_user",
        "endpoint_config_dir": str(tmp_path / "gc" / "hpc"),
        "endpoint_install_root": str(tmp_path / "install"),
        "endpoint_bin_dir": str(tmp_path / "bin"),
        "endpoint_facts_dir": str(tmp_path / "facts"),
        "endpoint_service": False,
        # Not the first python3 on the test's PATH (the toolchain's, under root's 0700 home), which
        # the role refuses before the variable each case is about.
        "endpoint_python": "/usr/bin/python3",
    }
    # Every system tree watched too (/etc/systemd, /etc/globus-compute, /usr/local/bin ...).
    return run_role(tmp_path, "endpoint", {**base, **variables}, args=args, private_system=True)


@pytest.mark.parametrize(
    ("variables", "shown"),
    [
        ({"endpoint_owner": "no-such-user-here"}, ["endpoint_owner", "no-such-user-here", "does not exist"]),
        ({"endpoint_email": "not an address"}, ["endpoint_email", "not an address"]),
        ({"endpoint_name": "bad name;rm"}, ["endpoint_name", "bad name;rm"]),
        ({"endpoint_version": "latest"}, ["endpoint_version", "latest"]),
        ({"endpoint_version": "4.2.0"}, ["endpoint_version: 4.2.0 is older than 4.3.0", "render-user-config"]),
        ({"endpoint_amqp_port": 8080}, ["endpoint_amqp_port", "8080"]),
        (
            {"endpoint_client_id": "0d9e1c2b-0000-4000-8000-00000000c1d0"},
            ["endpoint_client_id and endpoint_client_secret"],
        ),
        ({"endpoint_high_assurance": True}, ["endpoint_high_assurance", "endpoint_subscription_id"]),
        ({"endpoint_mode": "multi_user", "endpoint_owner": "nobody"}, ["endpoint_mode", "runs as root", "nobody"]),
        ({"endpoint_config_dir": "/tmp/elsewhere"}, ["endpoint_config_dir", "ending in the endpoint name"]),
        ({"endpoint_mode": "both"}, ["endpoint_mode", "both"]),
        ({"endpoint_uv": "/nonexistent/uv"}, ["endpoint_uv", "/nonexistent/uv"]),
        (
            {"endpoint_user_config_template_src": "user_config_template.yaml.j2"},
            ["endpoint_user_config_template_src: 'user_config_template.yaml.j2' is not an absolute path."],
        ),
        (
            {"endpoint_install_method": "none", "endpoint_executable": "bin/globus-compute-endpoint"},
            ["endpoint_executable: 'bin/globus-compute-endpoint' is not an absolute path."],
        ),
        (
            {"endpoint_config_extra": {"amqp_port": 8080, "display_name": "other", "heartbeat_period": 30}},
            [
                "endpoint_config_extra: amqp_port is set by endpoint_amqp_port; set that instead. "
                "endpoint_config_extra: display_name is set by endpoint_display_name; set that instead."
            ],
        ),
    ],
    ids=[
        "owner",
        "email",
        "name",
        "version",
        "version-too-old",
        "amqp-port",
        "credentials",
        "high-assurance",
        "multi-user",
        "dir",
        "mode",
        "uv",
        "relative-template",
        "relative-executable",
        "extra-sets-a-managed-field",
    ],
)
def test_bad_variables_are_named_and_nothing_is_written(tmp_path: Path, variables: dict, shown: list[str]) -> None:
    assert_fails_with(run_endpoint(tmp_path, **variables), *shown)
    assert not (tmp_path / "install").exists()
    assert not (tmp_path / "gc").exists()


def test_a_missing_uv_is_refused_in_check_mode_too(tmp_path: Path) -> None:
    """No uv role in this play installs it, so the real run would refuse it: so does check mode."""
    result = run_endpoint(tmp_path, ["--check"], endpoint_uv="/nonexistent/uv")
    assert_fails_with(result, "endpoint_uv: /nonexistent/uv is not an executable uv")
