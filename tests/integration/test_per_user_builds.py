"""Per-user builds when locks hold, do not exclude or fail; killed builders; job shells without HOME.

A real site environment (Python 3.11, globus-compute-endpoint 4.19.0) is built
by the role's build-env.sh from the offline wheelhouse, and the runtime is laid
down by the role with uv behind a wrapper that logs each call (and, on demand,
slows `pip install` down so that a storm of starts arrives during one build, or
SIGKILLs the builder at a chosen point). Workers start as worker_init does and
ask for `six==1.17.0` on top of the site environment.

Locks that do not exclude (Lustre `localflock`, NFS `nolock`, across nodes) are
simulated on one node by a `flock` on PATH that reports success without
locking; locks that fail by one that prints what util-linux flock prints for
ENOSYS and exits with its status for it (65).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import role_runner
from accounts import is_root
from test_worker_env_isolation import GCE, NAME, UV, Site, build_site, wheelhouse_for_311
from versions import EXTRA_WHEEL as SIX

PROBE = "python -c 'import six, globus_compute_endpoint as g; print(six.__version__, g.__version__)'"
# A start or a build takes seconds; one that hangs must not hang the suite.
TIMEOUT = 120
STORM = 8

UV_WRAPPER = """#!/bin/bash
echo "$1 $2" >>{base}/uv-calls
point=$(cat {base}/kill-at 2>/dev/null) || point=
if [[ "$1 $2" == "pip install" && -e {base}/slow ]]; then sleep 4; fi
if [[ "$1 $2" == "pip install" && -e {base}/vanish ]]; then
  # The build's directory goes as uv ends (a user's rm, a filesystem's loss).
  {uv} "$@"; rc=$?; rm -rf "${{5%/bin/python}}"; exit $rc
fi
if [[ "$1 $2" == "pip install" && -e {base}/unimportable ]]; then
  # Installed, yet its endpoint does not import (a broken wheel, a full disk).
  {uv} "$@"; rc=$?; rm -rf "${{5%/bin/python}}"/lib/python*/site-packages/globus_compute_endpoint; exit $rc
fi
if [[ -n $point && "$1 $2" == "$point"* ]]; then
  # The builder (worker-env-build) runs uv from a subshell: both go, as in a job's end.
  read -r _ _ _ builder _ </proc/$PPID/stat
  kill -KILL "$builder" "$PPID"
  exit 137
fi
exec {uv} "$@"
"""
# Called by the builder to publish its build, after the ready stamp: killing it there.
LN_WRAPPER = """#!/bin/bash
if [[ $(cat {base}/kill-at 2>/dev/null) == ln ]]; then kill -KILL "$PPID"; exit 137; fi
exec /bin/ln "$@"
"""
# Each call is logged with its caller, the build program of one start.
NOT_EXCLUDING = (
    '#!/bin/sh\n# Takes no lock and says it did: a lock that excludes nothing.\necho "$PPID $*" >>{log}\nexit 0\n'
)
FAILING = (
    "#!/bin/bash\n# What util-linux flock does where flock(2) gives ENOSYS.\n"
    'echo "$PPID $*" >>{log}\necho "flock: ${{!#}}: Function not implemented" >&2\nexit 65\n'
)


@pytest.fixture(scope="module")
def site() -> Site:
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-per-user-"))
    base.chmod(0o755)
    s = Site(base)
    wheelhouse_for_311(s.wheelhouse)
    (s.policy / "uv").mkdir(parents=True)
    (s.policy / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{s.wheelhouse}"]\npython-downloads = "never"\n'
    )
    wrapper = base / "uv"
    wrapper.write_text(UV_WRAPPER.format(base=base, uv=UV))
    wrapper.chmod(0o755)
    for kind, text in {"not-excluding": NOT_EXCLUDING, "failing": FAILING}.items():
        (base / kind).mkdir()
        # Every call is logged, so that a storm can show the shim was the flock it ran.
        (base / kind / "flock").write_text(text.format(log=base / kind / "calls"))
        (base / kind / "flock").chmod(0o755)
    (base / "kill-ln").mkdir()
    (base / "kill-ln" / "ln").write_text(LN_WRAPPER.format(base=base))
    (base / "kill-ln" / "ln").chmod(0o755)
    role_runner_result = role_runner.run_role(
        base,
        "python_envs",
        {
            "python_envs_runtime_dir": str(s.runtime),
            "python_envs_root": str(s.envs),
            "python_envs_owner": "root",
            "python_envs_group": "root",
            "python_envs_uv": str(wrapper),
            "python_envs_user_builds": True,
            "python_envs_user_envs_max": 2,
        },
        args=["--tags=python_envs_runtime"],
    )
    assert role_runner_result.returncode == 0, role_runner_result.stdout + role_runner_result.stderr
    s.envs.mkdir(exist_ok=True)
    built = build_site(s, base, s.env(base / "root-home"))
    assert built.returncode == 0, built.stderr
    yield s
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def home(site: Site, tmp_path: Path) -> Path:
    for name in ("uv-calls", "kill-at", "slow", "vanish", "unimportable"):
        (site.base / name).unlink(missing_ok=True)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=site.base))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def envs_of(home: Path) -> Path:
    return home / ".globus_compute" / "envs"


def init(site: Site, *args: str) -> str:
    quoted = " ".join("'" + a + "'" for a in args)
    return f"\\builtin source {site.runtime}/worker-env.sh 3.11 {GCE} {quoted} || exit $?"


def spawn(site: Site, home: Path, script: str, path: str = "/usr/bin:/bin") -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=site.env(home, PATH=path),
        cwd=home,
        stdin=subprocess.DEVNULL,
        # A group of its own: a start that hangs goes with everything it ran.
        start_new_session=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Each one's outcome; a start that does not end in time fails the test, and none is left running."""
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.communicate()
    return results


