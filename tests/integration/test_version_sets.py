"""A matrix entry naming a version set follows the releases of the site's wheelhouse.

The role runs for real as root on this machine, with the project's uv and an
offline wheelhouse (the test artifacts' own, which carry two releases of
globus-compute-endpoint, seen through a directory of links so that a test can
take a release away). The set is resolved on the controller from the same
find-links the builds install from (python_envs_releases_from, as a site's
uv_config gives it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import is_root
from artifacts import artifacts
from role_runner import ROOT, checksums, run_role
from versions import GCE, GCE_PREVIOUS

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the builds are checked as an unprivileged account")

UV = ROOT / ".venv" / "bin" / "uv"
NEW, OLD = f"py3.11-gce{GCE}", f"py3.11-gce{GCE_PREVIOUS}"
NEWEST_TWO = [{"python": "3.11", "newest": 2}]


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every account can traverse, as a site's runtime directory is."""
    base = Path(tempfile.mkdtemp(prefix="hgc-sets-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def wheelhouse(site: Path) -> Path:
    """The artifacts' wheelhouse as a directory of links, which a test may take a release out of."""
    view = site / "wheelhouse"
    view.mkdir()
    for wheel in (artifacts() / "wheelhouse").iterdir():
        (view / wheel.name).symlink_to(wheel)
    view.chmod(0o755)
    return view


def endpoint_wheel(wheelhouse: Path, version: str) -> Path:
    return wheelhouse / f"globus_compute_endpoint-{version}-py3-none-any.whl"


def python_envs(site: Path, wheelhouse: Path, matrix: list[dict], args: list[str] | None = None, **variables: object):
    policy = {"offline": True, "no-index": True, "find-links": [str(wheelhouse)]}
    config = site / "config"
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{wheelhouse}"]\npython-downloads = "never"\n'
        f'cache-dir = "{site / "uv-cache"}"\n'
    )
    run = site / "runs" / str(len(list((site / "runs").glob("*"))) if (site / "runs").is_dir() else 0)
    run.mkdir(parents=True)
    return run_role(
        run,
        "python_envs",
        {
            "python_envs_runtime_dir": str(site / "runtime"),
            "python_envs_facts_dir": str(site / "facts"),
            "python_envs_uv": str(UV),
            "python_envs_matrix": matrix,
            "uv_config": policy,
            **variables,
        },
        args=args,
        env={"XDG_CONFIG_HOME": str(config)},
    )


def published(site: Path) -> list[str]:
    root = site / "runtime" / "envs"
    return sorted(p.name for p in root.glob("py*") if p.is_symlink())


def fact(site: Path) -> dict:
    return json.loads((site / "facts" / "hpc_globus_compute_envs.fact").read_text())


def test_newest_two_builds_both_and_a_release_that_leaves_stays_published_until_prune(
    site: Path, wheelhouse: Path
) -> None:
    first = python_envs(site, wheelhouse, NEWEST_TWO)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f'"msg": "python_envs_matrix[0]: {GCE_PREVIOUS}, {GCE} (from {wheelhouse})"' in first.stdout
    assert published(site) == [OLD, NEW]
    # The default is the matrix's first entry, so the same set: it stands for its newest release.
    # Each release's Requires-Python, from its wheel's METADATA (both releases say >=3.10).
    assert fact(site)["version_sets"] == [
        {
            "name": name,
            "versions": [GCE_PREVIOUS, GCE],
            "source": [str(wheelhouse)],
            "requires_python": {GCE_PREVIOUS: ">=3.10", GCE: ">=3.10"},
        }
        for name in ("python_envs_matrix[0]", "python_envs_default")
    ]
    assert fact(site)["default"] == NEW
    new_build = (site / "runtime" / "envs" / NEW).resolve()

    # The newest release leaves the wheelhouse: the set holds one release, and the
    # environment of the other stays published while nothing prunes.
    endpoint_wheel(wheelhouse, GCE).unlink()
    second = python_envs(site, wheelhouse, NEWEST_TWO)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f'"msg": "python_envs_matrix[0]: {GCE_PREVIOUS} (from {wheelhouse})"' in second.stdout
    assert published(site) == [OLD, NEW]
    assert [s["versions"] for s in fact(site)["version_sets"]] == [[GCE_PREVIOUS], [GCE_PREVIOUS]]
    assert fact(site)["default"] == OLD

    # Check mode names what a prune would retire, and changes nothing.
    before = checksums(site / "runtime") | {"fact": checksums(site / "facts")}
    checked = python_envs(site, wheelhouse, NEWEST_TWO, ["--check", "--diff"], python_envs_prune=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f'"msg": "would build: nothing; would unpublish: {NEW}"' in checked.stdout
    assert checksums(site / "runtime") | {"fact": checksums(site / "facts")} == before

    # The prune unpublishes it; its build stays for the workers still in it (the grace).
    pruned = python_envs(site, wheelhouse, NEWEST_TWO, python_envs_prune=True)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert published(site) == [OLD]
    assert new_build.is_dir() and (new_build / ".unpublished").is_file()


def test_check_mode_names_the_environments_a_set_would_add_and_writes_nothing(site: Path, wheelhouse: Path) -> None:
    first = python_envs(site, wheelhouse, [{"python": "3.11", "endpoint": f"=={GCE_PREVIOUS}"}])
    assert first.returncode == 0, first.stdout + first.stderr
    assert published(site) == [OLD]
    before = checksums(site / "runtime") | {"fact": checksums(site / "facts")}
    # A new release arrives in the set (here: the set widens to it).
    checked = python_envs(
        site, wheelhouse, [{"python": "3.11", "endpoint": f">={GCE}"}], ["--check", "--diff"], python_envs_prune=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f'"msg": "python_envs_matrix[0]: {GCE} (from {wheelhouse})"' in checked.stdout
    assert f'"msg": "would build: {NEW}; would unpublish: {OLD}"' in checked.stdout
    assert checksums(site / "runtime") | {"fact": checksums(site / "facts")} == before


@pytest.mark.parametrize(
    ("entry", "line"),
    [
        (
            {"python": "3.11", "endpoint": ">=99"},
            "python_envs_matrix[0]: no globus-compute-endpoint release matches >=99 without pre-releases at {}",
        ),
        (
            {"python": "3.11", "endpoint": "four"},
            "python_envs_matrix[0]: 'four' is neither a release such as 4.19.0"
            " nor a PEP 440 specifier such as >=4.17,<5",
        ),
    ],
)
def test_a_set_that_holds_nothing_fails_in_one_line_naming_the_entry(
    site: Path, wheelhouse: Path, entry: dict, line: str
) -> None:
    result = python_envs(site, wheelhouse, [entry])
    assert result.returncode != 0
    assert f'"msg": "{line.format(wheelhouse)}"' in result.stdout, result.stdout
    assert not (site / "runtime").exists() and not (site / "facts").exists()


def test_a_set_from_the_command_line_is_typed(site: Path, wheelhouse: Path) -> None:
    """-e with JSON whose count is a string: the argument spec types it, as the admin typed it."""
    matrix = json.dumps({"python_envs_matrix": [{"python": "3.11", "newest": "1", "prereleases": "no"}]})
    result = python_envs(site, wheelhouse, NEWEST_TWO, ["-e", matrix, "--check"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'"msg": "python_envs_matrix[0]: {GCE} (from {wheelhouse})"' in result.stdout
    assert f'"msg": "would build: {NEW}; would unpublish: nothing"' in result.stdout, result.stdout
    assert not (site / "runtime").exists() and not (site / "facts").exists()


# A real interpreter this machine has besides its system python3.11, which
# globus-compute-endpoint's Requires-Python (>=3.10 in both releases) excludes.
# It is only listed, never run: a Python a release does not support is skipped
# before any interpreter is checked or built from.
PYTHON_39 = Path("/root/.pyenv/versions/3.9.18/bin/python3.9")


@pytest.mark.skipif(not PYTHON_39.is_file(), reason="needs a Python 3.9 (pyenv's) besides the system's")
def test_found_builds_for_the_nodes_pythons_the_release_supports(site: Path, wheelhouse: Path) -> None:
    found = [{"python": "found", "endpoint": GCE}]
    result = python_envs(site, wheelhouse, found, python_envs_interpreter_paths={"3.9": str(PYTHON_39)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f'"msg": "python_envs_matrix[0]: Python 3.9 on localhost skipped: globus-compute-endpoint {GCE}'
        ' requires Python >=3.10"'
    ) in result.stdout
    # Once: the default (the matrix's first entry) is not said again.
    assert result.stdout.count("Python 3.9 on localhost skipped") == 1
    assert "Python 3.11 on localhost skipped" not in result.stdout
    assert published(site) == [NEW]
    assert fact(site)["default"] == NEW
    assert fact(site)["version_sets"] == [
        {"name": name, "versions": [GCE], "source": [str(wheelhouse)], "requires_python": {GCE: ">=3.10"}}
        for name in ("python_envs_matrix[0]", "python_envs_default")
    ]


def test_a_list_of_minors_is_an_environment_each(site: Path, wheelhouse: Path) -> None:
    """From the command line as -e JSON, with a version set: one environment per (release, Python).
    This machine has one Python its unprivileged accounts can run (3.11): a second minor in the list
    is looked for, and its absence named, as for any entry of that Python."""
    typed = ["--check", "--tags", "python_envs_build"]
    one = json.dumps({"python_envs_matrix": [{"python": ["3.11"], "newest": 2}]})
    result = python_envs(site, wheelhouse, NEWEST_TWO, ["-e", one, *typed])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'"msg": "would build: {OLD}, {NEW}; would unpublish: nothing"' in result.stdout, result.stdout
    # The default (the matrix's first entry, so a set too) stands for its newest release, and its line says so.
    default = f'"msg": "python_envs_default: {GCE}, the newest of {GCE_PREVIOUS}, {GCE} (from {wheelhouse})"'
    assert default in result.stdout, result.stdout

    two = json.dumps({"python_envs_matrix": [{"python": ["3.11", "3.13"], "newest": 2}]})
    result = python_envs(site, wheelhouse, NEWEST_TWO, ["-e", two, *typed])
    assert result.returncode != 0
    assert '"msg": "python_envs_matrix: no Python 3.13 on localhost (system interpreters); found: python3.11.' in (
        result.stdout
    ), result.stdout
    assert "no Python 3.11" not in result.stdout
    assert not (site / "runtime").exists() and not (site / "facts").exists()


@pytest.mark.parametrize(
    ("python", "line"),
    [
        (["3.11", "3.x"], 'python_envs_matrix: entry {"python": ["3.11", "3.x"], "endpoint": "4.19.0", '),
        ("any", 'python_envs_matrix: entry {"python": "any", "endpoint": "4.19.0", '),
        (3.1, "python_envs_matrix[0].python = 3.1: a number where a string is expected; quote it"),
        ([3.11, 3.1], "python_envs_matrix[0].python[1] = 3.1: a number where a string is expected; quote it"),
    ],
)
def test_a_python_that_is_not_a_minor_a_list_or_found_fails_naming_the_variable(
    site: Path, wheelhouse: Path, python: object, line: str
) -> None:
    result = python_envs(site, wheelhouse, [{"python": python, "endpoint": "4.19.0"}])
    assert result.returncode != 0
    assert line in result.stdout, result.stdout
    if python not in (3.1, [3.11, 3.1]):
        assert 'is not valid: python must be \\"3.X\\" (a string), a list of them, or found,' in result.stdout
    assert not (site / "runtime").exists() and not (site / "facts").exists()
