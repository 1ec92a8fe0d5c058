"""write_files writes only the files that differ, by a rename, shows each change, and follows no link."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.hpc.globus_compute.plugins.modules.write_files import Done, Refused, run


def write_files(dest: Path, check: bool = False, **params: object) -> dict:
    defaults = {
        "files": None,
        "src": None,
        "names": None,
        "owner": None,
        "group": None,
        "mode": "0644",
        "dest_mode": None,
    }
    module = SimpleNamespace(params={**defaults, "dest": str(dest), **params})
    module.check_mode = check
    module._diff = True
    return run(module)  # type: ignore[arg-type]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "dest").mkdir()
    return tmp_path / "dest"


def test_writes_what_differs_then_reports_nothing_to_do(dest: Path) -> None:
    files = {"a.conf": "A=1\n", "b.sh": "echo b\n"}
    assert write_files(dest, files=files)["written"] == ["a.conf", "b.sh"]
    assert {p.name: p.read_text() for p in dest.iterdir()} == files
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in dest.iterdir())
    assert write_files(dest, files=files) == {"changed": False, "written": []}
    (dest / "b.sh").write_text("edited\n")
    result = write_files(dest, files=files)
    assert result["written"] == ["b.sh"]
    assert result["diff"] == [
        {
            "before_header": str(dest / "b.sh"),
            "after_header": str(dest / "b.sh"),
            "before": "edited\n",
            "after": "echo b\n",
        }
    ]


def test_check_mode_reports_the_diff_and_writes_nothing(dest: Path) -> None:
    write_files(dest, files={"a.conf": "old\n"})
    result = write_files(dest, check=True, files={"a.conf": "new\n", "b.conf": "b\n"})
    assert result["changed"] and result["written"] == ["a.conf", "b.conf"]
    assert [(d["before"], d["after"]) for d in result["diff"]] == [("old\n", "new\n"), ("", "b\n")]
    assert (dest / "a.conf").read_text() == "old\n" and not (dest / "b.conf").exists()


def test_check_mode_before_the_directory_is_made_would_write_every_file(tmp_path: Path) -> None:
    result = write_files(tmp_path / "missing", check=True, files={"a.conf": "A\n", "b.conf": "B\n"})
    assert result == {"changed": True, "written": ["a.conf", "b.conf"]}
    assert not (tmp_path / "missing").exists()
    with pytest.raises(Refused, match="dest: the directory is not there"):
        write_files(tmp_path / "missing", files={"a.conf": "A\n"})


def test_dest_mode_makes_the_directory_and_the_missing_ones_above_it(tmp_path: Path) -> None:
    dest = tmp_path / "made" / "dest"
    umask = os.umask(0o077)  # a hardened umask: the modes asked for are set, not masked
    try:
        result = write_files(dest, files={"a.conf": "A\n"}, dest_mode="0755")
    finally:
        os.umask(umask)
    assert result["changed"] and result["written"] == ["a.conf"]
    assert [d["before"] for d in result["diff"]] == [{"state": "absent"}, ""]
    assert result["diff"][0]["after"] == {
        "state": "directory",
        "owner": os.geteuid(),
        "group": os.getegid(),
        "mode": "0755",
    }
    assert [p.stat().st_mode & 0o7777 for p in (dest.parent, dest)] == [0o755, 0o755]
    assert (dest / "a.conf").read_text() == "A\n"
    assert write_files(dest, files={"a.conf": "A\n"}, dest_mode="0755") == {"changed": False, "written": []}


def test_dest_mode_in_check_mode_shows_the_directory_and_every_file_and_makes_nothing(tmp_path: Path) -> None:
    result = write_files(tmp_path / "missing", check=True, files={"a.conf": "A\n"}, dest_mode="0755")
    assert result["changed"] and result["written"] == ["a.conf"]
    assert [(d["before"], d["after"]) for d in result["diff"]][1:] == [("", "A\n")]
    assert result["diff"][0]["before"] == {"state": "absent"}
    assert not (tmp_path / "missing").exists()


def test_dest_mode_repairs_the_mode_of_a_directory_that_is_there(dest: Path) -> None:
    write_files(dest, files={"a.conf": "A\n"})
    dest.chmod(0o700)
    checked = write_files(dest, check=True, files={"a.conf": "A\n"}, dest_mode="0755")
    assert checked["changed"] and checked["written"] == []
    assert [(d["before"]["mode"], d["after"]["mode"]) for d in checked["diff"]] == [("0700", "0755")]
    assert dest.stat().st_mode & 0o7777 == 0o700
    assert write_files(dest, files={"a.conf": "A\n"}, dest_mode="0755")["changed"]
    assert dest.stat().st_mode & 0o7777 == 0o755


def test_a_directory_made_meanwhile_by_another_host_is_used_and_given_its_mode(tmp_path: Path, monkeypatch) -> None:
    dest = tmp_path / "dest"
    real_mkdir = os.mkdir

    def raced(path, mode=0o777):  # another node of the cluster made it first
        real_mkdir(path, 0o750)
        raise FileExistsError(path)

    monkeypatch.setattr(os, "mkdir", raced)
    assert write_files(dest, files={"a.conf": "A\n"}, dest_mode="0755")["written"] == ["a.conf"]
    assert (dest / "a.conf").read_text() == "A\n"
    # It gets what was asked all the same, as ansible.builtin.file gives it.
    assert dest.stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("dest_mode", ["755x", "-1", 0o10000])
def test_a_dest_mode_that_is_not_one_is_refused_by_name_before_anything_is_made(tmp_path: Path, dest_mode) -> None:
    with pytest.raises(Refused, match=r"^dest_mode: "):
        write_files(tmp_path / "missing", files={"a.conf": "A\n"}, dest_mode=dest_mode)
    assert not (tmp_path / "missing").exists()


def test_a_mode_alone_is_written_and_shown_as_attributes(dest: Path) -> None:
    write_files(dest, files={"a.conf": "A\n"})
    (dest / "a.conf").chmod(0o600)
    result = write_files(dest, files={"a.conf": "A\n"})
    assert result["written"] == ["a.conf"]
    [diff] = result["diff"]
    assert (diff["before"]["mode"], diff["after"]["mode"]) == ("0600", "0644")
    assert (dest / "a.conf").stat().st_mode & 0o777 == 0o644


def test_a_link_at_the_name_is_replaced_not_written_through(dest: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (dest / "a.conf").symlink_to(victim)
    result = write_files(dest, files={"a.conf": "keep\n"})
    assert result["written"] == ["a.conf"], "a link holds no content of its own, whatever its target holds"
    assert victim.read_text() == "keep\n"
    assert not (dest / "a.conf").is_symlink() and (dest / "a.conf").read_text() == "keep\n"


def test_a_fifo_at_the_name_is_not_read_and_is_replaced(dest: Path) -> None:
    os.mkfifo(dest / "a.conf")
    assert write_files(dest, files={"a.conf": "A\n"})["written"] == ["a.conf"]
    assert (dest / "a.conf").read_text() == "A\n"


def test_copies_the_named_files_of_a_directory_on_the_node(dest: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.conf").write_text("A\n")
    (src / "b.conf").write_text("B\n")
    (src / "c.conf").write_text("C\n")
    assert write_files(dest, src=str(src), names=["a.conf", "c.conf"])["written"] == ["a.conf", "c.conf"]
    assert sorted(p.name for p in dest.iterdir()) == ["a.conf", "c.conf"]
    assert not write_files(dest, src=str(src), names=["a.conf", "c.conf"])["changed"]


def test_a_link_in_the_source_is_refused(dest: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "secret").write_text("x\n")
    (src / "a.conf").symlink_to(tmp_path / "secret")
    with pytest.raises(Refused, match="is a link"):
        write_files(dest, src=str(src), names=["a.conf"])
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("name", ["../a.conf", "sub/a.conf", "..", "."])
def test_a_name_that_is_not_one_component_is_refused(dest: Path, name: str) -> None:
    with pytest.raises(Refused, match="not a file name"):
        write_files(dest, files={name: "x\n"})
    assert list(dest.iterdir()) == []


def test_content_that_is_not_text_is_refused_by_name(dest: Path) -> None:
    with pytest.raises(Refused, match=r"the content of a\.json is a dict"):
        write_files(dest, files={"a.json": {"a": 1}})


@pytest.mark.parametrize(("mode", "wanted"), [(0o640, 0o640), ("0640", 0o640), ("0o640", 0o640), ("04755", 0o4755)])
def test_a_mode_is_octal_whether_yaml_read_it_as_a_number_or_not(dest: Path, mode: object, wanted: int) -> None:
    write_files(dest, files={"a": "A\n"}, mode=mode)
    assert (dest / "a").stat().st_mode & 0o7777 == wanted


@pytest.mark.parametrize("mode", ["-1", "10000", "177777", "rw", "", " 644", "644\n", "6_44", "1" * 30, 0o10000, True])
def test_a_mode_that_is_not_one_is_refused_by_name_before_any_write(dest: Path, mode: object) -> None:
    with pytest.raises(Refused, match=r"^mode: "):
        write_files(dest, files={"a": "A\n"}, mode=mode)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("owner", ["4294967295", "99999999999999999999", "\u0663", "no-such-account-here"])
def test_an_owner_that_names_no_account_is_refused_by_name(dest: Path, owner: str) -> None:
    with pytest.raises(Refused, match=r"^owner: "):
        write_files(dest, files={"a": "A\n"}, owner=owner)
    assert list(dest.iterdir()) == []


def test_a_hard_link_in_the_source_is_refused(dest: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "secret").write_text("x\n")
    os.link(tmp_path / "secret", src / "a.conf")
    with pytest.raises(Refused, match="2 links"):
        write_files(dest, src=str(src), names=["a.conf"])
    assert list(dest.iterdir()) == []


def test_a_source_without_names_is_refused_by_name(dest: Path, tmp_path: Path) -> None:
    with pytest.raises(Refused, match=r"^names: "):
        write_files(dest, src=str(tmp_path))


def test_the_diff_says_what_stood_there_when_its_bytes_are_not_shown(dest: Path, tmp_path: Path) -> None:
    os.mkfifo(dest / "a")
    (tmp_path / "other").write_text("secret\n")
    os.link(tmp_path / "other", dest / "b")
    result = write_files(dest, check=True, files={"a": "A\n", "b": "B\n"})
    assert [d["before"] for d in result["diff"]] == ["<fifo: not shown>\n", "<a file of 7 bytes, 2 links: not shown>\n"]


def test_a_failure_part_way_reports_what_was_written_before_it(dest: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("A\n")
    (src / "b").symlink_to(src / "a")
    done = Done()
    params = {"dest": str(dest), "files": None, "src": str(src), "names": ["a", "b"], "owner": None, "group": None}
    module = SimpleNamespace(params={**params, "mode": "0644", "dest_mode": "0750"}, check_mode=False, _diff=False)
    with pytest.raises(Refused, match="src: b is a link"):
        run(module, done)  # type: ignore[arg-type]
    assert done.written == ["a"] and (dest / "a").read_text() == "A\n"
    # dest was given its mode before: that is said too.
    assert done.dest and dest.stat().st_mode & 0o7777 == 0o750


def test_a_directory_at_a_name_is_refused_by_name(dest: Path) -> None:
    (dest / "a").mkdir()
    with pytest.raises(Refused, match="a is a directory"):
        write_files(dest, files={"a": "A\n"})
    assert [p.name for p in dest.iterdir()] == ["a"]


def test_a_name_swapped_for_a_hard_link_after_the_look_is_not_shown(dest: Path, tmp_path: Path, monkeypatch) -> None:
    """The look (lstat) saw a file of one link; what was opened is judged again, as it may be another."""
    from ansible_collections.hpc.globus_compute.plugins.modules import write_files as module

    (dest / "a").write_text("mine\n")
    (tmp_path / "secret").write_text("secret\n")
    real_open = os.open

    def swap_then_open(path, flags, *args, **kwargs):
        if path == "a" and not flags & os.O_WRONLY:
            os.unlink(dest / "a")
            os.link(tmp_path / "secret", dest / "a")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(module.os, "open", swap_then_open)
    result = write_files(dest, check=True, files={"a": "A\n"})
    assert "secret" not in result["diff"][0]["before"], result["diff"]


def test_content_is_checked_before_dest_is_made(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="the content of x is a dict"):
        write_files(tmp_path / "made" / "dest", files={"x": {"a": 1}}, dest_mode="0750")
    assert not (tmp_path / "made").exists()
    with pytest.raises(FileNotFoundError):
        write_files(tmp_path / "made", src=str(tmp_path / "no-source"), names=["a"], dest_mode="0750")
    assert not (tmp_path / "made").exists()


@pytest.mark.parametrize("check", [True, False])
def test_a_link_to_nothing_at_dest_is_refused_by_name(tmp_path: Path, check: bool) -> None:
    (tmp_path / "dest").symlink_to(tmp_path / "nowhere")
    with pytest.raises(Refused, match=r"^dest: a link to nothing"):
        write_files(tmp_path / "dest", check=check, files={"a": "A\n"}, dest_mode="0755")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory another group")
def test_dest_mode_leaves_an_owner_and_group_not_given_as_they_are(dest: Path) -> None:
    os.chown(dest, 65534, 65534)
    dest.chmod(0o700)
    result = write_files(dest, files={"a": "A\n"}, dest_mode="0755")
    assert result["diff"][0]["before"] == {"state": "directory", "mode": "0700"}
    assert (dest.stat().st_uid, dest.stat().st_gid, dest.stat().st_mode & 0o7777) == (65534, 65534, 0o755)
    write_files(dest, files={"a": "A\n"}, dest_mode="0755", owner="0", group="0")
    assert (dest.stat().st_uid, dest.stat().st_gid) == (0, 0)
