"""Runs a role of the collection for real against this machine (connection local).

Each run gets a private home, `tmp_path/home`: HOME points there and, when
run as root, a private mount namespace shows a passwd where the account's home
is that directory, so a role that looks the home up (uv_users) writes there
too and never into the real one.

With private_system=True (as root), /etc, /var, /usr and the other system trees are
overlays in that namespace whose upper layers are under `tmp_path/system`: the
run sees the machine as it is, every write it makes there lands in the upper
layer alone, and result.system_changes lists each one, whatever path a role
chose. The real trees are never written, so a concurrent deployment of this
machine sees nothing of the test. The runs of one test (one tmp_path) share
the layer, as runs on one machine would: a later run sees what an earlier one
wrote, system_changes is everything written so far, and system_path() is
where the test reads a path as the runs left it.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS_LOCK = "/tmp/hpc-gc-accounts.lock"
# Taken by a change before it waits for ACCOUNTS_LOCK, and passed through by each run before it
# takes its share: see account_database.
ACCOUNTS_QUEUE = "/tmp/hpc-gc-accounts.queue"


@contextmanager
def account_database(change: bool) -> Iterator[None]:
    """The parallel test workers' turns at the account database: a change (useradd, userdel)
    alone, a root run that shows a private passwd (run_playbook) beside other such runs.

    useradd and userdel rewrite /etc/passwd, /etc/group and /etc/shadow by a rename, and
    shadow's own lock gives up after 15 s. A rename over /etc/passwd also detaches the private
    passwd a run bind-mounts there, in every mount namespace: that run would then see root's real
    home, and write into it.

    A change waiting its turn goes next: flock grants a shared lock while an exclusive one
    waits, so with three workers or more, the runs of the others kept overlapping and a change
    waited minutes for a moment with none. It holds ACCOUNTS_QUEUE while it waits, and a run
    takes its share only once it got through ACCOUNTS_QUEUE."""
    with open(ACCOUNTS_QUEUE, "a") as queue, open(ACCOUNTS_LOCK, "a") as lock:
        fcntl.flock(queue, fcntl.LOCK_EX)
        if change:
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(queue, fcntl.LOCK_UN)
        yield


# Everything a role could write outside the test's own directory and private home.
SYSTEM_TREES = ("/etc", "/var", "/usr", "/opt", "/srv", "/root", "/home")


def run_role(
    tmp_path: Path,
    role: str,
    variables: dict[str, object],
    tasks_from: str = "main",
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    private_system: bool = False,
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: hpc.globus_compute.{role}\n"
        f"        tasks_from: {tasks_from}\n"
        # As the playbooks do: the role's own check gives one short line per variable.
        "        rolespec_validate: false\n"
        # Reached whatever --tags says; the role's tasks keep their own tags.
        "      tags: [always]\n"
    )
    return run_playbook(tmp_path, str(playbook), variables, args, env, private_system)


def run_playbook(
    tmp_path: Path,
    playbook: str,
    variables: dict[str, object],
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    private_system: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Runs a playbook (a path, or a name such as hpc.globus_compute.site); args are
    further ansible-playbook arguments, e.g. ["-e", "key=value"] as an admin types them."""
    extra = {"ansible_python_interpreter": sys.executable, **variables}
    home = private_home(tmp_path)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "NO_COLOR": "1",
        "HOME": str(home),
        # Ansible's own files, kept out of the home the test watches.
        "ANSIBLE_HOME": str(tmp_path / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible" / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible" / "tmp"),
        **(env or {}),
    }
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook, "-e", json.dumps(extra), *(args or [])]
    system = tmp_path / "system"
    if os.geteuid() == 0:
        mounts = overlays(system) if private_system else ""
        mount = f'set -e\n{mounts}mount --bind "$0" /etc/passwd\nexec "$@"'
        argv = ["unshare", "--mount", "bash", "-c", mount, str(passwd(tmp_path, home)), *argv]
    before, test_before = listing(home), own_listing(tmp_path)
    with account_database(change=False):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    result.home_changes = sorted(set(before) ^ set(listing(home)))  # type: ignore[attr-defined]
    result.test_changes = sorted(set(test_before) ^ set(own_listing(tmp_path)))  # type: ignore[attr-defined]
    # An account other than root cannot write the system trees: only its home is watched.
    result.system_changes = system_changes(system) if private_system and os.geteuid() == 0 else None  # type: ignore[attr-defined]
    return result


def overlays(system: Path) -> str:
    """Shell lines that mount each system tree as an overlay writing into `system`/upper."""
    lines = []
    for tree in SYSTEM_TREES:
        if Path(tree).is_dir() and not Path(tree).is_symlink():
            upper, work = system / "upper" / tree.lstrip("/"), system / "work" / tree.lstrip("/")
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount -t overlay overlay -o lowerdir={tree},upperdir={upper},workdir={work} {tree}\n")
    return "".join(lines)


