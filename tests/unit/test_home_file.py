"""home_file walks below a home without following links, replaces rather than writes through, and reads no FIFO."""

from __future__ import annotations

import getpass
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.hpc.globus_compute.plugins.modules.home_file import Refused, run

OWNER = getpass.getuser()


def home_file(home: Path, path: str, check: bool = False, **params: object) -> dict:
    defaults = {"state": "file", "content": None, "src": None, "mode": "0644", "parents_mode": "0755"}
    module = SimpleNamespace(params={**defaults, "home": str(home), "owner": OWNER, "path": path, **params})
    module.check_mode = check
    module._diff = True
    return run(module)  # type: ignore[arg-type]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_writes_with_its_parents_then_reports_nothing_to_do(home: Path) -> None:
    assert home_file(home, ".config/uv/uv.toml", content="offline = true\n")["changed"]
    assert (home / ".config/uv/uv.toml").read_text() == "offline = true\n"
    assert (home / ".config/uv/uv.toml").stat().st_mode & 0o777 == 0o644
    assert (home / ".config").stat().st_mode & 0o777 == 0o755
    assert not home_file(home, ".config/uv/uv.toml", content="offline = true\n")["changed"]


def test_check_mode_reports_the_diff_and_writes_nothing(home: Path) -> None:
    result = home_file(home, ".config/uv/uv.toml", check=True, content="offline = true\n")
    assert result["changed"] and not (home / ".config").exists()
    home_file(home, "a.txt", content="old\n")
    result = home_file(home, "a.txt", check=True, content="new\n")
    assert result["diff"]["before"] == "old\n" and result["diff"]["after"] == "new\n"
    assert (home / "a.txt").read_text() == "old\n"


def test_the_diff_of_a_file_grown_by_hand_shows_what_it_held(home: Path) -> None:
    home_file(home, "uv.toml", content="offline = true\n")
    (home / "uv.toml").write_text("offline = true\n# hand edit\n")
    result = home_file(home, "uv.toml", check=True, content="offline = true\n")
    assert result["diff"]["before"] == "offline = true\n# hand edit\n", result["diff"]


def test_the_diff_of_a_file_whose_mode_or_time_drifted_shows_them(home: Path, tmp_path: Path) -> None:
    """Before, the same text on both sides: --diff showed no change for a change it reported."""
    src = tmp_path / "uv"
    src.write_bytes(b"uv 0.13.9\n")
    os.utime(src, ns=(1, 1_700_000_000_000_000_000))
    home_file(home, ".local/bin/uv", src=str(src), mode="0755")
    copy = home / ".local/bin/uv"
    copy.chmod(0o700)
    diff = home_file(home, ".local/bin/uv", src=str(src), mode="0755", check=True)["diff"]
    me = (os.getuid(), os.getgid())
    assert diff["before"] == {"state": "file", "owner": me[0], "group": me[1], "mode": "0700"}, diff
    assert diff["after"] == {"state": "file", "owner": me[0], "group": me[1], "mode": "0755"}, diff
    copy.chmod(0o755)
    os.utime(copy, ns=(1, 1_600_000_000_000_000_000))
    diff = home_file(home, ".local/bin/uv", src=str(src), mode="0755", check=True)["diff"]
    assert (diff["before"]["mtime"], diff["after"]["mtime"]) == (1_600_000_000_000_000_000, 1_700_000_000_000_000_000)


@pytest.mark.parametrize("check", [False, True])
def test_a_link_below_the_home_is_refused_and_its_target_untouched(home: Path, tmp_path: Path, check: bool) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (home / ".local").mkdir()
    (home / ".local" / "bin").symlink_to(target)
    with pytest.raises(Refused, match="is a link"):
        home_file(home, ".local/bin/uv", check=check, content="x")
    assert list(target.iterdir()) == []


