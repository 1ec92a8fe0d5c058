"""Helpers shared by the testinfra tests of every Molecule scenario."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import testinfra

# The test versions have one source, shared with the harness and the unit tests.
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
import versions
from collection_plugins import read_stamp as parse_stamp

UV_NEW = versions.UV
GCE_VERSION = versions.GCE
# Pythons that the offline wheelhouse serves.
WHEELHOUSE_PYTHONS = versions.WHEELHOUSE_PYTHONS
OFFLINE_POLICY = {
    "offline": True,
    "no-index": True,
    "find-links": ["/opt/wheelhouse"],
    "python-downloads": "never",
}


def node(name: str):
    """A testinfra host for one named platform of the scenario."""
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def run_as(host, user: str, script: str):
    """Run a bash script as `user` with a login environment (HOME, PATH)."""
    if user == "root":
        return host.run(f"bash -c {shlex.quote(script)}")
    return host.run(f"runuser -l {user} -c {shlex.quote(script)}")


def read_toml(host, path: str) -> dict:
    return tomllib.loads(host.file(path).content_string)


def read_json(host, path: str) -> dict:
    return json.loads(host.file(path).content_string)


def read_stamp(host, path: str) -> dict:
    """An environment's ready stamp, read as the collection reads it."""
    return parse_stamp(host.file(path).content_string)


def node_pythons(host) -> list[str]:
    """The X.Y versions installed on the node that the wheelhouse serves."""
    found = host.check_output("ls /usr/bin").split()
    return [v for v in WHEELHOUSE_PYTHONS if f"python{v}" in found]


def assert_uv_builds_offline(host, user: str, uv: str, python: str) -> None:
    """`uv venv` + `uv pip install` from the wheelhouse, with no network."""
    env = f"/tmp/uv-check-{user}-{python}"
    script = f"""
        set -euo pipefail
        rm -rf {env}
        {uv} venv --quiet {env} --python python{python}
        {uv} pip install --quiet --python {env}/bin/python globus-compute-endpoint=={GCE_VERSION}
        {env}/bin/python -c 'import sys, globus_compute_endpoint as g; print(sys.version_info[:2], g.__version__)'
        rm -rf {env}
    """
    result = run_as(host, user, script)
    assert result.rc == 0, result.stderr
    major, minor = python.split(".")
    assert result.stdout.strip() == f"({major}, {minor}) {GCE_VERSION}"


@pytest.fixture
def pythons(host) -> list[str]:
    versions = node_pythons(host)
    assert versions, "the node has no Python that the wheelhouse serves"
    return versions


RUNTIME_DIR = "/opt/hpc_globus_compute"
ENVS_ROOT = f"{RUNTIME_DIR}/envs"


def sdk_runtime(python: str, sdk: str = GCE_VERSION) -> dict:
    """The user_runtime a Globus Compute SDK of that version sends from that Python."""
    major, minor = (int(p) for p in python.split("."))
    return {
        "globus_compute_sdk_version": sdk,
        "globus_sdk_version": "3.60.0",
        "python_version": f"{python}.1",
        "python": {"version": f"{python}.1", "version_tuple": [major, minor, 1, "final", 0], "name": "CPython"},
    }


def render_user_config(host, runtime: dict | None, user: str = "alice", options: dict | None = None):
    """The deployed template rendered by the real endpoint on the node, with the user's options."""
    renderer = host.check_output(f"ls -d {ENVS_ROOT}/py3.*-gce{GCE_VERSION}/bin/globus-compute-endpoint | head -n 1")
    runtime_json = json.dumps(runtime if runtime is not None else {})
    script = f"""
        set -euo pipefail
        d=$(mktemp -d)
        trap 'rm -rf "$d"' EXIT
        printf '%s' {shlex.quote(runtime_json)} > "$d/runtime.json"
        printf '%s' {shlex.quote(json.dumps(options or {}))} > "$d/options.json"
        GLOBUS_COMPUTE_USER_DIR="$d/gc" {renderer} render-user-config \\
          -t {RUNTIME_DIR}/user_config_template.yaml.j2 -s {RUNTIME_DIR}/user_config_schema.json \\
          -o "$d/options.json" --user-runtime "$d/runtime.json"
    """
    return run_as(host, user, script)


def render_worker_init(host, runtime: dict | None, user: str = "alice", options: dict | None = None) -> str:
    """worker_init of the deployed template, rendered by the real endpoint on the node."""
    result = render_user_config(host, runtime, user, options)
    assert result.rc == 0, result.stderr
    import yaml

    return yaml.safe_load(result.stdout)["engine"]["provider"]["worker_init"]


