"""Wall time of site.yml on 1 and on 5 hosts, against Ansible's own floor, measured in one run.

On the `fleet` Molecule scenario's nodes (two clusters, each with a shared
volume), started fresh for each host count: a trivial playbook (facts and a
ping: Ansible's floor for these hosts), site.yml cold, then several no-op
runs of site.yml, each right after a floor run (interleaved, so that drift on
the machine hits both alike). Every no-op run must report changed=0 on every
host; its tasks run per host (the recap's ok=) are what a no-op costs.
Prints medians and spreads, the ratios against the floor and between host
counts and, with --write, updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "fleet"
SITE = ROOT / "playbooks" / "site.yml"
TRIVIAL = ROOT / "bench" / "trivial.yml"
HOSTS = {1: "fa-login", 5: "all"}


def molecule(*args: str) -> None:
    subprocess.run(["molecule", *args, "-s", SCENARIO], check=True, stdout=subprocess.DEVNULL)


def fresh_nodes() -> Path:
    """New containers and empty shared volumes; the scenario's inventory directory."""
    molecule("destroy")
    molecule("create")
    molecule("prepare")
    found = sorted(Path.home().glob(f".ansible/tmp/molecule.*.{SCENARIO}"), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit("the fleet scenario left no inventory")
    return found[-1]


def timed(state: Path, playbook: Path, limit: str) -> tuple[float, list[dict[str, int]]]:
    """Wall time of one run, and each host's recap counts."""
    # Plain output to read the recap from: a forced colour wins over ANSIBLE_NOCOLOR.
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(state / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    argv = ["ansible-playbook", "-i", str(state / "inventory"), "--limit", limit, str(playbook)]
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{playbook.name} on {limit} failed:\n{result.stdout[-3000:]}")
    recap = [
        {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}
        for line in result.stdout.split("PLAY RECAP", 1)[-1].splitlines()
        if re.match(r"^f[ab]-\w+ +:", line)
    ]
    if not recap:
        sys.exit(f"{playbook.name} on {limit} printed no recap:\n{result.stdout[-3000:]}")
    return elapsed, recap


def measure(samples: int) -> dict[int, dict[str, list[float]]]:
    times: dict[int, dict[str, list[float]]] = {}
    for count, limit in HOSTS.items():
        state = fresh_nodes()
        cell = {"floor": [timed(state, TRIVIAL, limit)[0]], "cold": [timed(state, SITE, limit)[0]], "noop": []}
        cell["tasks"], cell["floor_tasks"] = [], []
        for _ in range(samples):
            elapsed, recap = timed(state, TRIVIAL, limit)
            cell["floor"].append(elapsed)
            cell["floor_tasks"].extend(host["ok"] for host in recap)
            elapsed, recap = timed(state, SITE, limit)
            if len(recap) != count or any(host.get("changed", -1) != 0 for host in recap):
                sys.exit(f"site.yml on {limit} is not a no-op: {recap}")
            cell["noop"].append(elapsed)
            cell["tasks"].extend(host["ok"] for host in recap)
        times[count] = cell
        print(f"{count} host(s): " + ", ".join(f"{k} {v}" for k, v in cell.items()), flush=True)
    molecule("destroy")
    return times


def spread(values: list[float]) -> str:
    """Median, and the range around it when there are several samples."""
    median = statistics.median(values)
    return f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({min(values):.1f}-{max(values):.1f})"


def report(times: dict[int, dict[str, list[float]]], samples: int) -> str:
    rows = [
        "| hosts | trivial playbook s | site.yml cold s | site.yml no-op s | cold / floor | no-op / floor"
        " | no-op tasks per host |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    med = {count: {k: statistics.median(v) for k, v in t.items()} for count, t in times.items()}
    for count, t in times.items():
        rows.append(
            f"| {count} | {spread(t['floor'])} | {spread(t['cold'])} | {spread(t['noop'])}"
            f" | {med[count]['cold'] / med[count]['floor']:.1f}x | {med[count]['noop'] / med[count]['floor']:.1f}x"
            f" | {min(t['tasks'])}-{max(t['tasks'])} |"
        )
    scale = med[5]["cold"] / med[1]["cold"]
    return "\n".join(
        [
            "site.yml on the fleet scenario's nodes (cluster A: 3 bookworm nodes, cluster B: 2 sid nodes,"
            " each cluster sharing one volume), fresh containers for each host count; one cold run, then"
            f" {samples} no-op runs each after a floor run (median, range); every no-op run reported changed=0"
            " on every host:",
            "",
            *rows,
            "",
            f"- no-op run / trivial playbook, 1 host: **{med[1]['noop'] / med[1]['floor']:.1f}x**;"
            f" 5 hosts: **{med[5]['noop'] / med[5]['floor']:.1f}x** (goal: within 3x)",
            f"- no-op cost: {spread([float(x) for x in times[1]['tasks']])} tasks run per host, against the"
            f" floor's {spread([float(x) for x in times[1]['floor_tasks']])}",
            f"- cold run, 5 hosts / 1 host: **{scale:.2f}x** (goal: within 2x; one cold run per host count)",
        ]
    )


def write_docs(stamp_lines: str, text: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- site_rollout:begin -->", "<!-- site_rollout:end -->"
    content = docs.read_text()
    if start not in content:
        content += f"\n## site.yml rollout\n\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    docs.write_text(f"{head}{start}\n{stamp_lines}\n\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--samples", type=int, default=5, help="no-op runs per host count, each after a floor run")
    args = parser.parse_args()
    # Taken before measuring: the figures belong to the code as committed now.
    stamp_lines = stamp("site_rollout") if args.write else ""
    text = report(measure(args.samples), args.samples)
    print(text)
    if args.write:
        write_docs(stamp_lines, text)


if __name__ == "__main__":
    main()