def test_a_link_at_the_file_is_replaced_not_written_through(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (home / "uv.json").symlink_to(victim)
    assert home_file(home, "uv.json", content="{}\n")["changed"]
    assert victim.read_text() == "keep\n"
    assert not (home / "uv.json").is_symlink() and (home / "uv.json").read_text() == "{}\n"


def test_removal_takes_the_link_itself(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (home / "uv").symlink_to(victim)
    assert home_file(home, "uv", state="absent")["changed"]
    assert victim.exists() and not (home / "uv").is_symlink()
    assert not home_file(home, "uv", state="absent")["changed"]


def test_a_fifo_is_read_as_nothing_without_blocking(home: Path) -> None:
    os.mkfifo(home / "uv.json")
    done: dict = {}
    reader = threading.Thread(target=lambda: done.update(home_file(home, "uv.json", state="read")))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert done["content"] == "" and done["exists"] is False


def test_read_gives_content_and_its_json_and_nothing_for_a_missing_file(home: Path) -> None:
    home_file(home, "d/f", content='{"files": ["a"]}\n')
    result = home_file(home, "d/f", state="read")
    assert (result["exists"], result["json"]) == (True, {"files": ["a"]})
    home_file(home, "d/g", content="not json\n")
    assert home_file(home, "d/g", state="read")["json"] == {}
    assert home_file(home, "x/y", state="read")["exists"] is False


def test_a_huge_sparse_file_is_neither_read_nor_held(home: Path) -> None:
    with open(home / "uvx", "wb") as f:
        f.truncate(1 << 36)
    assert home_file(home, "uvx", state="read")["exists"] is False
    assert home_file(home, "uvx", content="small\n")["changed"]
    assert (home / "uvx").read_text() == "small\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another account")
def test_another_accounts_file_moved_into_the_home_is_never_shown(home: Path) -> None:
    secret = home / "uv.json"
    secret.write_text('{"secret": "hunter2"}\n')
    os.chown(secret, 65534, 65534)
    secret.chmod(0o600)
    assert home_file(home, "uv.json", state="read") == {
        "changed": False,
        "file": str(secret),
        "exists": False,
        "content": "",
        "json": {},
    }
    result = home_file(home, "uv.json", content="{}\n")
    assert "hunter2" not in str(result) and secret.read_text() == "{}\n"


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../b", "a//b", ""])
def test_paths_that_leave_the_home_are_refused(home: Path, path: str) -> None:
    with pytest.raises(Refused, match="relative path below the home"):
        home_file(home, path, content="x")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another account")
def test_a_directory_swapped_in_while_it_is_made_is_not_handed_over(home: Path, monkeypatch) -> None:
    from ansible_collections.hpc.globus_compute.plugins.modules import home_file as module

    real_mkdir = os.mkdir

    def mkdir_then_swap(name, mode=0o777, *, dir_fd=None):
        # The account renames a directory of another's into the new name's place.
        real_mkdir(name, mode, dir_fd=dir_fd)
        os.chown(name, 65534, 65534, dir_fd=dir_fd)

    monkeypatch.setattr(module.os, "mkdir", mkdir_then_swap)
    with pytest.raises(Refused, match="replaced while it was being made"):
        home_file(home, ".local/bin/uv", content="x")
    assert (home / ".local").stat().st_uid == 65534


def test_a_copy_keeps_its_sources_time_and_is_written_again_when_its_time_differs(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "uv"
    src.write_bytes(b"uv 0.13.9\n")
    os.utime(src, ns=(1, 1_700_000_000_123_456_789))
    assert home_file(home, ".local/bin/uv", src=str(src), mode="0755")["changed"]
    copy = home / ".local/bin/uv"
    assert (copy.read_bytes(), copy.stat().st_mtime_ns) == (b"uv 0.13.9\n", 1_700_000_000_123_456_789)
    assert not home_file(home, ".local/bin/uv", src=str(src), mode="0755")["changed"]
    # The same bytes with another time (a copy made before, or touched): written again, with the source's time.
    os.utime(copy, ns=(1, 1_600_000_000_000_000_000))
    assert home_file(home, ".local/bin/uv", src=str(src), mode="0755", check=True)["changed"]
    assert copy.stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert home_file(home, ".local/bin/uv", src=str(src), mode="0755")["changed"]
    assert copy.stat().st_mtime_ns == 1_700_000_000_123_456_789
    # content= keeps whatever time the write gives.
    assert home_file(home, "a.txt", content="x\n")["changed"]
    assert not home_file(home, "a.txt", content="x\n")["changed"]
