"""Site environments, the activation runtime and the template, used as workers use them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from conftest import (
    ENVS_ROOT,
    GCE_VERSION,
    RUNTIME_DIR,
    forget_user_envs,
    node,
    read_json,
    read_stamp,
    render_worker_init,
    run_as,
    sdk_runtime,
    start_worker,
    storm,
)


@pytest.fixture(scope="module")
def bookworm():
    return node("pe-bookworm")


@pytest.fixture(scope="module")
def sid():
    return node("pe-sid")


def test_site_environments_are_published_links_to_ready_builds(bookworm, sid) -> None:
    for host, python in ((bookworm, "3.11"), (sid, "3.13")):
        link = host.file(f"{ENVS_ROOT}/py{python}-gce{GCE_VERSION}")
        assert link.is_symlink
        assert link.linked_to.startswith(f"{ENVS_ROOT}/.builds/py{python}-gce{GCE_VERSION}-")
        stamp = read_stamp(host, f"{link.linked_to}/.ready")
        assert stamp["endpoint"] == GCE_VERSION
        assert stamp["python"].startswith(f"{python}.")


def test_extra_packages_are_in_their_environment(sid) -> None:
    env = f"{ENVS_ROOT}/py3.13-gce{GCE_VERSION}"
    assert sid.check_output(f"{env}/bin/python -c 'import six; print(six.__version__)'") == "1.17.0"
    assert read_stamp(sid, f"{env}/.ready")["packages"] == ["six==1.17.0"]


@pytest.mark.parametrize("name", ["bookworm", "sid"])
def test_nothing_the_site_built_is_writable_by_users(request, name: str) -> None:
    host = request.getfixturevalue(name)
    assert host.file(ENVS_ROOT).user == "root"
    assert host.check_output(f"find {RUNTIME_DIR} -perm /022 ! -type l") == ""
    # Every path, hidden lock and build files too, before and after users try to write.
    listing = f"find {ENVS_ROOT} -printf '%y %m %u %s %p\\n' | sort"
    before = host.check_output(listing)
    envs = host.check_output(f"find {ENVS_ROOT} -mindepth 1 -maxdepth 1 -name 'py*'").split()
    assert envs, f"no environment in {ENVS_ROOT}"
    for env in envs:
        for target in (f"{env}/bin/x", f"{env}/.ready", f"{ENVS_ROOT}/.builds/x"):
            # Refused for want of permission: "No such file or directory"
            # would mean the target was never there to protect.
            result = run_as(host, "alice", f"touch {target}")
            assert (result.rc, result.stderr.splitlines()) == (
                1,
                [f"touch: cannot touch '{target}': Permission denied"],
            ), target
    assert host.check_output(listing) == before


def test_runtime_and_endpoint_files_are_in_place(bookworm) -> None:
    for name in (
        "worker-env.sh",
        "worker-env-build",
        "worker-env.conf",
        "user_config_template.yaml.j2",
        "user_config_schema.json",
    ):
        f = bookworm.file(f"{RUNTIME_DIR}/{name}")
        assert (f.user, f.mode) == ("root", 0o644)
    assert json.loads(bookworm.file(f"{RUNTIME_DIR}/user_config_schema.json").content_string)["type"] == "object"


@pytest.mark.parametrize(("name", "python"), [("bookworm", "3.11"), ("sid", "3.13")])
def test_rendered_worker_init_activates_the_site_environment(request, name: str, python: str) -> None:
    host = request.getfixturevalue(name)
    worker_init = render_worker_init(host, sdk_runtime(python))
    result = start_worker(host, "alice", worker_init)
    assert result.rc == 0, result.stderr
    assert result.stdout.split() == [
        python,
        GCE_VERSION,
        f"{ENVS_ROOT}/.builds/" + result.stdout.split()[2].rsplit("/", 1)[1],
    ]
    assert f"py{python}-gce{GCE_VERSION} site " in result.stderr


def test_missing_environment_is_built_once_per_user_then_fast(sid) -> None:
    worker_init = render_worker_init(sid, sdk_runtime("3.14"))
    assert run_as(sid, "alice", forget_user_envs("~/.globus_compute/envs", "py3.14-*")).rc == 0
    first = start_worker(sid, "alice", worker_init)
    assert first.rc == 0, first.stderr
    assert first.stdout.split()[:2] == ["3.14", GCE_VERSION]
    assert f"py3.14-gce{GCE_VERSION} built /home/alice/.globus_compute/envs/" in first.stderr
    second = start_worker(sid, "alice", worker_init)
    assert (second.rc, second.stdout) == (0, first.stdout), second.stderr
    assert f"py3.14-gce{GCE_VERSION} user /home/alice/" in second.stderr


def test_unservable_python_fails_clearly_and_leaves_nothing(sid) -> None:
    worker_init = render_worker_init(sid, sdk_runtime("3.15"))
    envs = "/home/bob/.globus_compute/envs"
    assert run_as(sid, "bob", f"mkdir -p {envs}").rc == 0
    before = sid.check_output(f"ls -A {envs}")
    result = start_worker(sid, "bob", worker_init)
    # The worker_init's own `|| exit 1`: the source failed, not the probe after it.
    assert result.rc == 1, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("worker-env:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"worker-env: no environment for Python 3.15 with globus-compute-endpoint {GCE_VERSION}:"
    )
    assert "build failed:" in lines[0] and "3.15" in lines[0]
    assert lines[0].endswith(f"site has: py3.13-gce{GCE_VERSION}")
    assert sid.check_output(f"ls -A {envs}") == before


@pytest.mark.parametrize(
    ("runtime", "fallback", "why"),
    [
        (None, "default", "no Python version"),
        ({"globus_compute_sdk_version": "2.20.0"}, "default", "no Python version"),
        (
            {"python": {"version_tuple": ["3; touch /tmp/pwned", 12]}, "globus_compute_sdk_version": "4.19.0"},
            "default",
            "no Python version",
        ),
        (
            {"python": {"version_tuple": [3, 11]}, "globus_compute_sdk_version": "4.19.0$(touch /tmp/pwned)"},
            "endpoint",
            "no SDK version",
        ),
    ],
    ids=["no-runtime", "sdk-2x-no-python", "forged-python", "forged-sdk"],
)
def test_missing_or_forged_runtime_falls_back_to_the_site_and_the_worker_says_so(
    bookworm, runtime, fallback, why
) -> None:
    worker_init = render_worker_init(bookworm, runtime)
    assert (
        worker_init
        == f"\\builtin source {RUNTIME_DIR}/worker-env.sh --fallback={fallback} 3.11 {GCE_VERSION} || exit 1"
    )
    result = start_worker(bookworm, "alice", worker_init)
    assert result.rc == 0, result.stderr
    assert f"fallback: the client sent {why}" in result.stderr
    assert not bookworm.file("/tmp/pwned").exists


def test_an_old_sdk_gets_the_python_of_its_sys_version(bookworm) -> None:
    runtime = {"globus_compute_sdk_version": GCE_VERSION, "python_version": "3.11.2 (main, Mar 13 2023) [GCC 12.2.0]"}
    worker_init = render_worker_init(bookworm, runtime)
    assert worker_init == f"\\builtin source {RUNTIME_DIR}/worker-env.sh 3.11 {GCE_VERSION} || exit 1"
    result = start_worker(bookworm, "alice", worker_init)
    assert result.rc == 0, result.stderr
    assert "fallback" not in result.stderr


def test_sixty_four_simultaneous_starts_build_once(sid) -> None:
    worker_init = render_worker_init(sid, sdk_runtime("3.14"), user="bob")
    assert run_as(sid, "bob", forget_user_envs("~/.globus_compute/envs", "py3.14-*")).rc == 0
    pythons, hows = storm(sid, "bob", worker_init, 64)
    assert pythons == ["3.14"] * 64
    assert sorted(hows) == ["built"] + ["waited"] * 63


def test_a_killed_build_is_never_used_and_is_rebuilt(sid) -> None:
    envs = "/home/alice/.globus_compute/envs"
    env = f"{envs}/py3.14-gce{GCE_VERSION}"
    builds = f"{envs}/.builds/py3.14-gce{GCE_VERSION}"
    worker_init = render_worker_init(sid, sdk_runtime("3.14"))
    kill = f"""
        {forget_user_envs(envs, "py3.14-*")}
        setsid bash -c {json.dumps(worker_init)} >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 400); do compgen -G '{builds}/*/bin/python' >/dev/null && break; sleep 0.02; done
        kill -9 -- -$pid
        sleep 0.2
        # Killed half-way: a build of its own, unstamped, and nothing published.
        ls {builds}
        test ! -e {env} && test ! -L {env} && ! compgen -G '{builds}/*/.ready' >/dev/null && echo half-built
    """
    killed = run_as(sid, "alice", kill).stdout.split()
    assert len(killed) == 2 and killed[1] == "half-built", killed
    result = start_worker(sid, "alice", worker_init)
    assert result.rc == 0, result.stderr
    assert f"py3.14-gce{GCE_VERSION} built {env}" in result.stderr
    assert result.stdout.split()[:2] == ["3.14", GCE_VERSION]
    # The killed build is gone; the published one is the only build left.
    left = run_as(sid, "alice", f"ls {builds}").stdout.split()
    assert killed[0] not in left and len(left) == 1, (killed, left)


def run_engine(host, worker_init: str) -> dict:
    """One task through GlobusComputeEngine (LocalProvider) in the 3.13 site environment, whose
    worker_init is the rendered one: what the worker's Python, prefix and six were."""
    config = (
        "engine:\n  type: GlobusComputeEngine\n  max_workers_per_node: 1\n  provider:\n    type: LocalProvider\n"
        f"    init_blocks: 1\n    min_blocks: 0\n    max_blocks: 1\n    worker_init: {json.dumps(worker_init)}\n"
    )
    driver = (Path(__file__).parent / "engine_check.py").read_text()
    script = f"""
        set -euo pipefail
        d=$(mktemp -d)
        printf '%s' {shlex.quote(driver)} > "$d/engine_check.py"
        printf '%s' {shlex.quote(config)} > "$d/config.yaml"
        cd "$d"
        # The client: the user's Python with its SDK packs the task.
        ( {worker_init}
          python engine_check.py pack task.bin ) 2>/dev/null
        # The endpoint: its interchange is a script of its own environment.
        source {ENVS_ROOT}/py3.13-gce{GCE_VERSION}/bin/activate
        timeout 300 python engine_check.py run config.yaml "$d/run" task.bin || {{
          tail -n 20 "$d"/run/*/block-0/*/worker_0.log >&2; exit 1; }}
    """
    result = run_as(host, "alice", script)
    assert result.rc == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_real_engine_runs_a_function_in_the_requested_environment(sid) -> None:
    """A 3.14 client's task runs in a worker that the rendered worker_init put in Python 3.14."""
    answer = run_engine(sid, render_worker_init(sid, sdk_runtime("3.14")))
    # The environment's build, which its link names: a later switch leaves a running worker where it is.
    env = f"/home/alice/.globus_compute/envs/py3.14-gce{GCE_VERSION}"
    assert answer == {"python": "3.14", "prefix": sid.check_output(f"readlink -e {env}"), "six": None}


