#!/usr/bin/python
# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Writes a set of files into one directory in one module execution, each replaced by a rename."""

from __future__ import annotations

DOCUMENTATION = r"""
module: write_files
short_description: Write a set of files into one directory, each replaced by a rename
description:
  - Compares each file with what O(dest) holds (content, owner, group and mode) and writes the ones that differ,
    all in one module execution. M(ansible.builtin.copy) or M(ansible.builtin.template) in a loop costs one
    execution per file (three with a read of the source on the node).
  - A file that differs is written to a new temporary file in O(dest) and renamed over its name, so a reader
    sees the old file or the new one. A link, a FIFO or any other file in its place is replaced, never written
    through or read; a directory there is an error.
  - O(dest) is opened once, as a directory; every name is reached relative to it and must be a single
    component. O(dest) and O(src) themselves are the caller's paths and are followed like any path; pass
    directories that only the connecting account (or root) can change.
  - Contents show in C(--diff) and in C(-vvv) output, so pass no secret.
version_added: 0.4.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options:
  dest:
    description:
      - The directory to write into. Without O(dest_mode) it must exist; in check mode a missing one means that
        every file would be written.
    type: path
    required: true
  dest_mode:
    description:
      - The mode of O(dest) itself, in octal as O(mode) is. When given, O(dest) is made if it is not there, with
        each missing directory above it, as M(ansible.builtin.file) with O(ansible.builtin.file#module:state=directory)
        makes them; each made directory gets this mode, and O(owner) and O(group) (the running account's when not
        given). A O(dest) that is there gets this mode, and O(owner) and O(group) only where they are given. A
        directory that another host makes at the same time (a shared filesystem) is used, and given the same.
      - A link at O(dest) is followed, as any path is; one to nothing is an error. Every content is checked, and
        O(src) opened, before O(dest) is made or changed.
      - Without it, O(dest) is left as it is.
    type: raw
  files:
    description:
      - Each file's name in O(dest) and its content, as text. Mutually exclusive with O(src).
    type: dict
  src:
    description:
      - A directory on the node, from which each file O(names) lists is copied. Mutually exclusive with O(files).
      - Only regular files with a single link are read from it; a symbolic or hard link there is an error.
    type: path
  names:
    description: The files of O(src) to copy, by name. Required with O(src).
    type: list
    elements: str
  owner:
    description:
      - The files' owner, a name or a numeric id (all digits are read as an id, as M(ansible.builtin.copy)
        reads them). The running account when not given.
    type: str
  group:
    description:
      - The files' group, a name or a numeric id (all digits are read as an id). The running account's group
        when not given.
    type: str
  mode:
    description:
      - The files' mode, in octal, from C(0000) to C(7777) (a string such as C("0644"), or C(0o644)). A YAML
        number written with a leading zero (C(0644)) is read as the octal number it is; one without (C(644)) is
        decimal, as for M(ansible.builtin.copy), so quote the mode.
    type: raw
    default: "0644"
attributes:
  check_mode:
    description: Reports the files that would be written, and their diffs, writing nothing.
    support: full
  diff_mode:
    description:
      - Shows each written file's old and new content, or its old and new owner, group and mode; and O(dest)'s
        old and new owner, group and mode when O(dest_mode) changes them or O(dest) is made.
    support: full
"""

EXAMPLES = r"""
- name: Install the checked runtime from the scratch directory
  hpc.globus_compute.write_files:
    src: /tmp/hpc-gc-runtime.x1y2/runtime
    names: [worker-env.sh, worker-env.conf]
    dest: /opt/globus-compute/runtime
    owner: root
    group: root
"""

RETURN = r"""
written:
  description: The names of the files written (in check mode, that would be written), in the order given.
  returned: always
  type: list
  elements: str
  sample: [worker-env.conf]
"""

import errno
import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass, field

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hpc.globus_compute.plugins.module_utils.files import attributes, text, write_file

# A file larger than this is not held in memory to be shown in a diff.
MAX_DIFF = 1024 * 1024


class Refused(Exception):
    """A name or a source this module will not act on."""


# (uid_t)-1 means "leave unchanged" to chown: it names no account.
MAX_ID = 2**32 - 2


