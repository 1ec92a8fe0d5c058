# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Writing a file by a rename in a directory held open, and showing a file's bytes or attributes in a diff.

Shared by the modules that write files as root where a link must never be
followed (home_file, write_files): the directory is an open descriptor, and
every name is reached relative to it.
"""

from __future__ import annotations

import os
import secrets
import stat


def write_file(parent: int, name: str, data: bytes, uid: int, gid: int, mode: int, mtime: int | None = None) -> None:
    """Writes data to a new file in the directory `parent` (a descriptor), owned uid:gid with mode, then
    renames it over `name`: a reader sees the old file or the new one, and a link at `name` is replaced,
    never written through. mtime (ns), if given, is set on the new file. Raises OSError."""
    tmp = f".{name}.hpc-gc-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mtime is not None:
            os.utime(fd, ns=(mtime, mtime))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=parent)
        raise
    os.close(fd)
    try:
        os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        os.unlink(tmp, dir_fd=parent)
        raise


def text(data: bytes | None) -> str:
    """A file's bytes as a diff shows them: empty for None (missing, or not to be shown), else the text,
    or a size for binary content."""
    if data is None:
        return ""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary content>\n"


def attributes(status: os.stat_result | None) -> dict:
    """A file's kind, owner, group (ids) and mode as a diff shows them, when only they differ."""
    if status is None:
        return {"state": "absent"}
    mode = status.st_mode
    kind = (
        "file"
        if stat.S_ISREG(mode)
        else "link"
        if stat.S_ISLNK(mode)
        else "directory"
        if stat.S_ISDIR(mode)
        else "fifo"
        if stat.S_ISFIFO(mode)
        else "special file"
    )
    return {
        "state": kind,
        "owner": status.st_uid,
        "group": status.st_gid,
        "mode": f"{stat.S_IMODE(status.st_mode):04o}",
    }
