"""An extra var with a playbook's prefix that the playbook does not read is named, never ignored.

`-e hpc_gc_seria=1` ran site.yml in one batch, as if nothing had been given.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleError
from ansible_collections.hpc.globus_compute.plugins.action.validate_vars import _stray_extra_vars

OWN = {"playbook": "site.yml", "prefix": "hpc_gc_", "names": ["hpc_gc_hosts", "hpc_gc_serial"]}


def test_the_playbooks_own_and_other_prefixes_pass() -> None:
    assert _stray_extra_vars(OWN, {"hpc_gc_serial": 1, "uv_version": "0.9.0", "hpc_gcx": 1}) == []


def test_a_misspelt_one_names_the_closest() -> None:
    assert _stray_extra_vars(OWN, {"hpc_gc_seria": 1}) == [
        "hpc_gc_seria is not a variable of site.yml: did you mean hpc_gc_serial?"
    ]


def test_one_like_none_lists_them_all_and_every_slip_has_its_line() -> None:
    assert _stray_extra_vars(OWN, {"hpc_gc_zzzz": 1, "hpc_gc_hots": "a"}) == [
        "hpc_gc_hots is not a variable of site.yml: did you mean hpc_gc_hosts?",
        "hpc_gc_zzzz is not a variable of site.yml: it reads hpc_gc_hosts, hpc_gc_serial",
    ]


@pytest.mark.parametrize(
    "own",
    [
        None,
        {"prefix": "hpc_gc_", "names": []},
        {**OWN, "prefix": ""},
        {**OWN, "names": "hpc_gc_hosts"},
        {**OWN, "names": ["serial"]},
        {**OWN, "extra": 1},
    ],
    ids=["none", "no-playbook", "empty-prefix", "names-string", "name-without-prefix", "unknown-key"],
)
def test_a_malformed_option_is_an_error_of_the_playbook(own: object) -> None:
    with pytest.raises(AnsibleError, match="extra_vars must be"):
        _stray_extra_vars(own, {})
