"""A deploy that the endpoint must refuse changes nothing, on a per-user deployment.

A deployment as `make run` makes one (the environments, the runtime and a
single-user endpoint of the running account, each in a private directory) is
made for real: the default environment is built with uv from the offline
wheelhouse. Then each bad deploy runs python_envs and the endpoint role again,
as the same playbook, with one bad variable. Each must fail with one line that
names the variable, and every path the roles record in their local facts must
be byte for byte, mode and owner what it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import offline_policy
from role_runner import ROOT, run_playbook

PYTHON = Path("/usr/bin/python3.11")
GCE = ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not PYTHON.exists(), reason="needs root and the system's python3.11"),
    # One deployment (a real build) for every case.
    pytest.mark.xdist_group("refused_template"),
]

PLAYBOOK = """\
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.import_role:
        name: hpc.globus_compute.python_envs
        rolespec_validate: false
    - ansible.builtin.import_role:
        name: hpc.globus_compute.endpoint
        rolespec_validate: false
"""


def deployment_vars(base: Path) -> dict[str, object]:
    """inventories/local's shape: everything the running account's, the environments proved by `nobody`."""
    return {
        "python_envs_runtime_dir": str(base / "runtime"),
        "python_envs_root": str(base / "envs"),
        "python_envs_owner": "root",
        "python_envs_group": "root",
        "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
        "python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}],
        "python_envs_interpreter_paths": {"3.11": str(PYTHON)},
        "python_envs_facts_dir": str(base / "facts"),
        "python_envs_unprivileged_user": "nobody",
        "endpoint_owner": "root",
        "endpoint_mode": "single_user",
        "endpoint_config_dir": str(base / "gc" / "hpc"),
        "endpoint_install_method": "none",
        "endpoint_executable": str(GCE),
        "endpoint_facts_dir": str(base / "facts"),
        "endpoint_service": False,
    }


def deploy(base: Path, **bad: object):
    playbook = base / "deploy.yml"
    playbook.write_text(PLAYBOOK)
    return run_playbook(base, str(playbook), {**deployment_vars(base), **bad}, env=offline_policy(base))


def written_paths(base: Path) -> list[Path]:
    """Every path the roles say they write: from their local facts, not from a list kept here."""
    envs = json.loads((base / "facts" / "hpc_globus_compute_envs.fact").read_text())
    endpoint = json.loads((base / "facts" / "hpc_globus_compute_endpoint_hpc.fact").read_text())
    return sorted(
        {
            Path(envs["root"]),
            Path(envs["runtime_dir"]),
            base / "facts",
            *map(Path, endpoint["paths"] + endpoint["shared"]),
        }
    )


def snapshot(paths: list[Path]) -> dict[str, str]:
    """Type, mode, owner and content (or link target) of every entry under each path; hidden ones too.
    Python's bytecode caches are written by whoever imports, not by the roles."""
    entries: dict[str, str] = {}
    for top in paths:
        assert top.exists(), f"{top}, recorded by a role, does not exist"
        for directory, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for entry in [Path(directory), *(Path(directory) / name for name in dirs + files)]:
                status = entry.lstat()
                if stat.S_ISLNK(status.st_mode):
                    content = "-> " + os.readlink(entry)
                elif stat.S_ISREG(status.st_mode):
                    content = hashlib.sha256(entry.read_bytes()).hexdigest()
                else:
                    content = ""
                entries[str(entry)] = f"{status.st_mode:o} {status.st_uid}:{status.st_gid} {content}"
    return entries


