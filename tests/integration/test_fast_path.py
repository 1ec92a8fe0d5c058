"""The fast path of worker-env.sh adds no process to sourcing bin/activate, and never runs uv.

A site environment (a real venv made by uv, stamped ready) beside the runtime
the role lays down; every process creation and program run under `strace -f`
is compared with the floor, a bare `source bin/activate` in the same shell.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from role_runner import ROOT
from test_template_render import deploy_runtime
from versions import GCE

PYTHON = "3.11"
PROCESS_CALLS = "execve,clone,clone3,fork,vfork"
# The site fixture (a role run and a uv venv) is made once, on one worker.
pytestmark = pytest.mark.xdist_group("fast_path")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("fast")
    deploy_runtime(site, python_envs_user_builds=True)
    env = site / "envs" / f"py{PYTHON}-gce{GCE}"
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "uv"), "venv", "--quiet", "--offline", "--python", f"python{PYTHON}", str(env)],
        check=True,
    )
    (env / ".ready").write_text(json.dumps({"name": env.name, "python": PYTHON, "endpoint": GCE}) + "\n")
    return site


def traced(site: Path, script: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `script` in bash under strace -f; return the run and each process call, pids and addresses left out."""
    log = site / "strace.log"
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", f"trace={PROCESS_CALLS}", "-o", str(log), "bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=site,
    )
    calls = []
    for line in log.read_text().splitlines():
        call = re.match(r"^\d+ +(\w+)\((.*)", line)
        if call and call[1] in PROCESS_CALLS.split(","):
            # The program a call runs is what matters; clone flags and pids are not.
            calls.append(call[1] + (" " + call[2].split(",")[0] if call[1] == "execve" else ""))
    return result, calls


def test_the_fast_path_runs_nothing_but_what_bin_activate_runs(site: Path) -> None:
    env = site / "envs" / f"py{PYTHON}-gce{GCE}"
    floor, floor_calls = traced(site, f"set -euo pipefail; source {env}/bin/activate")
    assert floor.returncode == 0, floor.stderr
    fast, fast_calls = traced(site, f"set -euo pipefail; source {site}/runtime/worker-env.sh {PYTHON} {GCE} || exit 1")
    assert fast.returncode == 0, fast.stderr
    assert f"worker-env: py{PYTHON}-gce{GCE} site {env} " in fast.stderr
    # The same programs and the same number of forks: bash itself, then
    # whatever bin/activate runs (the venv's own prompt helper).
    assert fast_calls[0] == floor_calls[0] and fast_calls[0].endswith('/bash"'), fast_calls
    assert sorted(fast_calls[1:]) == sorted(floor_calls[1:]), (fast_calls, floor_calls)
    # uv was there to run (the runtime names it, and a user build would run it), and was not run:
    # strace sees every program run (bash above), and none is uv.
    uv = f"{ROOT}/.venv/bin/uv"
    assert f"WORKER_ENV_UV={uv}\n" in (site / "runtime" / "worker-env.conf").read_text()
    assert not [call for call in fast_calls if call.startswith("execve") and call.endswith('/uv"')], fast_calls