def render_endpoint(host, user: str, runtime: dict, name: str = "hpc") -> dict:
    """The deployed endpoint's user config, rendered by `render-user-config -e NAME` as the endpoint's owner."""
    script = f"""
        set -euo pipefail
        d=$(mktemp -d)
        printf '%s' {shlex.quote(json.dumps(runtime))} > "$d/runtime.json"
        globus-compute-endpoint render-user-config -e {name} --user-runtime "$d/runtime.json"
        rm -rf "$d"
    """
    result = run_as(host, user, script)
    assert result.rc == 0, result.stderr
    import yaml

    return yaml.safe_load(result.stdout)


PROBE = (
    "python -c 'import sys, globus_compute_endpoint as g;"
    ' print("%d.%d" % sys.version_info[:2], g.__version__, sys.prefix)\''
)


def forget_user_envs(envs: str, pattern: str) -> str:
    """A command that removes every trace of a user's environments matching `pattern` under `envs`:
    the links, their builds, locks and build markers (a link alone would be republished from its build)."""
    return f"rm -rf {envs}/{pattern} {envs}/.builds/{pattern} {envs}/.{pattern}.lock {envs}/.{pattern}.build"


def start_worker(host, user: str, worker_init: str):
    """Run worker_init as a worker's launch script does, then report the Python it left."""
    return run_as(host, user, f"{worker_init}\n{PROBE}")


def storm(
    host, user: str, worker_init: str, starts: int, probe: str = 'import sys; print("%d.%d" % sys.version_info[:2])'
) -> tuple[list[str], list[str]]:
    """Start `starts` workers at once; return what each one's probe printed and how each got its environment.

    Every start's exit status is kept and must be 0: a storm where some starts
    failed is a failed storm, whatever the others printed.
    """
    script = f"""
        set -euo pipefail
        d=$(mktemp -d)
        trap 'rm -rf "$d"' EXIT
        for i in $(seq {starts}); do
          ( set +e
            ( {worker_init}
              python -c {shlex.quote(probe)} ) >"$d/$i.out" 2>"$d/$i.err"
            echo $? >"$d/$i.rc" ) &
        done
        wait
        for i in $(seq {starts}); do
          rc=$(<"$d/$i.rc")
          if [[ $rc != 0 ]]; then echo "start $i exited $rc:" >&2; cat "$d/$i.err" >&2; failed=1; fi
        done
        [[ -z ${{failed:-}} ]]
        cat "$d"/*.out
        grep -ho '^worker-env: py[^ ]* [a-z]*' "$d"/*.err | cut -d' ' -f3 >&2
    """
    result = run_as(host, user, script)
    assert result.rc == 0, result.stderr
    outputs, hows = result.stdout.split(), result.stderr.split()
    assert len(hows) == starts, f"{starts} starts, {len(hows)} said how they got their environment: {hows}"
    return outputs, hows


def recorded_paths(host) -> list[str]:
    """Every path the roles recorded on a root-run node as theirs: their local facts (and the
    files holding them), and uv's manifest with the files it lists."""
    paths = {"/etc/ansible/facts.d"}
    for name in host.check_output("ls /etc/ansible/facts.d/hpc_globus_compute_*.fact").split():
        fact = read_json(host, name)
        paths.update(fact[key] for key in ("root", "runtime_dir", "dir") if fact.get(key))
        # The endpoint's own paths (its wrapper, unit and credentials too), and the directories it
        # shares with other endpoints (the credentials' directory).
        paths.update(fact.get("paths", []) + fact.get("shared", []))
    uv_manifest = "/var/lib/hpc_globus_compute/uv.json"
    if host.file(uv_manifest).exists:
        paths.add(uv_manifest)
        paths.update(read_json(host, uv_manifest)["files"])
    return sorted(paths)


def deployed_paths(host) -> list[str]:
    """Every path the roles wrote on a root-run node: what they record, and the directory of uv's
    manifest."""
    paths = set(recorded_paths(host))
    if host.file("/var/lib/hpc_globus_compute").exists:
        paths.add("/var/lib/hpc_globus_compute")
    return sorted(paths)


def assert_nothing_writable_by_others(host) -> None:
    """Nothing the roles deployed (hidden files and uv's own lock files included) can be written by
    anybody but its owner, and each path scanned exists."""
    paths = deployed_paths(host)
    assert len(paths) >= 4, paths
    quoted = " ".join(shlex.quote(p) for p in paths)
    found = host.run(f"find {quoted} ! -type l -perm /022 -printf '%M %u:%g %p\\n'")
    assert found.rc == 0, found.stderr
    assert found.stdout == "", f"writable by others:\n{found.stdout}"
