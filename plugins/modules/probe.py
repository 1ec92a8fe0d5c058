#!/usr/bin/python
# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Reports, in one call, what the roles would otherwise look at with a stat, a slurp or a command each."""

from __future__ import annotations

DOCUMENTATION = r"""
module: probe
short_description: Report the state of several files in one call, changing nothing
description:
  - For each entry of O(paths), what is there now - type, owner, mode, link target, the content's sha256 - and,
    when asked, the content of a small file or what an executable says to C(--version).
  - The roles compare this with what they would write, and skip the tasks that write it when nothing differs; a
    no-op rollout then costs one module call per role instead of one per file.
  - A path below O(paths[].home) is walked one directory at a time without following links (C(O_NOFOLLOW)), as
    M(hpc.globus_compute.home_file) writes it; a link there is reported as a link, never read through.
  - Only regular files are read (no FIFO can stall the run), and only an executable that belongs to root or to the
    connecting account is run.
version_added: 0.4.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options:
  paths:
    description: What to look at.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - An absolute path, or with O(paths[].home) a relative one below it.
          - With O(paths[].version), O(paths[].follow) or O(paths[].search_path) and no O(paths[].home), a command name
            without a C(/) (such as C(bash)) is looked up on the module's C(PATH) (or O(paths[].search_path)), as a
            command would run it; the entry is reported under that name, and RV(files.found) says where it was found.
          - Only the absolute directories of C(PATH) or O(paths[].search_path) are looked in; an empty or relative
            entry, which a shell would take as the module's working directory, is ignored.
        type: str
        required: true
      search_path:
        description:
          - Look a command name up in these directories (separated by C(:)) instead of the module's C(PATH), as
            C(PATH=search_path command -v name) would; nothing is run. Not below a home.
          - Only its absolute directories are looked in; an empty or relative entry (C(/opt/bin::/usr/bin)) is ignored,
            so that what is found does not depend on the module's working directory.
        type: str
      home:
        description: An account's home; O(paths[].path) is then walked below it without following any link.
        type: path
      read:
        description: Return the content of a regular file of at most 64 KiB in RV(files.content).
        type: bool
        default: false
      json:
        description:
          - With O(paths[].read), also parse the content as JSON into RV(files.json); a record edited by hand into
            something else than JSON reads as null there, instead of failing the task that reads it.
        type: bool
        default: false
      version:
        description:
          - Run the file with C(--version) and return its output in RV(files.version), when it is a regular
            executable file that belongs to root or the connecting account and that only they can change, as
            RV(files.trusted) tells; otherwise RV(files.version) is empty.
        type: bool
        default: false
      runs:
        description:
          - Absolute paths of other programs that this one runs when asked for its version (C(uvx) runs the C(uv)
            beside it). With O(paths[].version), the file is run only when each of these, too, is a regular file
            (not a link) that belongs to root or the connecting account, in directories only they can change.
        type: list
        elements: str
        default: []
      follow:
        description:
          - Look at what a link (and a link it names) points to, as running the path would, instead of the link
            itself. Not below a home.
        type: bool
        default: false
      trusted:
        description:
          - Report in RV(files.trusted) whether only root and the connecting account can change what the path
            names. Not below a home.
        type: bool
        default: false
      parents:
        description:
          - Report the owner and mode of every directory above the path in RV(files.parents), both as it is named
            (after a C(PATH) lookup) and as links resolve, which an account needs to traverse to run it. Not below
            a home.
        type: bool
        default: false
      checksum:
        description:
          - Return a regular file's sha256 in RV(files.sha256). Off for large files that are compared by
            RV(files.size) and RV(files.mtime) instead (a copy that keeps its source's modification time).
        type: bool
        default: true
attributes:
  check_mode:
    description: Changes nothing in any mode; it reports the same in check mode.
    support: full
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Look at the installed uv and its policy
  hpc.globus_compute.probe:
    paths:
      - {path: /usr/local/bin/uv, version: true}
      - {path: /etc/uv/uv.toml}
      - {path: /var/lib/hpc_globus_compute/uv.json, read: true}
  register: __uv_probe
"""

