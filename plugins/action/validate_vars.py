# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Check the variables of the collection's roles against their argument specs; return typed values.

Ansible's own role validation converts values to check them, then lets the role
use the raw ones: ``-e python_envs_prune=true`` passes as a boolean and is used
as the string "true". Extra vars outrank every fact, so the typed values cannot
replace the variables themselves: they are returned as ``__<variable>`` facts,
which the roles read for every option whose type is not a string.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.validation import check_type_dict
from ansible.module_utils.errors import ArgumentTypeError, RequiredError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

COLLECTION = Path(__file__).resolve().parents[2]
# Types whose value differs from what `-e key=value` or a quoted YAML scalar gives.
TYPED = {"bool", "int", "float", "list", "dict"}
# Shell code, taken as written: bash's ${#ARR[@]} must not be read as a Jinja
# comment. Returned untemplated (and untrusted, so never templated later).
VERBATIM = {"python_envs_worker_init_prefix"}
SHOWN = 120
# Facts the roles publish for each other, not variables to set: a role run
# twice in one play must not take its own result for a slip.
PUBLISHED = {"uv_installed", "python_envs_deployed", "endpoint_deployed"}


def _names_published(value: object) -> bool:
    """Whether a raw value mentions a fact one of the roles publishes as it runs (PUBLISHED)."""
    text = json.dumps(value, default=str)
    return any(re.search(rf"\b{name}\b", text) for name in PUBLISHED)


def _show(value: object) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _numbers_for_strings(name: str, spec: dict, value: object) -> list[str]:
    """YAML reads 3.10 as the float 3.1, which the spec turns into the string "3.1"
    without a word: a float where a string is expected is refused, wherever it is."""
    kind = spec.get("type", "str")
    if kind in ("str", "raw") and isinstance(value, float):
        return [f"{name} = {value!r}: a number where a string is expected; quote it (YAML reads 3.10 as 3.1)"]
    found = []
    if kind == "raw" and isinstance(value, list):
        # A raw option that holds strings or a list of them (python_envs_matrix[].python).
        for index, item in enumerate(value):
            found += _numbers_for_strings(f"{name}[{index}]", {"type": "raw"}, item)
    if kind == "list" and isinstance(value, list):
        element = {"type": spec.get("elements", "str"), "options": spec.get("options")}
        for index, item in enumerate(value):
            found += _numbers_for_strings(f"{name}[{index}]", element, item)
    elif spec.get("options") and isinstance(value, dict):
        for key, option in spec["options"].items():
            if key in value:
                found += _numbers_for_strings(f"{name}.{key}", option, value[key])
    return found


def _stray_extra_vars(own: object, given: dict) -> list[str]:
    """Extra vars (-e) with the playbook's prefix that it does not read: a slip that would be ignored.

    ``own`` is the ``extra_vars`` option, ``{"playbook": str, "prefix": str, "names": [str]}``; ``given``
    holds the run's extra vars. Raises AnsibleError when the option is not of that shape."""
    if not (
        isinstance(own, dict)
        and set(own) == {"playbook", "prefix", "names"}
        and isinstance(own["playbook"], str)
        and isinstance(own["prefix"], str)
        and own["prefix"]
        and isinstance(own["names"], list)
        and all(isinstance(name, str) and name.startswith(own["prefix"]) for name in own["names"])
    ):
        raise AnsibleError("validate_vars: extra_vars must be {playbook: str, prefix: str, names: [prefix...]}")
    problems = []
    # Compared without the prefix they share, which would make every name look close.
    cut = len(own["prefix"])
    for name in sorted(str(n) for n in given if str(n).startswith(own["prefix"]) and n not in own["names"]):
        close = difflib.get_close_matches(name[cut:], [known[cut:] for known in own["names"]], n=1)
        hint = f"did you mean {own['prefix']}{close[0]}?" if close else f"it reads {', '.join(own['names'])}"
        problems.append(f"{name} is not a variable of {own['playbook']}: {hint}")
    return problems


def _subject(problem: str) -> str:
    """The variable a problem line is about: the name it starts with."""
    found = re.match(r"[a-z][a-z0-9_]*", problem)
    return found[0] if found else ""


