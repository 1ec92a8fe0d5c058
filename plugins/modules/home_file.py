#!/usr/bin/python
# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Writes, reads or removes one file or directory in an account's home, as root, following no link below the home."""

from __future__ import annotations

DOCUMENTATION = r"""
module: home_file
short_description: Write, read or remove a file in an account's home without following the account's links
description:
  - Root acts in an account's home without handing it anything. Every directory below O(home) is opened
    with C(O_NOFOLLOW) relative to the one above it (C(openat)), so a link the account made there is refused
    at the moment of writing, with no race between a check and the write.
  - Every directory below O(home) must already belong to O(owner); missing ones are created for it.
  - A file is written to a new temporary file in its directory, owned by O(owner), and renamed over the old
    name. An existing file (or a link in its place) is replaced, never written through, chowned or chmodded.
  - Nothing the account controls is executed, and reads take regular files only (no FIFO can stall the run).
version_added: 0.3.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options:
  home:
    description:
      - The account's home directory, from its passwd entry. Links above and at it are the admin's and are
        followed; the directory must belong to O(owner).
    type: path
    required: true
  owner:
    description: The account that owns the home. Files and directories are created owned by it and its primary group.
    type: str
    required: true
  path:
    description: The path below O(home), relative (for example C(.local/bin/uv)); no C(..) and no empty components.
    type: str
    required: true
  state:
    description:
      - C(file) writes O(content) or the node's file O(src).
      - C(directory) makes the directory and its missing parents.
      - C(absent) removes the file (or a link in its place).
      - C(read) returns the content of the account's own regular file in RV(content) and RV(json).
    type: str
    choices: [file, directory, absent, read]
    default: file
  content:
    description: The file's content, for O(state=file). Mutually exclusive with O(src).
    type: str
  src:
    description:
      - A file on the node to copy, for O(state=file). It must not be the account's (stage it somewhere root owns).
      - The copy keeps the modification time of O(src), so that a later look can tell it unchanged by its size
        and time without reading it (M(hpc.globus_compute.probe) with C(checksum=false)); a copy whose time
        differs is written again.
    type: path
  mode:
    description: The file's (or, for O(state=directory), the directory's) mode, in octal.
    type: str
    default: "0644"
  parents_mode:
    description: The mode of directories created as parents, in octal. Existing directories keep their mode.
    type: str
    default: "0755"
attributes:
  check_mode:
    description: Reports what would change, refusing exactly what a real run would refuse.
    support: full
  diff_mode:
    description: >-
      Shows the old and new content of a file that is the account's own; when only its owner, group, mode or
      time differ, those.
    support: full
"""

EXAMPLES = r"""
- name: Install uv for alice from a copy root staged
  hpc.globus_compute.home_file:
    home: /home/alice
    owner: alice
    path: .local/bin/uv
    src: /var/lib/hpc_globus_compute/stage/uv
    mode: "0755"
"""

RETURN = r"""
file:
  description: The file acted on (home and path).
  returned: always
  type: str
content:
  description:
    - The file's content, for O(state=read); empty when it does not exist, is larger than 1 MiB, or is not the
      account's own regular file with a single link (its content is then never read).
  returned: when state is read
  type: str
json:
  description: The JSON object RV(content) holds, for O(state=read); empty when it holds none.
  returned: when state is read
  type: dict
exists:
  description: Whether RV(content) was read, for O(state=read).
  returned: when state is read
  type: bool
"""

import errno
import json
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hpc.globus_compute.plugins.module_utils.files import attributes, text, write_file

MAX_READ = 1024 * 1024


class Refused(Exception):
    """A path below the home that root will not act through."""


def components(path: str) -> list[str]:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise Refused(f"path: '{path}' must be a relative path below the home, without '.', '..' or empty parts")
    return parts


def open_dir(parent: int, name: str, uid: int, gid: int, create: bool, mode: int, shown: str) -> tuple[int, bool]:
    """Opens parent/name as a directory, following no link; makes it for the account when create is true."""
    made = False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as e:
        if e.errno == errno.ENOENT and create:
            os.mkdir(name, mode, dir_fd=parent)
            made = True
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            # Handed over only if it is still the empty directory just made:
            # the account may have renamed another one into its place.
            if os.fstat(fd).st_uid != os.geteuid() or os.listdir(fd):
                os.close(fd)
                raise Refused(f"{shown} was replaced while it was being made: refused") from None
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        elif e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(f"{shown} is a link or not a directory: refused") from None
        else:
            raise
    if os.fstat(fd).st_uid != uid:
        os.close(fd)
        raise Refused(f"{shown} does not belong to the account: refused")
    return fd, made


