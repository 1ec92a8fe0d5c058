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
    sees the old file or the new one. A link or anything else in its place is replaced, never written through.
  - O(dest) is opened once, as a directory; every name is reached relative to it and must be a single
    component.
version_added: 0.4.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options:
  dest:
    description: The directory to write into. It must exist (make it first, with M(ansible.builtin.file)).
    type: path
    required: true
  files:
    description:
      - Each file's name in O(dest) and its content, as text. Mutually exclusive with O(src).
    type: dict
  src:
    description:
      - A directory on the node, from which each file O(names) lists is copied. Mutually exclusive with O(files).
      - Only regular files are read from it, and a link there is an error.
    type: path
  names:
    description: The files of O(src) to copy, by name. Required with O(src).
    type: list
    elements: str
  owner:
    description: The files' owner, a name or a numeric id. The running account when not given.
    type: str
  group:
    description: The files' group, a name or a numeric id. The running account's group when not given.
    type: str
  mode:
    description: The files' mode, in octal.
    type: str
    default: "0644"
attributes:
  check_mode:
    description: Reports the files that would be written, and their diffs, writing nothing.
    support: full
  diff_mode:
    description: Shows each written file's old and new content, or its old and new owner, group and mode.
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
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hpc.globus_compute.plugins.module_utils.files import text, write_file

# A file larger than this is not held in memory to be shown in a diff.
MAX_DIFF = 1024 * 1024


class Refused(Exception):
    """A name or a source this module will not act on."""


def account_id(value: str | None, lookup, default: int) -> int:
    """A numeric id from a name or a number (lookup: pwd.getpwnam or grp.getgrnam); default when None."""
    if value is None:
        return default
    if value.isdigit():
        return int(value)
    try:
        return lookup(value)[2]
    except KeyError:
        raise Refused(f"no such account or group: {value}") from None


def check_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise Refused(f"'{name}' is not a file name: one component, without '/'")
    return name


def content(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise Refused(f"files: the content of {name} is a {type(value).__name__}, not text")
    return value.encode()


def read_current(parent: int, name: str, limit: int) -> tuple[bytes | None, os.stat_result | None]:
    """What `name` holds in the directory `parent`: its bytes if it is a regular file of at most limit
    bytes, and its status (None, None when nothing is there). Nothing else is read, and no link followed."""
    try:
        status = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
        return None, status
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    try:
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
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"src: {name} is not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def attributes(status: os.stat_result | None) -> dict:
    if status is None:
        return {"state": "absent"}
    kind = "file" if stat.S_ISREG(status.st_mode) else "link" if stat.S_ISLNK(status.st_mode) else "other"
    return {
        "state": kind,
        "owner": status.st_uid,
        "group": status.st_gid,
        "mode": f"{stat.S_IMODE(status.st_mode):04o}",
    }


def run(module: AnsibleModule) -> dict:
    p = module.params
    uid = account_id(p["owner"], pwd.getpwnam, os.geteuid())
    gid = account_id(p["group"], grp.getgrnam, os.getegid())
    mode = int(p["mode"], 8)
    names = [check_name(n) for n in (p["files"] if p["files"] is not None else p["names"])]
    dest = os.open(p["dest"], os.O_RDONLY | os.O_DIRECTORY)
    src = os.open(p["src"], os.O_RDONLY | os.O_DIRECTORY) if p["src"] is not None else None
    written, diffs = [], []
    try:
        for name in names:
            data = content(p["files"][name], name) if src is None else read_source(src, name)
            before, status = read_current(dest, name, max(len(data), MAX_DIFF) if module._diff else len(data))
            wanted = {"state": "file", "owner": uid, "group": gid, "mode": f"{mode:04o}"}
            if before == data and attributes(status) == wanted:
                continue
            written.append(name)
            if module._diff:
                path = os.path.join(p["dest"], name)
                if before == data:
                    diffs.append(
                        {"before_header": path, "after_header": path, "before": attributes(status), "after": wanted}
                    )
                else:
                    diffs.append(
                        {"before_header": path, "after_header": path, "before": text(before), "after": text(data)}
                    )
            if not module.check_mode:
                write_file(dest, name, data, uid, gid, mode)
    finally:
        os.close(dest)
        if src is not None:
            os.close(src)
    result: dict = {"changed": bool(written), "written": written}
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
            "mode": {"type": "str", "default": "0644"},
        },
        mutually_exclusive=[("files", "src")],
        required_one_of=[("files", "src")],
        required_together=[("src", "names")],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (Refused, OSError, ValueError) as e:
        module.fail_json(msg=f"write_files: {module.params['dest']}: {e}")


if __name__ == "__main__":
    main()
