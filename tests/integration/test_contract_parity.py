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
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import role_runner
from collection_plugins import CONTRACT
from test_template_render import deploy_runtime, render_many, sdk, worker_init_of

ROOT = role_runner.ROOT
BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"

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


# The name of an environment: the contract's, as the roles build it (python_envs'
# vars, as preflight.yml names each entry) and as the runtime does from
# worker-env.conf. The first pairs take the fast path; the fast path's globs
# leave the others, pre-releases, to the second part.
NAME_PAIRS = [("3.12", "4.19.0"), ("3.9", "1234.1234.1234"), ("3.11", "4.19.0rc1"), ("3.13", "4.19.0a1.post2.dev3")]
FAST = 2


def ansible_names(tmp_path: Path, pairs: list[tuple[str, str]]) -> list[str]:
    out = tmp_path / "names.json"
    playbook = tmp_path / "names.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        f"  vars_files: [{ROOT}/roles/python_envs/vars/main.yml]\n"
        "  tasks:\n    - ansible.builtin.copy:\n"
        f"        dest: {out}\n"
        "        content: >-\n"
        "          {{ pairs | map('join', ' ') | map('regex_replace', '^(\\S+) (\\S+)$',\n"
        "             __python_envs_env_name | replace('{python}', '\\1') | replace('{endpoint}', '\\2'))\n"
        "             | list | to_json }}\n"
        "        mode: '0600'\n"
    )
    result = role_runner.run_playbook(tmp_path, str(playbook), {"pairs": [list(p) for p in pairs]})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def runtime_over(tmp_path: Path, runtime: Path, name_line: str | None = None) -> tuple[Path, Path]:
    """A copy of a deployed runtime over a site root of its own; name_line replaces the conf's WORKER_ENV_NAME."""
    copy, site = tmp_path / "runtime", tmp_path / "envs"
    shutil.copytree(runtime, copy)
    site.mkdir()
    conf = copy / "worker-env.conf"
    lines = conf.read_text().splitlines()
    assert sum(line.startswith("WORKER_ENV_NAME=") for line in lines) == 1, lines
    lines = [f"WORKER_ENV_SITE_ROOT={site}" if line.startswith("WORKER_ENV_SITE_ROOT=") else line for line in lines]
    if name_line is not None:
        lines = [name_line if line.startswith("WORKER_ENV_NAME=") else line for line in lines]
    conf.write_text("\n".join(lines) + "\n")
    return copy, site


def site_env(site: Path, name: str) -> None:
    """A site environment stamped ready, whose activate only says so."""
    (site / name / "bin").mkdir(parents=True)
    (site / name / "bin" / "python").symlink_to("/usr/bin/python3")
    (site / name / "bin" / "activate").write_text("echo activated\n")
    (site / name / ".ready").write_text("spec=0\n")


