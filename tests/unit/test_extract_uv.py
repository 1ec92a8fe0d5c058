from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

EXTRACT = Path(__file__).resolve().parents[2] / "roles" / "uv" / "files" / "extract_uv.py"


def run_extract(archive: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXTRACT), str(archive), str(dest)], capture_output=True, text=True)


def add_tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_release_tarball_gives_exactly_the_two_binaries(tmp_path: Path) -> None:
    archive = tmp_path / "uv-x86_64-unknown-linux-gnu.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_tar_member(tar, "uv-x86_64-unknown-linux-gnu/uv", b"uv-binary")
        add_tar_member(tar, "uv-x86_64-unknown-linux-gnu/uvx", b"uvx-binary")
        add_tar_member(tar, "../../etc/evil", b"never written")
    dest = tmp_path / "out"
    assert run_extract(archive, dest).returncode == 0
    assert sorted(p.name for p in dest.iterdir()) == ["uv", "uvx"]
    assert (dest / "uv").read_bytes() == b"uv-binary"
    assert (dest / "uvx").stat().st_mode & 0o777 == 0o755
    assert not (tmp_path.parent / "etc" / "evil").exists()


def test_wheel_gives_the_binaries_from_its_scripts(tmp_path: Path) -> None:
    archive = tmp_path / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(archive, "w") as wheel:
        wheel.writestr("uv/__init__.py", "")
        wheel.writestr("uv-0.13.9.data/scripts/uv", b"uv-binary")
        wheel.writestr("uv-0.13.9.data/scripts/uvx", b"uvx-binary")
    dest = tmp_path / "out"
    assert run_extract(archive, dest).returncode == 0
    assert (dest / "uvx").read_bytes() == b"uvx-binary"


@pytest.mark.parametrize("member", ["uv-x/uvx", "uv-x/README.md"])
def test_an_archive_without_both_binaries_leaves_nothing(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_tar_member(tar, member, b"x")
    dest = tmp_path / "out"
    result = run_extract(archive, dest)
    assert result.returncode != 0
    assert "expected a uv release tarball or wheel" in result.stderr
    assert list(tmp_path.iterdir()) == [archive]