def run(site: Site, home: Path, script: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    return finish([spawn(site, home, script, path)])[0]


def line_of(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("worker-env: "), result.stderr
    return lines[0]


def uv_calls(site: Site) -> list[str]:
    calls = site.base / "uv-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def storm(site: Site, home: Path, path: str) -> tuple[list[subprocess.CompletedProcess[str]], float]:
    (site.base / "slow").touch()
    began = time.monotonic()
    results = finish([spawn(site, home, f"{init(site, SIX)}\n{PROBE}", path) for _ in range(STORM)])
    return results, time.monotonic() - began


def builds_of(home: Path) -> tuple[str, list[str]]:
    """The user's one environment: its name, and every build of it (each must be complete)."""
    envs = envs_of(home)
    (link,) = [p for p in envs.iterdir() if p.name.startswith(f"{NAME}-req-")]
    builds = sorted((envs / ".builds" / link.name).iterdir())
    for build in builds:
        assert (build / ".ready").is_file(), build
    return link.name, [b.name for b in builds]


def test_a_storm_with_coherent_locks_makes_one_build(site: Site, home: Path) -> None:
    results, _ = storm(site, home, "/usr/bin:/bin")
    assert [(r.returncode, r.stdout) for r in results] == [(0, f"1.17.0 {GCE}\n")] * STORM
    hows = sorted(line_of(r).split()[2] for r in results)
    assert hows == ["built"] + ["waited"] * (STORM - 1)
    assert [c for c in uv_calls(site) if c == "venv --quiet"] == ["venv --quiet"]
    name, builds = builds_of(home)
    assert os.readlink(envs_of(home) / name) == f".builds/{name}/{builds[0]}"
    assert sorted(p.name for p in envs_of(home).iterdir()) == sorted([".builds", f".{name}.lock", name])


@pytest.mark.parametrize("locks", ["not-excluding", "failing"])
def test_a_storm_without_working_locks_starts_every_worker(site: Site, home: Path, locks: str) -> None:
    """Duplicate builds are allowed; every worker runs in a complete environment, none fails or loops."""
    calls = site.base / locks / "calls"
    calls.unlink(missing_ok=True)
    results, took = storm(site, home, f"{site.base / locks}:/usr/bin:/bin")
    # Each start's build program went through the shim, for the build
    # marker, without waiting (it is never told the lock is held). A lock
    # that fails sends it on at once: one call. One that excludes nothing
    # takes one more per round it is sent back (three rounds at most).
    by_caller: dict[str, list[str]] = {}
    for line in calls.read_text().splitlines():
        caller, args = line.split(" ", 1)
        by_caller.setdefault(caller, []).append(args)
    assert len(by_caller) == STORM, by_caller
    for args in by_caller.values():
        assert all(re.fullmatch(r"-x -E 75 -n \d+", a) for a in args), by_caller
        assert len(args) == 1 or (locks == "not-excluding" and len(args) <= 3), by_caller
    assert [(r.returncode, r.stdout) for r in results] == [(0, f"1.17.0 {GCE}\n")] * STORM, [r.stderr for r in results]
    lines = [line_of(r) for r in results]
    assert {line.split()[2] for line in lines} <= {"built", "waited"}
    name, builds = builds_of(home)
    assert builds and os.readlink(envs_of(home) / name).split("/")[-1] in builds
    # A start says `built` only for a build it published (and that is kept);
    # one that found another's published first dropped its own and says `waited`.
    assert len(builds) == [line.split()[2] for line in lines].count("built"), (builds, lines)
    # A start records its time, and says nothing of locks: nothing rests on them.
    assert (envs_of(home) / f".{name}.lock").is_file()
    assert not [line for line in lines if "lock" in line], lines
    if locks == "failing":
        # No wait on a lock that fails: the builds run side by side.
        assert took < TIMEOUT / 2


@pytest.mark.parametrize("point", ["venv", "pip install", "ln"])
def test_a_killed_builder_is_never_used_and_the_next_start_cleans_up(site: Site, home: Path, point: str) -> None:
    path = f"{site.base / 'kill-ln'}:/usr/bin:/bin"
    (site.base / "kill-at").write_text(point)
    killed = run(site, home, f"{init(site, SIX)}\n{PROBE}", path)
    assert killed.returncode == 1 and killed.stdout == ""
    assert line_of(killed).startswith(
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and {SIX}: "
    )
    envs = envs_of(home)
    (left,) = [p.name for p in (envs / ".builds").iterdir()]
    (partial,) = (envs / ".builds" / left).iterdir()
    # Never published: no link; complete only when killed after its stamp.
    assert not (envs / left).exists()
    assert (partial / ".ready").exists() == (point == "ln")
    (site.base / "kill-at").unlink()
    again = run(site, home, f"{init(site, SIX)}\n{PROBE}", path)
    assert (again.returncode, again.stdout) == (0, f"1.17.0 {GCE}\n"), again.stderr
    assert line_of(again).split()[1:3] == [left, "built"]
    name, builds = builds_of(home)
    # A partial build is removed; a complete one is published as it is.
    assert name == left and len(builds) == 1 and (builds == [partial.name]) == (point == "ln")
    assert os.readlink(envs / name) == f".builds/{name}/{builds[0]}"
    assert sorted(p.name for p in envs.iterdir()) == sorted([".builds", f".{name}.lock", name])


HOMES = {"unset": None, "empty": "", "relative": "home", "root": "/", "root-twice": "//", "root-thrice": "///"}


@pytest.mark.parametrize("value", HOMES.values(), ids=HOMES.keys())
@pytest.mark.parametrize("args", [[SIX], []], ids=["requirements", "no-site-env"])
def test_without_a_home_one_line_and_no_build(site: Site, tmp_path: Path, value: str | None, args: list[str]) -> None:
    if not args:
        # No site environment for the pair: a per-user build would be needed.
        runtime = tmp_path / "runtime"
        shutil.copytree(site.runtime, runtime)
        conf = runtime / "worker-env.conf"
        conf.write_text(conf.read_text().replace(str(site.envs), str(tmp_path / "none")))
    else:
        runtime = site.runtime
    assert not Path("/.globus_compute").exists()
    env = {"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(site.policy)}
    if value is not None:
        env["HOME"] = value
    quoted = " ".join("'" + a + "'" for a in args)
    script = f"set -euo pipefail\n\\builtin source {runtime}/worker-env.sh 3.11 {GCE} {quoted} || exit $?\necho ran"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT
    )
    try:
        shown = "unset" if value is None else f"'{value}'"
        what = f"Python 3.11 with globus-compute-endpoint {GCE}" + (f" and {SIX}" if args else "")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"worker-env: no environment for {what}: HOME is {shown}, not the absolute path of a home directory;"
            " per-user environments live under it\n"
        )
        assert not (tmp_path / "home").exists()
    finally:
        built_at_root = Path("/.globus_compute").exists()
        shutil.rmtree("/.globus_compute", ignore_errors=True)
    assert not built_at_root


def test_without_epoch_variables_times_and_ages_still_apply(site: Site, home: Path) -> None:
    """bash 4.4 (RHEL 8) has no EPOCHSECONDS or EPOCHREALTIME; unset, bash 5 has none either."""
    absent = "unset EPOCHSECONDS EPOCHREALTIME\n[[ -z ${EPOCHSECONDS+x}${EPOCHREALTIME+x} ]] || exit 99\n"
    first = run(site, home, f"{absent}{init(site, SIX)}\n{PROBE}")
    assert first.returncode == 0, first.stderr
    old = line_of(first).split()[1]
    assert line_of(first).endswith(" ? ms")
    lock = envs_of(home) / f".{old}.lock"
    month_ago = time.time() - 31 * 86400
    os.utime(lock, (month_ago, month_ago))
    second = run(site, home, f"{absent}{init(site, 'six')}\n{PROBE}")
    assert (second.returncode, second.stdout) == (0, f"1.17.0 {GCE}\n"), second.stderr
    # Unused for longer than the age limit (30 days): unpublished, link and lock;
    # its build is retired from now, kept for the grace.
    assert sorted(p.name for p in envs_of(home).iterdir() if old in p.name) == []
    (build,) = (envs_of(home) / ".builds" / old).iterdir()
    assert abs(int((build / ".unpublished").read_text().split()[0]) - time.time()) < 120


# The site's grace (python_envs_keep_superseded, the role's default).
GRACE_DAYS = 7


def retire_days_ago(build: Path, days: float) -> None:
    when = int(time.time() - days * 86400)
    (build / ".unpublished").write_text(f"{when} {time.strftime('%Y-%m-%dT%H:%M:%S%z', time.localtime(when))}\n")


@pytest.mark.parametrize("locks", ["coherent", "not-excluding", "failing"])
def test_pruning_unpublishes_and_a_build_goes_only_after_the_grace(site: Site, home: Path, locks: str) -> None:
    """No lock decides: a worker on another node is invisible to one, so the outcome is the same in every mode."""
    path = "/usr/bin:/bin" if locks == "coherent" else f"{site.base / locks}:/usr/bin:/bin"
    started = home / "started"
    held = spawn(site, home, f"{init(site, SIX)}\ntouch {started}\nexec sleep 300", path)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not started.exists() and held.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), held.poll()
        envs = envs_of(home)
        name = next(p.name for p in envs.iterdir() if p.name.startswith(f"{NAME}-req-"))
        build = (envs / name).resolve()
        month_ago = time.time() - 31 * 86400
        os.utime(envs / f".{name}.lock", (month_ago, month_ago))
        other = run(site, home, f"{init(site, 'six')}\n{PROBE}", path)
        assert other.returncode == 0, other.stderr
        # Past the age limit: unpublished (link and lock), its build retired and
        # kept for the worker running in it, which still imports from it.
        assert not (envs / name).exists() and not (envs / f".{name}.lock").exists()
        assert (build / ".ready").is_file() and (build / ".unpublished").is_file()
        assert held.poll() is None
        probe = subprocess.run([str(build / "bin" / "python"), "-c", "import six"], capture_output=True, timeout=60)
        assert probe.returncode == 0
        # A start of that name builds afresh: a retired build is never published again.
        fresh = run(site, home, f"{init(site, SIX)}\n{PROBE}", path)
        assert (fresh.returncode, fresh.stdout) == (0, f"1.17.0 {GCE}\n"), fresh.stderr
        assert line_of(fresh).split()[1:3] == [name, "built"] and (envs / name).resolve() != build
    finally:
        os.killpg(held.pid, 9)
        held.communicate()
    # Still within the grace at the next build: kept. The limit of 2 makes room
    # by the least recently started, once started longer ago than the lock wait.
    hour_ago = time.time() - 3600
    os.utime(envs / f".{line_of(other).split()[1]}.lock", (hour_ago, hour_ago))
    kept = run(site, home, init(site, "idna"), path)
    assert kept.returncode == 0, kept.stderr
    assert (build / ".ready").is_file()
    # Past the grace: removed; a published build with a stale record planted in it stays.
    retire_days_ago(build, GRACE_DAYS + 1)
    current = (envs / name).resolve()
    retire_days_ago(current, 10 * GRACE_DAYS)
    # Its start the most recent (the limit of 2 unpublishes the least recently started).
    os.utime(envs / f".{name}.lock")
    os.utime(envs / f".{line_of(kept).split()[1]}.lock", (hour_ago, hour_ago))
    swept = run(site, home, init(site, "certifi"), path)
    assert swept.returncode == 0, swept.stderr
    assert not build.exists()
    assert (envs / name).resolve() == current and (current / ".ready").is_file()
    assert not (current / ".unpublished").exists()


