"""Check mode with python_envs_interpreter_source: uv, before uv has installed the Pythons.

The real run would install each Python with `uv python install`, which check
mode skips; check mode then says so, and which environments would be built on
them, instead of failing on the interpreter it did not install. Every system
tree is the run's private copy, and nothing is written.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from role_runner import ROOT, run_role
from versions import GCE


def test_check_mode_says_uv_would_install_the_python_and_build_its_environments(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    result = run_role(
        tmp_path,
        "python_envs",
        {
            "python_envs_runtime_dir": str(tmp_path / "runtime"),
            "python_envs_root": str(root),
            "python_envs_facts_dir": str(tmp_path / "facts"),
            "python_envs_owner": getpass.getuser(),
            "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
            "python_envs_interpreter_source": "uv",
            "python_envs_matrix": [{"python": "3.11", "endpoint": GCE}],
        },
        args=["--check"],
        private_system=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert (
        '"msg": "python_envs_interpreter_source: uv would install Python 3.11 on localhost; '
        'check mode installs none, so their environments are not checked: would build them on it"'
    ) in result.stdout, output[-4000:]
    assert f'"msg": "would build: py3.11-gce{GCE}; would unpublish: nothing"' in result.stdout, output[-4000:]
    assert "no Python 3.11" not in output
    assert not root.exists()
    assert not (tmp_path / "runtime").exists()
    assert not (tmp_path / "facts").exists()
    assert result.system_changes == [], result.system_changes  # type: ignore[attr-defined]
