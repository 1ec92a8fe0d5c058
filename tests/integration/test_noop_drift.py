"""A no-op site.yml costs a few module calls, and every kind of drift is still repaired by the next run.

site.yml is run for real as root on this machine: uv into a test account's
home (user scope, from the offline artifact store), the environments and a
multi-user endpoint under one private directory every user can traverse, all
built offline (root builds with the toolchain's uv and an offline policy).
After a first run, a second one changes nothing and runs few modules; then
every kind of drift is made by hand at once, a check run reports it (and
changes nothing), the next run repairs each one, and a last run is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from accounts import accounts
from artifacts import artifacts, offline_policy
from collection_plugins import read_stamp
from executions import by_role, changed, count
from role_runner import ROOT, run_playbook

PYTHON = Path("/usr/bin/python3.11")
UV_VERSION = "0.13.9"
OTHER_UV = "0.13.8"
# A no-op run's module executions on this host: 77 before the probes, 24 with
# one probe per role, 7 with the interpreters looked up apart; now the facts,
# one probe per role (python_envs' finds the interpreters too), the uv
# account's passwd entry (root installs into another account's home) and, in
# the first play, one look at the endpoint's interpreter (its check runs again
# only when the interpreter changed).
NOOP_MODULES = 6
WORKER_START = "Start a worker for each site environment as the endpoint would"
NO_WORKER = (
    "no worker started: the endpoint and its environments were in place, and a run that deploys them in full"
    " proves their workers; -e hpc_gc_report=always starts them anyway"
)
CHECK_ENDPOINT_PYTHON = "Run the endpoint's interpreter as an unprivileged account"
# The tasks a no-op evaluates, run or skipped, by role ("play" for the
# playbooks' own): Ansible forks a worker even to skip one. 109 before the
# tasks that skip together were one include each and each role's checks one
# assert: play 16, uv 19, python_envs 38 and _common 3, endpoint 33. uv's values that depend on each other
# are checked in the first play too (its include and its assert, on the controller: no module runs).
NOOP_TASKS = {"play": 11, "uv": 13, "python_envs": 24, "endpoint": 20}

# Each run sees the machine's system trees through overlays of its own (private_system): uv's
# stage under /var is this test's alone.
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not PYTHON.exists(), reason="needs root and the system's python3.11"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, str, Path]]:
    """(pytest's directory, the site every user can traverse, the uv account, its home)."""
    site = Path(tempfile.mkdtemp(prefix="hpc-gc-noop.", dir="/tmp"))
    site.chmod(0o755)
    # The endpoint's interpreter, in a directory of the site's that the test can change.
    endpoint_python(site).parent.mkdir(mode=0o755)
    endpoint_python(site).symlink_to(PYTHON)
    try:
        with accounts("noop") as made:
            [(login, home)] = made.items()
            yield tmp_path, site, login, home
    finally:
        shutil.rmtree(site)


def endpoint_python(site: Path) -> Path:
    return site / "python" / PYTHON.name


def variables(site: Path, login: str) -> dict[str, object]:
    store = artifacts()
    uv = str(ROOT / ".venv" / "bin" / "uv")
    return {
        "uv_scope": "user",
        "uv_users": [login],
        "uv_source": "controller",
        "uv_controller_archive": str(next((store / "uv" / UV_VERSION).glob("*.whl"))),
        "uv_controller_cache_dir": str(site / "uv-cache"),
        "uv_version": UV_VERSION,
        "uv_config": {
            "offline": True,
            "no-index": True,
            "find-links": [str(store / "wheelhouse")],
            "python-downloads": "never",
        },
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_uv": uv,
        # Not named: the environments' python3.11 is looked up on the node's own PATH (/usr/bin).
        "endpoint_owner": "root",
        "endpoint_mode": "multi_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_uv": uv,
        "endpoint_python": str(endpoint_python(site)),
        "endpoint_service": False,
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        "endpoint_identity_mapping_samples": [{"identity": {"username": "nobody@example.org"}, "user": "nobody"}],
        "hpc_gc_report_user": "nobody",
    }


def site_run(
    tmp: Path, site: Path, login: str, *args: str, env: dict[str, str] | None = None
) -> tuple[dict[str, int], str]:
    # The machine's /var (uv's stage) and /etc stay out of it: other tests stage other policies there.
    result = run_playbook(
        tmp,
        "hpc.globus_compute.site",
        variables(site, login),
        list(args),
        {**offline_policy(site), **(env or {})},
        private_system=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    recap = re.search(r"^localhost +: (.*)$", result.stdout, re.M)
    assert recap, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap[1])}, output


