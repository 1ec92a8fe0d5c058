"""The unit stage's --dist loadgroup keeps each xdist_group on one worker.

The integration tests rely on it: a module fixture that is a real build is
made once, and tests that share a machine-wide path (uv's stage) take turns.
pytest-xdist groups by rewriting node ids, which some pytest releases ignore
(pytest-dev/pytest-xdist#1386): nothing fails then, the groups just split.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GROUPED = """\
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""
LOOSE = """\
import time
import pytest


@pytest.mark.parametrize("i", range(12))
def test_loose(i):
    time.sleep(0.05)
"""


def test_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"test_grouped_{name}.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "-rA", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    workers = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("WORKER ")}
    assert len(workers) == 1, f"the group ran on {sorted(workers)}: {result.stdout[-3000:]}"
