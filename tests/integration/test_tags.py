"""Every tag the roles document selects what it names in site.yml, and skipping it skips only that.

site.yml runs for real as root on this machine with the local inventory, into
a private passwd home (role_runner), as in test_one_home. Once it has
converged, each role's tag is skipped in turn on the converged node (a no-op
that must not fail), and a file each install tag owns is removed and put back
by a run with that tag alone; a run with the tag (and the closing report)
skipped leaves it missing and changes nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from accounts import is_root
from artifacts import offline_policy
from role_runner import ROOT, run_playbook
from test_one_home import local_site_variables

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the passwd home is replaced in a mount namespace"),
    # site.yml stages uv in this machine's /var/lib/hpc_globus_compute/stage, as test_one_home does.
    pytest.mark.xdist_group("machine_uv_stage"),
]

# The tags of docs/roles/*.md ("Tags") and of site.yml's role imports.
TAGS = [
    "uv",
    "uv_install",
    "uv_configure",
    "envs",
    "python_envs_build",
    "python_envs_runtime",
    "endpoint",
    "endpoint_install",
    "endpoint_config",
    "endpoint_service",
]
# A file each tag installs, under the home, and the tag that puts it back.
OWNED = {
    "uv_install": ".local/bin/uvx",
    "uv_configure": ".config/uv/uv.toml",
    "python_envs_runtime": ".globus_compute/runtime/worker-env.conf",
    "endpoint_install": ".local/bin/globus-compute-endpoint",
    "endpoint_config": ".globus_compute/hpc/config.yaml",
}


def site(tmp_path: Path, *args: str) -> tuple[dict[str, int], str]:
    result = run_playbook(
        tmp_path,
        str(ROOT / "playbooks" / "site.yml"),
        local_site_variables(tmp_path),
        ["-i", str(ROOT / "inventories" / "local"), *args],
        {"USER": "root", **offline_policy(tmp_path)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{args}: {output[-3000:]}"
    line = re.search(r"^localhost +: (.*)$", output, re.MULTILINE)
    assert line, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}, output


def test_each_tag_selects_or_skips_only_what_it_names(tmp_path: Path) -> None:
    first, _ = site(tmp_path)
    assert first["changed"] > 0
    home = tmp_path / "home"
    for tag in TAGS:
        recap, output = site(tmp_path, "--skip-tags", tag)
        assert recap["changed"] == 0, f"{tag}: {output[-6000:]}"
    for tag, owned in OWNED.items():
        path = home / owned
        before = path.read_bytes()
        path.unlink()
        # The closing report would prove a worker on what was left unrepaired (report.yml): skipped too.
        recap, _ = site(tmp_path, "--skip-tags", f"{tag},report")
        assert (recap["changed"], path.exists()) == (0, False), tag
        recap, output = site(tmp_path, "--tags", tag)
        assert recap["changed"] > 0, f"{tag}: {output[-6000:]}"
        assert path.read_bytes() == before, tag
    recap, _ = site(tmp_path)
    assert recap["changed"] == 0
