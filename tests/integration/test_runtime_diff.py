"""--diff shows each runtime file's change, in check mode and in a real run.

The role runs for real as root on this machine (one environment built offline,
as test_version_sets does); then python_envs_version_match changes, which
changes worker-env.conf only, and --check --diff, then --diff, must show that
file's one changed line. A run that changes nothing shows no diff.
"""

from __future__ import annotations

import re

import pytest
from accounts import is_root
from role_runner import checksums
from test_version_sets import python_envs, site, wheelhouse  # noqa: F401 (fixtures)
from versions import GCE

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the builds are checked as an unprivileged account")

MATRIX = [{"python": "3.11", "endpoint": f"=={GCE}"}]


def diffed_files(output: str) -> list[str]:
    """The files whose change --diff showed, by name."""
    return [path.rsplit("/", 1)[-1] for path in re.findall(r"^\+\+\+ after: (.*)$", output, re.M)]


def test_diff_shows_the_runtime_files_change(site, wheelhouse) -> None:  # noqa: F811
    first = python_envs(site, wheelhouse, MATRIX)
    assert first.returncode == 0, first.stdout + first.stderr
    conf = site / "runtime" / "worker-env.conf"
    assert "WORKER_ENV_VERSION_MATCH=exact\n" in conf.read_text()
    before = checksums(site / "runtime")

    noop = python_envs(site, wheelhouse, MATRIX, ["--check", "--diff"])
    assert noop.returncode == 0, noop.stdout + noop.stderr
    assert re.search(r"^localhost +: .*changed=0 ", noop.stdout, re.M), noop.stdout[-3000:]
    assert not re.search(r"^[-+]WORKER_ENV", noop.stdout, re.M), noop.stdout

    checked = python_envs(site, wheelhouse, MATRIX, ["--check", "--diff"], python_envs_version_match="minor")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert diffed_files(checked.stdout) == ["worker-env.conf"], checked.stdout[-3000:]
    assert "\n-WORKER_ENV_VERSION_MATCH=exact\n+WORKER_ENV_VERSION_MATCH=minor\n" in checked.stdout, checked.stdout
    assert checksums(site / "runtime") == before

    ran = python_envs(site, wheelhouse, MATRIX, ["--diff"], python_envs_version_match="minor")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert diffed_files(ran.stdout) == ["worker-env.conf"], ran.stdout[-3000:]
    assert "\n-WORKER_ENV_VERSION_MATCH=exact\n+WORKER_ENV_VERSION_MATCH=minor\n" in ran.stdout, ran.stdout
    assert "WORKER_ENV_VERSION_MATCH=minor\n" in conf.read_text()
    # Only worker-env.conf changed, to the bytes the role renders.
    after = checksums(site / "runtime")
    assert sorted(k for k in after if after[k] != before.get(k)) == ["worker-env.conf"], (before, after)