def _one_level(option: dict, keep_default: bool) -> dict:
    """An option's spec without its suboptions (checked entry by entry) and, unless kept, its default."""
    flat = {k: v for k, v in option.items() if k != "options" and (keep_default or k != "default")}
    if option.get("options") and option.get("type") == "list":
        # Each entry is converted to a dict by _entries, which names its index when it cannot be.
        flat["elements"] = "raw"
    return flat


def _named(message: str, options: dict) -> str | None:
    """The option an error of Ansible's argument spec is about: from where the message names it, else anywhere."""
    match = re.match(r"argument '([^']+)'|value of (\S+) must be one of", message)
    if match and (match.group(1) or match.group(2)) in options:
        return match.group(1) or match.group(2)
    return next((n for n in sorted(options, key=len, reverse=True) if n in message), None)


def _explain(error: Exception, options: dict, values: dict, where: str = "", entry_of: str = "") -> list[str]:
    """The lines for one error of Ansible's argument spec, naming the option by its path (where: the entry's)."""
    message = getattr(error, "error_message", str(error))
    if isinstance(error, RequiredError) and entry_of:
        # "missing required arguments: match, output"
        missing = [k for k in message.split(": ", 1)[-1].split(", ") if k in options]
        article = "an" if entry_of[0] in "aeiou" else "a"
        return [f"{where}.{key} is missing: {article} {entry_of} entry needs it" for key in missing]
    name = _named(message, options)
    if name is None:
        return [f"{where}: {message}" if where else message]
    path = f"{where}.{name}" if where else name
    option = options[name]
    shown = "(hidden)" if option.get("no_log") else _show(values.get(name))
    allowed = option.get("type", "str") + (" of " + option["elements"] if option.get("elements") else "")
    reason = message.split(". ")[0]
    if isinstance(error, ArgumentTypeError) and message.startswith(f"argument '{name}'"):
        kind = option.get("type", "str")
        reason = ("not an " if kind[0] in "aeiou" else "not a ") + kind
    if option.get("type") == "bool":
        allowed = "true or false"
    if option.get("choices"):
        reason, allowed = "not allowed", "one of " + ", ".join(map(str, option["choices"]))
    return [f"{path} = {shown}: {reason}; allowed: {allowed}"]