def read_regular(parent: int, name: str, uid: int, limit: int) -> tuple[bytes | None, os.stat_result | None]:
    """The content of parent/name if it is the account's own regular file, with one link, of at most limit bytes.

    Anything else (a link, a FIFO, another account's file moved or linked
    there, a huge or sparse file) reads as None with its status, so that its
    content is neither shown nor held in memory.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP):
            return None, None
        raise
    try:
        status = os.fstat(fd)
        ours = stat.S_ISREG(status.st_mode) and status.st_uid == uid and status.st_nlink == 1
        if not ours or status.st_size > limit:
            return None, status
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return (b"".join(chunks), status) if size <= limit else (None, status)
    finally:
        os.close(fd)


def run(module: AnsibleModule) -> dict:
    p = module.params
    account = pwd.getpwnam(p["owner"])
    uid, gid = account.pw_uid, account.pw_gid
    parts = components(p["path"])
    state, check = p["state"], module.check_mode
    home = os.open(p["home"], os.O_RDONLY | os.O_DIRECTORY)
    if os.fstat(home).st_uid != uid:
        os.close(home)
        raise Refused(f"home: {p['home']} does not belong to {p['owner']}: refused")
    # Not "path": Ansible would add what a stat of it finds, following links.
    result: dict = {"changed": False, "file": os.path.join(p["home"], p["path"])}
    dirs_to_walk = parts if state == "directory" else parts[:-1]
    fds = [home]
    try:
        shown = p["home"]
        for name in dirs_to_walk:
            shown = f"{shown}/{name}"
            if check or state in ("read", "absent"):
                try:
                    fd = open_dir(fds[-1], name, uid, gid, False, 0, shown)[0]
                except FileNotFoundError:
                    # Nothing there yet: a write would make it, a read or removal finds nothing.
                    result["changed"] = state in ("file", "directory")
                    if state == "read":
                        result.update(exists=False, **parsed(None))
                    return result
            else:
                is_last = state == "directory" and name == dirs_to_walk[-1]
                mode = int(p["mode"] if is_last else p["parents_mode"], 8)
                fd, made = open_dir(fds[-1], name, uid, gid, True, mode, shown)
                result["changed"] |= made
            fds.append(fd)
        parent = fds[-1]
        if state == "directory":
            return result
        name = parts[-1]
        if state == "read":
            before = read_regular(parent, name, uid, MAX_READ)[0]
            result.update(exists=before is not None, **parsed(before))
            return result
        if state == "absent":
            try:
                os.lstat(name, dir_fd=parent)
            except FileNotFoundError:
                return result
            result["changed"] = True
            if not check:
                os.unlink(name, dir_fd=parent)
            return result
        data, mtime = (p["content"].encode(), None) if p["content"] is not None else open_src(p["src"], uid)
        # A file longer than data differs from it; --diff shows it whole all the same.
        before, status = read_regular(parent, name, uid, max(len(data), MAX_READ) if module._diff else len(data))
        mode = int(p["mode"], 8)
        current = (
            before == data
            and status is not None
            and (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (uid, gid, mode)
            and mtime in (None, status.st_mtime_ns)
        )
        if not current:
            result["changed"] = True
            if module._diff and before == data:
                # Only its owner, group, mode or time differ: those are what --diff shows.
                wanted = {"state": "file", "owner": uid, "group": gid, "mode": f"{mode:04o}"}
                found = attributes(status)
                if mtime not in (None, status.st_mtime_ns):
                    wanted["mtime"], found["mtime"] = mtime, status.st_mtime_ns
                result["diff"] = {"before": found, "after": wanted, "before_header": result["file"]}
            elif module._diff:
                result["diff"] = {"before": text(before), "after": text(data), "before_header": result["file"]}
            if not check:
                write_file(parent, name, data, uid, gid, mode, mtime)
        return result
    finally:
        for fd in fds:
            os.close(fd)


def parsed(data: bytes | None) -> dict:
    """What a read returns: the text, and the JSON object it holds if it is one (else an empty one)."""
    content = text(data)
    try:
        value = json.loads(content) if content else {}
    except ValueError:
        value = {}
    return {"content": content, "json": value if isinstance(value, dict) else {}}


def open_src(src: str, uid: int) -> tuple[bytes, int]:
    """The content of src and its modification time (ns)."""
    with open(src, "rb") as f:
        status = os.fstat(f.fileno())
        # root copies only what the account cannot have swapped.
        if os.geteuid() == 0 and uid != 0 and status.st_uid == uid:
            raise Refused(f"src: {src} belongs to the account: stage it somewhere root owns")
        return f.read(), status.st_mtime_ns


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "home": {"type": "path", "required": True},
            "owner": {"type": "str", "required": True},
            "path": {"type": "str", "required": True},
            "state": {"type": "str", "default": "file", "choices": ["file", "directory", "absent", "read"]},
            "content": {"type": "str", "no_log": True},
            "src": {"type": "path"},
            "mode": {"type": "str", "default": "0644"},
            "parents_mode": {"type": "str", "default": "0755"},
        },
        mutually_exclusive=[("content", "src")],
        required_if=[("state", "file", ("content", "src"), True)],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (Refused, KeyError, OSError) as e:
        where = f"{module.params['home']}/{module.params['path']}"
        module.fail_json(msg=f"home_file: {module.params['owner']}: {where}: {e}")


if __name__ == "__main__":
    main()