def bash_start(runtime: Path, python: str, endpoint: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """A worker's start, and whether it went past the fast path (the trace shows the second part's call)."""
    script = 'set -euo pipefail; exec 3>"$3"; BASH_XTRACEFD=3; set -x; source "$0/worker-env.sh" "$1" "$2"'
    trace = runtime.parent / "trace"
    result = subprocess.run(
        ["bash", "-c", script, str(runtime), python, endpoint, str(trace)], capture_output=True, text=True
    )
    second = re.search(r"^\++ __worker_env \S", trace.read_text(), re.M) is not None
    return result, second


def test_ansible_and_bash_give_an_environment_the_same_name(runtime_strict: Path, tmp_path: Path) -> None:
    names = ansible_names(tmp_path, NAME_PAIRS)
    # The contract's name, from its definition.
    assert names == [str(CONTRACT["env_name"]).format(python=p, endpoint=e) for p, e in NAME_PAIRS]
    runtime, site = runtime_over(tmp_path, runtime_strict)
    for name in names:
        site_env(site, name)
    for i, ((python, endpoint), name) in enumerate(zip(NAME_PAIRS, names, strict=True)):
        result, second = bash_start(runtime, python, endpoint)
        assert (result.returncode, result.stdout) == (0, "activated\n"), result.stderr
        assert result.stderr.startswith(f"worker-env: {name} site {site / name} "), result.stderr
        assert second == (i >= FAST), (python, endpoint)
    # What the second part lists when none fits: the same names.
    result, second = bash_start(runtime, "3.14", "4.19.0")
    assert result.returncode == 1 and second
    assert result.stderr.endswith(f"site has: {','.join(sorted(names))}; per-user builds are off\n"), result.stderr


def test_the_runtime_names_environments_as_its_conf_says(runtime_strict: Path, tmp_path: Path) -> None:
    """A conf with another WORKER_ENV_NAME: the runtime and build-env.sh use its name, never the contract's default."""
    runtime, site = runtime_over(tmp_path, runtime_strict, "WORKER_ENV_NAME=(python -endpoint)")
    default = str(CONTRACT["env_name"]).format(python="3.12", endpoint="4.19.0")
    site_env(site, default)
    for python, endpoint in NAME_PAIRS:
        site_env(site, f"python{python}-endpoint{endpoint}")
    for i, (python, endpoint) in enumerate(NAME_PAIRS):
        name = f"python{python}-endpoint{endpoint}"
        result, second = bash_start(runtime, python, endpoint)
        assert result.stderr.startswith(f"worker-env: {name} site {site / name} "), result.stderr
        assert second == (i >= FAST), (python, endpoint)
    result, _ = bash_start(runtime, "3.14", "4.19.0")
    listed = ",".join(sorted(f"python{p}-endpoint{e}" for p, e in NAME_PAIRS))
    assert result.stderr.endswith(f"site has: {listed}; per-user builds are off\n"), result.stderr
    # A conf without the line (an earlier release's): the second part says so, and starts nothing.
    runtime_old, _ = runtime_over(tmp_path / "old", runtime_strict, "")
    result, second = bash_start(runtime_old, "3.12", "4.19.0")
    assert (result.returncode, result.stdout, second) == (1, "", True)
    assert result.stderr == (
        "worker-env: no environment for Python 3.12 with globus-compute-endpoint 4.19.0: "
        f"{runtime_old}/worker-env.conf has no WORKER_ENV_NAME (deploy python_envs again)\n"
    )
    # build-env.sh's prune, given the same parts, looks at those names alone.
    for name in [default, *(f"python{p}-endpoint{e}" for p, e in NAME_PAIRS)]:
        (site / ".builds" / f"{name}-0").mkdir(parents=True)
        (site / ".builds" / f"{name}-0" / ".ready").touch()
        shutil.rmtree(site / name)
        (site / name).symlink_to(f".builds/{name}-0")
    kept = "python3.12-endpoint4.19.0"
    pruned = subprocess.run(
        ["bash", str(BUILD_ENV), "--prune", "--check", str(site), "7", kept],
        capture_output=True,
        text=True,
        env={**os.environ, "BUILD_ENV_NAME": "python -endpoint"},
    )
    assert pruned.returncode == 0, pruned.stderr
    others = sorted(f"python{p}-endpoint{e}" for p, e in NAME_PAIRS if f"python{p}-endpoint{e}" != kept)
    assert pruned.stdout.splitlines() == [f"would unpublish {name}" for name in others]


# The minor rule (python_envs_version_match: minor), contract.py's minor_match:
# which of the site's versions serves each client. The site's are published as
# build-env.sh publishes them, a link to a build under .builds.
SITE_VERSIONS = ["4.19.0", "4.19.9", "4.19.10", "4.19.11rc1", "4.19.12.dev1", "4.19.013", "4.18.0", "4.18.1"]
SITE_VERSIONS += ["4.17.0", "4.17.0.post2", "4.17.0.post10", "5.19.0", "10.0.0", "1.0.0", "4.9.0"]
CLIENTS = ["4.19.7", "4.19.0rc1", "04.19.7", "4.19.99.post3", "4.18.3", "4.17.5", "5.19.7", "5.0.0", "3.19.0"]
CLIENTS += ["10.0.5", "1.0.0", "1.0.3", "4.20.0", "0.19.0", "4.9.1", "4.09.2", "4.90.0"]


def ansible_minor_matches(tmp_path: Path, clients: list[str], site: list[str]) -> dict[str, str]:
    out = tmp_path / "minor.json"
    playbook = tmp_path / "minor.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        "  tasks:\n    - ansible.builtin.copy:\n"
        f"        dest: {out}\n"
        "        content: >-\n"
        "          {% set found = {} %}{% for client in clients %}{% set _ = found.update({client:\n"
        "          lookup('hpc.globus_compute.contract', 'minor_match', client=client, site=site)}) %}\n"
        "          {% endfor %}{{ found | to_json }}\n"
        "        mode: '0600'\n"
    )
    result = role_runner.run_playbook(tmp_path, str(playbook), {"clients": clients, "site": site})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_ansible_and_bash_serve_a_client_by_minor_from_the_same_site_environment(
    runtime_strict: Path, tmp_path: Path
) -> None:
    runtime, site = runtime_over(tmp_path, runtime_strict)
    conf = runtime / "worker-env.conf"
    assert "\nWORKER_ENV_VERSION_MATCH=exact\n" in conf.read_text()
    conf.write_text(
        conf.read_text().replace("\nWORKER_ENV_VERSION_MATCH=exact\n", "\nWORKER_ENV_VERSION_MATCH=minor\n")
    )
    for version in SITE_VERSIONS:
        name = str(CONTRACT["env_name"]).format(python="3.12", endpoint=version)
        # Named as build-env.sh names a build (NAME-SPEC_HASH.HOST-PID): only such a build serves by minor.
        site_env(site / ".builds", f"{name}-0123abcd.node-1")
        (site / name).symlink_to(f".builds/{name}-0123abcd.node-1")
    ansible = ansible_minor_matches(tmp_path, CLIENTS, SITE_VERSIONS)
    prefix = str(CONTRACT["env_name"]).format(python="3.12", endpoint="")
    bash = {}
    for client in CLIENTS:
        result, _ = bash_start(runtime, "3.12", client)
        assert result.returncode in (0, 1), (client, result.stderr)
        served = result.stderr.split()[1] if result.returncode == 0 else prefix
        assert served.startswith(prefix), (client, result.stderr)
        bash[client] = served[len(prefix) :]
        # A match by minor says so; a client's own release, served as it always was, does not.
        assert ("; matched by minor: the client sent " in result.stderr) == (bash[client] not in ("", client))
    # The rule itself: numbers compared as integers (4.19.10 over 4.19.9, .post10 over
    # .post2), releases alone (no pre-release, no leading zero), never another major.
    assert ansible == {
        "4.19.7": "4.19.10",
        "4.19.0rc1": "4.19.10",
        "04.19.7": "4.19.10",
        "4.19.99.post3": "4.19.10",
        "4.18.3": "4.18.1",
        "4.17.5": "4.17.0.post10",
        "5.19.7": "5.19.0",
        "5.0.0": "",
        "3.19.0": "",
        "10.0.5": "10.0.0",
        "1.0.0": "1.0.0",
        "1.0.3": "1.0.0",
        "4.20.0": "",
        "0.19.0": "",
        "4.9.1": "4.9.0",
        "4.09.2": "4.9.0",
        "4.90.0": "",
    }
    assert bash == ansible