def test_a_site_python_this_account_cannot_run_is_named(site: Site, tmp_path: Path) -> None:
    if not is_root():
        pytest.skip("needs root to run as another account")
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-unrunnable-"))
    try:
        base.chmod(0o755)
        private = base / "root-home"
        private.mkdir(mode=0o700)
        shutil.copy2("/usr/bin/python3.11", private / "python3.11")
        env = base / "envs" / NAME
        (env / "bin").mkdir(parents=True)
        (env / "bin" / "python").symlink_to(private / "python3.11")
        (env / ".ready").write_text("{}\n")
        runtime = base / "runtime"
        shutil.copytree(site.runtime, runtime)
        conf = runtime / "worker-env.conf"
        conf.write_text(conf.read_text().replace(str(site.envs), str(base / "envs")))
        home = base / "home"
        home.mkdir()
        shutil.chown(home, "nobody", "nogroup")
        script = f"\\builtin source {runtime}/worker-env.sh 3.11 {GCE} || exit $?\necho ran"
        result = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c", script],
            capture_output=True,
            text=True,
            cwd=home,
            env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
            timeout=TIMEOUT,
        )
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"worker-env: site environment {env} is stamped ready but {env}/bin/python"
            f" (that is {private}/python3.11) cannot be run by this account;"
            " its interpreter must be where every user can read it\n"
        )
        assert list(home.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_failed_build_is_tried_once_and_every_waiting_worker_reports_its_reason(site: Site, home: Path) -> None:
    (site.base / "slow").touch()
    procs = [spawn(site, home, f"{init(site, 'no-such-package==1.0')}\ntouch ran") for _ in range(STORM)]
    results = finish(procs)
    lines = {line_of(r) for r in results}
    assert [r.returncode for r in results] == [1] * STORM
    (line,) = lines
    assert line.startswith(
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and no-such-package==1.0:"
        " build failed: "
    )
    assert "unsatisfiable" in line
    assert [c for c in uv_calls(site) if c == "venv --quiet"] == ["venv --quiet"]
    # Nothing of it is left.
    assert list(envs_of(home).iterdir()) == []
    assert not (home / "ran").exists()


def test_the_build_program_run_directly(site: Site, home: Path) -> None:
    """worker-env-build CONF ENV PYTHON ENDPOINT BASE [REQUIREMENT...]: one word, or one line and status 1."""
    program = [
        "bash",
        str(site.runtime / "worker-env-build"),
        str(site.runtime / "worker-env.conf"),
    ]
    env = envs_of(home) / f"{NAME}-req-direct"
    base = str(site.envs / NAME)

    def build(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*program, *args], capture_output=True, text=True, env=site.env(home), cwd=home, timeout=TIMEOUT
        )

    built = build(str(env), "3.11", GCE, base, SIX)
    assert (built.returncode, built.stdout, built.stderr) == (0, "built\n", "")
    target = os.readlink(env)
    assert target.startswith(f".builds/{env.name}/")
    assert (env / ".ready").read_text().splitlines()[:5] == [
        "python=3.11",
        f"interpreter={base}/bin/python",
        f"endpoint={GCE}",
        f"base={base}",
        f"requirements={SIX}",
    ]
    assert (env.parent / target).stat().st_mode & 0o777 == 0o755
    # Already there: another builder's work, nothing built.
    again = build(str(env), "3.11", GCE, base, SIX)
    assert (again.returncode, again.stdout) == (0, "waited\n")
    assert os.readlink(env) == target
    failed = build(str(envs_of(home) / f"{NAME}-req-none"), "3.11", GCE, base, "no-such-package==1.0")
    assert failed.returncode == 1 and failed.stderr == ""
    assert failed.stdout.startswith("build failed: ") and failed.stdout.count("\n") == 1
    assert sorted(p.name for p in envs_of(home).iterdir()) == [".builds", f".{env.name}.lock", env.name]


