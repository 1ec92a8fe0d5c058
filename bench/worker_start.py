"""Worker start latency and cold-start storms, measured in one run on one test node.

Compares, per worker start, the fast path of worker-env.sh with a bare
`source bin/activate` (the floor), the Globus Compute tutorial's worker_init
and the worker_init that globus-compute-endpoint 4.19's default template
renders; then 64 simultaneous starts of a missing environment against one
single build. Prints ratios against the baseline measured in the same run
and, with --write, updates docs/benchmarks.md and its plot.

Needs the `python_envs` Molecule scenario's nodes (scripts/bench starts them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
NODE = "pe-sid"
USER = "alice"
GCE = "4.19.0"
SITE_ENV = f"/opt/hpc_globus_compute/envs/py3.13-gce{GCE}"
DEFAULT_TEMPLATE = (
    f"{SITE_ENV}/lib/python3.13/site-packages/globus_compute_endpoint/endpoint/config/user_config_template.yaml.j2"
)
METHODS = ("bare", "fast", "requirements", "tutorial", "default_4.19")


def on_node(script: str) -> str:
    result = subprocess.run(
        ["docker", "exec", NODE, "runuser", "-l", USER, "-c", script], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"on {NODE}: {script!r} failed:\n{result.stderr}")
    return result.stdout


def default_template_worker_init(python: tuple[int, int]) -> str:
    runtime = {"globus_compute_sdk_version": GCE, "python": {"version_tuple": [*python, 1, "final", 0]}}
    rendered = on_node(
        f"d=$(mktemp -d); echo '{json.dumps(runtime)}' > $d/rt.json; echo '{{}}' > $d/o.json;"
        f" GLOBUS_COMPUTE_USER_DIR=$d/gc {SITE_ENV}/bin/globus-compute-endpoint render-user-config"
        f" -t {DEFAULT_TEMPLATE} -o $d/o.json --user-runtime $d/rt.json 2>/dev/null"
    )
    import yaml

    return yaml.safe_load(rendered)["engine"]["provider"]["worker_init"]


def run(starts: int, storm_starts: int, pairs: int) -> tuple[dict[str, list[float]], dict[str, int], list[dict]]:
    subprocess.run(
        ["docker", "cp", str(ROOT / "bench" / "worker_start.sh"), f"{NODE}:/tmp/worker_start.sh"], check=True
    )
    subprocess.run(["docker", "exec", NODE, "chmod", "755", "/tmp/worker_start.sh"], check=True)
    local = ROOT / ".cache" / "default_init.sh"
    local.write_text(default_template_worker_init((3, 13)))
    subprocess.run(["docker", "cp", str(local), f"{NODE}:/tmp/default_init.sh"], check=True)
    subprocess.run(["docker", "exec", NODE, "chmod", "644", "/tmp/default_init.sh"], check=True)
    samples: dict[str, list[float]] = defaultdict(list)
    exits: dict[str, int] = defaultdict(int)
    for line in on_node(f"/tmp/worker_start.sh latency {starts} 3.13 {GCE} /tmp/default_init.sh").splitlines():
        method, micros, rc = line.split()
        samples[method].append(int(micros) / 1000)
        exits[method] = max(exits[method], int(rc))
    storm = []
    for line in on_node(f"/tmp/worker_start.sh storm {pairs} {storm_starts} 3.14 {GCE}").splitlines():
        _, single, single_rc, storm_us, failures, builds = line.split()
        storm.append(
            {
                "single_build": int(single) / 1000,
                "single_exit": int(single_rc),
                "storm": int(storm_us) / 1000,
                "failures": int(failures),
                "builds": int(builds),
            }
        )
    return samples, exits, storm


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paired(samples: dict[str, list[float]], method: str, baseline: str) -> str:
    """The ratio of two methods' starts within each round: noise that hits a round hits both."""
    ratios = [a / b for a, b in zip(samples[method], samples[baseline], strict=True)]
    return f"**{statistics.median(ratios):.2f}x** ({pct(ratios, 0.1):.2f}x to {pct(ratios, 0.9):.2f}x)"


