"""node_facts gathers, under setup's names and with setup's values, exactly the facts the roles read."""

from __future__ import annotations

import json
from pathlib import Path

from role_runner import run_playbook

# What the roles and the example inventories read (grep ansible_facts), and user_shell with the passwd entry.
GATHERED = {
    "ansible_user_id",
    "ansible_user_uid",
    "ansible_user_gid",
    "ansible_user_gecos",
    "ansible_user_dir",
    "ansible_user_shell",
    "ansible_architecture",
    "ansible_hostname",
    "ansible_env",
    "ansible_python",
}

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - hpc.globus_compute.node_facts:
      register: node
      check_mode: {check}
    - ansible.builtin.set_fact:
        seen: "{{{{ ansible_facts }}}}"
    - ansible.builtin.setup:
        gather_subset: [min]
      register: setup
    - ansible.builtin.copy:
        content: "{{{{ {{'setup': setup.ansible_facts, 'node': node.ansible_facts, 'changed': node.changed,
                      'seen': seen}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"
      check_mode: false
"""


def gather(tmp_path: Path, check: bool) -> dict:
    out = tmp_path / "facts.json"
    play = tmp_path / "facts.yml"
    play.write_text(PLAY.format(check=str(check).lower(), out=out))
    result = run_playbook(tmp_path, str(play), {})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_facts_are_setups_for_every_name_gathered(tmp_path: Path) -> None:
    found = gather(tmp_path, check=False)
    node, setup = found["node"], found["setup"]
    assert set(node) == GATHERED
    assert {name: node[name] for name in GATHERED} == {name: setup[name] for name in GATHERED}
    # Nothing changes, and the facts are where the roles read them (ansible_facts.user_dir), and only they.
    assert found["changed"] is False
    assert found["seen"] == {name.removeprefix("ansible_"): value for name, value in node.items()}


def test_check_mode_gathers_the_same_facts(tmp_path: Path) -> None:
    found = gather(tmp_path, check=True)
    assert set(found["node"]) == GATHERED
    assert {name: found["node"][name] for name in GATHERED} == {name: found["setup"][name] for name in GATHERED}
