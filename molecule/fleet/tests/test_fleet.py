"""Two clusters rolled out by site.yml: built once per cluster, usable on every node, safe when a node fails."""

from __future__ import annotations

import re
from fnmatch import fnmatch

import pytest
from conftest import (
    GCE_VERSION,
    assert_nothing_writable_by_others,
    node,
    read_json,
    render_endpoint,
    run_as,
    sdk_runtime,
    start_worker,
)

CLUSTERS = {"a": ("fa-login", "fa-node1", "fa-node2"), "b": ("fb-login", "fb-node1")}
PYTHON = {"a": "3.11", "b": "3.13"}
RUNTIME = "/shared/globus-compute"
NODES = [(cluster, name) for cluster, names in CLUSTERS.items() for name in names]


@pytest.fixture(scope="module")
def runs() -> dict:
    return read_json(node("fa-login"), "/var/tmp/fleet-runs.json")


def builds_logged(lines: list[str]) -> list[str]:
    """The builds in a cluster's build log: one line per build actually made."""
    return [line.split()[-1] for line in lines if line.startswith("log ")]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_environment_was_built_exactly_once_per_cluster(runs, cluster: str) -> None:
    builds = builds_logged(runs["again"]["clusters"][cluster])
    # The first spec (converge) and the one with six (side effect), each once,
    # though every node of the cluster ran the build task.
    assert len(builds) == 2, builds
    assert len(set(builds)) == 2, builds
    assert all(b.startswith(f".builds/py{PYTHON[cluster]}-gce{GCE_VERSION}-") for b in builds)


@pytest.mark.parametrize(("cluster", "name"), NODES)
def test_every_node_activates_its_cluster_environment_as_a_user(cluster: str, name: str) -> None:
    host = node(name)
    python = PYTHON[cluster]
    result = run_as(
        host,
        "alice",
        f"source {RUNTIME}/worker-env.sh {python} {GCE_VERSION} && python -c "
        "'import sys, six, globus_compute_endpoint as g; print(\"%d.%d\" % sys.version_info[:2], g.__version__)'",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.split() == [python, GCE_VERSION]
    assert re.search(rf"^worker-env: py{python}-gce{GCE_VERSION} site ", result.stderr, re.M), result.stderr


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_login_nodes_run_a_valid_endpoint(cluster: str) -> None:
    host = node(CLUSTERS[cluster][0])
    python = PYTHON[cluster]
    config = render_endpoint(host, "root", sdk_runtime(python))
    worker_init = config["engine"]["provider"]["worker_init"]
    assert f"worker-env.sh {python} {GCE_VERSION}" in worker_init
    result = start_worker(host, "bob", worker_init)
    assert result.rc == 0, result.stderr
    assert result.stdout.split()[:2] == [python, GCE_VERSION]


def test_compute_nodes_have_no_endpoint() -> None:
    for _, name in NODES:
        if name.endswith("-login"):
            continue
        host = node(name)
        # No endpoint directory, fact, wrapper or unit: nothing of the endpoint role ran there.
        for path in (
            "/root/.globus_compute/hpc",
            "/usr/local/bin/globus-compute-endpoint",
            "/etc/systemd/system/globus-compute-endpoint-hpc.service",
        ):
            assert not host.file(path).exists, (name, path)
        listing = host.run("ls -A /etc/ansible/facts.d")
        assert listing.rc == 0, (name, listing.stderr)
        facts = listing.stdout.split()
        # python_envs ran there: its fact, and no endpoint's.
        assert "hpc_globus_compute_envs.fact" in facts, (name, facts)
        assert not [f for f in facts if f.startswith("hpc_globus_compute_endpoint")], (name, facts)


def test_a_node_failing_mid_build_stops_the_rollout_there(runs) -> None:
    interrupted = runs["interrupted"]
    # 2 is ansible-playbook's "a host failed"; a playbook that cannot be
    # parsed (4), an unreachable node (4) or a crash (250) is no kill.
    assert interrupted["rc"] == 2, interrupted["errors"]
    # Every host passes site.yml's first play before the first batch (its
    # facts, the variables, uv's and the environments' checks, the rollout's
    # own on one host; the endpoint's skipped on compute nodes); only the
    # hosts whose batch started ran anything more.
    checked_only = re.compile(r"\bok=[1-5]\s+changed=0\s+unreachable=0\s+failed=0\b")
    ran = {line.split()[0] for line in interrupted["recap"] if not checked_only.search(line)}
    # Batches: fa-login fa-node1 fa-node2 | fb-login | fb-node1. fb-login's
    # build was killed: with max_fail_percentage 0 the rollout stops there.
    assert ran == {"fa-login", "fa-node1", "fa-node2", "fb-login"}
    assert any("failed=1" in line for line in interrupted["recap"] if line.startswith("fb-login"))


def test_no_half_built_environment_is_ever_in_use(runs) -> None:
    for case in ("interrupted", "recovered", "again"):
        for cluster, lines in runs[case]["clusters"].items():
            links = [line for line in lines if not line.startswith(("log ", "partial "))]
            assert links and all(line.startswith("ready ") for line in links), (case, cluster, lines)
    # Cluster A got the new build before the failure; B kept its old one.
    interrupted = runs["interrupted"]["clusters"]
    assert builds_logged(interrupted["a"])[-1] in interrupted["a"][0]
    assert len(builds_logged(interrupted["b"])) == 1
    # The killed build is left unused, and the next rollout replaces it.
    assert not [line for line in runs["recovered"]["clusters"]["b"] if line.startswith("partial ")]


def test_the_build_was_killed_and_left_a_partial_build_behind(runs) -> None:
    # The builder really died, once, on fb-login only.
    kills = node("fb-login").check_output("cat /var/tmp/uv-test-kills").splitlines()
    assert len(kills) == 1 and "build-env.sh" in kills[0], kills
    for name in ("fa-login", "fa-node1", "fa-node2", "fb-node1"):
        assert not node(name).file("/var/tmp/uv-test-kills").exists, name
    # After the kill, cluster B held a build of a published environment's
    # name with no ready stamp, whatever the build directory's exact name.
    lines = runs["interrupted"]["clusters"]["b"]
    names = [line.split()[1] for line in lines if line.startswith("ready ")]
    partial = [line.split()[1].rstrip("/") for line in lines if line.startswith("partial ")]
    assert names and any(fnmatch(p, f".builds/{n}-*") for p in partial for n in names), lines


def test_the_next_rollout_converges_and_the_one_after_changes_nothing(runs) -> None:
    assert runs["recovered"]["rc"] == 0, runs["recovered"]["errors"]
    assert {line.split()[0] for line in runs["recovered"]["recap"]} == {name for _, name in NODES}
    again = runs["again"]
    assert again["rc"] == 0, again["errors"]
    assert len(again["recap"]) == len(NODES)
    assert all(" changed=0 " in line and " failed=0 " in line for line in again["recap"]), again["recap"]


@pytest.mark.parametrize(("cluster", "name"), NODES)
def test_nothing_deployed_is_writable_by_users(cluster: str, name: str) -> None:
    assert_nothing_writable_by_others(node(name))
