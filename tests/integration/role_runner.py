"""Runs a role of the collection for real against this machine (connection local)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_role(
    tmp_path: Path, role: str, variables: dict[str, object], tasks_from: str = "main"
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: hpc.globus_compute.{role}\n"
        f"        tasks_from: {tasks_from}\n"
        # As the playbooks do: the role's own check gives one short line per variable.
        "        rolespec_validate: false\n"
    )
    extra = {"ansible_python_interpreter": sys.executable, **variables}
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"), "NO_COLOR": "1"}
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def assert_fails_with(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
