"""bench/stamp.py: a benchmark table is marked stale exactly when the code it measures changed after its commit."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("bench_stamp", ROOT / "bench" / "stamp.py")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A throwaway git repository with a measured file and a docs page; the stamp module pointed at it."""
    stamp = importlib.util.module_from_spec(SPEC)
    SPEC.loader.exec_module(stamp)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    (tmp_path / "docs").mkdir()
    (tmp_path / "measured.sh").write_text("echo one\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    monkeypatch.setattr(stamp, "ROOT", tmp_path)
    monkeypatch.setattr(stamp, "DOCS", tmp_path / "docs" / "benchmarks.md")
    monkeypatch.setattr(stamp, "MEASURES", {"one": ["measured.sh"]})
    return stamp, git, tmp_path


def page(stamp_lines: str) -> str:
    return f"# Benchmarks\n\n<!-- one:begin -->\n{stamp_lines}\n\n| a |\n| --- |\n| 1 |\n<!-- one:end -->\n"


def test_a_table_measured_at_head_is_fresh(repo) -> None:
    stamp, _, root = repo
    (root / "docs" / "benchmarks.md").write_text(page(stamp.stamp("one")))
    assert stamp.run(mark=False) == 0


def test_a_change_to_the_measured_code_makes_it_stale_until_marked(repo) -> None:
    stamp, git, root = repo
    docs = root / "docs" / "benchmarks.md"
    docs.write_text(page(stamp.stamp("one")))
    (root / "measured.sh").write_text("echo two\n")
    git("commit", "-qam", "second")
    assert stamp.run(mark=False) == 1
    assert stamp.run(mark=True) == 0
    assert "> **Stale:** `measured.sh` changed after" in docs.read_text()
    assert stamp.run(mark=False) == 0
    # Measured again at the new commit: the notice goes.
    docs.write_text(page(stamp.stamp("one")))
    assert stamp.run(mark=False) == 0 and "Stale" not in docs.read_text()


def test_a_table_with_no_known_commit_is_stale(repo) -> None:
    stamp, _, root = repo
    docs = root / "docs" / "benchmarks.md"
    docs.write_text(page("Old figures."))
    assert stamp.run(mark=False) == 1
    stamp.run(mark=True)
    notice = "<!-- measured at commit unknown -->\n> **Stale:** the commit that produced it is not known"
    assert notice in docs.read_text()


def test_figures_are_not_written_over_uncommitted_measured_code(repo) -> None:
    stamp, _, root = repo
    (root / "measured.sh").write_text("echo dirty\n")
    with pytest.raises(SystemExit, match="commit the code it measures"):
        stamp.stamp("one")
