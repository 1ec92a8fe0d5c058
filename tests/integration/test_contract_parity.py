"""The request contract's checks agree in every language that makes them.

The same forged and edge-case versions go to each check as it runs for real:
the roles' (Ansible's `match` with python_envs' and the endpoint's patterns,
read from their vars files), the endpoint template's (the template deployed
by the role, rendered by `globus-compute-endpoint render-user-config` under
the strict policy, where a version it refuses fails the render) and the
runtime's (worker-env.sh sourced in bash, where a version it refuses is
status 2). Each must take exactly what the contract takes.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import role_runner
from collection_plugins import CONTRACT
from test_template_render import deploy_runtime, render_many, sdk, worker_init_of

ROOT = role_runner.ROOT

ENDPOINTS = [
    "4.19.0",
    "04.19.0",
    "4.19.0rc1",
    "4.19.0.dev1",
    "4.19.0a1.post2.dev3",
    "1234.1234.1234rc1234.post1234.dev1234",
    "4.19.0; rm -rf /",
    "4.19.0$(touch /tmp/x)",
    "4.19.0`id`",
    "4.19.0'",
    '4.19.0"',
    "4.19.0\\",
    "4.19.0\n",
    "\n4.19.0",
    "4.19.0\t",
    " 4.19.0",
    "4.19.0 ",
    "3.12 ",
    "",
    "4" * 300,
    "4.19." + "0" * 200,
    "12345.0.0",
    "4.19.0rc12345",
    "4.19.0.dev1.post1",
    "4.19.0.post1.post2",
    "4.19.0c1",
    "4.19.0/../..",
    "4.\u0663.0",
    "\u0664.19.0",
    "4.19.\uff10",
    "4.19.0\u00a0",
]
PYTHONS = ["3.12", "3.9", "3.99", "3.100", "03.12", "3.012", "3", "3.", "", "3.12 ", " 3.12", "3.12\n", "4.12"]
PYTHONS += ["3.12; rm -rf /", "3.\u0661\u0662", "3.1" * 200, "3.1\u0663", "3.*", "3.[1]"]


def ansible_takes(tmp_path: Path, values: list[str]) -> dict[str, dict[str, bool]]:
    """What the roles' checks take: the vars files' patterns, with the preflights' `match` test."""
    out = tmp_path / "ansible.json"
    playbook = tmp_path / "parity.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        f"  vars_files: [{ROOT}/roles/python_envs/vars/main.yml, {ROOT}/roles/endpoint/vars/main.yml]\n"
        "  tasks:\n    - ansible.builtin.copy:\n"
        f"        dest: {out}\n"
        "        content: >-\n"
        "          {{ {'python_envs_python': values | select('match', __python_envs_python_pattern) | list,\n"
        "              'python_envs_endpoint': values | select('match', __python_envs_endpoint_pattern) | list,\n"
        "              'endpoint_endpoint': values | select('match', __endpoint_version_pattern) | list} | to_json }}\n"
        "        mode: '0600'\n"
    )
    result = role_runner.run_playbook(tmp_path, str(playbook), {"values": values})
    assert result.returncode == 0, result.stdout + result.stderr
    found = json.loads(out.read_text())
    return {key: {v: v in taken for v in values} for key, taken in found.items()}


def bash_takes(runtime: Path, python: str, endpoint: str) -> bool:
    """worker-env.sh's check: status 2 and its refusal line, or on to look for the environment."""
    result = subprocess.run(
        ["bash", "-c", 'set -euo pipefail; source "$0/worker-env.sh" "$1" "$2"', str(runtime), python, endpoint],
        capture_output=True,
        text=True,
    )
    refused = result.returncode == 2 and result.stderr.startswith("worker-env: refusing ")
    assert refused or result.returncode == 1, (python, endpoint, result.returncode, result.stderr)
    return not refused


@pytest.fixture(scope="module")
def runtime_strict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("strict"), python_envs_runtime_fallback="error")


def test_ansible_jinja_and_bash_take_the_same_endpoint_versions(runtime_strict: Path, tmp_path: Path) -> None:
    contract = {v: re.match(str(CONTRACT["endpoint_pattern"]), v) is not None for v in ENDPOINTS}
    # The contract itself, for the versions no check may take and those all must.
    assert [v for v, ok in contract.items() if ok] == ENDPOINTS[:6]
    ansible = ansible_takes(tmp_path, ENDPOINTS)
    renders = render_many(runtime_strict, {v: (sdk((3, 12), v), {}) for v in ENDPOINTS})
    jinja = {}
    for version, result in renders.items():
        jinja[version] = result.returncode == 0
        if jinja[version]:
            assert worker_init_of(result.stdout).endswith(f"worker-env.sh 3.12 {version} || exit 1"), version
        else:
            assert "upgrade_globus_compute_sdk" in result.stderr, (version, result.stderr)
    bash = {v: bash_takes(runtime_strict, "3.12", v) for v in ENDPOINTS}
    assert ansible["python_envs_endpoint"] == contract
    assert ansible["endpoint_endpoint"] == contract
    assert jinja == contract
    assert bash == contract


def test_ansible_and_bash_take_the_same_python_versions(runtime_strict: Path, tmp_path: Path) -> None:
    """The template takes X.Y as integers (version_tuple) or digits of sys.version, never as a string to check."""
    contract = {v: re.match(str(CONTRACT["python_pattern"]), v) is not None for v in PYTHONS}
    assert [v for v, ok in contract.items() if ok] == ["3.12", "3.9", "3.99"]
    ansible = ansible_takes(tmp_path, PYTHONS)
    bash = {v: bash_takes(runtime_strict, v, "4.19.0") for v in PYTHONS}
    assert ansible["python_envs_python"] == contract
    assert bash == contract
