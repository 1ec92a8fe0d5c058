"""Wall time of site.yml on 1 and on 5 hosts, against Ansible's own floor, measured in one run.

On the `fleet` Molecule scenario's nodes (two clusters, each with a shared
volume), started fresh for each host count: a trivial playbook (facts and a
ping: Ansible's floor for these hosts), site.yml cold, and site.yml again
(no-op). Prints the ratios against the floor and between host counts and,
with --write, updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

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


def timed(state: Path, playbook: Path, limit: str) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(state / "ansible.cfg")}
    argv = ["ansible-playbook", "-i", str(state / "inventory"), "--limit", limit, str(playbook)]
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{playbook.name} on {limit} failed:\n{result.stdout[-3000:]}")
    return elapsed


def measure() -> dict[int, dict[str, float]]:
    times: dict[int, dict[str, float]] = {}
    for count, limit in HOSTS.items():
        state = fresh_nodes()
        times[count] = {
            "floor": timed(state, TRIVIAL, limit),
            "cold": timed(state, SITE, limit),
            "noop": timed(state, SITE, limit),
        }
        print(f"{count} host(s): " + ", ".join(f"{k} {v:.1f} s" for k, v in times[count].items()), flush=True)
    molecule("destroy")
    return times


def report(times: dict[int, dict[str, float]]) -> str:
    rows = [
        "| hosts | trivial playbook s | site.yml cold s | site.yml no-op s | cold / floor | no-op / floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for count, t in times.items():
        rows.append(
            f"| {count} | {t['floor']:.1f} | {t['cold']:.1f} | {t['noop']:.1f}"
            f" | {t['cold'] / t['floor']:.1f}x | {t['noop'] / t['floor']:.1f}x |"
        )
    scale = times[5]["cold"] / times[1]["cold"]
    return "\n".join(
        [
            "site.yml on the fleet scenario's nodes (cluster A: 3 bookworm nodes, cluster B: 2 sid nodes,"
            " each cluster sharing one volume), fresh containers for each host count:",
            "",
            *rows,
            "",
            f"- no-op run / trivial playbook, 1 host: **{times[1]['noop'] / times[1]['floor']:.1f}x**;"
            f" 5 hosts: **{times[5]['noop'] / times[5]['floor']:.1f}x** (goal: within 3x)",
            f"- cold run, 5 hosts / 1 host: **{scale:.2f}x** (goal: within 2x)",
        ]
    )


def write_docs(text: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- site_rollout:begin -->", "<!-- site_rollout:end -->"
    content = docs.read_text()
    if start not in content:
        content += f"\n## site.yml rollout\n\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    docs.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    text = report(measure())
    print(text)
    if args.write:
        write_docs(text)


if __name__ == "__main__":
    main()
