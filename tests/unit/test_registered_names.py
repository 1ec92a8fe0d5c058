"""A name a task registers is never also a task's, block's or set_fact's variable.

A registered variable outranks task and block `vars:` (Ansible's variable
precedence), and it outlives the role run: a role included twice in one play
(as the Molecule side effects do) would read the first run's registered result
where its own `vars:` value was meant.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def tasks(items: object) -> Iterator[dict]:
    """Every task and block of a task file, blocks' own tasks included."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            yield item
            for key in ("block", "rescue", "always"):
                yield from tasks(item.get(key))


def names() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    registered: dict[str, list[str]] = {}
    assigned: dict[str, list[str]] = {}
    for path in sorted(ROLES.glob("*/tasks/*.yml")) + sorted(ROLES.glob("*/handlers/*.yml")):
        where = str(path.relative_to(ROLES))
        for task in tasks(yaml.safe_load(path.read_text())):
            if isinstance(task.get("register"), str):
                registered.setdefault(task["register"], []).append(where)
            for name in task.get("vars") or {}:
                assigned.setdefault(name, []).append(where)
            for module in ("ansible.builtin.set_fact", "set_fact"):
                for name in task.get(module) or {}:
                    if name != "cacheable":
                        assigned.setdefault(name, []).append(where)
    return registered, assigned


def test_the_scan_sees_registered_and_assigned_names() -> None:
    registered, assigned = names()
    assert "__python_envs_probe" in registered and "__python_envs_uv_found" in assigned


def test_no_registered_name_is_also_a_variable_set_elsewhere() -> None:
    registered, assigned = names()
    both = {name: (registered[name], assigned[name]) for name in registered.keys() & assigned.keys()}
    assert both == {}
