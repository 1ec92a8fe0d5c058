"""Checks that each role's defaults/main.yml and meta/argument_specs.yml agree.

    python scripts/check_argspecs.py [ROLES_DIR]   # default: roles/ of this checkout

Every variable in defaults/main.yml has an option in an entry point of the
argument specs, and every option that is not required has a default there;
the default's YAML type is the option's type (a Jinja expression may stand
for any); a default the spec writes out is the same value, unless
defaults/main.yml's is an expression, which the spec may say in words. Each
disagreement is one line: role, variable and what differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The Python types a default of each argument spec type may have.
TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def type_problem(option: dict, value: object) -> str | None:
    """Why `value` is not of the option's type, or None when it is."""
    kind = option.get("type", "str")
    if kind == "raw" or value is None or (isinstance(value, str) and "{{" in value):
        return None
    wanted = TYPES.get(kind)
    if wanted is None:
        return f"the spec's type {kind} is not one this check knows"
    # YAML's true is an int to Python, never an int to Ansible.
    if not isinstance(value, wanted) or (kind in ("int", "float") and isinstance(value, bool)):
        return f"default {value!r} is {type(value).__name__}, the spec says {kind}"
    elements = option.get("elements")
    if kind == "list" and elements:
        for item in value:  # type: ignore[union-attr]
            problem = type_problem({"type": elements}, item)
            if problem:
                return f"an element: {problem}"
    return None


def check_role(role: Path) -> list[str]:
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None
    defaults = defaults or {}
    specs = yaml.safe_load(specs_file.read_text()) if specs_file.exists() else None
    options: dict[str, dict] = {}
    for spec in ((specs or {}).get("argument_specs") or {}).values():
        options.update((spec or {}).get("options") or {})
    problems = []
    for name, value in defaults.items():
        if name not in options:
            problems.append(f"{name}: in defaults/main.yml, not in meta/argument_specs.yml")
            continue
        option = options[name]
        problem = type_problem(option, value)
        expression = isinstance(value, str) and "{{" in value
        if problem:
            problems.append(f"{name}: {problem}")
        elif "default" in option and option["default"] != value and not expression:
            problems.append(f"{name}: the spec's default {option['default']!r} is not defaults/main.yml's {value!r}")
    for name, option in options.items():
        if name not in defaults and not option.get("required"):
            problems.append(f"{name}: in meta/argument_specs.yml, not in defaults/main.yml")
    return [f"{role.name}: {problem}" for problem in problems]


def main() -> None:
    roles = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "roles"
    problems = [p for role in sorted(roles.iterdir()) if role.is_dir() for p in check_role(role)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(f"{len(problems)} disagreement(s) between defaults/main.yml and meta/argument_specs.yml")
    print(f"defaults and argument specs agree in {roles}")


if __name__ == "__main__":
    main()