def account_id(option: str, value: str | None, lookup, default: int) -> int:
    """A numeric id from a name or an ASCII number (lookup: pwd.getpwnam or grp.getgrnam); default when None."""
    if value is None:
        return default
    if value.isascii() and value.isdigit():
        if int(value) > MAX_ID:
            raise Refused(f"{option}: {value} is not an id (at most {MAX_ID})")
        return int(value)
    try:
        return lookup(value)[2]
    except KeyError:
        raise Refused(f"{option}: no such {'account' if option == 'owner' else 'group'}: {value}") from None


def file_mode(value: object, option: str = "mode") -> int:
    """The mode as a number: an int is one YAML already read (0644 is 420); a string is octal digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"(?:0o)?[0-7]{1,5}", value):
        number = int(value.removeprefix("0o"), 8)
    else:
        raise Refused(f"{option}: {value!r} is not an octal mode such as '0644'")
    if not 0 <= number <= 0o7777:
        raise Refused(f"{option}: {value!r} is not between 0000 and 7777")
    return number


def check_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise Refused(f"'{name}' is not a file name: one component, without '/'")
    return name


def content(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise Refused(f"files: the content of {name} is a {type(value).__name__}, not text")
    return value.encode()


def read_current(parent: int, name: str, limit: int) -> tuple[bytes | None, os.stat_result | None]:
    """What `name` holds in the directory `parent`: its bytes if it is a regular file with one link, of at
    most limit bytes, and its status (None, None when nothing is there). Nothing else is read (a hard link's
    bytes are another file's too), and no link is followed."""
    try:
        status = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(status.st_mode):
        raise Refused(f"{name} is a directory: remove it first")
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1 or status.st_size > limit:
        return None, status
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError:
        # Replaced since the look above: not read, and written anew.
        return None, status
    try:
        # What was opened is judged again: another name may have been swapped in.
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_nlink != 1 or opened.st_size > limit:
            return None, opened
        status = opened
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return (b"".join(chunks), status) if size <= limit else (None, status)
    finally:
        os.close(fd)


def read_source(src: int, name: str) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=src)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused(f"src: {name} is a link") from None
        if e.errno in (errno.ENOENT, errno.ENXIO):
            raise Refused(f"src: {name} is not there, or not a regular file") from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise Refused(f"src: {name} is not a regular file")
        if status.st_nlink != 1:
            raise Refused(f"src: {name} has {status.st_nlink} links: its bytes are another file's too")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def shown(data: bytes | None, status: os.stat_result | None) -> str:
    """A side of a content diff: the text, or what stood there when its bytes are not shown."""
    if data is not None and len(data) <= MAX_DIFF:
        return text(data)
    if status is None:
        return ""
    if stat.S_ISREG(status.st_mode):
        links = f", {status.st_nlink} links" if status.st_nlink != 1 else ""
        return f"<a file of {status.st_size} bytes{links}: not shown>\n"
    return f"<{attributes(status)['state']}: not shown>\n"


def set_directory(fd: int, uid: int, gid: int, mode: int) -> None:
    os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)


def make_directory(path: str, uid: int, gid: int, mode: int) -> None:
    """Makes `path` and each missing directory above it, each owned uid:gid with `mode`. One that appears
    meanwhile (another host making it on a shared filesystem) is used as it is. Raises OSError."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            set_directory(fd, uid, gid, mode)
        finally:
            os.close(fd)


def open_dest(module: AnsibleModule, uid: int, gid: int, diffs: list[dict]) -> tuple[int | None, bool]:
    """O(dest), opened (None in check mode when it is not there), and whether it was (or would be) made or
    given dest_mode (and the owner and group, where given); each such change goes into diffs."""
    p = module.params
    path = p["dest"]
    # A link is followed, as any path is: the diff names where it leads.
    header = f"{path} -> {os.path.realpath(path)}" if os.path.islink(path) else path
    mode = None if p["dest_mode"] is None else file_mode(p["dest_mode"], "dest_mode")
    wanted: dict | None = None
    if mode is not None:
        # As ansible.builtin.file: an owner or group not given is left as it is (and the account's on a new one).
        wanted = {"state": "directory", "mode": f"{mode:04o}"}
        wanted.update({"owner": uid} if p["owner"] is not None else {})
        wanted.update({"group": gid} if p["group"] is not None else {})
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        if os.path.islink(path):
            raise Refused("dest: a link to nothing: remove it, or point it at a directory") from None
        if wanted is None:
            if not module.check_mode:
                raise Refused("dest: the directory is not there: make it first, or give dest_mode") from None
            # Check mode before the directory is made: every file would be written.
            return None, False
        made = {"state": "directory", "owner": uid, "group": gid, "mode": wanted["mode"]}
        diffs.append({"before_header": header, "after_header": header, "before": {"state": "absent"}, "after": made})
        if module.check_mode:
            return None, True
        make_directory(path, uid, gid, mode)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            # Another account may have made it first: it gets what was asked, as the file module gives it.
            set_directory(fd, uid, gid, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd, True
    if wanted is None:
        return fd, False
    found = attributes(os.fstat(fd))
    before = {key: found[key] for key in wanted}
    if before == wanted:
        return fd, False
    diffs.append({"before_header": header, "after_header": header, "before": before, "after": wanted})
    if not module.check_mode:
        try:
            set_directory(fd, wanted.get("owner", -1), wanted.get("group", -1), mode)
        except BaseException:
            os.close(fd)
            raise
    return fd, True


@dataclass
class Done:
    """What a run has changed so far, for a failure's report: the names written, and whether O(dest) was."""

    written: list[str] = field(default_factory=list)
    dest: bool = False