SHELLS = {
    "bash-env": "printf 'echo BASHENV-RAN >&2\\n' >bash-env.sh\nexport BASH_ENV=$PWD/bash-env.sh",
    "shellopts": "set -x\nexport SHELLOPTS",
    "functions": 'for f in mkdir mv ln rm chmod cd find; do eval "$f() { :; }"; export -f "$f"; done',
}


@pytest.mark.parametrize("prelude", SHELLS.values(), ids=SHELLS.keys())
def test_the_build_takes_nothing_of_the_job_shell(site: Site, home: Path, prelude: str) -> None:
    """BASH_ENV, an exported SHELLOPTS and exported functions never reach the build."""
    result = run(site, home, f"{prelude}\n{init(site, SIX)}\n{PROBE}")
    assert (result.returncode, result.stdout) == (0, f"1.17.0 {GCE}\n"), result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("worker-env: ")]
    name, builds = builds_of(home)
    assert line.split()[1:4] == [name, "built", str(envs_of(home) / name)]
    assert len(builds) == 1 and os.readlink(envs_of(home) / name) == f".builds/{name}/{builds[0]}"


def test_a_shell_without_bashs_printf_never_shares_one_environment(site: Site, home: Path) -> None:
    """printf -v makes the requirements' key: without the builtin, a refusal, not a shared `-req-none`."""
    for req in (SIX, "idna"):
        result = run(site, home, f"enable -n printf\n{init(site, req)}\n{PROBE}")
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr == (
            "worker-env: refusing requirements: no key for them in this shell (printf is not bash's builtin)\n"
        )
    assert not envs_of(home).exists()


