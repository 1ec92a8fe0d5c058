"""The ready stamp: what build-env.sh's writer makes, the collection's reader reads, old JSON stamps too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hpc.globus_compute.plugins.filter.from_stamp import from_stamp

BUILD_ENV = Path(__file__).resolve().parents[2] / "roles" / "_common" / "files" / "build-env.sh"


def written(tmp_path: Path, *fields: str) -> subprocess.CompletedProcess[str]:
    """build-env.sh's stamp function (its rules, as worker-env-build sources them) writing fields."""
    script = 'source "$0" --rules && stamp "$1" "${@:2}"'
    return subprocess.run(
        ["bash", "-c", script, str(BUILD_ENV), str(tmp_path / ".ready"), *fields], capture_output=True, text=True
    )


def test_a_site_stamp_round_trips_with_its_packages_as_a_list(tmp_path: Path) -> None:
    fields = ["name=py3.12-gce4.19.0", "spec=0123456789ab", "python=3.12.1", "endpoint=4.19.0"]
    fields += ["packages=numpy >= 2", "packages=six==1.17.0", "built=2026-01-01T00:00:00+0000", "host=n1"]
    assert written(tmp_path, *fields).returncode == 0
    assert from_stamp((tmp_path / ".ready").read_text(), lists=["packages"]) == {
        "name": "py3.12-gce4.19.0",
        "spec": "0123456789ab",
        "python": "3.12.1",
        "endpoint": "4.19.0",
        "packages": ["numpy >= 2", "six==1.17.0"],
        "built": "2026-01-01T00:00:00+0000",
        "host": "n1",
    }


def test_a_stamp_without_packages_has_an_empty_list_and_values_keep_their_equals_signs(tmp_path: Path) -> None:
    assert written(tmp_path, "name=x", "base=/a=b").returncode == 0
    assert from_stamp((tmp_path / ".ready").read_text(), lists=["packages"]) == {
        "packages": [],
        "name": "x",
        "base": "/a=b",
    }


def test_a_field_with_a_line_break_is_not_written(tmp_path: Path) -> None:
    assert written(tmp_path, "name=x", "packages=six\nspec=forged").returncode == 1
    assert not (tmp_path / ".ready").exists()


def test_an_earlier_releases_json_stamp_is_still_read() -> None:
    old = {"name": "py3.12-gce4.19.0", "spec": "abc", "python": "3.12.1", "endpoint": "4.19.0", "packages": []}
    assert from_stamp(json.dumps(old, indent=2) + "\n", lists=["packages"]) == old
    assert from_stamp(json.dumps({"name": "x"}), lists=["packages"]) == {"packages": [], "name": "x"}


def test_a_line_that_is_not_key_value_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match="is not key=value"):
        from_stamp("name=x\nready\n")


@pytest.mark.parametrize("text", ["name=x\nready\n", "=x\n", "{not json\n", "[1, 2]\n", "python=3.11.2\npython=9.9\n"])
def test_text_that_is_not_a_stamp_is_an_error_or_with_strict_false_empty(text: str) -> None:
    with pytest.raises(AnsibleFilterError, match="from_stamp: "):
        from_stamp(text)
    assert from_stamp(text, strict=False) == {}
