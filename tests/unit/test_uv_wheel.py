from __future__ import annotations

import pytest
from ansible_collections.hpc.globus_compute.plugins.lookup.uv_wheel import pick_wheel

SHA = "ab" * 32
PAGE = f"""<!DOCTYPE html><html><body>
<a href="https://files.example.org/uv-0.13.9.tar.gz#sha256={SHA}">uv-0.13.9.tar.gz</a>
<a href="https://files.example.org/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl#sha256={SHA}">a</a>
<a href="../../packages/uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl#sha256={"cd" * 32}">b</a>
<a href="https://files.example.org/uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl#sha256={SHA}">c</a>
<a href="https://files.example.org/uv-0.13.9-py3-none-manylinux_2_17_ppc64le.whl">no hash</a>
<a href="https://files.example.org/uv-0.13.8-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl#sha256={SHA}">d</a>
</body></html>"""
INDEX = "https://mirror.example.org/simple/uv/"


def test_picks_the_glibc_wheel_for_the_version_and_arch() -> None:
    wheel = pick_wheel(PAGE, INDEX, "0.13.9", "x86_64-unknown-linux-gnu")
    assert wheel == {
        "url": "https://files.example.org/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "filename": "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "sha256": SHA,
    }


def test_resolves_relative_links_and_picks_musl() -> None:
    wheel = pick_wheel(PAGE, INDEX, "0.13.9", "x86_64-unknown-linux-musl")
    assert wheel["url"] == "https://mirror.example.org/packages/uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl"
    assert wheel["sha256"] == "cd" * 32


def test_a_wheel_without_a_published_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="no sha256"):
        pick_wheel(PAGE, INDEX, "0.13.9", "powerpc64le-unknown-linux-gnu")


@pytest.mark.parametrize(
    ("version", "target"),
    [("0.13.7", "x86_64-unknown-linux-gnu"), ("0.13.9", "s390x-unknown-linux-gnu")],
)
def test_missing_wheels_are_reported(version: str, target: str) -> None:
    with pytest.raises(ValueError, match=f"no uv {version} wheel for {target}"):
        pick_wheel(PAGE, INDEX, version, target)


def test_unknown_targets_are_reported() -> None:
    with pytest.raises(ValueError, match="no uv wheel is published for target"):
        pick_wheel(PAGE, INDEX, "0.13.9", "sparc64-unknown-linux-gnu")
