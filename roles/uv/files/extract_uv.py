"""Unpack uv and uvx from a release tarball or a wheel into a new directory.

Runs on the Ansible controller. Only the two binaries are read out of the
archive, by name, so a hostile archive cannot write anywhere else; the
directory appears by an atomic rename, so an interrupted run leaves nothing
that later runs would mistake for a finished one.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

BINARIES = ("uv", "uvx")


def _members_from_tar(archive: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in BINARIES:
                data = tar.extractfile(member)
                if data is not None:
                    found[name] = data.read()
    return found


def _members_from_wheel(archive: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with zipfile.ZipFile(archive) as wheel:
        for name in wheel.namelist():
            parts = Path(name).parts
            # Wheels keep the binaries under <dist>.data/scripts/.
            if len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts" and parts[2] in BINARIES:
                found[parts[2]] = wheel.read(name)
    return found


def extract(archive: Path, dest: Path) -> None:
    if zipfile.is_zipfile(archive):
        found = _members_from_wheel(archive)
    else:
        found = _members_from_tar(archive)
    missing = [name for name in BINARIES if name not in found]
    if missing:
        raise SystemExit(
            f"{archive}: no {' or '.join(missing)} in this archive; expected a uv release tarball or wheel"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    for name, data in found.items():
        path = staging / name
        path.write_bytes(data)
        path.chmod(0o755)
    staging.chmod(0o755)
    os.rename(staging, dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract_uv.py ARCHIVE DEST")
    extract(Path(sys.argv[1]), Path(sys.argv[2]))
