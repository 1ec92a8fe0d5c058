"""Checks a staged endpoint directory as the endpoint would use it, in one run of the endpoint's Python.

    <endpoint python> check_config.py STAGED_DIR ENDPOINT TEMPLATE SCHEMA [--identity-mapping]

with, in its environment, HPC_GC_USER_RUNTIME (JSON: the user_runtime an SDK
sends) and, with --identity-mapping, HPC_GC_IDENTITY_SAMPLES (JSON:
[{"identity": {...}, "user": "name" or null}]). They come through the
environment, not the command line: Ansible's script action rewrites its
command line, and a value there is as a shell reads it.

In this order, stopping at the first refusal:

0. The endpoint's package is imported: this Python can run the endpoint.
1. config.yaml is loaded as the endpoint loads its own configuration (unknown
   fields and missing paths are errors). It is staged as it is deployed,
   naming the deployed identity_mapping.json: the check's copy,
   config.checked.yaml, names the staged one instead.
2. With --identity-mapping (a multi-user endpoint), identity_mapping.json is
   loaded by the endpoint's identity mapper;
3. which then maps each sample identity, and must give the user it names.
4. ENDPOINT (the real globus-compute-endpoint) runs render-user-config on
   config.checked.yaml, TEMPLATE and SCHEMA, with the user_runtime and no
   user options; its output is rendered.yaml.
5. rendered.yaml is loaded as a user endpoint would load it (engine and
   provider fields included).

A refusal is said in one line on stderr (render-user-config's own last
line, for step 4), and the exit status names the step (REFUSED; the role's
__endpoint_check_refused reads it): 0 when all of them passed. Those statuses
are apart from Python's own (1 for an uncaught error, 2 for a usage error),
so that a Python that did not run the check is not taken for a refusal.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The exit status of each refusal, by what was refused.
REFUSED = {
    "python": 9,
    "config.yaml": 10,
    "identity_mapping.json": 11,
    "identity_samples": 12,
    "render": 13,
    "rendered.yaml": 14,
}
# The longest refusal line said: a loader's message may hold a whole document.
LONGEST = 1000


class Refused(Exception):
    """What was refused (a key of REFUSED), and the one line that says why."""

    def __init__(self, step: str, line: str) -> None:
        super().__init__(line)
        self.step = step


def load(text: str, rendered: bool = False) -> None:
    """Loads a config.yaml's text with the endpoint's own loader; an engine it makes is shut down."""
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    config = load_config_yaml(text)
    engine = getattr(config, "engine", None)
    if engine is not None:
        engine.shutdown()
    elif rendered:
        raise ValueError("the rendered user config has no engine")


def checked_copy(staged: Path, text: str) -> str:
    """config.yaml naming the staged identity mapping, written beside it as config.checked.yaml."""
    import yaml

    try:
        fields = yaml.safe_load(text)
    except yaml.YAMLError:
        # The endpoint's loader says what is wrong with it.
        return text
    if isinstance(fields, dict) and "identity_mapping_config_path" in fields:
        fields["identity_mapping_config_path"] = str(staged / "identity_mapping.json")
        text = yaml.safe_dump(fields, sort_keys=False)
    (staged / "config.checked.yaml").write_text(text)
    return text


def load_mapping(staged: Path) -> Any:
    """identity_mapping.json, loaded by the endpoint's identity mapper."""
    from globus_compute_endpoint.endpoint.identity_mapper import PosixIdentityMapper

    mapper = PosixIdentityMapper(staged / "identity_mapping.json", "hpc-globus-compute-check")
    mapper.stop_watching()
    if not mapper.identity_mappings:
        raise ValueError("it defines no usable mapper")
    return mapper


def check_samples(mapper: Any, samples: list[dict]) -> None:
    """Each sample identity maps to the user it names (null or empty: to nobody)."""
    for sample in samples:
        # As the endpoint does: the first mapper that maps the identity decides.
        found = next(filter(None, (m.map_identity(sample["identity"]) for m in mapper.identity_mappings)), None)
        wanted = sample.get("user") or None
        if found != wanted:
            said = f"{json.dumps(sample['identity'])} maps to {json.dumps(found)}, not {json.dumps(wanted)}"
            raise Refused("identity_samples", said)


def render(staged: Path, endpoint: str, template: str, schema: str, user_runtime: str) -> str:
    """What render-user-config prints for the staged config.checked.yaml, as a user endpoint would render it."""
    (staged / "user_runtime.json").write_text(user_runtime)
    (staged / "user_options.json").write_text("{}")
    ran = subprocess.run(
        [
            endpoint,
            "render-user-config",
            f"--parent-config={staged}/config.checked.yaml",
            f"--template={template}",
            f"--user-schema={schema}",
            f"--user-options={staged}/user_options.json",
            f"--user-runtime={staged}/user_runtime.json",
        ],
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(staged / "gc")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        # Its status is read below: a failure is a refusal of this step.
        check=False,
    )
    if ran.returncode != 0:
        raise Refused("render", ran.stderr.strip().split("\n")[-1].strip())
    return ran.stdout


def step(name: str, check: Callable[[], T]) -> T:
    """Runs one check; any failure of it is the refusal of `name`."""
    try:
        return check()
    except Refused:
        raise
    except Exception as err:  # every failure is reported the same way
        raise Refused(name, f"{type(err).__name__}: {err}") from err


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("staged", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("template")
    parser.add_argument("schema")
    parser.add_argument("--identity-mapping", action="store_true")
    args = parser.parse_args(argv)
    staged: Path = args.staged

    step("python", lambda: importlib.import_module("globus_compute_endpoint"))
    text = step("config.yaml", lambda: checked_copy(staged, (staged / "config.yaml").read_text()))
    step("config.yaml", lambda: load(text))
    if args.identity_mapping:
        mapper = step("identity_mapping.json", lambda: load_mapping(staged))
        step("identity_samples", lambda: check_samples(mapper, json.loads(os.environ["HPC_GC_IDENTITY_SAMPLES"])))
    user_runtime = os.environ["HPC_GC_USER_RUNTIME"]
    rendered = step("render", lambda: render(staged, args.endpoint, args.template, args.schema, user_runtime))
    (staged / "rendered.yaml").write_text(rendered)
    step("rendered.yaml", lambda: load(rendered, rendered=True))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Refused as refused:
        line = str(refused).replace("\n", " ")
        print(line if len(line) <= LONGEST else line[: LONGEST - 3] + "...", file=sys.stderr)
        sys.exit(REFUSED[refused.step])
