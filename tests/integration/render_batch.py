"""Renders many user configurations with the endpoint's own `render-user-config` command, in one process.

Run with the endpoint's Python. Reads a JSON list of cases on stdin, each
{"template": path, "schema": path, "options": {...}, "runtime": {...}}, and
prints a JSON list of {"rc", "stdout", "stderr"}: the command's exit status
and output, exactly as a separate `globus-compute-endpoint render-user-config`
would give them, without paying the endpoint's start-up for every case.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

# The command's help text is built from the program's name at import.
sys.argv = [sys.executable.rsplit("/", 1)[0] + "/globus-compute-endpoint"]

from click.testing import CliRunner  # noqa: E402
from globus_compute_endpoint.cli import app  # noqa: E402


def main() -> None:
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
    main()