def test_a_real_engine_runs_a_function_with_the_users_packages(sid) -> None:
    """The `requirements` option: the task imports six, from the offline wheelhouse, in the
    3.13 site environment's package set plus six."""
    worker_init = render_worker_init(sid, sdk_runtime("3.13"), options={"requirements": "six==1.17.0"})
    answer = run_engine(sid, worker_init)
    assert answer["python"] == "3.13" and answer["six"] == "1.17.0"
    envs = "/home/alice/.globus_compute/envs"
    assert answer["prefix"].startswith(f"{envs}/.builds/py3.13-gce{GCE_VERSION}-req-")
    name = answer["prefix"].split("/")[-2]
    assert sid.check_output(f"readlink -e {envs}/{name}") == answer["prefix"]
    stamp = sid.file(f"{answer['prefix']}/.ready").content_string
    assert "requirements=six==1.17.0\n" in stamp and f"base={ENVS_ROOT}/py3.13-gce{GCE_VERSION}\n" in stamp


def test_a_changed_spec_is_reported_by_check_mode_then_built_and_switched(bookworm) -> None:
    seen = read_json(bookworm, "/var/tmp/spec-change.json")
    # Check mode names the spec's build; the build itself gets its builder's host and pid after it.
    reported = [line.split("would build ", 1)[1].strip() for line in seen["check_report"] if "would build " in line]
    assert reported and seen["after"].startswith(reported[0] + "."), (reported, seen["after"])
    assert any("changed=1 " in line and "failed=0" in line for line in seen["check_report"]), seen["check_report"]
    assert seen["after_check"] == seen["before"], "check mode changed the published environment"
    assert seen["after"] != seen["before"]
    link = bookworm.file(f"{ENVS_ROOT}/py3.11-gce{GCE_VERSION}")
    assert link.linked_to == f"{ENVS_ROOT}/{seen['after']}"
    assert read_stamp(bookworm, f"{link.linked_to}/.ready")["packages"] == ["six==1.17.0"]


