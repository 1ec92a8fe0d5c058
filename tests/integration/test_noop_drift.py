"""A no-op site.yml costs a few module calls, and every kind of drift is still repaired by the next run.

site.yml is run for real as root on this machine: uv into the account's home
(user scope, from the offline artifact store), the environments and a
multi-user endpoint under one private directory every user can traverse, all
built offline. After a first run, a second one changes nothing and runs few
modules; then each kind of drift is made by hand, a check run reports it
(and changes nothing), the next run repairs it, and a last run is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import artifacts
from role_runner import ROOT, private_home, run_playbook

sys.path.insert(0, str(ROOT / "bench"))
from executions import by_role, count

PYTHON = Path("/usr/bin/python3.11")
UV_VERSION = "0.13.9"
OTHER_UV = "0.13.8"
# A no-op run's module executions on this host: 77 before the probes.
NOOP_MODULES_MAX = 24

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not PYTHON.exists(), reason="needs root and the system's python3.11"),
    # One site, built once, changed step by step.
    pytest.mark.xdist_group("noop_drift"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the directory pytest runs in, the site every user can traverse)."""
    tmp = tmp_path_factory.mktemp("noop")
    site = Path(tempfile.mkdtemp(prefix="hpc-gc-noop.", dir="/tmp"))
    site.chmod(0o755)
    yield tmp, site
    shutil.rmtree(site)


def variables(site: Path) -> dict[str, object]:
    store = artifacts()
    return {
        "uv_scope": "user",
        "uv_users": ["root"],
        "uv_source": "controller",
        "uv_controller_archive": str(next((store / "uv" / UV_VERSION).glob("*.whl"))),
        "uv_controller_cache_dir": str(site / "uv-cache"),
        "uv_version": UV_VERSION,
        "uv_config": {
            "offline": True,
            "no-index": True,
            "find-links": [str(store / "wheelhouse")],
            "python-downloads": "never",
        },
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_interpreter_paths": {"3.11": str(PYTHON)},
        "endpoint_owner": "root",
        "endpoint_mode": "multi_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_python": str(PYTHON),
        "endpoint_service": False,
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        "endpoint_identity_mapping_samples": [{"identity": {"username": "nobody@example.org"}, "user": "nobody"}],
        "hpc_gc_report_user": "nobody",
    }


def site_run(tmp: Path, site: Path, *args: str) -> tuple[dict[str, int], str]:
    result = run_playbook(tmp, "hpc.globus_compute.site", variables(site), args=["-vvv", *args])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    recap = re.search(r"^localhost +: (.*)$", result.stdout, re.M)
    assert recap, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap[1])}, output


def changed_tasks(output: str) -> list[str]:
    """The tasks that reported a change, for the message of a failed assertion."""
    changed, task = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: ") and task not in changed:
            changed.append(task)
    return changed


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_uv(tmp: Path) -> bytes:
    with tarfile.open(artifacts() / "release" / OTHER_UV / "uv-x86_64-unknown-linux-gnu.tar.gz") as tar:
        member = tar.extractfile("uv-x86_64-unknown-linux-gnu/uv")
        assert member
        return member.read()


def test_a_noop_run_runs_a_few_modules_and_changes_nothing(site: tuple[Path, Path]) -> None:
    tmp, base = site
    first, _ = site_run(tmp, base)
    assert first["changed"] > 0
    recap, output = site_run(tmp, base)
    assert recap["changed"] == 0, changed_tasks(output)
    found = count(output)
    assert found.modules["localhost"] <= NOOP_MODULES_MAX, by_role(found, "localhost")
    # The installs, the check and the writes were skipped: uv and the endpoint looked once each.
    roles = by_role(found, "localhost")
    assert roles["uv"] <= 2 and roles["endpoint"] <= 4, roles
    checked, _ = site_run(tmp, base, "--check", "--diff")
    assert checked["changed"] == 0


def drifts(tmp: Path, base: Path) -> dict[str, tuple[Path, object]]:
    """Each kind of drift: the path it changes, and how."""
    home = private_home(tmp)
    env = base / "runtime" / "envs" / "py3.11-gce4.19.0"
    return {
        "runtime file": (base / "runtime" / "worker-env.sh", lambda p: p.write_text(p.read_text() + "# edited\n")),
        "endpoint file": (base / "gc" / "hpc" / "user_environment.yaml", lambda p: p.write_text("X: 1\n")),
        "identity mapping": (base / "gc" / "hpc" / "identity_mapping.json", lambda p: p.write_text("[]\n")),
        "ready stamp": (env / ".ready", lambda p: p.unlink()),
        "environment": (env, lambda p: p.unlink()),
        "uv binary": (home / ".local" / "bin" / "uv", lambda p: p.write_bytes(other_uv(tmp))),
        "uv policy": (home / ".config" / "uv" / "uv.toml", lambda p: p.write_text("offline = false\n")),
    }


@pytest.mark.parametrize(
    "kind",
    ["runtime file", "endpoint file", "identity mapping", "ready stamp", "environment", "uv binary", "uv policy"],
)
def test_each_drift_is_found_by_check_mode_and_repaired_by_the_next_run(site: tuple[Path, Path], kind: str) -> None:
    tmp, base = site
    path, change = drifts(tmp, base)[kind]
    if not path.exists() and not path.is_symlink():
        site_run(tmp, base)
    wanted = os.readlink(path) if path.is_symlink() else sha(path)
    change(path)  # type: ignore[operator]
    drifted = (os.readlink(path) if path.is_symlink() else sha(path)) if path.exists() or path.is_symlink() else None
    assert drifted != wanted

    checked, output = site_run(tmp, base, "--check", "--diff")
    assert checked["changed"] > 0, output[-3000:]
    now = (os.readlink(path) if path.is_symlink() else sha(path)) if path.exists() or path.is_symlink() else None
    assert now == drifted, "check mode changed the node"

    repaired, output = site_run(tmp, base)
    assert repaired["changed"] > 0, output[-3000:]
    if kind in ("ready stamp", "environment"):
        # Rebuilt: a new build of the same spec, stamped ready.
        stamp = json.loads((path if kind == "environment" else path.parent).joinpath(".ready").read_text())
        assert stamp["name"] == "py3.11-gce4.19.0"
    else:
        assert sha(path) == wanted
    if kind == "uv binary":
        ran = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True)
        assert ran.stdout.startswith(f"uv {UV_VERSION} ")

    again, output = site_run(tmp, base)
    assert again["changed"] == 0, changed_tasks(output)
