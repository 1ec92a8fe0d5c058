"""Nodes sharing one home: one build between all of them, every start succeeds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from conftest import forget_user_envs, node, render_worker_init, sdk_runtime, storm

NODES = [f"shared-{i}" for i in range(1, 5)]
STARTS_PER_NODE = 16


def test_simultaneous_starts_on_four_nodes_build_once() -> None:
    hosts = [node(name) for name in NODES]
    worker_init = render_worker_init(hosts[0], sdk_runtime("3.14"), user="dana")
    assert hosts[0].run(forget_user_envs("/shared/dana/.globus_compute/envs", "py3.14-*")).rc == 0
    with ThreadPoolExecutor(len(hosts)) as pool:
        results = list(pool.map(lambda h: storm(h, "dana", worker_init, STARTS_PER_NODE), hosts))
    pythons = [p for ran, _ in results for p in ran]
    hows = [h for _, how in results for h in how]
    total = len(NODES) * STARTS_PER_NODE
    assert pythons == ["3.14"] * total
    assert sorted(hows) == ["built"] + ["waited"] * (total - 1)


def test_every_node_then_takes_the_fast_path() -> None:
    for name in NODES:
        host = node(name)
        worker_init = render_worker_init(host, sdk_runtime("3.14"), user="dana")
        ran, hows = storm(host, "dana", worker_init, 1)
        assert (ran, hows) == (["3.14"], ["user"])
