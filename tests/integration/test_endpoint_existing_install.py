"""The endpoint role with an existing installation (endpoint_install_method: none), for real on this machine.

The installation is the project's own globus-compute-endpoint (.venv-gce);
the template and schema are laid down by the python_envs role. The role
writes a single-user endpoint that the endpoint itself renders, and a bad
configuration fails with the endpoint's message and leaves it as it was.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from role_runner import ROOT, assert_fails_with, run_role
from test_template_render import deploy_runtime

GCE = ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    deploy_runtime(site)
    return site


def run_endpoint(tmp_path: Path, site: Path, **variables: object):
    return run_role(
        tmp_path,
        "endpoint",
        {
            "endpoint_owner": getpass.getuser(),
            "endpoint_mode": "single_user",
            "endpoint_install_method": "none",
            "endpoint_executable": str(GCE),
            "endpoint_config_dir": str(tmp_path / "gc" / "hpc"),
            "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
            "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
            "endpoint_facts_dir": str(tmp_path / "facts"),
            "endpoint_display_name": "existing install",
            "endpoint_service": False,
            **variables,
        },
    )


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())}


def test_an_existing_install_gets_an_endpoint_it_renders_and_keeps_it_on_bad_input(tmp_path: Path, site: Path) -> None:
    result = run_endpoint(tmp_path, site)
    assert result.returncode == 0, result.stdout + result.stderr
    directory = tmp_path / "gc" / "hpc"
    assert sorted(snapshot(directory)) == ["config.yaml", "user_environment.yaml"]
    assert directory.stat().st_mode & 0o777 == 0o700
    # The template and schema stay where python_envs installed them: config.yaml names them.
    assert yaml.safe_load((directory / "config.yaml").read_text()) == {
        "display_name": "existing install",
        "user_config_template_path": str(site / "runtime" / "user_config_template.yaml.j2"),
        "user_config_schema_path": str(site / "runtime" / "user_config_schema.json"),
    }
    fact = json.loads((tmp_path / "facts" / "hpc_globus_compute_endpoint_hpc.fact").read_text())
    assert (fact["executable"], fact["multi_user"]) == (str(GCE), False)

    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"globus_compute_sdk_version": "4.19.0", "python": {"version_tuple": [3, 12, 1]}}))
    rendered = subprocess.run(
        [str(GCE), "render-user-config", "-e", "hpc", "--user-runtime", str(runtime)],
        capture_output=True,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")},
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    worker_init = yaml.safe_load(rendered.stdout)["engine"]["provider"]["worker_init"]
    assert worker_init.endswith("worker-env.sh 3.12 4.19.0 || exit 1")

    before = snapshot(directory)
    bad = run_endpoint(tmp_path, site, endpoint_config_extra={"no_such_field": 1})
    assert_fails_with(bad, "does not load (config.yaml); nothing was replaced", "no_such_field")
    assert snapshot(directory) == before

    again = run_endpoint(tmp_path, site)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
