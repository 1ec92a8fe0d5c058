"""How the unit stage shares its tests out: a shared fixture made once, the longest tests first.

pytest-xdist (`--dist loadgroup`) hands each worker the next unit of work in
its queue: one test, or every test of one `xdist_group`.

- **A shared fixture is made once.** A test that uses a module- or
  session-scoped fixture of the project's (a real build, a converged site)
  joins the group of that fixture, unless it names a group of its own: one
  worker then runs every test that reads it. Left apart, each worker that drew
  one of those tests made the fixture again.
- **The longest first.** The queue is ordered by how long each unit took
  before, longest first, so that the short ones fill in at the end. Queued in
  file order, a long test drawn last kept one CPU busy while the other had
  nothing left.

How long each test takes comes from tests/durations.json ({node id: seconds},
setup, call and teardown together; `--durations-path` names another); a test
not in it counts as the median of those that are. `--store-durations` writes
that file from the run it ends (the options of pytest-split, which records
the same file to split a suite across machines). The plugin turns off
pytest-xdist's own order (`--no-loadscope-reorder`: otherwise the groups with
the most tests go first), so that this one holds whoever runs pytest.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
SHARED_SCOPES = {"module", "package", "session"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--durations-path",
        default=str(DURATIONS),
        help="the JSON file of each test's seconds that orders the run (default: tests/durations.json)",
    )
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="write each test's seconds (setup, call and teardown) of this run to --durations-path",
    )


def base_id(nodeid: str) -> str:
    """A node id without the "@group" pytest-xdist appends to a grouped test's (read as xdist reads it:
    an "@" after the parameters' "]", so that a parameter may hold one)."""
    return nodeid[: nodeid.rfind("@")] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def groups(item: pytest.Item) -> list[str]:
    """The item's xdist_group names, as pytest-xdist reads them."""
    return [
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    ]


def shared_fixtures(item: pytest.Item) -> set[str]:
    """The project's fixtures wider than one test that the item uses: its module's path for a
    module-scoped one, the fixture's name for a session- or package-scoped one.

    A fixture of the project's is one a conftest or test module defines (its base id is a path);
    pytest's and plugins' (tmp_path_factory, testinfra's host) have an empty one.
    """
    names = set()
    for name, definitions in item._fixtureinfo.name2fixturedefs.items():
        definition = definitions[-1]
        if definition.baseid and definition.scope in SHARED_SCOPES:
            names.add(item.nodeid.split("::", 1)[0] if definition.scope == "module" else name)
    return names


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not groups(item):
            for name in sorted(shared_fixtures(item)):
                item.add_marker(pytest.mark.xdist_group(name))
    path = Path(config.getoption("durations_path"))
    known = json.loads(path.read_text()) if path.exists() else {}
    default = statistics.median(known.values()) if known else 0.0

    def unit(item: pytest.Item) -> str:
        # pytest-xdist's unit of work: the group names joined, or the test alone.
        return "@" + "_".join(sorted(set(groups(item)))) if groups(item) else base_id(item.nodeid)

    seconds: dict[str, float] = defaultdict(float)
    for item in items:
        seconds[unit(item)] += known.get(base_id(item.nodeid), default)
    # Stable: within a unit, and among units of equal time, the file order stays.
    items.sort(key=lambda item: -seconds[unit(item)])


class Recorder:
    """Each test's time over its three phases, from the reports the workers send."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[base_id(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        rounded = {nodeid: round(seconds, 1) for nodeid, seconds in sorted(self.seconds.items())}
        self.path.write_text(json.dumps(rounded, indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's scheduler reads it when it queues the work, in this process.
    config.option.loadscopereorder = False
    # In the process that sees every worker's reports: not in a worker (whose config has workerinput).
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(Path(config.getoption("durations_path"))), "longest_first_recorder")
