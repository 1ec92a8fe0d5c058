"""Wall time and module executions of site.yml, against Ansible's own floor, measured in one run.

Two cases. `--local`: `make run`'s own, site.yml with inventories/local on
this machine (optionally as another account, `--user`, with its own
ansible-playbook); the account's first run is made first, then several
no-op runs, each right after a floor run. With `--baseline COMMIT
--baseline-user ACCOUNT`, the same is measured in the same run for a
checkout of COMMIT (a git worktree, with its own ansible.cfg and collection
link), as a second account so that the two deploy into different homes: each
round runs the floor, then both no-op runs in alternating order. Without
`--local`, the fleet:

On the `fleet` Molecule scenario's nodes (two clusters, each with a shared
volume), started fresh for each host count: site.yml cold (--cold-samples
runs, each on fresh containers), then a trivial playbook (facts and a ping:
Ansible's floor for these hosts) and several no-op runs of site.yml, each
right after a floor run (interleaved, so that drift on the machine hits both
alike). Every no-op run must report changed=0 on every host; its tasks run
per host (the recap's ok=) are what a no-op costs. Prints medians and
spreads, the ratios against the floor and between host counts and, with
--write, updates docs/benchmarks.md.
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

import executions
from stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "fleet"
SITE = ROOT / "playbooks" / "site.yml"
TRIVIAL = ROOT / "bench" / "trivial.yml"
HOSTS = {1: "fa-login", 5: "all"}
# With --mitogen DIR (the ansible_mitogen package of the account's own
# Ansible), the runs use Mitogen's strategy.
MITOGEN = ["ANSIBLE_STRATEGY", "ANSIBLE_STRATEGY_PLUGINS"]


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


def run(argv: list[str], env: dict[str, str], user: str | None = None, cwd: Path = ROOT) -> tuple[float, str]:
    """Wall time and output of one ansible-playbook run (as `user` when given, from `cwd`), which must succeed."""
    # Plain output to read the recap from: a forced colour wins over ANSIBLE_NOCOLOR.
    env = {**os.environ, **env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if user:
        keep = ["ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_NOCOLOR", "ANSIBLE_FORCE_COLOR", *MITOGEN]
        argv = ["runuser", "-u", user, "--", "env", *(f"{k}={env[k]}" for k in keep if k in env), *argv]
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}")
    return elapsed, result.stdout


def recap(output: str, hosts: str) -> list[dict[str, int]]:
    found = [
        {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}
        for line in output.split("PLAY RECAP", 1)[-1].splitlines()
        if re.match(hosts + r" +:", line)
    ]
    if not found:
        sys.exit(f"no recap:\n{output[-3000:]}")
    return found


def timed(state: Path, playbook: Path, limit: str) -> tuple[float, list[dict[str, int]], str]:
    """Wall time of one run, each host's recap counts, and its output."""
    argv = ["ansible-playbook", "-i", str(state / "inventory"), "--limit", limit, str(playbook)]
    elapsed, output = run(argv, {"ANSIBLE_CONFIG": str(state / "ansible.cfg")})
    return elapsed, recap(output, r"^f[ab]-\w+"), output


def noop_modules(
    argv: list[str], env: dict[str, str], hosts: str, user: str | None = None, cwd: Path = ROOT
) -> dict[str, object]:
    """One more no-op run at -vvv (apart: verbosity costs time), which must change nothing:
    its module executions and other commands per host, and per role for the first host."""
    _, output = run([*argv, "-vvv"], env, user, cwd)
    if any(host.get("changed", -1) != 0 for host in recap(output, hosts)):
        sys.exit(f"the counted run is not a no-op: {recap(output, hosts)}")
    found = executions.count(output)
    # Mitogen runs modules in its own processes: -vvv shows no EXEC to count.
    first = sorted(found.modules)[0] if found.modules else ""
    return {"modules": dict(found.modules), "overhead": dict(found.overhead), "roles": executions.by_role(found, first)}


class Checkout:
    """Where site.yml runs from: this checkout, or a worktree of a baseline commit, as one account."""

    def __init__(self, root: Path, user: str | None, playbook_bin: str) -> None:
        self.root, self.user = root, user
        self.env = {"ANSIBLE_COLLECTIONS_PATH": str(root / ".cache" / "collections")}
        self.site = [playbook_bin, "-i", "inventories/local", "playbooks/site.yml"]

    def noop(self) -> float:
        elapsed, output = run(self.site, self.env, self.user, self.root)
        if recap(output, "^localhost")[0].get("changed", -1) != 0:
            sys.exit(f"site.yml of {self.root} on localhost is not a no-op: {recap(output, '^localhost')}")
        return elapsed