def test_pruning_kept_the_superseded_build_for_the_grace_then_removed_it_only(bookworm) -> None:
    seen = read_json(bookworm, "/var/tmp/spec-change.json")
    old, new = seen["before"].removeprefix(".builds/"), seen["after"].removeprefix(".builds/")
    # The first prune, within the grace: the superseded build is retired (recorded) and kept.
    assert seen["kept"] == sorted([old, f"{old}/.unpublished", new])
    # Past the grace: it goes, and the published one stays.
    assert seen["swept"] == [new]
    builds = bookworm.check_output(f"find {ENVS_ROOT}/.builds -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'")
    assert builds.split() == [new]
    # The build log keeps the history: both builds, each once.
    logged = [line.split()[-1] for line in bookworm.file(f"{ENVS_ROOT}/.builds/builds.log").content_string.splitlines()]
    assert logged[-1] == seen["after"] and seen["before"] in logged and len(set(logged)) == len(logged)


SEVERAL = "/opt/several"


@pytest.mark.parametrize("python", ["3.13", "3.14"])
def test_an_entry_with_two_minors_builds_both_and_a_worker_starts_in_each(sid, python: str) -> None:
    """side_effect.yml: {python: ["3.13", "3.14"]} in a root of its own; a worker of each gets its site environment."""
    link = sid.file(f"{SEVERAL}/envs/py{python}-gce{GCE_VERSION}")
    assert link.is_symlink
    assert read_stamp(sid, f"{link.linked_to}/.ready")["python"].startswith(f"{python}.")
    # As the template renders it for a client of that Python (test_missing_or_forged_... checks the shape).
    worker_init = f"\\builtin source {SEVERAL}/worker-env.sh {python} {GCE_VERSION} || exit 1"
    result = start_worker(sid, "alice", worker_init)
    assert result.rc == 0, result.stderr
    assert result.stdout.split() == [python, GCE_VERSION, link.linked_to]
    assert f"py{python}-gce{GCE_VERSION} site " in result.stderr


