"""Credentials taken out of the inventory are removed: the unit no longer reads a stale secret.

The endpoint role runs for real, as root, for a multi-user endpoint whose unit
is written but not started (no systemd runs here), with /etc an overlay of the
test's own (role_runner's private_system): nothing of the machine is touched.
"""

from __future__ import annotations

import json
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
    # The credentials are gone, and their directory with them (nothing else
    # was in it, and the fact no longer names it); the unit stays.
    assert taken_out.system_changes == [f"{unit} file"], taken_out.system_changes
    assert not system_path(tmp_path, "/etc/globus-compute").exists()
    fact = json.loads((tmp_path / "facts" / f"hpc_globus_compute_endpoint_{name.replace('-', '_')}.fact").read_text())
    assert (fact["paths"], fact["shared"]) == (
        [
            variables["endpoint_config_dir"],
            str(tmp_path / "facts" / f"hpc_globus_compute_endpoint_{name.replace('-', '_')}.fact"),
            unit,
        ],
        [],
    )
    assert "s3cret-value" not in system_path(tmp_path, unit).read_text()


def endpoint_vars(tmp_path: Path, site: Path, name: str) -> dict[str, object]:
    return {
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
        "endpoint_client_id": "0d9e1c2b-0000-4000-8000-00000000c1d0",
        "endpoint_client_secret": f"secret-of-{name}",
    }


def left_behind(changes: list[str]) -> list[str]:
    """What the runs left in the system trees, apart from the machine's own directories that a
    write went through (an overlay copies them up, and they stay there empty)."""
    return [c for c in changes if not (c.endswith(" dir") and Path(c.removesuffix(" dir")).is_dir())]


def test_shared_credentials_directory_is_recorded_and_outlives_one_endpoint(tmp_path: Path) -> None:
    """The credentials' directory, which every endpoint's credentials share, is in the local fact
    (as shared, beside each endpoint's own paths); removing one endpoint leaves the other's
    credentials as they were, and removing both leaves nothing."""
    site = tmp_path / "site"
    site.mkdir()
    deploy_runtime(site)
    names = [f"hgc-one-{uuid.uuid4().hex[:8]}", f"hgc-two-{uuid.uuid4().hex[:8]}"]
    for name in names:
        made = run_role(tmp_path, "endpoint", endpoint_vars(tmp_path, site, name), private_system=True)
        assert made.returncode == 0, made.stdout + made.stderr
    one, two = names
    credentials = {name: f"/etc/globus-compute/{name}.env" for name in names}
    units = {name: f"/etc/systemd/system/globus-compute-endpoint-{name}.service" for name in names}
    facts = {
        name: json.loads(
            (tmp_path / "facts" / f"hpc_globus_compute_endpoint_{name.replace('-', '_')}.fact").read_text()
        )
        for name in names
    }
    for name in names:
        assert facts[name]["paths"] == [
            str(tmp_path / "gc" / name),
            str(tmp_path / "facts" / f"hpc_globus_compute_endpoint_{name.replace('-', '_')}.fact"),
            credentials[name],
            units[name],
        ]
        assert facts[name]["shared"] == ["/etc/globus-compute"]
    # Everything the two runs wrote in the system trees is a recorded path or inside one.
    recorded = [p for name in names for p in facts[name]["paths"] + facts[name]["shared"]]
    written = [c.rsplit(" ", 1)[0] for c in left_behind(made.system_changes)]
    assert sorted(written) == sorted([*credentials.values(), *units.values()]), made.system_changes
    assert all(any(w == r or w.startswith(r + "/") for r in recorded) for w in written)
    shared = system_path(tmp_path, "/etc/globus-compute")
    assert (shared.stat().st_mode & 0o7777, shared.stat().st_uid) == (0o700, 0)
    assert sorted(p.name for p in shared.iterdir()) == sorted(f"{name}.env" for name in names)
    two_before = system_path(tmp_path, credentials[two]).read_bytes()

    removed = run_role(
        tmp_path, "endpoint", {**endpoint_vars(tmp_path, site, one), "endpoint_state": "absent"}, private_system=True
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    # The other endpoint's credentials (and so their directory) stay as they were.
    assert sorted(c.rsplit(" ", 1)[0] for c in left_behind(removed.system_changes)) == [credentials[two], units[two]]
    assert [p.name for p in system_path(tmp_path, "/etc/globus-compute").iterdir()] == [f"{two}.env"]
    assert system_path(tmp_path, credentials[two]).read_bytes() == two_before

    removed = run_role(
        tmp_path, "endpoint", {**endpoint_vars(tmp_path, site, two), "endpoint_state": "absent"}, private_system=True
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    # The last one out takes the shared directory along: nothing is left in the system trees.
    assert left_behind(removed.system_changes) == [], removed.system_changes
    assert not system_path(tmp_path, "/etc/globus-compute").exists()
    assert sorted(p.name for p in (tmp_path / "facts").iterdir()) == []