RETURN = r"""
files:
  description: One entry per O(paths) entry, keyed by its path (C(HOME/PATH) for one below a home).
  returned: always
  type: dict
  contains:
    exists:
      description: Whether anything is there (a dangling link counts).
      type: bool
    type:
      description: C(file), C(directory), C(link), C(other) or C(absent).
      type: str
    target:
      description: A link's target, as written; empty otherwise.
      type: str
    owner:
      description: The owner's name (its uid when it has none).
      type: str
    group:
      description: The group's name (its gid when it has none).
      type: str
    uid:
      description: The owner's uid (-1 when absent).
      type: int
    gid:
      description: The group's gid (-1 when absent).
      type: int
    mode:
      description: The permission bits in octal, such as C(0644).
      type: str
    others_write:
      description:
        - Whether its group or others may write it without the sticky bit (with it, only an entry's owner may move
          the entry), the test of C(build-env.sh --trusted); false for a link or when absent.
      type: bool
    trusted:
      description:
        - With O(paths[].trusted), whether every name looking the path up visits (after a C(PATH) lookup) belongs
          to root or the connecting account and is writable neither by its group nor by others (each directory on
          the way, each link as itself and then, hop by hop, the names where it leads, and the C(#!) interpreter
          of a script, and that one's, five scripts in a row at most, as Linux runs). A sticky directory, as
          C(/tmp) is, counts as not writable, for nobody else can rename what is not theirs; a POSIX ACL that
          lets another account write shows as group write. A name not made yet counts when its directory lets
          nobody else make it first. This is the rule of C(build-env.sh --trusted), and it gates
          O(paths[].version). False without O(paths[].trusted).
      type: bool
    size:
      description: The size in bytes (-1 when absent).
      type: int
    mtime:
      description: The modification time in nanoseconds since the epoch (-1 when absent).
      type: int
    sha256:
      description: The sha256 of a regular file's content; empty otherwise.
      type: str
    content:
      description: The content, when O(paths[].read) is set and it is a regular file of at most 64 KiB.
      type: str
    json:
      description: The content parsed as JSON, when O(paths[].json) is set; null when there is none or it is not JSON.
      type: raw
    version:
      description: What the executable printed to C(--version) (stdout, then stderr), when O(paths[].version) is set.
      type: str
    version_rc:
      description:
        - The exit status of that C(--version) run; -1 when it was not run; 126, or 127 for a missing C(#!)
          interpreter, when the kernel could not run it (its reason in RV(files.version)), as a shell says.
      type: int
    found:
      description: The path looked at, after a C(PATH) lookup and with O(paths[].follow) every link resolved.
      type: str
    parents:
      description:
        - With O(paths[].parents), one C([path, uid, gid, mode]) for each directory above the path as named and above
          what it resolves to, outermost first (C(mode) -1 for one that cannot be looked at); empty otherwise.
      type: list
      elements: list
"""

import errno
import grp
import hashlib
import json
import os
import pwd
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

MAX_READ = 64 * 1024