def changed_tasks(output: str) -> list[str]:
    """The tasks that reported a change, once each time a task ran (this one host)."""
    return [task for _, task in changed(output)]


def evaluated_tasks(output: str) -> dict[str, int]:
    """How many tasks a run evaluated (ran or skipped), by role; "play" for the playbooks' own."""
    roles = re.findall(r"^TASK \[(?:hpc\.globus_compute\.(\w+) : )?.*\] \*", output, re.MULTILINE)
    return {role or "play": roles.count(role) for role in dict.fromkeys(roles)}


def state(path: Path) -> str | None:
    """A file's sha256, a link's target, or None when nothing is there."""
    if path.is_symlink():
        return "-> " + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def other_uv() -> bytes:
    with tarfile.open(artifacts() / "release" / OTHER_UV / "uv-x86_64-unknown-linux-gnu.tar.gz") as tar:
        member = tar.extractfile("uv-x86_64-unknown-linux-gnu/uv")
        assert member
        return member.read()


def drifts(site: Path, home: Path) -> dict[str, tuple[Path, Callable[[Path], object]]]:
    """Each kind of drift: the path it changes, and how."""
    return {
        "runtime file": (site / "runtime" / "worker-env.sh", lambda p: p.write_text(p.read_text() + "# edited\n")),
        "endpoint file": (site / "gc" / "hpc" / "user_environment.yaml", lambda p: p.write_text("X: 1\n")),
        "identity mapping": (site / "gc" / "hpc" / "identity_mapping.json", lambda p: p.write_text("[]\n")),
        "site environment": (site / "runtime" / "envs" / "py3.11-gce4.19.0", lambda p: p.unlink()),
        "ready stamp": (site / "install" / "globus-compute-endpoint" / ".ready", lambda p: p.unlink()),
        "uv binary": (home / ".local" / "bin" / "uv", lambda p: p.write_bytes(other_uv())),
        "uv policy": (home / ".config" / "uv" / "uv.toml", lambda p: p.write_text("offline = false\n")),
    }