def test_found_with_a_python_the_wheelhouse_cannot_serve_refuses_and_publishes_nothing(sid) -> None:
    """side_effect.yml: `found` on sid is 3.13, 3.14 and 3.15, each with six; 3.15 cannot be built offline."""
    seen = read_json(sid, "/var/tmp/several-pythons.json")
    assert [line.split()[0] for line in seen["published"]] == [f"py3.13-gce{GCE_VERSION}", f"py3.14-gce{GCE_VERSION}"]
    # One line, naming the environment, its Python, uv's reason and what to do.
    assert len(seen["refused"]) == 1, seen["refused"]
    line = seen["refused"][0]
    assert "\n" not in line
    assert line.startswith(f"python_envs_matrix: py3.15-gce{GCE_VERSION} (Python 3.15) cannot be built on pe-sid: ")
    assert "No solution found when resolving dependencies" in line and "cp315" in line
    assert line.endswith(
        "; nothing was published. Give the site's index or wheelhouse what it lacks, or leave"
        " Python 3.15 out of the entry (a list of minors instead of found)."
    )
    # Every published environment is as it was: same link, same build, same stamp.
    assert seen["published_after"] == seen["published"]
    # The 3.13 and 3.14 builds with six are kept, ready and unpublished, for a run
    # that asks for them again (a prune retires them otherwise); none of 3.15.
    staged = sorted(set(seen["builds_after"]) - set(seen["builds"]))
    assert set(seen["builds"]) <= set(seen["builds_after"])
    assert [b.split("-")[0] for b in staged] == ["py3.13", "py3.14"], staged
    for build in staged:
        assert read_stamp(sid, f"{SEVERAL}/envs/.builds/{build}/.ready")["packages"] == ["six==1.17.0"]
