"""A first deployment as a new admin makes it: a multi-user endpoint, as root, on this machine.

The collection is built and installed from its tarball, and site.yml is run by
its collection name with the machine's own Python; the environments and the
endpoint's own environment are built with uv from the offline wheelhouse. The
run ends with report.yml, which renders the user config with the endpoint's
render-user-config and runs its worker_init as an unprivileged user. Every
path is in a private directory (uv itself is the project's, so the uv role is
skipped: it would install into /usr/local/bin).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from artifacts import offline_policy
from role_runner import ROOT

PYTHON = Path("/usr/bin/python3.11")
SYSTEM_PYTHON = Path("/usr/bin/python3")
UV = ROOT / ".venv" / "bin" / "uv"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not PYTHON.exists() or not SYSTEM_PYTHON.exists(),
    reason="needs root and the system's python3.11",
)


@pytest.fixture
def base():
    # Readable by the unprivileged user that runs the worker (pytest's are 0700).
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-first.", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def run(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)


def test_a_multi_user_endpoint_from_the_installed_tarball(base: Path) -> None:
    bindir = Path(sys.executable).parent
    built = run(str(bindir / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(base / "dist"))
    assert built.returncode == 0, built.stderr
    [tarball] = (base / "dist").glob("hpc-globus_compute-*.tar.gz")
    # Installed where only it is found: not the checkout's own link.
    installed = run(
        str(bindir / "ansible-galaxy"),
        *("collection", "install", str(tarball), "-p", str(base / "collections")),
        env={"ANSIBLE_COLLECTIONS_PATH": str(base / "collections")},
    )
    assert installed.returncode == 0, installed.stderr

    variables = {
        "ansible_python_interpreter": str(SYSTEM_PYTHON),
        "python_envs_runtime_dir": str(base / "runtime"),
        "python_envs_facts_dir": str(base / "facts"),
        "python_envs_uv": str(UV),
        "python_envs_interpreter_paths": {"3.11": str(PYTHON)},
        "endpoint_config_dir": str(base / "gc" / "hpc"),
        "endpoint_install_root": str(base / "install"),
        "endpoint_bin_dir": str(base / "bin"),
        "endpoint_facts_dir": str(base / "facts"),
        "endpoint_uv": str(UV),
        "endpoint_python": str(PYTHON),
        "endpoint_service": False,
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        "endpoint_identity_mapping_samples": [{"identity": {"username": "nobody@example.org"}, "user": "nobody"}],
        "hpc_gc_report_user": "nobody",
    }
    (base / "vars.json").write_text(json.dumps(variables))
    offline = {
        "ANSIBLE_COLLECTIONS_PATH": str(base / "collections"),
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp"),
        "NO_COLOR": "1",
        **offline_policy(base),
    }
    deployed = run(
        str(bindir / "ansible-playbook"),
        *("-i", "localhost,", "-c", "local"),
        *("-e", f"@{base / 'vars.json'}"),
        "--skip-tags=uv",
        "hpc.globus_compute.site",
        env=offline,
        cwd=base,
    )
    output = deployed.stdout + deployed.stderr
    assert deployed.returncode == 0, output
    # report.yml rendered the user config with the endpoint's render-user-config
    # and ran its worker_init as nobody, in the site environment.
    assert "as nobody: worker-env:" in output, output
    assert "python 3.11, globus-compute-endpoint 4.19.0" in output, output

    # A published build that lost its endpoint package, its ready stamp intact: the run finds nothing
    # to do (stamps are trusted), but a worker started on demand fails, and says why.
    [package] = (base / "runtime" / "envs").glob("py3.11-*/lib/python3.11/site-packages/globus_compute_endpoint")
    shutil.rmtree(package)
    proved = run(
        str(bindir / "ansible-playbook"),
        *("-i", "localhost,", "-c", "local"),
        *("-e", f"@{base / 'vars.json'}", "-e", "hpc_gc_report=always"),
        "--skip-tags=uv",
        "hpc.globus_compute.site",
        env=offline,
        cwd=base,
    )
    output = proved.stdout + proved.stderr
    assert proved.returncode != 0, output
    assert "No module named 'globus_compute_endpoint'" in output, output
    mapping = json.loads((base / "gc" / "hpc" / "identity_mapping.json").read_text())
    assert mapping[0]["mappings"] == variables["endpoint_identity_mapping"]
