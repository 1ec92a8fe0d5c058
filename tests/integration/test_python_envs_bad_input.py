"""The python_envs role refuses a bad matrix or a missing interpreter before building anything."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from role_runner import ROOT, assert_fails_with, run_role


def run_python_envs(tmp_path: Path, **variables: object):
    base = {
        "python_envs_runtime_dir": str(tmp_path / "runtime"),
        "python_envs_owner": getpass.getuser(),
        "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
    }
    return run_role(tmp_path, "python_envs", {**base, **variables})


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"python": "3.12; rm -rf /", "endpoint": "4.19.0"}, "3.12; rm -rf /"),
        ({"python": "3.12", "endpoint": "latest"}, "latest"),
        ({"python": "3.12", "endpoint": "4.19.0", "packages": ["--index-url=http://evil"]}, "--index-url"),
    ],
    ids=["python", "endpoint", "package-option"],
)
def test_a_bad_matrix_entry_is_named(tmp_path: Path, entry: dict, shown: str) -> None:
    assert_fails_with(run_python_envs(tmp_path, python_envs_matrix=[entry]), "python_envs_matrix", shown)
    assert not (tmp_path / "runtime").exists()


def test_a_default_outside_the_matrix_is_refused(tmp_path: Path) -> None:
    result = run_python_envs(tmp_path, python_envs_default={"python": "3.10", "endpoint": "4.19.0"})
    assert_fails_with(result, "python_envs_default", "3.10", "py3.11-gce4.19.0")


def test_a_missing_interpreter_is_named_with_what_was_found(tmp_path: Path) -> None:
    result = run_python_envs(
        tmp_path, python_envs_matrix=[{"python": "3.99", "endpoint": "4.19.0"}], python_envs_runtime_fallback="error"
    )
    assert_fails_with(result, "no Python 3.99 on localhost", "found: ", "python3.")
    assert not (tmp_path / "runtime" / "envs").exists()


def test_a_missing_uv_is_named(tmp_path: Path) -> None:
    assert_fails_with(run_python_envs(tmp_path, python_envs_uv="/nonexistent/uv"), "python_envs_uv", "/nonexistent/uv")