@pytest.fixture(scope="module")
def deployed() -> Iterator[Path]:
    # Readable by the unprivileged account that runs the worker (pytest's directories are 0700).
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-refused.", dir="/tmp"))
    base.chmod(0o755)
    try:
        result = deploy(base)
        assert result.returncode == 0, result.stdout + result.stderr
        yield base
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        (
            {"python_envs_provider": {"type": "LocalProvider", "max_blocks": 1, "no_such_field": 1}},
            "python_envs_provider: the endpoint's loader refuses it: "
            "LocalProvider.__init__() got an unexpected keyword argument 'no_such_field'; nothing was replaced.",
        ),
        (
            {"python_envs_engine": {"type": "GlobusComputeEngine", "max_workers_per_node": "many"}},
            "python_envs_engine: the endpoint's loader refuses it: "
            'argument "max_workers_per_node" (str) did not match any element in the union:',
        ),
        (
            {"python_envs_provider": {"type": "NoSuchProvider"}},
            "python_envs_provider: the endpoint's loader refuses it: 'NoSuchProvider' is not a valid provider.",
        ),
        (
            {"python_envs_worker_init_prefix": 'module load "gcc'},
            "python_envs_worker_init_prefix: bash cannot parse the worker_init: ",
        ),
        (
            {"python_envs_worker_init_prefix": 'set -u; source "$SITE_MODULES/init.sh"'},
            "python_envs_worker_init_prefix: it exits 127 for nobody: bash: line 1: SITE_MODULES: unbound variable; "
            "nothing was replaced.",
        ),
    ],
    ids=["unknown-provider-field", "engine-field-type", "no-such-provider", "prefix-syntax", "prefix-fails-at-start"],
)
def test_a_refused_deploy_names_the_variable_and_changes_no_file(deployed: Path, bad: dict, line: str) -> None:
    paths = written_paths(deployed)
    before = snapshot(paths)
    result = deploy(deployed, **bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert snapshot(paths) == before
    refusals = [text for text in output.splitlines() if text.startswith("[ERROR]:") and "nothing was replaced" in text]
    assert len(refusals) == 1, output
    assert line in refusals[0], refusals[0]
    assert len(refusals[0]) < 400, refusals[0]
    # python_envs refused before any copy, and before the endpoint role started.
    assert "TASK [hpc.globus_compute.endpoint" not in output


def collection_with(base: Path, program: str, edit: str, at_end: bool) -> dict[str, str]:
    """A copy of the collection whose runtime `program` has `edit` added (at its end, or after its
    `set -euo pipefail`); the environment that makes ansible-playbook use it."""
    copy = base / "collections" / "ansible_collections" / "hpc" / "globus_compute"
    shutil.rmtree(copy.parent.parent.parent, ignore_errors=True)
    for part in ("galaxy.yml", "meta", "plugins", "roles"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / part)
    path = copy / "roles" / ("_common" if program == "build-env.sh" else "python_envs") / "files" / program
    text = path.read_text()
    marker = "set -euo pipefail\n"
    path.write_text(text + edit if at_end else text.replace(marker, marker + edit, 1))
    return {"ANSIBLE_COLLECTIONS_PATH": str(base / "collections")}


@pytest.mark.parametrize(
    ("program", "edit", "at_end", "line"),
    [
        (
            "worker-env-build",
            "if true; then\n",
            True,
            "worker-env-build: bash cannot parse the new program: worker-env-build: line N: "
            "syntax error: unexpected end of file; nothing was replaced.",
        ),
        (
            "build-env.sh",
            "case x in\n",
            True,
            "build-env.sh: bash cannot parse the new program: build-env.sh: line N: "
            "syntax error: unexpected end of file; nothing was replaced.",
        ),
        (
            # Past the fast path's return: a site worker's start never reads it.
            "worker-env.sh",
            "__worker_env_broken() {\n",
            True,
            "worker-env.sh: bash cannot parse the new program: worker-env.sh: line N: "
            "syntax error: unexpected end of file; nothing was replaced.",
        ),
        (
            "build-env.sh",
            ': "$SITE_RULES_DIR"\n',
            False,
            "build-env.sh: nobody cannot source its rules (build-env.sh --rules): "
            "build-env.sh: line N: SITE_RULES_DIR: unbound variable; nothing was replaced.",
        ),
    ],
    ids=["build-program-syntax", "site-program-syntax", "runtime-past-fast-path", "rules-fail"],
)
def test_a_broken_runtime_program_is_refused_and_changes_no_file(
    deployed: Path, program: str, edit: str, at_end: bool, line: str
) -> None:
    paths = written_paths(deployed)
    before = snapshot(paths)
    playbook = deployed / "deploy.yml"
    result = run_playbook(
        deployed,
        str(playbook),
        deployment_vars(deployed),
        env={**offline_policy(deployed), **collection_with(deployed, program, edit, at_end)},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert snapshot(paths) == before
    refusals = [text for text in output.splitlines() if text.startswith("[ERROR]:") and "nothing was replaced" in text]
    assert len(refusals) == 1, output
    # bash names the line, wherever the edit landed.
    assert re.sub(r"line [0-9]+:", "line N:", refusals[0]).endswith(line), refusals[0]
    assert len(refusals[0]) < 400, refusals[0]
    # python_envs refused before any copy, and before the endpoint role started.
    assert "TASK [hpc.globus_compute.endpoint" not in output


def test_a_runtime_that_cannot_be_checked_does_not_replace_a_checked_one(deployed: Path) -> None:
    """Builds not selected (--tags python_envs_runtime) and a new default environment: nothing to check with."""
    paths = written_paths(deployed)
    before = snapshot(paths)
    playbook = deployed / "deploy.yml"
    variables = {**deployment_vars(deployed), "python_envs_matrix": [{"python": "3.11", "endpoint": "4.18.0"}]}
    result = run_playbook(
        deployed, str(playbook), variables, args=["--tags=python_envs_runtime"], env=offline_policy(deployed)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert snapshot(paths) == before
    refusals = [text for text in output.splitlines() if text.startswith("[ERROR]:") and "nothing was replaced" in text]
    assert len(refusals) == 1, output
    assert refusals[0].endswith(
        f"python_envs_default: {deployed}/envs/py3.11-gce4.18.0/bin/python is not built, so the new runtime "
        "cannot be checked; run the play with the python_envs_build tag first; nothing was replaced."
    ), refusals[0]
