"""probe reports file states in one call, reads no FIFO, follows no link below a home, runs only trusted --version."""

from __future__ import annotations

import getpass
import hashlib
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.hpc.globus_compute.plugins.modules.probe import run

ME = getpass.getuser()


def run_command(argv: list[str], handle_exceptions: bool = True) -> tuple[int, str, str]:
    """AnsibleModule.run_command as the module calls it: a real run of argv (an OSError raised, as
    with handle_exceptions=False; with True, the real one fails the module)."""
    assert not handle_exceptions, "a program that cannot run would fail the whole probe"
    ran = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return ran.returncode, ran.stdout, ran.stderr


def probe(*paths: dict) -> dict:
    entries = [{"home": None, "read": False, "version": False, "checksum": True, **p} for p in paths]
    module = SimpleNamespace(params={"paths": entries}, check_mode=False, run_command=run_command)
    return run(module)["files"]  # type: ignore[arg-type]


def test_a_file_reports_its_checksum_owner_mode_and_content(tmp_path: Path) -> None:
    path = tmp_path / "uv.json"
    path.write_text('{"version": "0.13.9"}\n')
    path.chmod(0o640)
    found = probe({"path": str(path), "read": True})[str(path)]
    assert found["type"] == "file" and found["exists"]
    assert found["sha256"] == hashlib.sha256(b'{"version": "0.13.9"}\n').hexdigest()
    assert (found["owner"], found["mode"], found["uid"]) == (ME, "0640", os.geteuid())
    assert found["content"] == '{"version": "0.13.9"}\n'
    # Without read, no content.
    assert probe({"path": str(path)})[str(path)]["content"] == ""


def test_absent_links_and_directories(tmp_path: Path) -> None:
    (tmp_path / "env").symlink_to(".builds/env-abc.host-1")
    (tmp_path / "dir").mkdir(mode=0o755)
    found = probe({"path": str(tmp_path / "env")}, {"path": str(tmp_path / "dir")}, {"path": str(tmp_path / "no")})
    assert found[str(tmp_path / "env")]["type"] == "link"
    assert found[str(tmp_path / "env")]["target"] == ".builds/env-abc.host-1"
    assert found[str(tmp_path / "env")]["sha256"] == ""
    assert found[str(tmp_path / "dir")]["type"] == "directory"
    assert found[str(tmp_path / "no")] == {
        **found[str(tmp_path / "no")],
        "exists": False,
        "type": "absent",
        "uid": -1,
        "sha256": "",
    }


def test_a_fifo_is_reported_without_being_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "stamp")
    found = probe({"path": str(tmp_path / "stamp"), "read": True})[str(tmp_path / "stamp")]
    assert (found["type"], found["content"], found["sha256"]) == ("other", "", "")


def test_below_a_home_a_link_is_never_followed(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (elsewhere / "bin").mkdir(parents=True)
    (elsewhere / "bin" / "uv").write_text("uv\n")
    (home / ".local").mkdir(parents=True)
    (home / ".local" / "bin").symlink_to(elsewhere / "bin")
    found = probe({"path": ".local/bin/uv", "home": str(home)})[f"{home}/.local/bin/uv"]
    assert (found["exists"], found["type"], found["sha256"]) == (False, "absent", "")
    # The same file reached without a link is read.
    (home / ".local" / "bin").unlink()
    (home / ".local" / "bin").mkdir()
    (home / ".local" / "bin" / "uv").write_text("uv\n")
    found = probe({"path": ".local/bin/uv", "home": str(home)})[f"{home}/.local/bin/uv"]
    assert found["sha256"] == hashlib.sha256(b"uv\n").hexdigest()


def test_a_home_that_is_not_there_holds_nothing(tmp_path: Path) -> None:
    """An account whose passwd entry names /nonexistent (nobody's): absent, for the role to name the account,
    rather than the whole probe failing on the home's errno."""
    (tmp_path / "file").write_text("")
    for home in (tmp_path / "missing", tmp_path / "file"):
        found = probe({"path": ".local/bin/uv", "home": str(home)})[f"{home}/.local/bin/uv"]
        assert (found["exists"], found["type"]) == (False, "absent")


def test_a_path_below_a_home_must_stay_below_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="relative below the home"):
        probe({"path": "../etc/passwd", "home": str(tmp_path)})
    with pytest.raises(ValueError, match="must be absolute"):
        probe({"path": "etc/passwd"})


