"""site.yml refuses an endpoint_python that users cannot run before any role builds or writes anything.

The run is a real site.yml on this machine (uv's own role skipped: the
toolchain's uv is used as it is), set up so that the worker environments
would build for real from the offline wheelhouse: a refusal that came only
after them would have built and published them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import artifacts
from role_runner import ROOT, assert_fails_with, checksums, run_playbook

UV = str(ROOT / ".venv" / "bin" / "uv")


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse, as a site's is (pytest's own are root's alone)."""
    site = Path(tempfile.mkdtemp(prefix="hgc-site-", dir="/tmp"))
    site.chmod(0o755)
    yield site
    shutil.rmtree(site, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="a multi-user endpoint is deployed by root")
def test_an_endpoint_python_users_cannot_run_stops_the_site_before_the_environments(tmp_path: Path, site: Path) -> None:
    wheelhouse = artifacts() / "wheelhouse"
    # What an earlier run left, which a refused run must leave as it is.
    (site / "runtime" / "envs").mkdir(parents=True)
    (site / "runtime" / "worker-env.conf").write_text("WORKER_ENV_USER_BUILDS=true\n")
    (site / "facts").mkdir()
    private = site / "root-home"
    private.mkdir(mode=0o700)
    python = private / "python3"
    shutil.copy2(os.path.realpath("/usr/bin/python3"), python)
    config = tmp_path / "config"
    (config / "uv").mkdir(parents=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{wheelhouse}"]\npython-downloads = "never"\n'
        f'cache-dir = "{tmp_path / "uv-cache"}"\n'
    )
    variables = {
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_owner": getpass.getuser(),
        "python_envs_group": getpass.getuser(),
        "python_envs_uv": UV,
        "python_envs_facts_dir": str(site / "facts"),
        "endpoint_owner": "root",
        "endpoint_mode": "multi_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_service": False,
        "endpoint_uv": UV,
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        "endpoint_python": str(python),
    }
    before = checksums(site)
    result = run_playbook(
        tmp_path,
        "hpc.globus_compute.site",
        variables,
        args=["--skip-tags", "uv"],
        env={"XDG_CONFIG_HOME": str(config)},
    )
    assert_fails_with(
        result, f"endpoint_python: {python} cannot be run by nobody: Permission denied; nothing was built."
    )
    # Refused by the first play: no role ran, and every file is as it was.
    assert "PLAY [Roll out" not in result.stdout
    assert checksums(site) == before
