"""scripts/check_argspecs.py: a role whose defaults and argument specs drift apart fails the lint stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check_argspecs.py"


def check(roles: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(roles)], capture_output=True, text=True)


@pytest.fixture
def roles(tmp_path: Path) -> Path:
    """A copy of the collection's roles (their defaults and specs only)."""
    for role in (ROOT / "roles").iterdir():
        for part in ("defaults/main.yml", "meta/argument_specs.yml"):
            (tmp_path / role.name / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(role / part, tmp_path / role.name / part)
    return tmp_path


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_the_collections_roles_agree(roles: Path) -> None:
    result = check(roles)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == f"defaults and argument specs agree in {roles}\n"


def options(data: dict) -> dict:
    return data["argument_specs"]["main"]["options"]


@pytest.mark.parametrize(
    ("role", "defaults_change", "spec_change", "line"),
    [
        (
            "uv",
            lambda d: d.update(uv_extra_setting=1),
            None,
            "uv: uv_extra_setting: in defaults/main.yml, not in meta/argument_specs.yml",
        ),
        (
            "endpoint",
            None,
            lambda s: options(s).update(endpoint_new_option={"type": "str", "description": "x"}),
            "endpoint: endpoint_new_option: in meta/argument_specs.yml, not in defaults/main.yml",
        ),
        (
            "uv",
            lambda d: d.update(uv_version=13),
            None,
            "uv: uv_version: default 13 is int, the spec says str",
        ),
        (
            "uv",
            lambda d: d.update(uv_users="alice"),
            None,
            "uv: uv_users: default 'alice' is str, the spec says list",
        ),
        (
            "uv",
            lambda d: d.update(uv_users=["alice", 2]),
            None,
            "uv: uv_users: an element: default 2 is int, the spec says str",
        ),
        (
            "uv",
            None,
            lambda s: options(s)["uv_version"].update(default="0.1.0"),
            "uv: uv_version: the spec's default '0.1.0' is not defaults/main.yml's '0.13.9'",
        ),
    ],
)
def test_a_desynced_copy_fails_naming_the_variable(roles: Path, role, defaults_change, spec_change, line) -> None:
    if defaults_change:
        edit(roles / role / "defaults" / "main.yml", defaults_change)
    if spec_change:
        edit(roles / role / "meta" / "argument_specs.yml", spec_change)
    result = check(roles)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        line,
        "1 disagreement(s) between defaults/main.yml and meta/argument_specs.yml",
    ]
