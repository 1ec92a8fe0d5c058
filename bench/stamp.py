"""Which commit produced each table of docs/benchmarks.md, and whether the code it measures changed since.

Each table sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` and
starts with a stamp line naming the commit it was measured at. A table is
stale when a path it measures changed after that commit (or the commit is
unknown): it then carries a notice saying so.

  python bench/stamp.py --check   fail if a stale table is not marked, or a fresh one is
  python bench/stamp.py --mark    add or remove the notices to match
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
# What each benchmark measures: a change in any of these makes its figures stale.
MEASURES = {
    "worker_start": [
        "bench/worker_start.py",
        "bench/worker_start.sh",
        "roles/python_envs/files/worker-env.sh",
        "roles/python_envs/files/worker-env-build",
        # worker-env-build sources the rules of builds from it.
        "roles/_common/files/build-env.sh",
        "roles/python_envs/templates",
        "roles/python_envs/files/user_config_template.yaml.j2",
    ],
    "site_rollout": [
        *("bench/site_rollout.py", "bench/executions.py", "bench/trivial.yml"),
        *("roles", "playbooks", "plugins", "molecule/fleet"),
    ],
    "site_rollout_local": [
        *("bench/site_rollout.py", "bench/executions.py", "bench/trivial.yml"),
        *("roles", "playbooks", "plugins", "ansible.cfg", "inventories/local"),
    ],
    "version_sets": [
        "bench/version_sets.py",
        "roles/python_envs",
        "roles/_common",
        "plugins",
        "scripts/harness/artifacts",
    ],
    "site_rollout_local_mitogen": [
        *("bench/site_rollout.py", "bench/executions.py", "bench/trivial.yml"),
        *("roles", "playbooks", "plugins", "ansible.cfg", "inventories/local"),
    ],
}
STAMP = re.compile(r"^<!-- measured at commit ([0-9a-f]{40}|unknown) -->$", re.M)
NOTICE = re.compile(r"^> \*\*Stale:\*\*.*\n\n", re.M)


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def stamp(name: str) -> str:
    """The stamp for a table measured now; refuses when the measured code has uncommitted changes."""
    dirty = git("status", "--porcelain", "--", *MEASURES[name]).stdout.strip()
    if dirty:
        sys.exit(f"{name}: commit the code it measures before writing its figures:\n{dirty}")
    commit = git("rev-parse", "HEAD").stdout.strip()
    return f"<!-- measured at commit {commit} -->\nMeasured at commit `{commit[:10]}`."


def changed_since(name: str, commit: str) -> list[str] | None:
    """Measured paths changed after `commit` (None when the commit is unknown here)."""
    if commit == "unknown" or git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return None
    return git("diff", "--name-only", commit, "HEAD", "--", *MEASURES[name]).stdout.split()


def notice(name: str, commit: str, changed: list[str] | None) -> str:
    if changed is None:
        why = "the commit that produced it is not known"
    else:
        shown = ", ".join(f"`{path}`" for path in changed[:4]) + (" and more" if len(changed) > 4 else "")
        why = f"{shown} changed after `{commit[:10]}`, where it was measured"
    return f"> **Stale:** {why}. Rerun `scripts/bench {name} --write`.\n\n"


def block(page: str, name: str) -> tuple[int, int]:
    start = page.index(f"<!-- {name}:begin -->\n") + len(f"<!-- {name}:begin -->\n")
    return start, page.index(f"<!-- {name}:end -->", start)


def run(mark: bool) -> int:
    page = DOCS.read_text()
    problems = []
    for name in MEASURES:
        start, end = block(page, name)
        body = page[start:end]
        found = STAMP.search(body)
        commit = found[1] if found else "unknown"
        changed = changed_since(name, commit)
        stale = changed is None or bool(changed)
        body_without = NOTICE.sub("", body)
        if not found:
            body_without = "<!-- measured at commit unknown -->\n" + body_without
        after_stamp = body_without.index("-->\n") + len("-->\n")
        rest = body_without[after_stamp:]
        # The notice goes after the human-readable stamp line, if there is one.
        first, _, remainder = rest.partition("\n")
        if first.startswith("Measured at commit"):
            head, rest = body_without[:after_stamp] + first + "\n\n", remainder.lstrip("\n")
        else:
            head = body_without[:after_stamp]
        wanted = head + (notice(name, commit, changed) if stale else "") + rest
        if wanted != body:
            state = "stale and not marked" if stale else "marked stale but fresh"
            problems.append(f"{name}: {state}" + (f" ({', '.join(changed)})" if changed else ""))
            page = page[:start] + wanted + page[end:]
    if mark:
        DOCS.write_text(page)
        for problem in problems:
            print(f"docs/benchmarks.md: marked {problem}")
        return 0
    for problem in problems:
        print(f"docs/benchmarks.md: {problem}; run python bench/stamp.py --mark", file=sys.stderr)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true")
    action.add_argument("--mark", action="store_true")
    args = parser.parse_args()
    sys.exit(run(args.mark))


if __name__ == "__main__":
    main()
