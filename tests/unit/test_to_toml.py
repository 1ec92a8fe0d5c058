from __future__ import annotations

import tomllib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hpc.globus_compute.plugins.filter.to_toml import to_toml


def test_uv_policy_round_trips_through_a_toml_parser() -> None:
    policy = {
        "offline": True,
        "no-index": True,
        "find-links": ["/shared/wheelhouse", "/opt/wheels"],
        "python-downloads": "never",
        "concurrent-downloads": 4,
        "index": [{"name": "site", "url": "https://pypi.example.org/simple", "default": True}],
        "pip": {"compile-bytecode": True},
    }
    assert tomllib.loads(to_toml(policy)) == policy


def test_strings_cannot_inject_keys() -> None:
    hostile = 'x"\noffline = false\n# '
    parsed = tomllib.loads(to_toml({"cache-dir": hostile, "odd key\n=": 1}))
    assert parsed == {"cache-dir": hostile, "odd key\n=": 1}


def test_none_values_are_left_out_and_empty_dict_is_empty() -> None:
    assert to_toml({"offline": None}) == ""
    assert to_toml({}) == ""


@pytest.mark.parametrize("bad", [["not", "a", "dict"], {"x": float("nan")}, {"x": object()}])
def test_values_without_a_toml_form_are_refused(bad: object) -> None:
    with pytest.raises(AnsibleFilterError, match="to_toml"):
        to_toml(bad)  # type: ignore[arg-type]
