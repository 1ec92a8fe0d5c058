"""Writes the variable reference of each role's page from its meta/argument_specs.yml.

    python scripts/role_docs.py          # rewrite docs/roles/<role>.md
    python scripts/role_docs.py --check  # fail when a page is out of date

The reference sits between markers at the end of docs/roles/<role>.md; the
prose above it is kept as written. The argument specs are the one source:
`ansible-doc -t role` reads the same file, so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- argument_specs:begin -->", "<!-- argument_specs:end -->"
# ansible-doc markup: C(code), O(option), V(value), I(italic), B(bold), U(url).
MARKUP = re.compile(r"\b([COVIBU])\(([^()]*(?:\([^()]*\)[^()]*)*)\)")


def plain(text: str) -> str:
    def code(match: re.Match[str]) -> str:
        kind, inner = match.groups()
        return inner if kind in "IBU" else f"`{inner}`"

    return MARKUP.sub(code, text).replace("|", "\\|").replace("\n", " ")


def shown(value: object) -> str:
    if value is None:
        return "`null`"
    rendered = value if isinstance(value, str) else json.dumps(value)
    return f"`{rendered}`" if rendered != "" else '`""`'


def kind(option: dict) -> str:
    name = option.get("type", "str")
    return f"{name} of {option['elements']}" if "elements" in option else name


def reference(role: str, specs: dict, defaults: dict) -> str:
    lines = [BEGIN, "", "## Variables", ""]
    lines.append(
        f"Generated from `roles/{role}/meta/argument_specs.yml` by `scripts/role_docs.py`;"
        f" `ansible-doc -t role hpc.globus_compute.{role}` shows the same."
    )
    for entry, spec in specs["argument_specs"].items():
        lines += ["", f"### Entry point `{entry}`", ""]
        lines += ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for name, option in spec.get("options", {}).items():
            description = option.get("description", "")
            if isinstance(description, list):
                description = " ".join(description)
            text = plain(description)
            if "choices" in option:
                text += " Choices: " + ", ".join(shown(c) for c in option["choices"]) + "."
            default = "required" if option.get("required") else shown(option.get("default", defaults.get(name)))
            lines.append(f"| `{name}` | {kind(option)} | {default} | {text} |")
        # The values of defaults/main.yml, which a copy must pass validation with
        # (a spec default may be prose, such as "first entry of python_envs_matrix").
        example = {k: defaults.get(k, o.get("default")) for k, o in spec.get("options", {}).items()}
        dumped = yaml.safe_dump(example, sort_keys=False, default_flow_style=False, width=100)
        if role.startswith("_"):
            # An internal role: the other roles include one entry point; a play never lists it.
            if not example:
                continue
            lines += ["", "Example (as a role of the collection includes it):", "", "```yaml"]
            lines += [f"- name: {spec.get('short_description', entry)}", "  ansible.builtin.include_role:"]
            lines += [f"    name: hpc.globus_compute.{role}", f"    tasks_from: {entry}", "  vars:"]
            lines += [f"    {line}" for line in dumped.splitlines()]
        else:
            lines += ["", "Example (every variable at its default; set only what differs):", "", "```yaml"]
            lines += ["- hosts: all", "  roles:", f"    - role: hpc.globus_compute.{role}", "      vars:"]
            lines += [f"        {line}" for line in dumped.splitlines()]
        lines += ["```"]
    lines += ["", END]
    return "\n".join(lines)


def updated(page: Path, role: str) -> str:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    text = page.read_text()
    head = text.split(BEGIN, 1)[0].rstrip("\n")
    return f"{head}\n\n{reference(role, specs, defaults)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a page is out of date")
    args = parser.parse_args()
    stale = []
    for role_dir in sorted((ROOT / "roles").iterdir()):
        role = role_dir.name
        page = ROOT / "docs" / "roles" / f"{role}.md"
        if not page.exists():
            sys.exit(f"roles/{role} has no page docs/roles/{role}.md")
        text = updated(page, role)
        if page.read_text() != text:
            stale.append(str(page.relative_to(ROOT)))
            if not args.check:
                page.write_text(text)
    if stale and args.check:
        sys.exit("out of date (run python scripts/role_docs.py): " + ", ".join(stale))
    for name in stale:
        print(f"updated {name}")


if __name__ == "__main__":
    main()