def test_a_shell_without_bashs_unset_does_not_start_with_pythonpath(site: Site, home: Path) -> None:
    result = run(site, home, f"export PYTHONPATH=/elsewhere\nenable -n unset\n{init(site)}\necho ran")
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        "worker-env: refusing to start with PYTHONPATH set: this shell cannot unset it (unset is not bash's builtin)\n"
    )


def test_a_fifo_in_place_of_the_build_marker_never_hangs_a_start(site: Site, home: Path) -> None:
    first = run(site, home, init(site, SIX))
    assert first.returncode == 0, first.stderr
    name = line_of(first).split()[1]
    envs = envs_of(home)
    shutil.rmtree(envs)
    envs.mkdir(parents=True)
    os.mkfifo(envs / f".{name}.build")
    proc = spawn(site, home, f"{init(site, SIX)}\n{PROBE}")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.communicate()
    assert (proc.returncode, out) == (0, f"1.17.0 {GCE}\n"), err
    assert err.split()[1:3] == [name, "built"]
    assert sorted(p.name for p in envs.iterdir()) == sorted([".builds", f".{name}.lock", name])


def first_name(site: Site, home: Path) -> str:
    """The name of the user's environment for SIX, then an empty envs directory."""
    first = run(site, home, init(site, SIX))
    assert first.returncode == 0, first.stderr
    shutil.rmtree(envs_of(home))
    envs_of(home).mkdir(parents=True)
    return line_of(first).split()[1]