def worktree(commit: str) -> Path:
    """A checkout of commit beside the others, with the collection link make run's lib.sh would make."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", commit], capture_output=True, text=True, check=True)
    path = Path(f"/tmp/hpc-gc-baseline-{sha.stdout.strip()[:12]}")
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True)
    link = path / ".cache" / "collections" / "ansible_collections" / "hpc" / "globus_compute"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(path)
    return path


def drop_worktree(path: Path) -> None:
    """Remove a baseline's checkout and git's record of it: nothing of a run stays in /tmp."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=True)


def measure_local(
    samples: int, user: str | None, playbook_bin: str, baseline: str | None, baseline_user: str | None
) -> dict[str, object]:
    base = Checkout(worktree(baseline), baseline_user, playbook_bin) if baseline else None
    try:
        return measure_checkouts(samples, user, playbook_bin, base)
    finally:
        if base:
            drop_worktree(base.root)


def measure_checkouts(samples: int, user: str | None, playbook_bin: str, base: Checkout | None) -> dict[str, object]:
    now = Checkout(ROOT, user, playbook_bin)
    floor = [playbook_bin, "-i", "inventories/local", "bench/trivial.yml"]
    cell: dict[str, object] = {"cold": [run(now.site, now.env, user)[0]], "floor": [], "noop": []}
    if base:
        cell["baseline"] = subprocess.run(
            ["git", "-C", str(base.root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        cell["baseline_cold"] = [run(base.site, base.env, base.user, base.root)[0]]
        cell["baseline_noop"] = []
    for round_ in range(samples):
        cell["floor"].append(run(floor, now.env, user)[0])  # type: ignore[union-attr]
        # Alternating which goes first: what slows the machine during a round hits both alike.
        order = [now, base] if round_ % 2 == 0 else [base, now]
        for checkout in (c for c in order if c):
            cell["noop" if checkout is now else "baseline_noop"].append(checkout.noop())  # type: ignore[union-attr]
    cell["executions"] = noop_modules(now.site, now.env, "^localhost", user)
    if base:
        cell["baseline_executions"] = noop_modules(base.site, base.env, "^localhost", base.user, base.root)
    cell["floor_executions"] = dict(executions.count(run([*floor, "-vvv"], now.env, user)[1]).modules)
    print(f"local: {cell}", flush=True)
    return cell


def report_local(cell: dict, samples: int, user: str | None) -> str:
    floor = statistics.median(cell["floor"])
    ratio = statistics.median(cell["noop"]) / floor
    strategy = f", strategy {os.environ['ANSIBLE_STRATEGY']}" if "ANSIBLE_STRATEGY" in os.environ else ""

    def row(label: str, cold: list[float], noop: list[float], counted: dict) -> str:
        roles = ", ".join(f"{role} {n}" for role, n in counted["roles"].items())
        return (
            f"| {label} | {spread(cell['floor'])} | {spread(cold)} | {spread(noop)}"
            f" | {statistics.median(noop) / floor:.1f}x"
            f" | {counted['modules'].get('localhost', '-')} ({roles or 'not counted under Mitogen'})"
            f" | {counted['overhead'].get('localhost', '-')} |"
        )

    rows = [row("this commit", cell["cold"], cell["noop"], cell["executions"])]
    lines = []
    if "baseline" in cell:
        rows.append(
            row(
                f"baseline `{cell['baseline'][:10]}`",
                cell["baseline_cold"],
                cell["baseline_noop"],
                cell["baseline_executions"],
            )
        )
        base = statistics.median(cell["baseline_noop"]) / floor
        lines.append(f"- baseline `{cell['baseline'][:10]}`, the same way in the same run: **{base:.1f}x**")
    return "\n".join(
        [
            f"`make run`'s case: site.yml with inventories/local on this machine"
            f"{f' as {user}' if user else ''}"
            f"{strategy}; the first run, then {samples} rounds of a floor run and a no-op run"
            f"{' of each checkout (its own account, alternating which goes first)' if 'baseline' in cell else ''}"
            " (median, range); every no-op run reported changed=0, and the floor runs"
            f" {cell['floor_executions'].get('localhost', '-')} module executions:",
            "",
            "| code | trivial playbook s | site.yml first run s | site.yml no-op s | no-op / floor"
            " | no-op module executions | other commands |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"- no-op run / trivial playbook: **{ratio:.1f}x** (goal: within 3x)",
            *lines,
        ]
    )


def measure(samples: int, cold_samples: int) -> dict[int, dict[str, list[float]]]:
    times: dict[int, dict[str, list[float]]] = {}
    for count, limit in HOSTS.items():
        # Each cold run on containers of its own: one alone varied by a quarter between runs.
        cold = []
        for _ in range(cold_samples):
            state = fresh_nodes()
            cold.append(timed(state, SITE, limit)[0])
        cell: dict = {"floor": [timed(state, TRIVIAL, limit)[0]], "cold": cold, "noop": []}
        cell["tasks"], cell["floor_tasks"] = [], []
        for _ in range(samples):
            elapsed, recap, _ = timed(state, TRIVIAL, limit)
            cell["floor"].append(elapsed)
            cell["floor_tasks"].extend(host["ok"] for host in recap)
            elapsed, recap, output = timed(state, SITE, limit)
            if len(recap) != count or any(host.get("changed", -1) != 0 for host in recap):
                sys.exit(f"site.yml on {limit} is not a no-op: {recap}; changed: {executions.changed(output)}")
            cell["noop"].append(elapsed)
            cell["tasks"].extend(host["ok"] for host in recap)
        cell["executions"] = noop_modules(
            ["ansible-playbook", "-i", str(state / "inventory"), "--limit", limit, str(SITE)],
            {"ANSIBLE_CONFIG": str(state / "ansible.cfg")},
            r"^f[ab]-\w+",
        )
        times[count] = cell
        print(f"{count} host(s): " + ", ".join(f"{k} {v}" for k, v in cell.items()), flush=True)
    molecule("destroy")
    return times


def spread(values: list[float]) -> str:
    """Median, and the range around it when there are several samples."""
    median = statistics.median(values)
    return f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({min(values):.1f}-{max(values):.1f})"


def report(times: dict[int, dict[str, list[float]]], samples: int, cold_samples: int) -> str:
    rows = [
        "| hosts | trivial playbook s | site.yml cold s | site.yml no-op s | cold / floor | no-op / floor"
        " | no-op tasks per host | no-op module executions per host |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    med = {n: {k: statistics.median(t[k]) for k in ("floor", "cold", "noop")} for n, t in times.items()}
    for count, t in times.items():
        rows.append(
            f"| {count} | {spread(t['floor'])} | {spread(t['cold'])} | {spread(t['noop'])}"
            f" | {med[count]['cold'] / med[count]['floor']:.1f}x | {med[count]['noop'] / med[count]['floor']:.1f}x"
            f" | {min(t['tasks'])}-{max(t['tasks'])}"
            f" | {min(t['executions']['modules'].values())}-{max(t['executions']['modules'].values())} |"
        )
    scale = med[5]["cold"] / med[1]["cold"]
    return "\n".join(
        [
            "site.yml on the fleet scenario's nodes (cluster A: 3 bookworm nodes, cluster B: 2 sid nodes,"
            f" each cluster sharing one volume): {cold_samples} cold run(s) for each host count, each on fresh"
            f" containers, then {samples} no-op runs each after a floor run (median, range); every no-op run"
            " reported changed=0 on every host:",
            "",
            *rows,
            "",
            f"- no-op run / trivial playbook, 1 host: **{med[1]['noop'] / med[1]['floor']:.1f}x**;"
            f" 5 hosts: **{med[5]['noop'] / med[5]['floor']:.1f}x** (goal: within 4x in the containers)",
            f"- no-op cost: {spread([float(x) for x in times[1]['tasks']])} tasks run per host, against the"
            f" floor's {spread([float(x) for x in times[1]['floor_tasks']])}",
            f"- cold run, 5 hosts / 1 host: **{scale:.2f}x** (goal: within 2x; medians of {cold_samples} cold runs)",
        ]
    )


def write_docs(stamp_lines: str, text: str, name: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    start, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
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
    parser.add_argument(
        "--cold-samples", type=int, default=3, help="cold runs per host count, each on fresh containers (fleet only)"
    )
    parser.add_argument("--local", action="store_true", help="make run's case on this machine, not the fleet")
    parser.add_argument("--user", help="with --local: run the playbooks as this account")
    parser.add_argument("--ansible-playbook", default="ansible-playbook", help="with --local: the account's own")
    parser.add_argument("--mitogen", type=Path, help="with --local: the ansible_mitogen package, to run mitogen_linear")
    parser.add_argument("--baseline", help="with --local: a commit to measure beside this one, in the same run")
    parser.add_argument("--baseline-user", help="with --baseline: the account that runs it (its own home)")
    args = parser.parse_args()
    if args.baseline and not (args.local and args.user and args.baseline_user and args.baseline_user != args.user):
        parser.error("--baseline needs --local, --user and another --baseline-user: the two deploy into their homes")
    name = "site_rollout_local" if args.local else "site_rollout"
    if args.mitogen:
        os.environ["ANSIBLE_STRATEGY"] = "mitogen_linear"
        os.environ["ANSIBLE_STRATEGY_PLUGINS"] = str(args.mitogen / "plugins" / "strategy")
        name += "_mitogen"
    # Taken before measuring: the figures belong to the code as committed now.
    stamp_lines = stamp(name) if args.write else ""
    if args.local:
        cell = measure_local(args.samples, args.user, args.ansible_playbook, args.baseline, args.baseline_user)
        text = report_local(cell, args.samples, args.user)
    else:
        text = report(measure(args.samples, args.cold_samples), args.samples, args.cold_samples)
    print(text)
    if args.write:
        write_docs(stamp_lines, text, name)


if __name__ == "__main__":
    main()
