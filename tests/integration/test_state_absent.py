"""`state: absent` removes what python_envs and endpoint made, and nothing else.

Each role is first run for real (an environment built with uv from the offline
wheelhouse; an endpoint on the project's own globus-compute-endpoint), then
with state absent: every file the role made is gone, the admin's own files in
the same directories are still there, and the node is as it was before.
"""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from artifacts import offline_policy
from role_runner import ROOT, checksums, run_role
from test_template_render import deploy_runtime

GCE = ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"
PYTHON = Path("/usr/bin/python3.11")


def python_envs_vars(site: Path) -> dict[str, object]:
    return {
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_owner": getpass.getuser(),
        "python_envs_group": grp.getgrgid(os.getgid()).gr_name,
        "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_interpreter_paths": {"3.11": str(PYTHON)},
    }


@pytest.mark.skipif(not PYTHON.exists(), reason="needs python3.11")
def test_python_envs_absent_removes_what_it_made(tmp_path: Path) -> None:
    # Where every account can reach the environments, or none is published (pytest's directories are root's alone).
    site = Path(tempfile.mkdtemp(prefix="hgc-absent-", dir="/tmp"))
    site.chmod(0o755)
    try:
        absent_removes_what_python_envs_made(tmp_path, site)
    finally:
        shutil.rmtree(site, ignore_errors=True)


def absent_removes_what_python_envs_made(tmp_path: Path, site: Path) -> None:
    (site / "runtime").mkdir(parents=True)
    (site / "runtime" / "README.admin").write_text("the admin's own notes\n")
    (site / "facts").mkdir()
    (site / "facts" / "other.fact").write_text("{}\n")
    before = checksums(site)
    offline = offline_policy(tmp_path)

    made = run_role(tmp_path, "python_envs", python_envs_vars(site), env=offline, private_system=True)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (site / "runtime" / "envs" / "py3.11-gce4.19.0" / ".ready").is_file()
    assert (site / "facts" / "hpc_globus_compute_envs.fact").is_file()

    removed = run_role(
        tmp_path, "python_envs", {**python_envs_vars(site), "python_envs_state": "absent"}, private_system=True
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert checksums(site) == before
    # And outside it: nothing the two runs wrote in the system trees is left.
    assert removed.system_changes in ([], None), removed.system_changes

    again = run_role(tmp_path, "python_envs", {**python_envs_vars(site), "python_envs_state": "absent"})
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout


def test_python_envs_absent_removes_its_empty_directories_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "runtime").mkdir(parents=True)
    before = checksums(site)
    result = run_role(tmp_path, "python_envs", {**python_envs_vars(site), "python_envs_state": "absent"})
    assert result.returncode == 0, result.stdout + result.stderr
    # An empty runtime directory is removed; nothing outside it is touched.
    assert not (site / "runtime").exists()
    assert set(checksums(site)) == set(before) - {"runtime"}


def test_endpoint_absent_removes_what_it_made(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (tmp_path / "runtime").mkdir()
    runtime = deploy_runtime(tmp_path / "runtime")
    (site / "facts").mkdir(parents=True)
    (site / "facts" / "other.fact").write_text("{}\n")
    variables = {
        "endpoint_owner": getpass.getuser(),
        "endpoint_mode": "single_user",
        "endpoint_install_method": "none",
        "endpoint_executable": str(GCE),
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_user_config_template_src": str(runtime / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(runtime / "user_config_schema.json"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_service": False,
    }
    before, runtime_before, gce_before = checksums(site), checksums(runtime), checksums(GCE.parent)

    made = run_role(tmp_path, "endpoint", variables, private_system=True)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (site / "gc" / "hpc" / "config.yaml").is_file()

    removed = run_role(tmp_path, "endpoint", {**variables, "endpoint_state": "absent"}, private_system=True)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert checksums(site) == before
    assert removed.system_changes in ([], None), removed.system_changes
    # What the role did not make (an existing install, the template's source) is untouched.
    assert checksums(runtime) == runtime_before
    assert checksums(GCE.parent) == gce_before

    again = run_role(tmp_path, "endpoint", {**variables, "endpoint_state": "absent"})
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
