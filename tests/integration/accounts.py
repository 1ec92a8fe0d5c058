"""Real unprivileged accounts on this machine, for tests that run roles as root on their behalf.

Each account gets a home under a directory every user can traverse (pytest's
own temporary directories are root's alone). Needs root; the callers skip
otherwise.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from role_runner import ROOT, account_database


def is_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def accounts(*names: str) -> Iterator[dict[str, Path]]:
    """Creates the accounts (suffixed to be unique) and yields {name: home}; removes them after."""
    base = Path(tempfile.mkdtemp(prefix="hgc-homes-", dir="/tmp"))
    base.chmod(0o755)
    suffix = uuid.uuid4().hex[:6]
    made: dict[str, Path] = {}
    try:
        for name in names:
            login = f"{name}-{suffix}"
            home = base / login
            with account_database(change=True):
                subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", login], check=True)
            home.mkdir(mode=0o755)
            user = pwd.getpwnam(login)
            os.chown(home, user.pw_uid, user.pw_gid)
            made[login] = home
        yield made
    finally:
        with account_database(change=True):
            for login in made:
                subprocess.run(["userdel", login], check=False)
        shutil.rmtree(base, ignore_errors=True)


def as_user(login: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", "-s", "/bin/sh", login, "-c", command], capture_output=True, text=True, check=False)


def uv_release(directory: Path) -> tuple[Path, str]:
    """A uv release tarball made from the toolchain's own uv, copied into directory; returns it and
    uv's version."""
    built, version = built_uv_release()
    tarball = directory / built.name
    shutil.copyfile(built, tarball)
    return tarball, version


@functools.cache
def built_uv_release() -> tuple[Path, str]:
    """The tarball, made once in each test process: compressing uv takes seconds of CPU."""
    uv = ROOT / ".venv" / "bin" / "uv"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    tarball = Path(tempfile.mkdtemp(prefix="hpc-gc-uv-release.")) / "uv-x86_64-unknown-linux-gnu.tar.gz"
    atexit.register(shutil.rmtree, tarball.parent, True)
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("uv", "uvx"):
            tar.add(uv.with_name(name), arcname=f"uv-x86_64-unknown-linux-gnu/{name}")
    return tarball, version


def tree_digest(path: Path) -> dict[str, str]:
    """Every entry below path (hidden ones too) with its owner, mode and content digest."""
    entries = {}
    for entry in sorted([path, *path.rglob("*")]):
        status = entry.lstat()
        digest = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() and not entry.is_symlink() else ""
        entries[str(entry.relative_to(path))] = f"{status.st_uid}:{status.st_gid} {status.st_mode:o} {digest}"
    return entries
