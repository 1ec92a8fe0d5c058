"""What a version set costs a no-op run of python_envs: a `newest` entry against the same release pinned.

On this machine (as root, connection local), with the project's uv and the
test artifacts' offline wheelhouse as the uv policy (find-links): two sites,
one whose matrix pins the tests' release and one whose entry is `newest: 1`
(which resolves to that release, the wheelhouse's newest, so both build the
same environment), are built once, then no-op runs alternate between them.
The order alternates from pair to pair, so that drift on the machine hits
both alike. Every run must report changed=0. Prints medians and spreads and
the ratio (goal: within 1.1x); with --write, updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from versions import GCE  # noqa: E402 (the tests' one source of versions)

NAME = "version_sets"
GOAL = 1.1
PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: hpc.globus_compute.python_envs
        rolespec_validate: false
"""


def wheelhouse() -> Path:
    """The offline wheelhouse of the test artifacts (built once, then cached)."""
    out = subprocess.run([str(ROOT / "scripts" / "harness" / "artifacts")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "wheelhouse"


def run(base: Path, case: str, matrix: list[dict], env: dict[str, str]) -> tuple[float, str]:
    """Wall time and output of one run of the role on the case's own site, which must succeed."""
    site = base / case
    variables = {
        "ansible_python_interpreter": sys.executable,
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_uv": str(ROOT / ".venv" / "bin" / "uv"),
        "python_envs_matrix": matrix,
        "uv_config": {"offline": True, "no-index": True, "find-links": [env["WHEELHOUSE"]]},
    }
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(base / "play.yml"), "-e", json.dumps(variables)]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, cwd=base)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"the run failed:\n{result.stdout}{result.stderr}")
    return elapsed, result.stdout


def changed(output: str) -> int:
    found = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", output)
    return int(found.group(1)) if found else -1


def measure(samples: int) -> dict[str, list[float]]:
    site = Path(tempfile.mkdtemp(prefix="hgc-bench-sets-", dir="/tmp"))
    site.chmod(0o755)
    try:
        (site / "play.yml").write_text(PLAY)
        config = site / "config" / "uv"
        config.mkdir(parents=True)
        house = wheelhouse()
        (config / "uv.toml").write_text(
            f'offline = true\nno-index = true\nfind-links = ["{house}"]\npython-downloads = "never"\n'
            f'cache-dir = "{site / "uv-cache"}"\n'
        )
        env = {
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "XDG_CONFIG_HOME": str(site / "config"),
            "WHEELHOUSE": str(house),
        }
        cases = {"pinned": [{"python": "3.11", "endpoint": GCE}], "newest": [{"python": "3.11", "newest": 1}]}
        for case, matrix in cases.items():
            run(site, case, matrix, env)  # its cold run; the uv cache is shared
        times: dict[str, list[float]] = {"pinned": [], "newest": []}
        for sample in range(samples):
            for case in ("pinned", "newest") if sample % 2 == 0 else ("newest", "pinned"):
                elapsed, output = run(site, case, cases[case], env)
                if changed(output) != 0:
                    sys.exit(f"a no-op run ({case}) changed something:\n{output}")
                if case == "newest" and f"python_envs_matrix[0]: {GCE} (from {house})" not in output:
                    sys.exit(f"the set did not resolve to {GCE}:\n{output}")
                times[case].append(elapsed)
        return times
    finally:
        shutil.rmtree(site, ignore_errors=True)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def report(times: dict[str, list[float]], samples: int) -> str:
    ratio = statistics.median(times["newest"]) / statistics.median(times["pinned"])
    return "\n".join(
        [
            f"python_envs no-op run on this machine (connection local, offline wheelhouse), {samples} interleaved"
            " pairs, medians:",
            "",
            f"- pinned entry (`endpoint: {GCE}`): {spread(times['pinned'])}",
            f"- `newest: 1` (resolves to {GCE}, one listing of the wheelhouse): {spread(times['newest'])}",
            f"- newest / pinned: **{ratio:.2f}x** (goal: within {GOAL}x)",
        ]
    )


def write_docs(stamp_lines: str, text: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    start, end = f"<!-- {NAME}:begin -->", f"<!-- {NAME}:end -->"
    content = docs.read_text()
    if start not in content:
        content += (
            "\n## Version sets\n\n"
            "`python bench/version_sets.py --write` (as root): a no-op run of the python_envs role whose matrix\n"
            "entry is a version set (`newest: 1`) against the same run with the release pinned; the set is\n"
            "resolved once per run, on the controller, from the uv policy's wheelhouse.\n\n"
            f"{start}\n{end}\n"
        )
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    docs.write_text(f"{head}{start}\n{stamp_lines}\n\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--samples", type=int, default=5, help="pairs of no-op runs (pinned, newest)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run it as root: the role checks the builds as an unprivileged account")
    # Taken before measuring: the figures belong to the code as committed now.
    stamp_lines = stamp(NAME) if args.write else ""
    text = report(measure(args.samples), args.samples)
    print(text)
    if args.write:
        write_docs(stamp_lines, text)


if __name__ == "__main__":
    main()
