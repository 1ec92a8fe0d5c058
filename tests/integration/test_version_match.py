"""python_envs_version_match: which site environment serves a client whose SDK version has none of its own.

Two real site environments, Python 3.11 with globus-compute-endpoint 4.18.0 and
4.19.0 (both in the offline wheelhouse), are built by the role's build-env.sh
with uv into one site root; the runtime is laid down by the role three times
over it: `exact` (the default), `minor`, and `minor` with per-user builds. Each
worker starts as worker_init does, run by an unprivileged account, and the test
checks its one line, its status and which endpoint its Python imports.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import role_runner
from accounts import accounts, is_root
from collection_plugins import read_stamp
from test_worker_env_isolation import BUILD_ENV, PYTHON, TIMEOUT, UV, Site, wheelhouse_for_311
from versions import EXTRA_WHEEL as SIX
from versions import GCE, GCE_PREVIOUS

PROBE = "python -c 'import globus_compute_endpoint as g; print(g.__version__)'"
NEW, OLD = f"py3.11-gce{GCE}", f"py3.11-gce{GCE_PREVIOUS}"
# The site's two releases, in the listing a refusal gives.
SITE_HAS = f"site has: {OLD},{NEW}"
# A worker's line after its environment's path: the time, then the notes.
TOOK = r" \d+\.\d{3} ms"

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root to make an unprivileged account"),
    # The site (two uv builds, three role runs) is made once, on one worker.
    pytest.mark.xdist_group("version_match"),
]


def minor_of(version: str) -> str:
    return ".".join(version.split(".")[:2])


def build(site: Site, name: str, endpoint: str) -> None:
    result = subprocess.run(
        ["bash", str(BUILD_ENV), str(UV), str(site.envs), name, "0" * 12, PYTHON, endpoint],
        capture_output=True,
        text=True,
        cwd=site.base,
        env={**site.env(site.base / "root-home"), "BUILD_ENV_NAME": os.environ["BUILD_ENV_NAME"]},
        timeout=TIMEOUT,
    )
    assert (result.returncode, result.stdout) == (0, "built\n"), result.stderr


def deploy(site: Site, runtime: str, **variables: object) -> Path:
    deployed = role_runner.run_role(
        site.base / f"deploy-{runtime}",
        "python_envs",
        {
            "python_envs_runtime_dir": str(site.base / runtime),
            "python_envs_root": str(site.envs),
            "python_envs_owner": "root",
            "python_envs_group": "root",
            "python_envs_uv": str(UV),
            **variables,
        },
        args=["--tags=python_envs_runtime"],
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return site.base / runtime


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-version-match-"))
    base.chmod(0o755)
    s = Site(base)
    try:
        wheelhouse_for_311(s.wheelhouse)
        (s.policy / "uv").mkdir(parents=True)
        (s.policy / "uv" / "uv.toml").write_text(
            f'offline = true\nno-index = true\nfind-links = ["{s.wheelhouse}"]\npython-downloads = "never"\n'
        )
        for runtime, variables in {
            "exact": {"python_envs_user_builds": False},
            "minor": {"python_envs_user_builds": False, "python_envs_version_match": "minor"},
            "minor-user": {"python_envs_user_builds": True, "python_envs_version_match": "minor"},
        }.items():
            (base / f"deploy-{runtime}").mkdir()
            deploy(s, runtime, **variables)
        s.envs.mkdir(exist_ok=True)
        build(s, OLD, GCE_PREVIOUS)
        build(s, NEW, GCE)
        yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def user(site: Site) -> Iterator[tuple[str, Path]]:
    with accounts("matchuser") as homes:
        yield next(iter(homes.items()))


def start(
    site: Site, user: tuple[str, Path], runtime: str, endpoint: str, *requirements: str
) -> subprocess.CompletedProcess[str]:
    """worker_init as the template emits it, then the probe, as the unprivileged account in a job's shell."""
    login, home = user
    account = pwd.getpwnam(login)
    quoted = " ".join("'" + r + "'" for r in requirements)
    script = f"\\builtin source {site.base / runtime}/worker-env.sh 3.11 '{endpoint}' {quoted} || exit $?\n{PROBE}\n"
    return subprocess.run(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "bash", "-c", script],
        capture_output=True,
        text=True,
        env=site.env(home),
        cwd=home,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT * 3,
    )