@pytest.mark.parametrize("kind", ["lock-directory", "marker-directory", "marker-link"])
def test_a_lock_or_marker_that_is_not_a_file_is_named_with_its_cause(site: Site, home: Path, kind: str) -> None:
    name = first_name(site, home)
    path = envs_of(home) / (f".{name}.lock" if kind.startswith("lock") else f".{name}.build")
    target = home / "elsewhere"
    target.write_text("keep\n")
    target.chmod(0o644)
    if kind.endswith("directory"):
        path.mkdir()
        cause = "Is a directory"
    else:
        path.symlink_to(target)
        cause = "it is a symbolic link, not a file of this user's; remove it"
    result = run(site, home, init(site, SIX))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and {SIX}:"
        f" cannot use {path}: {cause}\n"
    )
    assert (target.read_text(), target.stat().st_mode & 0o777) == ("keep\n", 0o644)


def test_cleanup_that_fails_fails_no_start(site: Site, home: Path) -> None:
    """A dead build with a subdirectory nobody may empty: the start goes on, the build stays."""
    name = first_name(site, home)
    dead = envs_of(home) / ".builds" / name / f"{os.uname().nodename}-999999"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "f").touch()
    day_ago = time.time() - 2 * 86400
    os.utime(dead, (day_ago, day_ago))
    subprocess.run(["chattr", "+i", str(dead / "sub")], check=True)
    try:
        result = run(site, home, f"{init(site, SIX)}\n{PROBE}")
        assert (result.returncode, result.stdout) == (0, f"1.17.0 {GCE}\n"), result.stderr
        assert line_of(result).split()[1:3] == [name, "built"]
        assert (dead / "sub" / "f").exists()
    finally:
        subprocess.run(["chattr", "-i", str(dead / "sub")], check=True)


def test_a_build_whose_directory_vanished_is_not_stamped_or_published(site: Site, home: Path) -> None:
    (site.base / "vanish").touch()
    result = run(site, home, init(site, SIX))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    envs = envs_of(home)
    prefix = f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and {SIX}: cannot stamp "
    suffix = " ready: it was removed or its filesystem failed while it was built"
    line = line_of(result)
    assert line.startswith(prefix + f"{envs}/.builds/{NAME}-req-") and line.endswith(suffix), line
    # Nothing of it is left: no link to a build that is not there.
    assert list(envs.iterdir()) == []