def _entries(name: str, option: dict, value: object) -> tuple[list[str], object]:
    """Check each entry of an option whose entries have keys of their own; return its lines and the typed value.

    Ansible's own check of suboptions names neither the entry nor, for a misspelled key, what was meant."""
    keys = option["options"]
    one = option.get("type") == "dict"
    problems: list[str] = []
    typed = []
    article = "an" if name[0] in "aeiou" else "a"
    for index, entry in enumerate([value] if one else value):  # type: ignore[arg-type]
        where = name if one else f"{name}[{index}]"
        try:
            entry = check_type_dict(entry)
        except (TypeError, ValueError):
            problems.append(
                f"{where} = {_show(entry)}: not a dict; allowed: a dict with keys {', '.join(sorted(keys))}"
            )
            continue
        for key in sorted(k for k in entry if k not in keys):
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            hint = f"did you mean {close[0]}?" if close else "its keys are " + ", ".join(sorted(keys))
            problems.append(f"{where}.{key} is not a key of {article} {name} entry: {hint}")
        known = {k: v for k, v in entry.items() if k in keys}
        spec = {key: _one_level(sub, keep_default=True) for key, sub in keys.items()}
        checked = ArgumentSpecValidator(spec).validate(known, validate_role_argument_spec=True)
        for error in checked.errors:
            problems += _explain(error, keys, known, where, name)
        parameters = checked.validated_parameters
        for key, sub in keys.items():
            if sub.get("options") and parameters.get(key) is not None and not checked.errors:
                found, parameters[key] = _entries(f"{where}.{key}", sub, parameters[key])
                problems += found
        typed.append(parameters)
    return problems, (typed[0] if one and typed else typed)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def _load(self, role: str, part: str, trusted: bool) -> dict:
        path = COLLECTION / "roles" / role / part
        if not path.is_file():
            raise AnsibleError(f"validate_vars: {role!r} is not a role of hpc.globus_compute ({path} is missing)")
        return self._loader.load_from_file(str(path), trusted_as_template=trusted) or {}

    def _check_role(self, role: str, task_vars: dict, defer_undefined: bool) -> tuple[list[str], dict]:
        # The spec is data; only defaults/main.yml holds templates.
        options = self._load(role, "meta/argument_specs.yml", False)["argument_specs"]["main"]["options"]
        defaults = self._load(role, "defaults/main.yml", True)
        variables = {**defaults, **task_vars}
        templar = self._templar.copy_with_new_env(available_variables=variables)
        problems: list[str] = []

        # A name with the role's prefix that the role does not know is a slip
        # that would otherwise be ignored silently.
        prefix = role + "_"
        for name in sorted(n for n in task_vars if n.startswith(prefix) and n not in options and n not in PUBLISHED):
            close = difflib.get_close_matches(name, list(options), n=1)
            hint = f"did you mean {close[0]}?" if close else f"see the options of hpc.globus_compute.{role}"
            problems.append(f"{name} is not a variable of hpc.globus_compute.{role}: {hint}")

        values = {}
        for name in options:
            if name in VERBATIM and isinstance(variables.get(name), str):
                # A new str carries no "trusted as template" tag.
                values[name] = variables[name].encode().decode()
            elif name in variables:
                try:
                    values[name] = templar.template(variables[name])
                except AnsibleError as error:
                    # Before the roles run (site.yml's first play), a value made of
                    # what a role publishes as it runs is checked by the role itself,
                    # later. Any other name no host defines yet (a fact site.yml does
                    # not gather, a slip) never will be: refused now.
                    if (
                        defer_undefined
                        and isinstance(error, AnsibleUndefinedVariable)
                        and _names_published(variables[name])
                    ):
                        continue
                    problems.append(f"{name}: its value does not template: {error.message}")
        for name, value in values.items():
            problems += _numbers_for_strings(name, options[name], value)
        # Spec defaults are documentation here (defaults/main.yml holds the values). Entries with keys of
        # their own are checked one by one below, so that a line can name the entry's index.
        spec = {name: _one_level(option, keep_default=False) for name, option in options.items()}
        checked = ArgumentSpecValidator(spec).validate(values, validate_role_argument_spec=True)
        for error in checked.errors:
            problems += _explain(error, options, values)
        for name, option in options.items():
            value = checked.validated_parameters.get(name)
            # Not converted to its type: already refused as a whole.
            if option.get("options") and isinstance(value, dict if option.get("type") == "dict" else list):
                found, checked.validated_parameters[name] = _entries(name, option, value)
                problems += found

        # A variable nobody set takes its value from defaults/main.yml, made of the others
        # (python_envs_default is the matrix's first entry). When a variable that was set is
        # refused, a default's refusal only repeats it, about a name the admin never wrote.
        given = {
            name
            for name in options
            if name in task_vars and (name not in defaults or task_vars[name] != defaults[name])
        }
        own = [problem for problem in problems if _subject(problem) in given or _subject(problem) not in options]
        if own:
            problems = own

        typed = {}
        if not problems:
            typed = {
                "__" + name: checked.validated_parameters[name]
                for name, option in options.items()
                if (option.get("type", "str") in TYPED or name in VERBATIM) and name in checked.validated_parameters
            }
        return problems, typed

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        roles = self._task.args.get("roles")
        if not isinstance(roles, list) or not roles:
            raise AnsibleError("validate_vars: roles must be a list of role names of hpc.globus_compute")
        problems: list[str] = []
        # `-e "name=a b"` sets name to "a" and leaves "b" as a bare word: Ansible's
        # key=value parser splits at spaces, and keeps the word as _raw_params.
        stray = (task_vars or {}).get("_raw_params")
        if stray:
            problems.append(
                f"-e: {_show(stray)} is not name=value: Ansible splits -e name=value at spaces; "
                "quote the whole pair, e.g. -e 'name=\"a b\"'"
            )
        if self._task.args.get("extra_vars") is not None:
            problems += _stray_extra_vars(self._task.args["extra_vars"], load_extra_vars(self._loader))
        facts: dict = {}
        defer = bool(self._task.args.get("defer_undefined"))
        for role in roles:
            found, typed = self._check_role(str(role), dict(task_vars or {}), defer)
            problems += found
            facts.update(typed)
        if problems:
            result["failed"] = True
            result["msg"] = "Nothing was changed; fix these variables first:\n" + "\n".join(problems)
            return result
        result["changed"] = False
        result["ansible_facts"] = facts
        result["msg"] = f"The variables of {', '.join(map(str, roles))} are valid"
        return result
