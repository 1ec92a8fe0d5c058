"""Module executions per host and per task, read from an `ansible-playbook -vvv` run's output,
and the tasks that changed something (at any verbosity).

Every command Ansible runs on a host is logged at -vvv as `<host> EXEC ...`.
A module execution is one that runs a module or a script: with pipelining
`python3 && sleep 0` (the module on stdin), without it the `AnsiballZ_*.py`
file, or a script's own command line. The rest (making, chmodding and
removing Ansible's temporary directory, finding the home) is overhead, counted
apart. Both bench/site_rollout.py and the tests read runs this way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*")
EXEC = re.compile(r"^<([^>]+)> EXEC (.*)")
OVERHEAD = re.compile(r"echo ~|mkdir -p|chmod u\+rwx|rm -f -r")
CHANGED = re.compile(r"^changed: \[([^\]]+)\]")


@dataclass
class Executions:
    modules: Counter[str] = field(default_factory=Counter)  # per host
    overhead: Counter[str] = field(default_factory=Counter)  # per host
    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)  # per (host, task)


def count(output: str) -> Executions:
    found = Executions()
    task = ""
    for line in output.splitlines():
        if heading := TASK.match(line):
            task = heading[1]
        elif command := EXEC.match(line):
            host, argv = command.groups()
            if OVERHEAD.search(argv):
                found.overhead[host] += 1
            else:
                found.modules[host] += 1
                found.tasks[host, task] += 1
    return found


def by_role(found: Executions, host: str) -> dict[str, int]:
    """A host's module executions per role ("play" for a playbook's own tasks)."""
    roles: Counter[str] = Counter()
    for (where, task), n in found.tasks.items():
        if where == host:
            roles[task.split(" : ")[0].rsplit(".", 1)[-1] if " : " in task else "play"] += n
    return dict(roles.most_common())


def changed(output: str) -> list[tuple[str, str]]:
    """(host, task) for each task that reported a change on a host: once each time the task ran (an
    entry point that two roles include is two tasks), however many of its loop's items changed."""
    found: list[tuple[str, str]] = []
    task, hosts = "", set()
    for line in output.splitlines():
        if heading := TASK.match(line):
            task, hosts = heading[1], set()
        elif (result := CHANGED.match(line)) and result[1] not in hosts:
            hosts.add(result[1])
            found.append((result[1], task))
    return found
