"""Runs a role of the collection for real against this machine (connection local)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_role(
    tmp_path: Path,
    role: str,
    variables: dict[str, object],
    tasks_from: str = "main",
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: hpc.globus_compute.{role}\n"
        f"        tasks_from: {tasks_from}\n"
        # As the playbooks do: the role's own check gives one short line per variable.
        "        rolespec_validate: false\n"
        # Reached whatever --tags says; the role's tasks keep their own tags.
        "      tags: [always]\n"
    )
    return run_playbook(tmp_path, str(playbook), variables, args, env)


def run_playbook(
    tmp_path: Path,
    playbook: str,
    variables: dict[str, object],
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a playbook (a path, or a name such as hpc.globus_compute.site); args are
    further ansible-playbook arguments, e.g. ["-e", "key=value"] as an admin types them."""
    extra = {"ansible_python_interpreter": sys.executable, **variables}
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "NO_COLOR": "1",
        **(env or {}),
    }
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook, "-e", json.dumps(extra), *(args or [])],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def checksums(root: Path) -> dict[str, str]:
    """Every file, link and directory under root, with its content's sha256 (or link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


def assert_fails_with(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
