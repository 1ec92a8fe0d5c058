"""The endpoint's check runs its loaders with the endpoint's own Python, whatever starts the endpoint.

The roles run for real as root on this machine; the endpoints' environments
are built with the project's uv from the offline wheelhouse. The console
script uv writes is a /bin/sh trampoline when its path holds a space or is
longer than 127 bytes, and an OS package's globus-compute-endpoint is a shell
wrapper: none of them names the Python on its first line. A multi-user
endpoint whose files did not change skips the check on the next run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import is_root
from artifacts import offline_policy
from role_runner import ROOT, assert_fails_with, run_role
from test_endpoint_existing_install import GCE
from test_template_render import deploy_runtime

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the endpoint's build is probed as nobody")

UV = ROOT / ".venv" / "bin" / "uv"
PYTHON = "/usr/bin/python3.11"
# A task of the check that runs only when the check is not skipped.
CHECK_RAN = "TASK [hpc.globus_compute.endpoint : Load, map and render the staged files as the endpoint would]"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("site"))


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse: nobody runs the endpoint's new build."""
    base = Path(tempfile.mkdtemp(prefix="hgc-ep-python-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def endpoint(tmp_path: Path, runtime: Path, site: Path, **variables: object) -> subprocess.CompletedProcess[str]:
    base = {
        "endpoint_owner": "root",
        "endpoint_mode": "single_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_uv": str(UV),
        "endpoint_python": PYTHON,
        "endpoint_user_config_template_src": str(runtime / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(runtime / "user_config_schema.json"),
        "endpoint_service": False,
    }
    return run_role(tmp_path, "endpoint", {**base, **variables}, env=offline_policy(tmp_path))


def deployed(site: Path) -> dict[str, object]:
    return json.loads((site / "facts" / "hpc_globus_compute_endpoint_hpc.fact").read_text())


@pytest.mark.parametrize("where", ["with space", "l" * 100], ids=["space", "long"])
def test_a_venv_whose_console_script_is_a_shell_trampoline_is_checked_with_its_python(
    tmp_path: Path, runtime: Path, site: Path, where: str
) -> None:
    root = site / where / "install"
    result = endpoint(tmp_path, runtime, site, endpoint_install_root=str(root))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert CHECK_RAN in output
    script = root / "globus-compute-endpoint" / "bin" / "globus-compute-endpoint"
    # What makes the case: uv wrote a /bin/sh trampoline, not a Python shebang.
    assert script.read_text().startswith("#!/bin/sh\n"), script.read_text()[:200]
    python = root / "globus-compute-endpoint" / "bin" / "python"
    assert deployed(site)["python"] == str(python)
    assert sorted(p.name for p in (site / "gc" / "hpc").iterdir()) == [
        "config.yaml",
        "user_environment.yaml",
    ]


@pytest.fixture
def os_package(tmp_path: Path, site: Path) -> tuple[Path, Path]:
    """An endpoint installed as an OS package is: a venv under opt/, started by a /bin/sh wrapper in sbin/."""
    venv = site / "opt" / "globus-compute-agent" / "venv-py311"
    env = {"PATH": "/usr/bin:/bin", **offline_policy(tmp_path)}
    for argv in (
        [str(UV), "venv", "--python", PYTHON, str(venv)],
        [str(UV), "pip", "install", "--python", str(venv / "bin" / "python"), "globus-compute-endpoint==4.19.0"],
    ):
        made = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        assert made.returncode == 0, made.stderr
    # As a package's files are: nobody else can write them (uv leaves its lock file writable by all).
    subprocess.run(["chmod", "-R", "go-w", str(venv)], check=True)
    wrapper = site / "sbin" / "globus-compute-endpoint"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n# The package's own environment, whatever PATH says.\n"
        f"VENV_DIR='{venv}'\nexport PYTHONNOUSERSITE=1\n"
        'exec "$VENV_DIR/bin/globus-compute-endpoint" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, venv


def test_an_os_packages_shell_wrapper_is_followed_to_its_python(
    tmp_path: Path, runtime: Path, site: Path, os_package: tuple[Path, Path]
) -> None:
    wrapper, venv = os_package
    result = endpoint(tmp_path, runtime, site, endpoint_install_method="none", endpoint_executable=str(wrapper))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert CHECK_RAN in output
    assert deployed(site)["python"] == str(venv / "bin" / "python")


def test_a_wrapper_that_names_no_python_is_said_in_one_line_and_the_variable_names_it(
    tmp_path: Path, runtime: Path, site: Path, os_package: tuple[Path, Path]
) -> None:
    _, venv = os_package
    opaque = site / "sbin" / "gce"
    opaque.write_text(f'#!/bin/sh\nexec "$(cat {site}/where)" "$@"\n')
    opaque.chmod(0o755)
    (site / "where").write_text(str(venv / "bin" / "globus-compute-endpoint"))
    variables = {"endpoint_install_method": "none", "endpoint_executable": str(opaque)}
    refused = endpoint(tmp_path, runtime, site, **variables)
    assert_fails_with(
        refused,
        f"endpoint_executable_python: no Python found for {opaque} (it runs $(cat {site}/where));"
        " name the endpoint's Python; nothing was replaced.",
    )
    assert not (site / "gc").exists()

    python = venv / "bin" / "python"
    named = endpoint(tmp_path, runtime, site, **variables, endpoint_executable_python=str(python))
    assert named.returncode == 0, named.stdout + named.stderr
    assert deployed(site)["python"] == str(python)


def test_a_multi_user_endpoint_that_did_not_change_skips_the_check(tmp_path: Path, runtime: Path, site: Path) -> None:
    mapping = [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}]
    variables = {
        "endpoint_mode": "multi_user",
        "endpoint_install_method": "none",
        "endpoint_executable": str(GCE),
        "endpoint_identity_mapping": mapping,
    }
    first = endpoint(tmp_path, runtime, site, **variables)
    assert first.returncode == 0, first.stdout + first.stderr
    assert CHECK_RAN in first.stdout
    files = site / "gc" / "hpc"
    config = (files / "config.yaml").read_text()
    assert f"identity_mapping_config_path: {files}/identity_mapping.json" in config

    again = endpoint(tmp_path, runtime, site, **variables)
    assert again.returncode == 0, again.stdout + again.stderr
    assert CHECK_RAN not in again.stdout
    assert "changed=0" in again.stdout, again.stdout

    # A changed mapping is checked (and a bad one refused) before it lands.
    bad = [{**mapping[0], "match": "(unbalanced"}]
    before = {p.name: p.read_bytes() for p in files.iterdir()}
    refused = endpoint(tmp_path, runtime, site, **{**variables, "endpoint_identity_mapping": bad})
    assert refused.returncode != 0
    assert "does not load (identity_mapping.json); nothing was replaced" in refused.stdout
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before

    edited = [{**mapping[0], "match": "(.*)@example\\.com"}]
    changed = endpoint(tmp_path, runtime, site, **{**variables, "endpoint_identity_mapping": edited})
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert CHECK_RAN in changed.stdout
    assert json.loads((files / "identity_mapping.json").read_text())[0]["mappings"] == edited
