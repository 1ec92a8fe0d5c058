"""The roles read the converted value of every option that is not a string.

`-e python_envs_prune=true` is the string "true"; only the `__<variable>` fact
that hpc.globus_compute.validate_vars returns holds the boolean. An expression
in a role (Jinja, when/that/loop) that reads such an option by its own name
would use the raw string again: this test finds any.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TYPED = {"bool", "int", "float", "list", "dict"}
EXPRESSIONS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|<<.*?>>|<%.*?%>", re.S)
CONDITION_KEYS = re.compile(r"^\s*-?\s*(when|that|loop|until|changed_when|failed_when):\s*(.*)$")


def typed_options() -> list[str]:
    names = []
    for spec in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        options = yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"]
        names += [name for name, option in options.items() if option.get("type", "str") in TYPED]
    return names


def expression_text(path: Path) -> str:
    text = path.read_text()
    found = EXPRESSIONS.findall(text)
    if path.suffix == ".yml":
        in_that = False
        for line in text.splitlines():
            match = CONDITION_KEYS.match(line)
            if match:
                in_that = match.group(1) == "that" and not match.group(2)
                found.append(match.group(2))
            elif in_that and line.lstrip().startswith("- "):
                found.append(line)
            else:
                in_that = False
    return "\n".join(found)


ROLE_FILES = sorted(
    path
    for part in ("tasks", "templates", "vars", "handlers")
    for path in ROOT.glob(f"roles/*/{part}/*")
    if path.is_file()
)
FILES = [*ROLE_FILES, ROOT / "playbooks" / "report.yml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_reads_a_typed_option_raw(path: Path) -> None:
    # A name in quotes is text (a message), not a read.
    raw = re.compile(r"(?<![\w.'\"])(" + "|".join(typed_options()) + r")\b")
    found = sorted(set(raw.findall(expression_text(path))))
    assert not found, f"{path.relative_to(ROOT)} reads {found} raw; read __<name> (typed by validate_vars)"


def test_the_guard_sees_a_raw_read() -> None:
    assert "python_envs_prune" in typed_options()
    assert "python_envs_prune" in expression_text(ROOT / "roles" / "python_envs" / "tasks" / "main.yml").replace(
        "__python_envs_prune", "python_envs_prune"
    )


@pytest.mark.parametrize("role", ["uv", "python_envs", "endpoint"])
def test_spec_descriptions_hold_no_template(role: str) -> None:
    # Ansible templates the spec it validates against: a `{{`, `{%` or `{#` in a
    # description stops every run of the role that does not turn its check off.
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())

    def descriptions(node: object):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description":
                    yield from value if isinstance(value, list) else [value]
                else:
                    yield from descriptions(value)
        elif isinstance(node, list):
            for item in node:
                yield from descriptions(item)

    found = [text for text in descriptions(spec) if re.search(r"\{[{%#]", str(text))]
    assert not found, found