def run(module: AnsibleModule, done: Done | None = None) -> dict:
    """Writes what differs; `done` (if given) records each change as it is made, for a failure's report."""
    p = module.params
    done = Done() if done is None else done
    written = done.written
    if p["src"] is not None and p["names"] is None:
        raise Refused("names: the list of files to copy is required with src")
    uid = account_id("owner", p["owner"], pwd.getpwnam, os.geteuid())
    gid = account_id("group", p["group"], grp.getgrnam, os.getegid())
    mode = file_mode(p["mode"])
    names = [check_name(n) for n in (p["files"] if p["files"] is not None else p["names"])]
    # Every content is checked, and the source opened, before dest is made or changed.
    given = None if p["files"] is None else {name: content(p["files"][name], name) for name in names}
    src = os.open(p["src"], os.O_RDONLY | os.O_DIRECTORY) if p["src"] is not None else None
    diffs: list[dict] = []
    try:
        dest, done.dest = open_dest(module, uid, gid, diffs)
    except BaseException:
        if src is not None:
            os.close(src)
        raise
    if dest is None and p["dest_mode"] is None:
        if src is not None:
            os.close(src)
        return {"changed": bool(names), "written": names}
    try:
        for name in names:
            data = given[name] if given is not None else read_source(src, name)
            before, status = (
                (None, None)
                if dest is None
                else read_current(dest, name, max(len(data), MAX_DIFF + 1) if module._diff else len(data))
            )
            wanted = {"state": "file", "owner": uid, "group": gid, "mode": f"{mode:04o}"}
            if before == data and attributes(status) == wanted:
                continue
            if module._diff:
                path = os.path.join(p["dest"], name)
                if before == data:
                    diffs.append(
                        {"before_header": path, "after_header": path, "before": attributes(status), "after": wanted}
                    )
                else:
                    after = text(data) if len(data) <= MAX_DIFF else f"<a file of {len(data)} bytes: not shown>\n"
                    diffs.append(
                        {"before_header": path, "after_header": path, "before": shown(before, status), "after": after}
                    )
            if not module.check_mode:
                write_file(dest, name, data, uid, gid, mode)
            written.append(name)
    finally:
        if dest is not None:
            os.close(dest)
        if src is not None:
            os.close(src)
    result: dict = {"changed": bool(written) or done.dest, "written": written}
    if diffs:
        result["diff"] = diffs
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "files": {"type": "dict"},
            "src": {"type": "path"},
            "names": {"type": "list", "elements": "str"},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw", "default": "0644"},
            "dest_mode": {"type": "raw"},
        },
        mutually_exclusive=[("files", "src")],
        required_one_of=[("files", "src")],
        required_together=[("src", "names")],
        supports_check_mode=True,
    )
    done = Done()
    try:
        module.exit_json(**run(module, done))
    except (Refused, OSError, ValueError, OverflowError) as e:
        # What was written (or made) before the failure stays: said, and reported as a change.
        module.fail_json(
            msg=f"write_files: {module.params['dest']}: {e}",
            changed=bool(done.written) or done.dest,
            written=done.written,
        )


if __name__ == "__main__":
    main()
