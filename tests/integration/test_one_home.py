"""`make run` (inventories/local) with HOME elsewhere installs into the account's home, and says so once.

site.yml runs for real as root on this machine with the local inventory; the
account's home in the passwd database is a private directory (role_runner),
and HOME names another, as after `sudo` without -H. uv comes from a release
tarball of the project's uv, the builds from the offline wheelhouse. The
closing report starts a worker in what python_envs deployed; run after the
endpoint alone, it says that no site environment was deployed. A uv too old
for the roles, where the uv role installs, is replaced, and --check says so.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from accounts import is_root
from artifacts import artifacts
from executions import changed
from local_site import LocalSite, local_site_variables, run
from role_runner import listing, run_playbook
from test_endpoint_existing_install import GCE
from test_template_render import deploy_runtime
from versions import UV_TOO_OLD

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the passwd home is replaced in a mount namespace"),
    # One converge with test_tags (local_site); site.yml stages uv in this machine's
    # /var/lib/hpc_globus_compute/stage.
    pytest.mark.xdist_group("machine_uv_stage"),
]


def test_make_run_with_another_home_uses_the_passwd_home_everywhere(local_site: LocalSite) -> None:
    output = local_site.first.stdout + local_site.first.stderr
    assert local_site.first.returncode == 0, output
    other, home = local_site.other, local_site.tmp / "home"
    said = [line for line in output.splitlines() if "home: HOME is" in line]
    assert said == [f'    "msg": "home: HOME is {other}, but root\'s home is {home}; the roles use {home}."'], said
    assert listing(other) == local_site.other_before
    for path in (
        ".local/bin/uv",
        ".globus_compute/runtime/worker-env.sh",
        ".globus_compute/envs/py3.11-gce4.19.0/bin/python",
        ".globus_compute/hpc/config.yaml",
        ".local/bin/globus-compute-endpoint",
        ".local/share/hpc_globus_compute/endpoint/globus-compute-endpoint/bin/python",
    ):
        assert (home / path).exists(), path
    # The closing report started a worker in the environment python_envs built.
    assert "as root: worker-env: py3.11-gce4.19.0 site" in output, output
    assert "python 3.11, globus-compute-endpoint 4.19.0" in output, output


def test_the_report_after_the_endpoint_alone_says_no_site_environment_was_deployed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    deploy_runtime(site)
    playbook = tmp_path / "endpoint-and-report.yml"
    playbook.write_text(
        "- ansible.builtin.import_playbook: hpc.globus_compute.endpoint\n"
        "- ansible.builtin.import_playbook: hpc.globus_compute.report\n"
    )
    variables = {
        "endpoint_owner": "root",
        "endpoint_mode": "single_user",
        "endpoint_install_method": "none",
        "endpoint_executable": str(GCE),
        "endpoint_config_dir": str(tmp_path / "gc" / "hpc"),
        "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
        "endpoint_facts_dir": str(tmp_path / "facts"),
        "endpoint_service": False,
    }
    result = run_playbook(tmp_path, str(playbook), variables)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    fact = json.loads((tmp_path / "facts" / "hpc_globus_compute_endpoint_hpc.fact").read_text())
    # The console script's own first line, read where the link leads.
    assert fact["python"] == str(Path(os.path.realpath(GCE)).parent / "python")
    assert f'"endpoint hpc ({tmp_path}/gc/hpc, globus-compute-endpoint 4.19.0)",' in output, output
    assert '"no site environment: python_envs built none on this host in this run"' in output, output


def test_check_mode_takes_a_uv_too_old_for_the_roles_as_the_one_the_run_installs(local_site: LocalSite) -> None:
    """An admin's old uv where the uv role installs: --check says the uv role replaces it (python_envs
    judges the uv it will find, not the one still there), and the real run does just that; with the
    install skipped, both refuse it."""
    uv = local_site.tmp / "home" / ".local" / "bin" / "uv"
    converged = uv.read_bytes()
    with tarfile.open(artifacts() / "release" / UV_TOO_OLD / "uv-x86_64-unknown-linux-gnu.tar.gz") as tar:
        member = tar.extractfile("uv-x86_64-unknown-linux-gnu/uv")
        assert member
        uv.write_bytes(member.read())
    # With the uv install skipped, nothing replaces it: the check run refuses it as the real run does.
    for args in (["--check", "--skip-tags", "uv_install"], ["--skip-tags", "uv_install"]):
        result = run(local_site.tmp, *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert f"python_envs_uv: {uv} is uv {UV_TOO_OLD}; these roles need uv 0.6.8 or later" in output, output[-3000:]
        version = local_site_variables(local_site.tmp)["uv_version"]
        skipped = f"the uv role installs uv {version} there, but --tags or --skip-tags left its install out"
        assert skipped in output, output[-3000:]
    install = "hpc.globus_compute.uv : Install uv, uvx and the policy into each home"
    for args in (["--check"], []):
        result = run(local_site.tmp, *args)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert [task for _, task in changed(output)] == [install], output[-3000:]
    assert uv.read_bytes() == converged