def test_a_build_whose_endpoint_does_not_import_is_never_published(site: Site, home: Path) -> None:
    (site.base / "unimportable").touch()
    result = run(site, home, init(site, SIX))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    line = line_of(result)
    prefix = (
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and {SIX}: build does not run: "
    )
    assert line.startswith(prefix) and "globus_compute_endpoint" in line[len(prefix) :], line
    # Nothing of it is left: no link, no build, no lock.
    assert list(envs_of(home).iterdir()) == []


def test_only_this_hosts_boot_and_pid_namespace_removes_its_dead_builds_at_once(site: Site, home: Path) -> None:
    """A node with the same hostname in another pid namespace: its pids mean nothing here."""
    name = first_name(site, home)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text()[:8]
    pidns = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    here = f"{os.uname().nodename}.{boot}.{pidns}-999999"
    other = f"{os.uname().nodename}-999999"
    builds = envs_of(home) / ".builds" / name
    for tag in (here, other):
        (builds / tag / "bin").mkdir(parents=True)
    result = run(site, home, f"{init(site, SIX)}\n{PROBE}")
    assert (result.returncode, result.stdout) == (0, f"1.17.0 {GCE}\n"), result.stderr
    left = sorted(p.name for p in builds.iterdir())
    published = os.readlink(envs_of(home) / name).split("/")[-1]
    assert left == sorted([other, published])
    # Untouched for a day: another tag's build goes too.
    day_ago = time.time() - 2 * 86400
    os.utime(builds / other, (day_ago, day_ago))
    (envs_of(home) / name / ".ready").unlink()
    again = run(site, home, init(site, SIX))
    assert again.returncode == 0, again.stderr
    assert other not in [p.name for p in builds.iterdir()]


def test_builds_stamped_but_broken_do_not_pile_up(site: Site, home: Path) -> None:
    """An interpreter removed under a ready stamp, three times: each replaced build was published, so a
    worker that started in it may still import from it. Retired, kept for the grace, then removed."""
    first = run(site, home, init(site, SIX))
    assert first.returncode == 0, first.stderr
    name = line_of(first).split()[1]
    link = envs_of(home) / name
    for _ in range(3):
        (link.resolve() / "bin" / "python").unlink()
        again = run(site, home, f"{init(site, SIX)}\n{PROBE}")
        assert (again.returncode, again.stdout) == (0, f"1.17.0 {GCE}\n"), again.stderr
        assert line_of(again).split()[1:3] == [name, "built"]
    builds = envs_of(home) / ".builds" / name
    retired = [b for b in builds.iterdir() if not (link.resolve() == b)]
    assert len(retired) == 3 and all((b / ".unpublished").is_file() for b in retired), sorted(builds.iterdir())
    for build in retired:
        retire_days_ago(build, GRACE_DAYS + 1)
    swept = run(site, home, init(site, "idna"))
    assert swept.returncode == 0, swept.stderr
    assert [f".builds/{name}/{b.name}" for b in builds.iterdir()] == [os.readlink(link)]


def test_a_stamped_build_never_published_goes_at_once_when_its_interpreter_is_gone(site: Site, home: Path) -> None:
    """No worker can be running in a build no link ever named: its builder dead, it goes without the grace."""
    first = run(site, home, init(site, SIX))
    assert first.returncode == 0, first.stderr
    name = line_of(first).split()[1]
    boot = Path("/proc/sys/kernel/random/boot_id").read_text()[:8]
    pidns = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    never = envs_of(home) / ".builds" / name / f"{os.uname().nodename}.{boot}.{pidns}-999999"
    (never / "bin").mkdir(parents=True)
    (never / ".ready").write_text("python=3.11\n")
    (envs_of(home) / name / "bin" / "python").unlink()
    again = run(site, home, f"{init(site, SIX)}\n{PROBE}")
    assert (again.returncode, again.stdout) == (0, f"1.17.0 {GCE}\n"), again.stderr
    assert not never.exists()