def report(
    samples: dict[str, list[float]], exits: dict[str, int], storm: list[dict], starts: int, storm_starts: int
) -> str:
    base = statistics.median(samples["bare"])
    rows = [
        "| worker_init | median ms | p10 ms | p90 ms | x bare activate | last exit status |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in METHODS:
        med = statistics.median(samples[m])
        spread = f"{pct(samples[m], 0.1):.1f} | {pct(samples[m], 0.9):.1f}"
        rows.append(f"| {m} | {med:.1f} | {spread} | {med / base:.2f} | {exits[m]} |")
    ratios = [pair["storm"] / pair["single_build"] for pair in storm]
    singles = [pair["single_build"] for pair in storm]
    storms = [pair["storm"] for pair in storm]
    pair_rows = [
        "| pair | order | single build ms | storm ms | storm / single | failed starts | builds |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, pair in enumerate(storm):
        order = "single, storm" if i % 2 == 0 else "storm, single"
        pair_rows.append(
            f"| {i + 1} | {order} | {pair['single_build']:.0f} | {pair['storm']:.0f}"
            f" | {pair['storm'] / pair['single_build']:.2f} | {pair['failures']} | {pair['builds']} |"
        )
    lines = [
        f"Per-start latency, {starts} interleaved starts each, Python 3.13, globus-compute-endpoint {GCE}"
        f" (bare activate: median {base:.1f} ms on this run):",
        "",
        *rows,
        "",
        "Ratios per round (each round starts every method once, one after the other), median and p10 to p90:",
        "",
        f"- fast path / bare activate: {paired(samples, 'fast', 'bare')} (goal: within 1.2x)",
        f"- a user's packages, fast path / bare activate: {paired(samples, 'requirements', 'bare')} (goal: within 2x)",
        f"- tutorial / fast path: {paired(samples, 'tutorial', 'fast')} (goal: at least 5x)",
        "",
        f"Cold storm: {len(storm)} pairs, each of {storm_starts} simultaneous starts of a missing per-user"
        " environment (Python 3.14, no uv cache) and of one start that builds it alone from the same state,"
        " in alternating order:",
        "",
        *pair_rows,
        "",
        f"- storm / single build: median **{statistics.median(ratios):.2f}x**, from {min(ratios):.2f}x"
        f" to {max(ratios):.2f}x over {len(ratios)} pairs (goal: within 1.5x)",
        f"- single build: median {statistics.median(singles):.0f} ms ({min(singles):.0f} to {max(singles):.0f});"
        f" storm: median {statistics.median(storms):.0f} ms ({min(storms):.0f} to {max(storms):.0f})",
        f"- builds per storm: **{', '.join(str(p['builds']) for p in storm)}**;"
        f" failed starts: **{sum(p['failures'] for p in storm)}**;"
        f" failed single builds: **{sum(p['single_exit'] != 0 for p in storm)}**",
    ]
    return "\n".join(lines)


def svg(samples: dict[str, list[float]]) -> str:
    """Strip plot of the latency distributions on a log scale, dependency-free."""
    import math

    width, row, left = 640, 48, 110
    lo, hi = math.log10(1), math.log10(max(max(v) for v in samples.values()) * 1.5)
    x = lambda ms: left + (math.log10(max(ms, 1)) - lo) / (hi - lo) * (width - left - 20)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(METHODS) + 40}">']
    out.append("<style>text{font:12px sans-serif}</style>")
    for i, m in enumerate(METHODS):
        y = 20 + i * row + row / 2
        out.append(f'<text x="4" y="{y + 4}">{m}</text>')
        for j, v in enumerate(samples[m]):
            jitter = (j % 7 - 3) * 2
            out.append(f'<circle cx="{x(v):.1f}" cy="{y + jitter}" r="2.5" fill="#36c" fill-opacity="0.5"/>')
        med = statistics.median(samples[m])
        out.append(
            f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="{y - 14}" y2="{y + 14}" stroke="#c33" stroke-width="2"/>'
        )
    axis_y = 20 + row * len(METHODS)
    for ms in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if math.log10(ms) <= hi:
            out.append(f'<text x="{x(ms) - 8:.1f}" y="{axis_y + 14}">{ms}</text>')
            out.append(f'<line x1="{x(ms):.1f}" x2="{x(ms):.1f}" y1="14" y2="{axis_y}" stroke="#ddd"/>')
    out.append(f'<text x="{width / 2 - 60}" y="{axis_y + 32}">ms per worker start (log)</text></svg>')
    return "\n".join(out) + "\n"


def write_docs(stamp_lines: str, text: str, plot: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    (ROOT / "docs" / "img").mkdir(exist_ok=True)
    (ROOT / "docs" / "img" / "worker_start.svg").write_text(plot)
    start, end = "<!-- worker_start:begin -->", "<!-- worker_start:end -->"
    page = docs.read_text()
    head, rest = page.split(start, 1)
    _, tail = rest.split(end, 1)
    docs.write_text(
        f"{head}{start}\n{stamp_lines}\n\n{text}\n\n![worker start latency](img/worker_start.svg)\n{end}{tail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--storm", type=int, default=64, help="simultaneous starts in each storm")
    parser.add_argument("--pairs", type=int, default=5, help="storm and single-build pairs, interleaved")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md and its plot")
    args = parser.parse_args()
    # Taken before measuring: the figures belong to the code as committed now.
    stamp_lines = stamp("worker_start") if args.write else ""
    samples, exits, storm = run(args.starts, args.storm, args.pairs)
    text = report(samples, exits, storm, args.starts, args.storm)
    print(text)
    if args.write:
        write_docs(stamp_lines, text, svg(samples))


if __name__ == "__main__":
    main()
