"""Credentials taken out of the inventory are removed: the unit no longer reads a stale secret.

The endpoint role runs for real, as root, for a multi-user endpoint whose unit
is written but not started (no systemd runs here), with /etc an overlay of the
test's own (role_runner's private_system): nothing of the machine is touched.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from role_runner import run_role, system_path
from test_endpoint_existing_install import GCE
from test_template_render import deploy_runtime

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path("/etc/systemd/system").is_dir() or Path("/run/systemd/system").is_dir(),
        reason="needs root and /etc/systemd/system with no systemd running",
    ),
]


def test_removed_credentials_leave_no_secret_behind(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    deploy_runtime(site)
    name = f"hgc-cred-{uuid.uuid4().hex[:8]}"
    credentials = f"/etc/globus-compute/{name}.env"
    unit = f"/etc/systemd/system/globus-compute-endpoint-{name}.service"
    variables = {
        "endpoint_name": name,
        "endpoint_owner": "root",
        "endpoint_mode": "multi_user",
        "endpoint_install_method": "none",
        "endpoint_executable": str(GCE),
        "endpoint_config_dir": str(tmp_path / "gc" / name),
        "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
        "endpoint_facts_dir": str(tmp_path / "facts"),
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        "endpoint_service_state": "installed",
    }
    secret = {"endpoint_client_id": "0d9e1c2b-0000-4000-8000-00000000c1d0", "endpoint_client_secret": "s3cret-value"}
    given = run_role(tmp_path, "endpoint", {**variables, **secret}, private_system=True)
    assert given.returncode == 0, given.stdout + given.stderr
    # What it wrote outside its own directories: the credentials (and their directory) and the unit.
    assert {f"{credentials} file", f"{unit} file"} <= set(given.system_changes), given.system_changes
    assert all(c.startswith(("/etc/globus-compute ", f"{credentials} ", f"{unit} ")) for c in given.system_changes)
    assert system_path(tmp_path, credentials).stat().st_mode & 0o777 == 0o600
    assert "s3cret-value" in system_path(tmp_path, credentials).read_text()
    assert "s3cret-value" not in given.stdout + given.stderr

    taken_out = run_role(tmp_path, "endpoint", variables, private_system=True)
    assert taken_out.returncode == 0, taken_out.stdout + taken_out.stderr
    # The credentials are gone (the directory stays, as the machine's may hold others); the unit stays.
    assert f"{unit} file" in taken_out.system_changes
    assert all(c.startswith(("/etc/globus-compute ", f"{unit} ")) for c in taken_out.system_changes)
    assert not system_path(tmp_path, credentials).exists()
    assert "s3cret-value" not in system_path(tmp_path, unit).read_text()
