"""The request contract as bash reads it: every character a pattern takes is named, none a range."""

from __future__ import annotations

import re
import subprocess

import pytest
from ansible_collections.hpc.globus_compute.plugins.lookup.contract import parts

BASH_PATTERNS = ("python_ere", "endpoint_ere", "requirement_ere", "user_env_ere")


@pytest.mark.parametrize("key", BASH_PATTERNS)
def test_no_bracket_expression_holds_a_range(key: str) -> None:
    """Under a UTF-8 locale bash's [0-9] also takes other digits (superscript, Arabic-Indic, fullwidth):
    spelled out, it cannot."""
    pattern = str(parts()[key])
    brackets = re.findall(r"\[[^]]*\]", pattern)
    assert brackets, pattern
    assert [b for b in brackets if re.search(r"[0-9A-Za-z]-[0-9A-Za-z]", b)] == [], pattern


@pytest.mark.parametrize(
    ("key", "taken", "refused"),
    [
        ("python_ere", ["3.11", "3.9"], ["3.1\u0661", "3.\u00b2", "3.\uff11\uff12", "3.11\n"]),
        ("endpoint_ere", ["4.19.0", "4.19.0rc1.post2.dev3"], ["4.\u00b2\u00b3.0", "4.1.\u0661", "4.19.0 "]),
    ],
)
def test_bash_takes_what_the_rule_takes(key: str, taken: list[str], refused: list[str]) -> None:
    script = "pattern=$1; shift; for v; do [[ $v =~ $pattern ]] && echo 1 || echo 0; done"
    said = subprocess.run(
        ["bash", "-c", script, "bash", str(parts()[key]), *taken, *refused],
        capture_output=True,
        text=True,
        check=True,
        env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
    ).stdout.split()
    assert said == ["1"] * len(taken) + ["0"] * len(refused)