def served(result: subprocess.CompletedProcess[str], site: Site, name: str, note: str = "") -> None:
    """The worker ran in the site environment `name`, with its one line (and that note), and imports its endpoint."""
    assert (result.returncode, result.stdout) == (0, name.rpartition("gce")[2] + "\n"), result.stderr
    assert re.fullmatch(
        f"worker-env: {name} site {re.escape(str(site.envs / name))}{TOOK}{re.escape(note)}\n", result.stderr
    ), result.stderr


def refused(result: subprocess.CompletedProcess[str], endpoint: str) -> None:
    """Today's line when the site has no environment and per-user builds are off."""
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {endpoint}; "
        f"{SITE_HAS}; per-user builds are off\n"
    )


def test_an_sdk_4_19_7_client_is_served_by_4_19_0_under_minor_and_its_line_says_so(
    site: Site, user: tuple[str, Path]
) -> None:
    assert minor_of(GCE) == "4.19" and GCE == "4.19.0"
    served(start(site, user, "minor", "4.19.7"), site, NEW, "; matched by minor: the client sent 4.19.7")
    # Nothing was built for the user: the site environment came first.
    assert not (user[1] / ".globus_compute").exists()


def test_each_client_gets_the_site_release_of_its_own_minor(site: Site, user: tuple[str, Path]) -> None:
    assert minor_of(GCE_PREVIOUS) == "4.18"
    served(start(site, user, "minor", "4.18.3"), site, OLD, "; matched by minor: the client sent 4.18.3")
    served(start(site, user, "minor", "4.19.7"), site, NEW, "; matched by minor: the client sent 4.19.7")
    # A pre-release client of 4.19 is a 4.19 client.
    served(start(site, user, "minor", "4.19.1rc1"), site, NEW, "; matched by minor: the client sent 4.19.1rc1")
    # Its own environment, when the site has it, without a note.
    served(start(site, user, "minor", GCE_PREVIOUS), site, OLD)
    served(start(site, user, "minor", GCE), site, NEW)


def test_a_major_version_never_crosses(site: Site, user: tuple[str, Path]) -> None:
    served(start(site, user, "minor", "4.19.7"), site, NEW, "; matched by minor: the client sent 4.19.7")
    # Same minor number, another major; and the next major's first release.
    for endpoint in ("5.19.0", "5.0.0", "3.19.2", "4.20.0"):
        refused(start(site, user, "minor", endpoint), endpoint)
    # With per-user builds on, a 5.0.0 client gets one (which this offline
    # wheelhouse cannot make), never the site's 4.19.0.
    result = start(site, user, "minor-user", "5.0.0")
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith("worker-env: no environment for Python 3.11 with globus-compute-endpoint 5.0.0: ")
    assert result.stderr.endswith(f"; {SITE_HAS}\n"), result.stderr
    assert "matched by minor" not in result.stderr


def test_under_exact_nothing_changes(site: Site, user: tuple[str, Path]) -> None:
    assert "WORKER_ENV_VERSION_MATCH=exact\n" in (site.base / "exact" / "worker-env.conf").read_text()
    assert "WORKER_ENV_VERSION_MATCH=minor\n" in (site.base / "minor" / "worker-env.conf").read_text()
    refused(start(site, user, "exact", "4.19.7"), "4.19.7")
    refused(start(site, user, "exact", "4.18.3"), "4.18.3")
    served(start(site, user, "exact", GCE), site, NEW)


def test_a_users_requirements_go_on_top_of_the_site_release_of_the_clients_minor(
    site: Site, user: tuple[str, Path]
) -> None:
    envs = user[1] / ".globus_compute" / "envs"
    try:
        # No site environment for a 4.19.7 client with packages: without one it would
        # build 4.19.7, which this wheelhouse does not have.
        served(start(site, user, "minor-user", "4.19.7"), site, NEW, "; matched by minor: the client sent 4.19.7")
        result = start(site, user, "minor-user", "4.19.7", SIX)
        assert (result.returncode, result.stdout) == (0, f"{GCE}\n"), result.stderr
        (made,) = sorted(p.name for p in envs.iterdir() if not p.name.startswith("."))
        assert re.fullmatch(f"{NEW}-req-[0-9a-f]{{16}}", made), made
        assert re.fullmatch(
            f"worker-env: {made} built {re.escape(str(envs / made))}{TOOK}; matched by minor: the client sent 4.19.7\n",
            result.stderr,
        ), result.stderr
        stamp = read_stamp((envs / made / ".ready").read_text())
        assert (stamp["endpoint"], stamp["base"]) == (GCE, str(site.envs / NEW))
        # The next start finds it ready, and says the same.
        again = start(site, user, "minor-user", "4.19.7", SIX)
        assert (again.returncode, again.stdout) == (0, f"{GCE}\n"), again.stderr
        assert re.fullmatch(
            f"worker-env: {made} user {re.escape(str(envs / made))}{TOOK}; matched by minor: the client sent 4.19.7\n",
            again.stderr,
        ), again.stderr
    finally:
        shutil.rmtree(user[1] / ".globus_compute", ignore_errors=True)