def test_version_runs_only_an_executable_of_root_or_the_account(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_text('#!/bin/sh\necho "uv 0.13.9 ($1)"\n')
    uv.chmod(0o755)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == "uv 0.13.9 (--version)\n"
    assert probe({"path": str(uv), "version": True})[str(uv)]["version_rc"] == 0
    # Not executable: not run.
    uv.chmod(0o644)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == ""
    # Below a home it is never run, whoever owns it.
    uv.chmod(0o755)
    assert probe({"path": "uv", "home": str(tmp_path), "version": True})[f"{tmp_path}/uv"]["version"] == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a file as another account")
def test_version_never_runs_another_accounts_executable(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    uv.chmod(0o755)
    os.chown(uv, 65534, 65534)
    found = probe({"path": str(uv), "version": True})[str(uv)]
    assert found["version"] == "" and found["uid"] == 65534
    assert not (tmp_path / "ran").exists()
    assert stat.S_IMODE(uv.stat().st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a file as another account")
def test_version_never_runs_a_program_whose_helper_another_account_owns(tmp_path: Path) -> None:
    """uvx runs the uv beside it: root's uvx next to another account's uv is not run."""
    uv, uvx = tmp_path / "uv", tmp_path / "uvx"
    uv.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    uvx.write_text(f'#!/bin/sh\nexec "{uv}" tool uvx "$@"\n')
    uv.chmod(0o755)
    uvx.chmod(0o755)
    entry = {"path": str(uvx), "version": True, "runs": [str(uv)]}
    os.chown(uv, 65534, 65534)
    assert probe(entry)[str(uvx)]["version"] == ""
    # A link to root's own file is not taken either: the link is what uvx names.
    uv.unlink()
    (tmp_path / "real-uv").write_text("#!/bin/sh\necho uv 0.13.9\n")
    uv.symlink_to(tmp_path / "real-uv")
    assert probe(entry)[str(uvx)]["version"] == ""
    assert not (tmp_path / "ran").exists()
    # Both root's: run.
    uv.unlink()
    uv.write_text("#!/bin/sh\necho uv 0.13.9\n")
    uv.chmod(0o755)
    assert probe(entry)[str(uvx)]["version"] == "uv 0.13.9\n"


def test_version_runs_nothing_in_a_directory_others_can_write_to(tmp_path: Path) -> None:
    """Another account could rename its own program over it between the look and the run."""
    shared = tmp_path / "bin"
    shared.mkdir()
    uv = shared / "uv"
    uv.write_text('#!/bin/sh\necho "uv 0.13.9"\n')
    uv.chmod(0o755)
    shared.chmod(0o777)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == ""
    # Sticky, as /tmp is: nobody else can rename what is not theirs.
    shared.chmod(0o1777)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == "uv 0.13.9\n"


def test_version_reports_the_status_of_a_failed_run(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\necho cut short >&2\nexit 126\n")
    uv.chmod(0o755)
    found = probe({"path": str(uv), "version": True})[str(uv)]
    assert (found["version"], found["version_rc"]) == ("cut short\n", 126)
    # Not run at all: -1.
    assert probe({"path": str(uv)})[str(uv)]["version_rc"] == -1


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"XXXX\x00garbage", 126, "Exec format error"),
        (b"#!/nonexistent/interpreter\n", 127, "No such file or directory"),
    ],
    ids=["not-a-program", "missing-interpreter"],
)
def test_a_program_the_kernel_cannot_run_is_reported_not_failed(
    tmp_path: Path, body: bytes, status: int, reason: str
) -> None:
    uv = tmp_path / "uv"
    uv.write_bytes(body)
    uv.chmod(0o755)
    found = probe({"path": str(uv), "version": True})[str(uv)]
    assert (found["version"], found["version_rc"]) == (f"{uv}: {reason}\n", status)


def test_a_command_name_is_run_as_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "tool"
    tool.write_text('#!/bin/sh\necho "tool 1.2"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    found = probe({"path": "tool", "version": True}, {"path": "no-such-tool", "version": True})
    assert (found["tool"]["type"], found["tool"]["version"], found["tool"]["version_rc"]) == ("file", "tool 1.2\n", 0)
    assert (found["no-such-tool"]["type"], found["no-such-tool"]["version"]) == ("absent", "")
    # Without version or follow a name is no path.
    with pytest.raises(ValueError, match="must be absolute"):
        probe({"path": "tool"})


def test_without_checksum_a_file_is_compared_by_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "uv"
    path.write_bytes(b"x" * 3_000_000)
    os.utime(path, ns=(1, 1_700_000_000_123_456_789))
    found = probe({"path": str(path), "checksum": False})[str(path)]
    assert (found["sha256"], found["size"], found["mtime"]) == ("", 3_000_000, 1_700_000_000_123_456_789)
    with_sum = probe({"path": str(path)})[str(path)]
    assert with_sum["sha256"] == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert probe({"path": str(tmp_path / "no")})[str(tmp_path / "no")]["size"] == -1


def test_follow_looks_at_what_a_link_names(tmp_path: Path) -> None:
    (tmp_path / "real").write_text('#!/bin/sh\necho "uv 0.13.9"\n')
    (tmp_path / "real").chmod(0o755)
    (tmp_path / "uv").symlink_to("real")
    link = str(tmp_path / "uv")
    unfollowed = probe({"path": link, "version": True})[link]
    assert (unfollowed["type"], unfollowed["version"]) == ("link", "")
    found = probe({"path": link, "version": True, "follow": True})[link]
    assert (found["type"], found["mode"], found["version"]) == ("file", "0755", "uv 0.13.9\n")


def test_follow_finds_a_name_on_path_and_parents_report_every_directory_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir(mode=0o755)
    (tmp_path / "lib").mkdir(mode=0o700)
    (tmp_path / "lib" / "python9").write_text("#!/bin/sh\n")
    (tmp_path / "lib" / "python9").chmod(0o755)
    (tmp_path / "bin" / "python9").symlink_to(tmp_path / "lib" / "python9")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    found = probe({"path": "python9", "follow": True, "parents": True, "checksum": False})["python9"]
    # Not run: only looked at, where running the name would reach.
    assert (found["type"], found["found"], found["version_rc"]) == ("file", str(tmp_path / "lib" / "python9"), -1)
    above = [str(p) for p in reversed(tmp_path.parents)] + [str(tmp_path)]
    me = [os.geteuid(), os.getegid()]
    assert found["parents"] == [
        *([p, os.stat(p).st_uid, os.stat(p).st_gid, f"{stat.S_IMODE(os.stat(p).st_mode):04o}"] for p in above),
        [str(tmp_path / "bin"), *me, "0755"],
        [str(tmp_path / "lib"), *me, "0700"],
    ]
    # A directory closed to others changes what is reported, and so the roles' digest of it.
    (tmp_path / "bin").chmod(0o700)
    again = probe({"path": "python9", "follow": True, "parents": True, "checksum": False})["python9"]
    assert [str(tmp_path / "bin"), *me, "0700"] in again["parents"]
    # Without parents, none.
    assert probe({"path": "python9", "follow": True})["python9"]["parents"] == []


def test_search_path_finds_a_name_where_command_v_would_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same name in a directory of the module's PATH and in one of the search path: only the latter counts.
    for directory in ("first", "node", "later"):
        (tmp_path / directory).mkdir()
    for directory in ("first", "later"):
        (tmp_path / directory / "python9").write_text("#!/bin/sh\necho ran >&2\nexit 1\n")
        (tmp_path / directory / "python9").chmod(0o755)
    # Not executable: skipped, as command -v skips it.
    (tmp_path / "node" / "python9").write_text("")
    (tmp_path / "node" / "python9").chmod(0o644)
    (tmp_path / "node" / "python8").symlink_to(tmp_path / "later" / "python9")
    monkeypatch.setenv("PATH", f"{tmp_path / 'first'}:/usr/bin:/bin")
    search = f"{tmp_path / 'node'}:{tmp_path / 'later'}"
    found = probe(
        {"path": "python9", "search_path": search, "checksum": False},
        {"path": "python8", "search_path": search, "checksum": False},
        {"path": "python7", "search_path": search, "checksum": False},
    )
    shell = subprocess.run(
        ["bash", "-c", "PATH=$1 && command -v python9 python8", "-", search], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [found["python9"]["found"], found["python8"]["found"]] == shell
    assert shell == [str(tmp_path / "later" / "python9"), str(tmp_path / "node" / "python8")]
    # A link is reported as found, not followed, and nothing was run.
    assert (found["python9"]["type"], found["python8"]["type"]) == ("file", "link")
    assert found["python9"]["version_rc"] == -1
    assert (found["python7"]["exists"], found["python7"]["type"]) == (False, "absent")


def test_json_parses_a_record_and_reads_anything_else_as_null(tmp_path: Path) -> None:
    record, edited, text = tmp_path / "record.fact", tmp_path / "edited.fact", tmp_path / "plain"
    record.write_text('{\n  "python_checked": "0123abcd"\n}\n')
    edited.write_text('{"python_checked": "0123abcd"\n')
    text.write_text("python_checked: 0123abcd\n")
    found = probe(*({"path": str(p), "read": True, "json": True} for p in (record, edited, text, tmp_path / "none")))
    assert [found[str(p)]["json"] for p in (record, edited, text, tmp_path / "none")] == [
        {"python_checked": "0123abcd"},
        None,
        None,
        None,
    ]
    # The content is there either way; without json, nothing is parsed.
    assert found[str(edited)]["content"] == '{"python_checked": "0123abcd"\n'
    assert probe({"path": str(record), "read": True})[str(record)]["json"] is None


def test_json_reads_a_hostile_nesting_or_number_as_null(tmp_path: Path) -> None:
    # Within the 64 KiB that are read: deeper than the parser's stack, and more digits than an int may have.
    nested, digits = tmp_path / "nested.fact", tmp_path / "digits.fact"
    nested.write_text("[" * 30000 + "]" * 30000)
    digits.write_text("1" * 5000)
    found = probe(*({"path": str(p), "read": True, "json": True} for p in (nested, digits)))
    assert [found[str(p)]["json"] for p in (nested, digits)] == [None, None]
    assert found[str(nested)]["content"] == "[" * 30000 + "]" * 30000


def test_a_command_is_looked_up_only_in_absolute_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same name in the working directory, in a relative directory below it and in an absolute one.
    (tmp_path / "bin").mkdir()
    (tmp_path / "later").mkdir()
    for tool in (tmp_path / "python9", tmp_path / "bin" / "python9", tmp_path / "later" / "python9"):
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    later = str(tmp_path / "later" / "python9")
    found = probe(
        {"path": "python9", "search_path": f"/nonexistent::bin:{tmp_path / 'later'}", "checksum": False},
    )["python9"]
    assert (found["type"], found["found"]) == ("file", later)
    # Nothing absolute to look in: absent, wherever the module runs.
    for search in ("", ":", "bin:.", "."):
        found = probe({"path": "python9", "search_path": search, "checksum": False})["python9"]
        assert (found["exists"], found["found"]) == (False, "/nonexistent/python9"), search
    # The module's PATH alike.
    monkeypatch.setenv("PATH", f"::bin:{tmp_path / 'later'}")
    assert probe({"path": "python9", "follow": True, "checksum": False})["python9"]["found"] == later


def test_others_write_is_group_or_other_write_without_the_sticky_bit(tmp_path: Path) -> None:
    modes = {"private": 0o755, "group": 0o775, "open": 0o777, "sticky": 0o1777}
    for name, mode in modes.items():
        (tmp_path / name).mkdir()
        (tmp_path / name).chmod(mode)
    found = probe(*({"path": str(tmp_path / name)} for name in modes))
    assert {name: found[str(tmp_path / name)]["others_write"] for name in modes} == {
        "private": False,
        "group": True,
        "open": True,
        "sticky": False,
    }


def test_version_runs_no_program_others_can_write(tmp_path: Path) -> None:
    """A root's program of mode 0777 is anybody's: they could write their own code into it."""
    uv = tmp_path / "uv"
    uv.write_text('#!/bin/sh\necho "uv 0.13.9"\n')
    uv.chmod(0o777)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == ""
    # A sticky bit on a file protects nothing.
    uv.chmod(0o1777)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == ""
    uv.chmod(0o755)
    assert probe({"path": str(uv), "version": True})[str(uv)]["version"] == "uv 0.13.9\n"


def test_trusted_names_a_directory_others_can_change_or_that_is_below_one(tmp_path: Path) -> None:
    top = tmp_path / "top"
    bin_dir = top / "bin"
    bin_dir.mkdir(parents=True)
    missing = bin_dir / "not" / "made"

    def found() -> list[bool]:
        paths = [bin_dir, missing]
        result = probe(*({"path": str(p), "trusted": True} for p in paths))
        return [result[str(p)]["trusted"] for p in paths]

    assert found() == [True, True]
    # Not asked: false, as others_write is for what was not looked at.
    assert probe({"path": str(bin_dir)})[str(bin_dir)]["trusted"] is False
    bin_dir.chmod(0o777)
    assert found() == [False, False]
    # Sticky, as /tmp is: nobody else can move it, but anybody could make the missing name first.
    bin_dir.chmod(0o1777)
    assert found() == [True, False]
    bin_dir.chmod(0o755)
    # Above it: anybody could rename bin away and put their own in its place.
    top.chmod(0o777)
    assert found() == [False, False]
    top.chmod(0o755)
    # Group write, or a POSIX ACL that lets another account write (its mask shows as group write), is another
    # account's way in too: build-env.sh --trusted refuses it, and so does the probe.
    bin_dir.chmod(0o775)
    assert found() == [False, False]


def test_trusted_follows_links_to_what_they_name(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    link = tmp_path / "bin"
    link.symlink_to(open_dir)
    assert probe({"path": str(link), "trusted": True})[str(link)]["trusted"] is False


def test_version_runs_no_program_its_group_can_write(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    uv.chmod(0o775)
    found = probe({"path": str(uv), "version": True, "trusted": True})[str(uv)]
    assert (found["version"], found["version_rc"], found["trusted"]) == ("", -1, False)
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a directory as another account")
def test_a_link_another_account_could_swap_is_not_trusted_nor_run(tmp_path: Path) -> None:
    """The link as named is checked as well as what it names: another account's directory holding a link to
    root's uv could point it at their own program between the look and the run."""
    real_bin = tmp_path / "real"
    real_bin.mkdir()
    uv = real_bin / "uv"
    uv.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\necho uv 0.13.9\n")
    uv.chmod(0o755)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "uv").symlink_to(uv)
    entry = {"path": str(theirs / "uv"), "version": True, "follow": True, "trusted": True}
    assert probe(entry)[entry["path"]]["version"] == "uv 0.13.9\n"
    (tmp_path / "ran").unlink()
    os.chown(theirs, 65534, 65534)
    found = probe(entry)[entry["path"]]
    assert (found["version"], found["trusted"], found["found"]) == ("", False, str(uv))
    # The link itself another account's, in root's directory: they can't swap it, but it is theirs.
    os.chown(theirs, 0, 0)
    os.lchown(theirs / "uv", 65534, 65534)
    assert probe(entry)[entry["path"]]["trusted"] is False
    # A directory above, named through a link of another account's.
    os.lchown(theirs / "uv", 0, 0)
    via = tmp_path / "via"
    via.symlink_to(real_bin)
    os.lchown(via, 65534, 65534)
    entry = {"path": str(via / "uv"), "version": True, "follow": True, "trusted": True}
    assert probe(entry)[entry["path"]]["version"] == ""
    assert not (tmp_path / "ran").exists()
