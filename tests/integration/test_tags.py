"""Every tag the roles document selects what it names in site.yml, and skipping it skips only that.

site.yml runs for real as root on this machine with the local inventory, into
a private passwd home (role_runner), converged once with test_one_home. Then
the files the tags install are removed and put back by runs that each skip or
select one tag: a skipped tag leaves its own files missing and the run
restores every other one; a selected tag restores its own files and no other.
Each run changes only what restores a file, so a tag that makes another role
redo its work shows as a change too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from accounts import is_root
from executions import changed
from local_site import LocalSite, run

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root: the passwd home is replaced in a mount namespace"),
    # One converge with test_one_home (local_site); site.yml stages uv in this machine's
    # /var/lib/hpc_globus_compute/stage.
    pytest.mark.xdist_group("machine_uv_stage"),
]

UVX = ".local/bin/uvx"
UV_POLICY = ".config/uv/uv.toml"
RUNTIME_CONF = ".globus_compute/runtime/worker-env.conf"
ENDPOINT = ".local/bin/globus-compute-endpoint"
ENDPOINT_CONFIG = ".globus_compute/hpc/config.yaml"
# The tags of docs/roles/*.md ("Tags") and of site.yml's role imports, each with the files under
# the home it installs: none here for the builds and the service (this node builds nothing anew,
# and runs no systemd); uv per user, the local inventory's, is one step that either uv tag selects.
OWNS = {
    "uv": {UVX, UV_POLICY},
    "uv_install": {UVX, UV_POLICY},
    "uv_configure": {UVX, UV_POLICY},
    "envs": {RUNTIME_CONF},
    "python_envs_build": set(),
    "python_envs_runtime": {RUNTIME_CONF},
    "endpoint": {ENDPOINT, ENDPOINT_CONFIG},
    "endpoint_install": {ENDPOINT},
    "endpoint_config": {ENDPOINT_CONFIG},
    "endpoint_service": set(),
}
FILES = set().union(*OWNS.values())
NARROWED = (
    "no worker started: --tags or --skip-tags left out part of the environments or the endpoint;"
    " -e hpc_gc_report=always starts them anyway"
)
# The task that puts each file back, and reports the change.
REPAIRS = {
    UVX: "hpc.globus_compute.uv : Install uv, uvx and the policy into each home",
    UV_POLICY: "hpc.globus_compute.uv : Install uv, uvx and the policy into each home",
    RUNTIME_CONF: "hpc.globus_compute.python_envs : Install the checked runtime",
    ENDPOINT: "hpc.globus_compute.endpoint : Install the globus-compute-endpoint wrapper",
    ENDPOINT_CONFIG: "hpc.globus_compute.endpoint : Write the endpoint's files into {home}/.globus_compute/hpc",
}


def site(tmp_path: Path, *args: str) -> tuple[dict[str, int], str]:
    result = run(tmp_path, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{args}: {output[-3000:]}"
    line = re.search(r"^localhost +: (.*)$", output, re.MULTILINE)
    assert line, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}, output


def missing(home: Path) -> set[str]:
    return {path for path in FILES if not (home / path).exists()}


def repairs(home: Path, restored: set[str]) -> list[str]:
    return sorted({REPAIRS[path].format(home=home) for path in restored})


def test_each_tag_selects_or_skips_only_what_it_names(local_site: LocalSite) -> None:
    assert local_site.first.returncode == 0, local_site.first.stdout[-3000:]
    tmp_path, home = local_site.tmp, local_site.tmp / "home"
    converged = {path: (home / path).read_bytes() for path in FILES}

    # Each tag skipped in turn, with its own files removed: the files the tag before left
    # missing are put back, its own stay missing. The closing report would prove a worker on
    # what was left unrepaired (report.yml): skipped too.
    gone: set[str] = set()
    for tag, owned in OWNS.items():
        for path in owned:
            (home / path).unlink(missing_ok=True)
        recap, output = site(tmp_path, "--skip-tags", f"{tag},report")
        assert missing(home) == owned, tag
        assert sorted(task for _, task in changed(output)) == repairs(home, gone - owned), f"{tag}: {output[-6000:]}"
        gone = owned
    assert not gone, "the last tag owns no file, so its run restored every one"

    # With the report not skipped, a narrowed run says why it proves no worker: what it left out
    # may be what a worker needs.
    (home / RUNTIME_CONF).unlink()
    recap, output = site(tmp_path, "--skip-tags", "python_envs_runtime")
    assert missing(home) == {RUNTIME_CONF}
    assert NARROWED in output, output[-3000:]

    # Each install tag selected in turn, with every file missing at first: it restores its own.
    for path in FILES:
        (home / path).unlink(missing_ok=True)
    for tag in ("uv_install", "uv_configure", "python_envs_runtime", "endpoint_install", "endpoint_config"):
        before = missing(home)
        recap, output = site(tmp_path, "--tags", tag)
        assert missing(home) == before - OWNS[tag], tag
        # The report is not among the tags, yet says why it proved no worker.
        assert NARROWED in output, output[-3000:]
        assert sorted(task for _, task in changed(output)) == repairs(home, before & OWNS[tag]), output[-6000:]
    assert {path: (home / path).read_bytes() for path in FILES} == converged

    recap, output = site(tmp_path)
    assert recap["changed"] == 0, changed(output)