def test_a_noop_run_is_cheap_and_every_drift_is_repaired_by_the_next_run(site: tuple[Path, Path, str, Path]) -> None:
    tmp, base, login, home = site
    first, _ = site_run(tmp, base, login)
    assert first["changed"] > 0
    # At -vvv, which logs each command a module execution runs (the other runs need not pay for it),
    # on Ansible's own strategy: Mitogen's (HPC_GC_STRATEGY) runs modules in its own processes and logs none.
    recap, output = site_run(tmp, base, login, "-vvv", env={"ANSIBLE_STRATEGY": "linear"})
    assert recap["changed"] == 0, changed_tasks(output)
    found = count(output)
    assert found.modules["localhost"] == NOOP_MODULES, by_role(found, "localhost")
    # The installs, the check and the writes were skipped: each role looked once (uv and its
    # account's passwd entry; the endpoint, and its interpreter in the first play).
    roles = by_role(found, "localhost")
    assert roles == {"play": 1, "uv": 2, "python_envs": 1, "endpoint": 2}, roles
    assert evaluated_tasks(output) == NOOP_TASKS, evaluated_tasks(output)
    # Nothing was deployed, so the closing report started no worker, and says so.
    assert ("localhost", WORKER_START) not in found.tasks, found.tasks
    assert f'"msg": "{NO_WORKER}"' in output, output[-3000:]
    # The first run checked the endpoint's interpreter as it still is: this one did not run it again.
    assert not [task for _, task in found.tasks if task.endswith(CHECK_ENDPOINT_PYTHON)], found.tasks

    kinds = drifts(base, home)
    wanted = {kind: state(path) for kind, (path, _) in kinds.items()}
    for path, change in kinds.values():
        change(path)
    # An owner alone: the endpoint's wrapper given to another account, who could then change what
    # every user of the endpoint runs.
    wrapper = base / "bin" / "globus-compute-endpoint"
    os.chown(wrapper, 65534, -1)
    drifted = {kind: state(path) for kind, (path, _) in kinds.items()}
    assert all(drifted[kind] != wanted[kind] for kind in kinds), drifted

    checked, output = site_run(tmp, base, login, "--check", "--diff")
    # Each kind of drift is reported by the task that repairs it, and nothing else is.
    repairs = {
        "runtime file": "hpc.globus_compute.python_envs : Install the checked runtime",
        "endpoint file": f"hpc.globus_compute.endpoint : Write the endpoint's files into {base / 'gc' / 'hpc'}",
        "identity mapping": f"hpc.globus_compute.endpoint : Write the endpoint's files into {base / 'gc' / 'hpc'}",
        # Both builds run through _common's entry point: python_envs' first, then the endpoint's.
        "site environment": "hpc.globus_compute._common : Run build-env.sh: build",
        "ready stamp": "hpc.globus_compute._common : Run build-env.sh: build",
        "uv binary": "hpc.globus_compute.uv : Install uv, uvx and the policy into each home",
        "uv policy": "hpc.globus_compute.uv : Install uv, uvx and the policy into each home",
    }
    assert repairs.keys() == kinds.keys()
    # One task for each kind, but the endpoint's two files share one, and so do uv's binary and policy.
    shared = {"identity mapping": "endpoint file", "uv policy": "uv binary"}
    owner = "hpc.globus_compute.endpoint : Install the globus-compute-endpoint wrapper"
    wanted_tasks = sorted([*(task for kind, task in repairs.items() if kind not in shared), owner])
    assert sorted(changed_tasks(output)) == wanted_tasks, output[-3000:]
    assert checked["changed"] == len(wanted_tasks), checked
    assert {kind: state(path) for kind, (path, _) in kinds.items()} == drifted, "check mode changed the node"
    assert wrapper.stat().st_uid == 65534
    # The environment's link is gone, not its ready build: the real run links it again, and builds nothing.
    assert '"msg": "would build: nothing; would link: py3.11-gce4.19.0; would unpublish: nothing"' in output, output

    repaired, output = site_run(tmp, base, login)
    assert repaired["changed"] > 0, output[-3000:]
    # What was repaired was proved by a worker start, which says what it got.
    assert "as nobody: worker-env: py3.11-gce4.19.0 site" in output, output[-3000:]
    assert NO_WORKER not in output
    now = {kind: state(path) for kind, (path, _) in kinds.items()}
    for kind in ("runtime file", "endpoint file", "identity mapping", "uv binary", "uv policy"):
        assert now[kind] == wanted[kind], kind
    assert wrapper.stat().st_uid == 0
    ran = subprocess.run([str(kinds["uv binary"][0]), "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.startswith(f"uv {UV_VERSION} ")
    # Rebuilt: published again, and stamped ready.
    env = kinds["site environment"][0]
    assert read_stamp((env / ".ready").read_text())["name"] == "py3.11-gce4.19.0"
    assert read_stamp(kinds["ready stamp"][0].read_text())["name"] == "globus-compute-endpoint"

    # Modes alone: the environments' record and its directory made private by hand, uv closed to
    # the users who run it, and the runtime's directory closed to the users whose workers source
    # it. Check mode says so, as the real run repairs them; both name those tasks only: nothing
    # else was left to repair.
    record, runtime_dir = base / "facts" / "hpc_globus_compute_envs.fact", base / "runtime"
    record.chmod(0o600)
    record.parent.chmod(0o700)
    runtime_dir.chmod(0o700)
    kinds["uv binary"][0].chmod(0o700)
    modes = [
        "hpc.globus_compute.uv : Install uv, uvx and the policy into each home",
        "hpc.globus_compute.python_envs : Record the environments as a local fact",
        "hpc.globus_compute.python_envs : Install the checked runtime",
    ]
    checked, output = site_run(tmp, base, login, "--check")
    assert changed_tasks(output) == modes, output[-3000:]
    assert (record.stat().st_mode & 0o777, runtime_dir.stat().st_mode & 0o777) == (0o600, 0o700)
    assert record.parent.stat().st_mode & 0o777 == 0o700
    assert '"msg": "no worker started: check mode starts none"' in output, output[-3000:]
    repaired, output = site_run(tmp, base, login)
    assert changed_tasks(output) == modes, output[-3000:]
    assert (record.stat().st_mode & 0o777, runtime_dir.stat().st_mode & 0o777) == (0o644, 0o755)
    assert record.parent.stat().st_mode & 0o777 == 0o755
    assert kinds["uv binary"][0].stat().st_mode & 0o777 == 0o755

    # A directory of builds others can write (any of them could swap a build): build-env.sh refuses
    # it, so a run with nothing to build refuses it too, and changes nothing.
    for builds, refused in [
        (base / "runtime" / "envs" / ".builds", "python_envs_root: {} is writable by its group or others"),
        (base / "install" / ".builds", "{} is writable by its group or others"),
    ]:
        mode = builds.stat().st_mode & 0o7777
        builds.chmod(0o777)
        before = {kind: state(path) for kind, (path, _) in kinds.items()}
        result = run_playbook(tmp, "hpc.globus_compute.site", variables(base, login), [], offline_policy(base), True)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert refused.format(builds) in output, output[-3000:]
        assert {kind: state(path) for kind, (path, _) in kinds.items()} == before
        builds.chmod(mode)

    # Two damaged builds, each with its stamp in place: the endpoint's command gone from its published
    # build, and an environment's stamp edited by hand into one no reader takes (a stray line). Check
    # mode says it would build both; the real run builds both anew (it used to relink the endpoint's
    # damaged build, and fail).
    command = base / "install" / "globus-compute-endpoint" / "bin" / "globus-compute-endpoint"
    command.unlink()
    stamp = kinds["site environment"][0] / ".ready"
    stamp.write_text(stamp.read_text() + "x\n")
    builds = ["hpc.globus_compute._common : Run build-env.sh: build"] * 2
    checked, output = site_run(tmp, base, login, "--check")
    assert changed_tasks(output) == builds, output[-3000:]
    assert not command.exists()
    assert stamp.read_text().endswith("\nx\n")
    repaired, output = site_run(tmp, base, login)
    assert builds[0] in changed_tasks(output), output[-3000:]
    assert command.is_file()
    assert read_stamp(stamp.read_text())["name"] == "py3.11-gce4.19.0"

    # A changed interpreter is checked again, before any role builds: a directory above it
    # closed to users, then the interpreter itself replaced by one only root may run.
    python = endpoint_python(base)
    private = base / "private"
    private.mkdir(mode=0o700)
    shutil.copy2(PYTHON, private / PYTHON.name)
    for change, undo in [
        (lambda: python.parent.chmod(0o700), lambda: python.parent.chmod(0o755)),
        (lambda: (python.unlink(), python.symlink_to(private / PYTHON.name)), lambda: None),
    ]:
        change()
        before = {kind: state(path) for kind, (path, _) in kinds.items()}
        result = run_playbook(tmp, "hpc.globus_compute.site", variables(base, login), [], offline_policy(base), True)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert f"endpoint_python: {python} cannot be run by nobody: Permission denied; nothing was built." in output
        assert "PLAY [Roll out" not in result.stdout, output[-3000:]
        assert {kind: state(path) for kind, (path, _) in kinds.items()} == before
        undo()

    # The environments' python3.11 is looked up on the node's own PATH by python_envs' one probe.
    # One put in front of it (in /usr/local/bin, in this run's private /usr) that only root may run
    # is refused before any build, in check mode too; once users can run it, the environments are
    # rebuilt on it; once it is gone, on the one before; then a run is a no-op again.
    python.unlink()
    python.symlink_to(PYTHON)
    env = kinds["site environment"][0]
    built_on = read_stamp((env / ".ready").read_text())["spec"]
    front = tmp / "system" / "upper" / "usr" / "local" / "bin" / PYTHON.name
    front.parent.mkdir(parents=True, exist_ok=True)
    front.symlink_to(private / PYTHON.name)
    before = {kind: state(path) for kind, (path, _) in kinds.items()}
    for args in (["--check"], []):
        result = run_playbook(tmp, "hpc.globus_compute.site", variables(base, login), args, offline_policy(base), True)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        refused = (
            f"python_envs_interpreter_source: /usr/local/bin/{PYTHON.name} cannot be run by nobody: Permission denied"
        )
        assert f"{refused}; nothing was built." in output, output[-3000:]
        assert {kind: state(path) for kind, (path, _) in kinds.items()} == before
    front.unlink()
    front.symlink_to(PYTHON)
    _, output = site_run(tmp, base, login)
    assert "hpc.globus_compute._common : Run build-env.sh: build" in changed_tasks(output), changed_tasks(output)
    assert read_stamp((env / ".ready").read_text())["spec"] != built_on
    front.unlink()
    _, output = site_run(tmp, base, login)
    assert "hpc.globus_compute._common : Run build-env.sh: build" in changed_tasks(output), changed_tasks(output)
    assert read_stamp((env / ".ready").read_text())["spec"] == built_on
    last, output = site_run(tmp, base, login)
    assert last["changed"] == 0, changed_tasks(output)
