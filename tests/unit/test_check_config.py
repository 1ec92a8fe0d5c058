"""The endpoint role names a refusal of its check by the exit status the check's script gives it.

roles/endpoint/files/check_config.py exits with one status for each step it refuses (its
REFUSED); the role's __endpoint_check_refused reads the step back from it. A step added or
renumbered on one side alone would name the wrong file in the play's message.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "endpoint"


def test_the_roles_names_for_the_scripts_exit_statuses_are_the_scripts_own() -> None:
    spec = importlib.util.spec_from_file_location("check_config", ROLE / "files" / "check_config.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    role = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__endpoint_check_refused"]
    assert role == {status: step for step, status in script.REFUSED.items()}
    # 0: every step passed; 1 and 2 are any Python's own (an uncaught error, a usage error), which
    # the role must not take for a step's refusal.
    assert not {0, 1, 2} & set(role)
