"""A slip inside an entry of a list or dict option is named by its path, in one line of its own.

Ansible's check of suboptions says `python_envs_matrix.endpiont. Supported parameters include: ...`
or `argument 'newest' is of type str found in 'python_envs_matrix'. and ...`: no entry index, no
suggestion, and validate_vars kept only the text before the first ". ".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.hpc.globus_compute.plugins.action.validate_vars import _entries

ROOT = Path(__file__).resolve().parents[2]


def options_with_keys() -> list[tuple[str, dict]]:
    """Every option of every role whose entries have keys of their own."""
    found = []
    for spec in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry_point in yaml.safe_load(spec.read_text())["argument_specs"].values():
            found += [(name, option) for name, option in entry_point["options"].items() if option.get("options")]
    return found


OPTIONS = options_with_keys()


def a_valid_value(option: dict) -> dict:
    """An entry with each required key set to a value of its type."""
    sample = {"str": "x", "raw": "x", "int": 1, "bool": True, "dict": {"a": "b"}, "list": ["x"], "path": "/x"}
    return {key: sample[sub.get("type", "str")] for key, sub in option["options"].items() if sub.get("required")}


def test_every_role_option_with_keys_is_covered() -> None:
    names = {name for name, _ in OPTIONS}
    assert {"python_envs_matrix", "endpoint_identity_mapping", "endpoint_identity_mapping_samples"} <= names


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_a_misspelled_key_names_the_entry_and_what_was_meant(name: str, option: dict) -> None:
    key = sorted(option["options"])[-1]
    slip = key[:-2] + key[-1] + key[-2]
    value = [a_valid_value(option), {**a_valid_value(option), slip: "x"}]
    article = "an" if name[0] in "aeiou" else "a"
    assert _entries(name, option, value)[0] == [
        f"{name}[1].{slip} is not a key of {article} {name} entry: did you mean {key}?"
    ]
    # Nothing close: the keys it has.
    problems = _entries(name, option, [{**a_valid_value(option), "zzzzzzzz": 1}])[0]
    keys = ", ".join(sorted(option["options"]))
    assert problems == [f"{name}[0].zzzzzzzz is not a key of {article} {name} entry: its keys are {keys}"]


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_a_missing_required_key_is_named(name: str, option: dict) -> None:
    required = sorted(key for key, sub in option["options"].items() if sub.get("required"))
    article = "an" if name[0] in "aeiou" else "a"
    assert _entries(name, option, [a_valid_value(option), {}])[0] == [
        f"{name}[1].{key} is missing: {article} {name} entry needs it" for key in required
    ]
    assert _entries(name, option, [a_valid_value(option)]) == (
        [],
        [_entries(name, option, [a_valid_value(option)])[1][0]],
    )


def test_a_wrong_type_or_choice_inside_an_entry_names_it() -> None:
    matrix = dict(OPTIONS)["python_envs_matrix"]
    entry = {"python": "3.11", "newest": "two", "prereleases": "maybe", "packages": {"numpy": 1}}
    assert _entries("python_envs_matrix", matrix, [entry, "3.11"])[0] == [
        'python_envs_matrix[0].newest = "two": not an int; allowed: int',
        'python_envs_matrix[0].prereleases = "maybe": not a bool; allowed: true or false',
        'python_envs_matrix[0].packages = {"numpy": 1}: not a list; allowed: list of str',
        'python_envs_matrix[1] = "3.11": not a dict; allowed: a dict with keys'
        " endpoint, newest, packages, prereleases, python",
    ]
    # No role has a choice inside an entry yet; one reads as a choice at the top does.
    mode = {"type": "dict", "options": {"mode": {"type": "str", "choices": ["build", "probe"]}}}
    assert _entries("x_run", mode, {"mode": "biuld"})[0] == [
        'x_run.mode = "biuld": not allowed; allowed: one of build, probe'
    ]


def test_valid_entries_come_back_typed_with_their_defaults() -> None:
    matrix = dict(OPTIONS)["python_envs_matrix"]
    assert _entries("python_envs_matrix", matrix, [{"python": ["3.11"], "newest": "2"}]) == (
        [],
        [{"python": ["3.11"], "endpoint": None, "newest": 2, "prereleases": False, "packages": []}],
    )
