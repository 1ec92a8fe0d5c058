"""The unit stage's --dist loadgroup keeps each xdist_group on one worker, and tests/longest_first.py
puts the tests of a shared fixture in one group and queues the longest first.

The integration tests rely on it: a module fixture that is a real build is
made once, and tests that share a machine-wide path (uv's stage) take turns.
pytest-xdist groups by rewriting node ids, which some pytest releases ignore
(pytest-dev/pytest-xdist#1386): nothing fails then, the groups just split.
"""

from __future__ import annotations

import json
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


# The project's conftest shares the tests out (tests/longest_first.py); a bare one here does the same.
CONFTEST = f"""\
import sys

sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from longest_first import pytest_addoption, pytest_collection_modifyitems, pytest_configure  # noqa: F401
"""
SHARED = """\
import os
import pytest


@pytest.fixture(scope="module")
def build():
    with open("builds", "a") as made:
        made.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")


@pytest.mark.parametrize("i", range(6))
def test_reads_the_build(build, i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""


def pytest_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_module_fixture_is_made_once_by_one_worker(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_shared.py").write_text(SHARED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    result = pytest_run(tmp_path, "-n", "2", "--dist", "loadgroup", "-rA", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    assert len((tmp_path / "builds").read_text().splitlines()) == 1, result.stdout[-3000:]
    workers = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("WORKER ")}
    assert len(workers) == 1, f"the fixture's tests ran on {sorted(workers)}: {result.stdout[-3000:]}"


def test_the_longest_tests_are_queued_first_and_a_run_records_them(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_grouped_a.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    # The group's six tests together (6 s) come after test_loose[3] (9 s), before the other loose
    # ones; a test not in the file counts as the median (1 s), as long as test_loose[0].
    durations = {f"test_grouped_a.py::test_grouped[{i}]": 1.0 for i in range(6)}
    durations |= {"test_loose.py::test_loose[3]": 9.0, "test_loose.py::test_loose[0]": 1.0}
    (tmp_path / "durations.json").write_text(json.dumps(durations))
    collected = pytest_run(tmp_path, "--collect-only", "-q", "--durations-path=durations.json")
    order = [line for line in collected.stdout.splitlines() if "::" in line]
    assert order[:8] == [
        "test_loose.py::test_loose[3]",
        *(f"test_grouped_a.py::test_grouped[{i}]" for i in range(6)),
        "test_loose.py::test_loose[0]",
    ], collected.stdout[-3000:]
    assert len(order) == 18

    stored = tmp_path / "stored.json"
    result = pytest_run(tmp_path, "-n", "2", "--dist", "loadgroup", "--store-durations", f"--durations-path={stored}")
    assert result.returncode == 0, result.stdout[-3000:]
    recorded = json.loads(stored.read_text())
    # Every test, by its own node id (not the one pytest-xdist gives a grouped test), each at least
    # the 0.05 s the loose ones sleep.
    assert sorted(recorded) == sorted(order)
    assert all(recorded[f"test_loose.py::test_loose[{i}]"] >= 0.05 for i in range(12))