def name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_of(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def open_parent(home: str, path: str) -> tuple[int, str] | None:
    """The directory holding path below home, opened without following links; None when a part, or the home
    itself (an account whose passwd entry names /nonexistent), is missing or a link."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"path: '{path}' must be relative below the home, without '.', '..' or empty parts")
    try:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    for part in parts[:-1]:
        try:
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = sub
    return fd, parts[-1]


def look(module: AnsibleModule, path: str, home: str | None, entry: dict, safe: bool) -> dict[str, object]:
    """What is at ``path``; ``safe``: it is ``trusted`` as named (then it may be run for its version)."""
    read, version, checksum = entry.get("read", False), entry.get("version", False), entry.get("checksum", True)
    found: dict[str, object] = {"exists": False, "type": "absent", "target": "", "owner": "", "group": "", "mode": ""}
    found["others_write"] = False
    found.update(uid=-1, gid=-1, size=-1, mtime=-1)
    found.update(sha256="", content="", version="", version_rc=-1, json=None)
    parent, name = (None, path) if home is None else (open_parent(home, path) or (None, None))
    if name is None:
        return found
    try:
        try:
            st = os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return found
        except NotADirectoryError:
            return found
        kind = "link" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "other"
        found.update(exists=True, owner=name_of(st.st_uid), group=group_of(st.st_gid), uid=st.st_uid, gid=st.st_gid)
        found.update(mode=f"{stat.S_IMODE(st.st_mode):04o}", size=st.st_size, mtime=st.st_mtime_ns)
        found["others_write"] = (
            bool(st.st_mode & 0o022) and not st.st_mode & stat.S_ISVTX and not stat.S_ISLNK(st.st_mode)
        )
        if kind == "link":
            found.update(type="link", target=os.readlink(name, dir_fd=parent))
            return found
        if not stat.S_ISREG(st.st_mode):
            found["type"] = kind
            return found
        found["type"] = "file"
        # O_NONBLOCK: a FIFO swapped in after the lstat does not stall the run.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                found["type"] = "other"
                return found
            digest = hashlib.sha256()
            head = b""
            # Without a checksum, only what a read needs is read.
            while (checksum or (read and len(head) <= MAX_READ)) and (chunk := f.read(1 << 20)):
                if len(head) <= MAX_READ:
                    head += chunk
                digest.update(chunk)
        if checksum:
            found["sha256"] = digest.hexdigest()
        if read and len(head) <= MAX_READ:
            found["content"] = head.decode("utf-8", errors="replace")
            if entry.get("json"):
                try:
                    found["json"] = json.loads(found["content"])
                # Hostile nesting overflows the parser's stack: RecursionError, not a ValueError.
                except (ValueError, RecursionError):
                    pass
        if (
            version
            and home is None
            and st.st_mode & 0o111
            and st.st_uid in (0, os.geteuid())
            and safe
            and all(owned(program) for program in entry.get("runs") or [])
        ):
            try:
                rc, out, err = module.run_command([path, "--version"], handle_exceptions=False)
            # Not a program the kernel runs (ENOEXEC, a missing #! interpreter): the status and
            # message a shell gives, for the role to name, rather than a failed probe.
            except OSError as error:
                rc, out, err = 127 if error.errno == errno.ENOENT else 126, "", f"{path}: {error.strerror}\n"
            found.update(version=out + err, version_rc=rc)
        return found
    finally:
        if parent is not None:
            os.close(parent)


def directories_above(path: str) -> list[str]:
    """Each directory above the absolute ``path`` as it is named, from ``/`` down."""
    parts = path.split("/")[1:-1]
    return ["/" + "/".join(parts[:depth]) for depth in range(len(parts) + 1)]


# Linux's limits on what running a path follows: links in one lookup (SYMLOOP_MAX), scripts whose #! names a
# script in a row (five run, a sixth fails with ELOOP), and the bytes of a #! line it reads (BINPRM_BUF_SIZE).
MAX_LINKS = 40
MAX_SCRIPTS = 5
MAX_SHEBANG = 256


def theirs(st: os.stat_result) -> bool:
    """Only root and the connecting account can change it: theirs, and neither its group nor others can write
    to it, unless it is a sticky directory (then nobody else can rename what is not theirs) or a link (whose
    mode means nothing). A POSIX ACL that lets another account write shows as group write, its mask."""
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    writable = st.st_mode & 0o022 and not sticky and not stat.S_ISLNK(st.st_mode)
    return st.st_uid in (0, os.geteuid()) and not writable


def interpreter(path: str) -> str | None:
    """The program a #! line names, read as Linux reads it (fs/binfmt_script.c): the line ends at a newline or a
    NUL, the name after spaces and tabs, up to the next space or tab (a carriage return is part of it); '' for
    none, None when it cannot be read (it then cannot run either)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        head = f.read(MAX_SHEBANG)
    if not head.startswith(b"#!"):
        return ""
    line = head[2:].split(b"\n", 1)[0].split(b"\0", 1)[0].lstrip(b" \t")
    return os.fsdecode(line.replace(b"\t", b" ").split(b" ", 1)[0])


def trusted(path: str, scripts: int = MAX_SCRIPTS) -> bool:
    """Whether only root and the connecting account can change what running or reading ``path`` reaches, the
    rule of ``build-env.sh --trusted``: every name its lookup visits, each directory on the way and each link
    (as itself, and then the names where it leads, hop by hop) is ``theirs``, and so is the #! interpreter of
    a script, and that one's. A name not made yet is trusted when its directory lets nobody else make it
    first (no group or other write, sticky or not): whoever asks makes it. Any other error reads as not
    trusted."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current, links = "/", 0
    try:
        if not theirs(os.lstat("/")):
            return False
        while parts:
            part = parts.pop(0)
            if part == "..":
                # current is resolved, so its parent is the real one.
                current = os.path.dirname(current)
                continue
            name = os.path.join(current, part)
            try:
                st = os.lstat(name)
            except FileNotFoundError:
                return not os.lstat(current).st_mode & 0o022
            if not theirs(st):
                return False
            if stat.S_ISLNK(st.st_mode):
                links += 1
                target = os.readlink(name)
                if links > MAX_LINKS:
                    return False
                current = "/" if target.startswith("/") else current
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            else:
                current = name
    # A NUL in a name given (ValueError): no lookup reaches it.
    except (OSError, ValueError):
        return False
    if not os.path.isfile(current):
        return True
    program = interpreter(current)
    if not program:
        return True
    return scripts > 0 and program.startswith("/") and trusted(program, scripts - 1)


def owned(path: str) -> bool:
    """A regular file (not a link) of root or the connecting account that only they can change (trusted)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid()) and trusted(path)