def test_more_sets_than_the_limit_in_use_at_once_are_not_rebuilt_in_turn(site: Site, home: Path) -> None:
    """Three sets started in turn, twice, on a limit of 2: each start would unpublish the one started just
    before and rebuild its own. Two builds, the fast path after; the third set is refused in one line."""
    sets = ["six", "idna", "certifi"]
    results = [run(site, home, init(site, req)) for _ in range(2) for req in sets]
    refused = (
        f"worker-env: no environment for Python 3.11 with globus-compute-endpoint {GCE} and certifi: 2 environments "
        "of this user, the site's limit (python_envs_user_envs_max), were all started in the last 900 s "
        "(python_envs_lock_wait): none is unpublished for another; start fewer sets at once"
    )
    assert [r.returncode for r in results] == [0, 0, 1, 0, 0, 1], [r.stderr for r in results]
    assert [line_of(r).split()[2] for r in results if r.returncode == 0] == ["built", "built", "user", "user"]
    assert [line_of(r) for r in results if r.returncode != 0] == [refused, refused]
    assert [c for c in uv_calls(site) if c == "venv --quiet"] == ["venv --quiet"] * 2
    envs = envs_of(home)
    assert not list(envs.glob(".builds/*/*/.unpublished"))
    assert sorted(p.name for p in envs.iterdir() if not p.name.startswith(".")) == sorted(
        line_of(r).split()[1] for r in results[:2]
    )


def test_a_start_dated_far_ahead_counts_as_the_oldest_not_as_just_made(site: Site, home: Path) -> None:
    """A lock whose time is years ahead (a clock set wrong, a backup restored) would wedge the limit:
    every start refused, or the environment never aged out, until that date."""
    first, second = (run(site, home, init(site, req)) for req in ("six", "idna"))
    assert [line_of(r).split()[2] for r in (first, second)] == ["built", "built"], [first.stderr, second.stderr]
    six, idna = (line_of(r).split()[1] for r in (first, second))
    envs = envs_of(home)
    ahead, before_the_wait = time.time() + 3650 * 86400, time.time() - 3600
    os.utime(envs / f".{six}.lock", (ahead, ahead))
    os.utime(envs / f".{idna}.lock", (before_the_wait, before_the_wait))
    third = run(site, home, init(site, "certifi"))
    assert third.returncode == 0 and line_of(third).split()[2] == "built", third.stderr
    assert sorted(p.name for p in envs.iterdir() if not p.name.startswith(".")) == sorted(
        [idna, line_of(third).split()[1]]
    )


def test_a_link_among_a_users_builds_is_never_followed(site: Site, home: Path, tmp_path: Path) -> None:
    """A name of the user's builds that is a link: the tidy would delete what it points at."""
    precious = tmp_path / "precious"
    (precious / "thesis").mkdir(parents=True)
    (precious / "thesis" / "ch1.tex").write_text("chapter one\n")
    (precious / "notes-2024").write_text("notes\n")
    old = time.time() - 3 * 86400
    for path in (precious / "thesis" / "ch1.tex", precious / "notes-2024", precious / "thesis", precious):
        os.utime(path, (old, old))
    before = sorted(str(p.relative_to(precious)) for p in precious.rglob("*"))
    (envs_of(home) / ".builds").mkdir(parents=True)
    planted = envs_of(home) / ".builds" / f"py3.11-gce{GCE}-req-0123456789abcdef"
    planted.symlink_to(precious)
    result = run(site, home, init(site, "six"))
    assert result.returncode == 0 and line_of(result).split()[2] == "built", result.stderr
    assert sorted(str(p.relative_to(precious)) for p in precious.rglob("*")) == before
    assert planted.is_symlink()


def test_a_link_in_place_of_the_builds_of_the_name_being_built_is_never_followed(
    site: Site, home: Path, tmp_path: Path
) -> None:
    """The builds (and the tidy) of the environment a start needs would go wherever the link points."""
    first = run(site, home, init(site, "six"))
    assert first.returncode == 0, first.stderr
    name = line_of(first).split()[1]
    envs = envs_of(home)
    (envs / name).unlink()
    shutil.rmtree(envs / ".builds" / name)
    precious = tmp_path / "precious"
    (precious / "otherhost-123").mkdir(parents=True)
    old = time.time() - 3 * 86400
    os.utime(precious / "otherhost-123", (old, old))
    (envs / ".builds" / name).symlink_to(precious)
    again = run(site, home, init(site, "six"))
    assert again.returncode == 0 and line_of(again).split()[2] == "built", again.stderr
    assert sorted(p.name for p in precious.iterdir()) == ["otherhost-123"]
    assert (envs / ".builds" / name).is_dir() and not (envs / ".builds" / name).is_symlink()
    assert os.path.realpath(envs / name).startswith(str(envs / ".builds" / name) + "/")