def system_path(tmp_path: Path, path: str | Path) -> Path:
    """Where a system path is as the private_system runs of this test left it."""
    upper = tmp_path / "system" / "upper" / str(path).lstrip("/")
    if upper.is_symlink() or not upper.exists():
        return upper if upper.is_symlink() else Path(path)
    # A removed path is a character device in the layer: it names nothing.
    return tmp_path / "system" / "removed" / upper.name if stat.S_ISCHR(upper.stat().st_mode) else upper


def system_changes(system: Path) -> list[str]:
    """Each path a run wrote, created or removed in the system trees, as `/path kind`."""
    upper = system / "upper"
    changes = []
    for path in sorted(upper.glob("*/**/*")):
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode) and any(path.iterdir()):
            continue  # a directory a write went through; the write itself is listed
        kind = (
            "removed"
            if stat.S_ISCHR(mode)
            else "dir"
            if stat.S_ISDIR(mode)
            else "link"
            if stat.S_ISLNK(mode)
            else "file"
        )
        changes.append(f"/{path.relative_to(upper)} {kind}")
    return changes


def private_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return home


def passwd(tmp_path: Path, home: Path) -> Path:
    """A copy of /etc/passwd where the running account's home is `home`."""
    user = getpass.getuser().encode()
    lines = []
    # Bytes: the database has no encoding, and other accounts' gecos may be Latin-1.
    for line in Path("/etc/passwd").read_bytes().splitlines():
        fields = line.split(b":")
        if fields[0] == user:
            fields[5] = bytes(home)
        lines.append(b":".join(fields))
    copy = tmp_path / "passwd"
    copy.write_bytes(b"\n".join(lines) + b"\n")
    copy.chmod(0o644)
    return copy


# Digests of files that have not changed since they were read: (device, inode, size, mtime, ctime).
DIGESTS: dict[tuple[int, int, int, int, int], str] = {}
# The kernel stamps ctime at its clock's tick, coarser than a nanosecond: two writes within one tick
# can leave the same ctime. A file changed this recently is hashed again the next time.
SETTLED_NS = 2_000_000_000


def file_digest(path: Path, status: os.stat_result | None = None) -> str:
    """A regular file's content sha256, read again only when its ctime moved: every write, rename
    or change of mode moves it, and no call sets it back. The listings around each run hash a
    converged home (hundreds of MB of environments) in a fraction of the time."""
    status = status or path.lstat()
    key = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    if key in DIGESTS:
        return DIGESTS[key]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if time.time_ns() - status.st_ctime_ns > SETTLED_NS:
        DIGESTS[key] = digest
    return digest


def listing(root: Path) -> list[str]:
    """Every path under `root` (hidden ones too, and root itself) with its owner, mode and content
    digest (or link target), for before/after comparisons: a changed mode or content shows."""
    assert root.is_dir(), f"{root} does not exist"
    entries = []
    for path in sorted([root, *root.rglob("*")]):
        status = path.lstat()
        if path.is_symlink():
            what = "-> " + os.readlink(path)
        elif stat.S_ISREG(status.st_mode):
            what = file_digest(path, status)
        else:
            what = "dir"
        entries.append(f"{path.relative_to(root)} {status.st_uid}:{status.st_gid} {status.st_mode:o} {what}")
    return entries


# What the runner itself keeps in a test's directory: the playbook, Ansible's
# own files, the private home, the system layers and the passwd copy.
RUNNER_FILES = ("play.yml", "ansible", "home", "system", "passwd")


def own_listing(tmp_path: Path) -> list[str]:
    """Every path in the test's own directory but the runner's files, with its type, owner, mode,
    size and (for all but directories, whose entries are listed) modification time: where the
    test's variables point a role (a runtime, facts, a site root), so that any write there shows.
    Contents are not hashed: a site's environments can be large, and a write changes the time."""
    entries = []
    tops = [top for top in tmp_path.iterdir() if top.name not in RUNNER_FILES]
    for path in sorted([*tops, *(p for top in tops if top.is_dir() and not top.is_symlink() for p in top.rglob("*"))]):
        status = path.lstat()
        when = "" if stat.S_ISDIR(status.st_mode) else f" {status.st_size} {status.st_mtime_ns}"
        entries.append(f"{path.relative_to(tmp_path)} {status.st_uid}:{status.st_gid} {status.st_mode:o}{when}")
    return entries


def checksums(root: Path) -> dict[str, str]:
    """Every file, link and directory under root, with its content's sha256 (or link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = file_digest(path)
        else:
            found[key] = "dir"
    return found


def assert_fails_with(result: subprocess.CompletedProcess[str], *fragments: str, written: tuple[str, ...] = ()) -> None:
    """The run failed, printed every fragment, and left the private home and the test's own
    directory as they were (and, for a run with private_system, every system tree too)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    assert not result.home_changes, f"a refused run wrote into the home: {result.home_changes}"
    # `written`: entries of the test's directory a run refused late may write (a build it then
    # removed), which the test itself then checks exactly.
    unexpected = [c for c in result.test_changes if c.split(" ", 1)[0].split("/", 1)[0] not in written]
    assert not unexpected, f"a refused run wrote into the test's directory: {unexpected}"
    assert not result.system_changes, f"a refused run wrote into the system: {result.system_changes}"