def parents(*paths: str) -> list[list[object]]:
    """Owner and mode of each directory above each path (links in them resolved, as running it resolves them)."""
    found: list[list[object]] = []
    for path in paths:
        for directory in directories_above(path):
            if any(seen[0] == directory for seen in found):
                continue
            try:
                st = os.stat(directory)
                found.append([directory, st.st_uid, st.st_gid, f"{stat.S_IMODE(st.st_mode):04o}"])
            except OSError:
                found.append([directory, -1, -1, -1])
    return found


def which(name: str, search: str | None) -> str | None:
    """Where running name would find it, looked up only in the absolute directories of search (or PATH)."""
    directories = (os.environ.get("PATH", os.defpath) if search is None else search).split(os.pathsep)
    # An empty or relative entry means the working directory, which is the module's, not the account's.
    absolute = os.pathsep.join(d for d in directories if d.startswith("/"))
    return shutil.which(name, path=absolute) if absolute else None


def run(module: AnsibleModule) -> dict[str, object]:
    files = {}
    for entry in module.params["paths"]:
        home, path = entry.get("home"), entry["path"]
        key = path if home is None else f"{home.rstrip('/')}/{path}"
        search = entry.get("search_path")
        if home is None and (entry.get("version") or entry.get("follow") or search is not None) and "/" not in path:
            # A command, as a command task would find it; nothing found reads as absent.
            path = which(path, search) or f"/nonexistent/{path}"
        if home is None and not path.startswith("/"):
            raise ValueError(f"path: '{entry['path']}' must be absolute, below a home, or a command name to run")
        named = path
        if home is None and entry.get("follow"):
            path = os.path.realpath(path)
        # One walk of the lookup, for the version's gate and the report alike.
        safe = home is None and (entry.get("trusted") or entry.get("version")) and trusted(named)
        files[key] = look(module, path, home, entry, bool(safe))
        files[key]["found"] = path
        files[key]["parents"] = parents(named, path) if home is None and entry.get("parents") else []
        files[key]["trusted"] = bool(safe) if entry.get("trusted") else False
    return {"changed": False, "files": files}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "str", "required": True},
                    "home": {"type": "path"},
                    "read": {"type": "bool", "default": False},
                    "json": {"type": "bool", "default": False},
                    "version": {"type": "bool", "default": False},
                    "checksum": {"type": "bool", "default": True},
                    "follow": {"type": "bool", "default": False},
                    "parents": {"type": "bool", "default": False},
                    "trusted": {"type": "bool", "default": False},
                    "search_path": {"type": "str"},
                    "runs": {"type": "list", "elements": "str", "default": []},
                },
            }
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (ValueError, OSError) as e:
        module.fail_json(msg=str(e))


if __name__ == "__main__":
    main()