def test_only_what_the_site_published_serves_by_minor(site: Site, user: tuple[str, Path]) -> None:
    """Newer-looking entries that build-env.sh did not publish, or that are not ready or runnable for this
    account, are never taken; forged clients are refused as before."""
    outside = site.base / "outside"
    real = (site.envs / NEW).resolve()
    planted = {
        # A name whose version is no release.
        "py3.11-gce4.19.x": real,
        "py3.11-gce4.19.9rc1": real,
        "py3.11-gce4.19.09": real,
        # A link to somewhere outside the site's builds, and to another name's build.
        "py3.11-gce4.19.8": outside,
        "py3.11-gce4.19.6": real,
    }
    published = ["py3.11-gce4.19.4", "py3.11-gce4.19.3"]
    private = site.base / "private"
    shutil.copytree(real, outside, symlinks=True)
    try:
        for name, target in planted.items():
            (site.envs / name).symlink_to(target)
        # A directory of its own, ready and runnable, not a link to a build.
        shutil.copytree(real, site.envs / "py3.11-gce4.19.5", symlinks=True)
        # Beside the two above, a build of their name that they do not point at;
        # and a link to a build of its name that is itself a link elsewhere.
        for name in ("py3.11-gce4.19.8", "py3.11-gce4.19.5"):
            shutil.copytree(real, site.envs / ".builds" / f"{name}-0", symlinks=True)
        (site.envs / ".builds" / "py3.11-gce4.19.11-0").symlink_to(outside)
        (site.envs / "py3.11-gce4.19.11").symlink_to(".builds/py3.11-gce4.19.11-0")
        # Ready, runnable and linked as the role links, but not named as build-env.sh
        # names a build (NAME-SPEC_HASH.HOST-PID): a directory put there by hand.
        shutil.copytree(real, site.envs / ".builds" / "py3.11-gce4.19.12-0", symlinks=True)
        (site.envs / "py3.11-gce4.19.12").symlink_to(".builds/py3.11-gce4.19.12-0")
        # Published as the role publishes, but not ready; and ready, with an
        # interpreter this account cannot run (under a directory only root reads).
        for name in published:
            shutil.copytree(real, site.envs / ".builds" / f"{name}-0", symlinks=True)
            (site.envs / name).symlink_to(f".builds/{name}-0")
        (site.envs / ".builds" / "py3.11-gce4.19.4-0" / ".ready").unlink()
        private.mkdir(mode=0o700)
        (private / "python3").symlink_to(PYTHON)
        (site.envs / ".builds" / "py3.11-gce4.19.3-0" / "bin" / "python").unlink()
        (site.envs / ".builds" / "py3.11-gce4.19.3-0" / "bin" / "python").symlink_to(private / "python3")
        for name in [*planted, "py3.11-gce4.19.5"]:
            assert (site.envs / name / ".ready").is_file() and os.access(site.envs / name / "bin" / "python", os.X_OK)
        served(start(site, user, "minor", "4.19.7"), site, NEW, "; matched by minor: the client sent 4.19.7")
        # That one is refused by name as today, for the account's sake.
        result = start(site, user, "minor", "4.19.3")
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr.startswith(
            f"worker-env: site environment {site.envs}/py3.11-gce4.19.3 is stamped ready but "
        ), result.stderr
        # A name asked for exactly is served as today, as the site put it there.
        result = start(site, user, "minor", "4.19.5")
        assert result.returncode == 0 and result.stderr.startswith("worker-env: py3.11-gce4.19.5 site "), result.stderr
        # Forged versions are refused before any match, in today's line.
        for forged in ("4.19.x", "4.19.0; rm -rf /", "4.19.*", "4.19", "04.19.7 ", "4.19.7/../../x"):
            result = start(site, user, "minor", forged)
            assert (result.returncode, result.stdout) == (2, ""), (forged, result.stderr)
            assert result.stderr == (
                f"worker-env: refusing globus-compute-endpoint version '{forged}': expected a release such as 4.19.0\n"
            )
    finally:
        for name in [*planted, *published, "py3.11-gce4.19.5", "py3.11-gce4.19.11", "py3.11-gce4.19.12"]:
            for path in (site.envs / name, site.envs / ".builds" / f"{name}-0"):
                if path.is_symlink():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
