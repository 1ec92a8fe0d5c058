"""bench/executions.py reads what a run did from its output, as the benches and the tests use it."""

from __future__ import annotations

from executions import by_role, changed, count

OUTPUT = """\
TASK [Gathering Facts] *********************************************************
<fa-login> EXEC /bin/sh -c 'echo ~ && sleep 0'
<fa-login> EXEC /bin/sh -c '/usr/bin/python3 && sleep 0'
ok: [fa-login]
TASK [hpc.globus_compute.uv : Install uv, uvx and the policy into each home] ***
<fa-login> EXEC /bin/sh -c '/usr/bin/python3 && sleep 0'
<fb-login> EXEC /bin/sh -c '/usr/bin/python3 && sleep 0'
changed: [fa-login] => (item=uv)
changed: [fa-login] => (item=uvx)
ok: [fb-login] => (item=uv)
changed: [fb-login] => (item=uvx)
TASK [hpc.globus_compute._common : Run build-env.sh: build] ********************
ok: [fa-login]
TASK [hpc.globus_compute._common : Run build-env.sh: build] ********************
changed: [fa-login]
RUNNING HANDLER [hpc.globus_compute.endpoint : Restart the endpoint] ***********
changed: [fb-login]
"""


def test_a_task_that_changed_is_named_once_for_each_host_and_each_time_it_ran() -> None:
    assert changed(OUTPUT) == [
        ("fa-login", "hpc.globus_compute.uv : Install uv, uvx and the policy into each home"),
        ("fb-login", "hpc.globus_compute.uv : Install uv, uvx and the policy into each home"),
        ("fa-login", "hpc.globus_compute._common : Run build-env.sh: build"),
        ("fb-login", "hpc.globus_compute.endpoint : Restart the endpoint"),
    ]


def test_a_run_that_changed_nothing_names_no_task() -> None:
    assert changed(OUTPUT.replace("changed: ", "ok: ")) == []


def test_module_executions_are_counted_apart_from_the_overhead() -> None:
    found = count(OUTPUT)
    assert (found.modules["fa-login"], found.overhead["fa-login"], found.modules["fb-login"]) == (2, 1, 1)
    assert by_role(found, "fa-login") == {"play": 1, "uv": 1}
