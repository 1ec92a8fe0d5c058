"""Renders many user configurations with the endpoint's own `render-user-config` command, in one process.

Run with the endpoint's Python, so that the endpoint's start-up is paid once
rather than for every case.

    render_batch.py render   stdin: a JSON list of {"template": path, "schema":
                             path, "options": {...}, "runtime": {...}}; stdout: a
                             JSON list of {"rc", "stdout", "stderr"}, the command's
                             exit status and output, as a separate
                             `globus-compute-endpoint render-user-config` gives them
    render_batch.py load     stdin: a JSON list of rendered configurations; stdout:
                             a JSON list of what the endpoint's own loader made of
                             each ("UserEndpointConfig GlobusComputeEngine"), or
                             its error
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

MODE = sys.argv[1]
# The command's help text is built from the program's name at import.
sys.argv = [sys.executable.rsplit("/", 1)[0] + "/globus-compute-endpoint"]

from click.testing import CliRunner  # noqa: E402
from globus_compute_endpoint.cli import app  # noqa: E402


def load() -> None:
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    results = []
    for rendered in json.load(sys.stdin):
        try:
            config = load_config_yaml(rendered)
            config.engine.shutdown()
            results.append(f"{type(config).__name__} {type(config.engine).__name__}")
        except Exception as e:  # the loader's error is the result
            results.append(f"error: {type(e).__name__}: {e}")
    json.dump(results, sys.stdout)


def render() -> None:
    cases = json.load(sys.stdin)
    runner = CliRunner()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        options, runtime = Path(tmp, "options.json"), Path(tmp, "runtime.json")
        for case in cases:
            options.write_text(json.dumps(case["options"]))
            runtime.write_text(json.dumps(case["runtime"]))
            args = ["render-user-config", "-t", case["template"], "-s", case["schema"]]
            args += ["-o", str(options), "--user-runtime", str(runtime)]
            result = runner.invoke(app, args, env={"GLOBUS_COMPUTE_USER_DIR": str(Path(tmp, "gc"))})
            results.append({"rc": result.exit_code, "stdout": result.stdout, "stderr": result.stderr})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    {"render": render, "load": load}[MODE]()
