"""Checks a staged runtime before it replaces the deployed one.

    <default environment's python> check-template.py STAGED RUNTIME_DIR ACCOUNT PYTHON ENDPOINT NAME PROGRAM...

STAGED holds the new runtime (the PROGRAMs: worker-env.sh, worker-env-build,
build-env.sh; worker-env.conf, user_config_schema.json,
user_config_template.yaml.j2) and nothing else, each file to be copied as it
is into RUNTIME_DIR. When every one is already there, byte for byte, it
prints "unchanged" and checks nothing. Otherwise

0. each PROGRAM is parsed by `bash -n` whole (a worker's start on the site's
   fast path reads worker-env.sh only up to its `return`, and runs neither
   build program), and ACCOUNT sources build-env.sh's rules as
   worker-env-build does (`build-env.sh --rules`);

and the new template is

1. rendered by this environment's `globus-compute-endpoint render-user-config`,
   with the new schema and what an SDK on PYTHON with ENDPOINT sends;
2. loaded by the endpoint's own loader, engine and provider included;
3. its worker_init parsed by `bash -n`;
4. run once by ACCOUNT (root only; any other caller runs it as itself), as a
   worker's shell runs it, with the staged runtime in place of RUNTIME_DIR:
   it must leave the environment's process_worker_pool.py on PATH (NAME is
   that environment's, the contract's name for PYTHON and ENDPOINT).

Then it prints "checked". On failure it prints one line on stderr that starts
with the variable to fix, and exits 1.
"""

from __future__ import annotations

import copy
import json
import os
import pwd
import shlex
import subprocess
import sys
from pathlib import Path

TEMPLATE_PARTS = "python_envs_endpoint_settings, python_envs_engine or python_envs_provider"
START_TIMEOUT = 300


class Refused(Exception):
    """One line for the admin: the variable, then why."""


def unchanged(staged: Path, runtime: Path) -> bool:
    return all(
        (runtime / new.name).is_file() and (runtime / new.name).read_bytes() == new.read_bytes()
        for new in staged.iterdir()
    )


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:240]


def render(staged: Path, python: str, endpoint: str) -> str:
    minor = int(python.split(".")[1])
    sample = {
        "globus_compute_sdk_version": endpoint,
        "python_version": f"{python}.0",
        "python": {"version": f"{python}.0", "version_tuple": [3, minor, 0, "final", 0], "name": "CPython"},
    }
    check = staged.parent
    (check / "user_runtime.json").write_text(json.dumps(sample))
    (check / "user_options.json").write_text("{}")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("globus-compute-endpoint")),
            "render-user-config",
            f"--template={staged / 'user_config_template.yaml.j2'}",
            f"--user-schema={staged / 'user_config_schema.json'}",
            f"--user-options={check / 'user_options.json'}",
            f"--user-runtime={check / 'user_runtime.json'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(check / "gc")},
        check=False,
    )
    if done.returncode != 0:
        raise Refused(f"{TEMPLATE_PARTS}: the new user config template does not render: {last_line(done.stderr)}")
    return done.stdout


def loads(config: dict) -> str | None:
    """None when the endpoint's loader accepts `config`, else its message."""
    import yaml
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    try:
        loaded = load_config_yaml(yaml.safe_dump(config))
    except Exception as err:  # the loader's every refusal is reported alike
        return " ".join(str(err).split()) or type(err).__name__
    if loaded.engine is not None:
        loaded.engine.shutdown()
        return None
    return "the rendered user config has no engine"


def load(rendered: str) -> str:
    """The loader accepts the rendered config; returns its worker_init. Else names the part it refuses."""
    import yaml

    config = yaml.safe_load(rendered)
    error = loads(config)
    if error is None:
        return config["engine"]["provider"]["worker_init"]
    # Each part alone, the others at the endpoint's defaults, names the variable.
    settings = {k: v for k, v in config.items() if k != "engine"}
    engine = {k: v for k, v in config["engine"].items() if k != "provider"}
    provider = config["engine"]["provider"]
    alone = {
        "python_envs_endpoint_settings": {**settings, "engine": {"type": "GlobusComputeEngine"}},
        "python_envs_engine": {"engine": engine},
        "python_envs_provider": {"engine": {"type": "GlobusComputeEngine", "provider": copy.deepcopy(provider)}},
    }
    for variable, part in alone.items():
        reason = loads(part)
        if reason is not None:
            raise Refused(f"{variable}: the endpoint's loader refuses it: {reason[:240]}")
    raise Refused(f"{TEMPLATE_PARTS}: the endpoint's loader refuses them together: {error[:240]}")


def runs_as(account: str) -> str:
    """Who as_account runs as: the account for root, else the caller."""
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() != 0 else account


def as_account(account: str, script: str) -> subprocess.CompletedProcess[str]:
    """`bash -c script` as a worker's shell: the account's, in a clean environment, from /."""
    user = pwd.getpwuid(os.geteuid()) if os.geteuid() != 0 else pwd.getpwnam(account)
    ids: dict = {}
    if os.geteuid() == 0:
        ids = {
            "user": user.pw_uid,
            "group": user.pw_gid,
            "extra_groups": os.getgrouplist(user.pw_name, user.pw_gid),
        }
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}
    try:
        return subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", script],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=START_TIMEOUT,
            check=False,
            **ids,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([], 124, "", f"did not finish in {START_TIMEOUT} s")


def programs(staged: Path, account: str, names: list[str]) -> None:
    """Every program parses, and the account can source the rules that worker-env-build sources."""

    def said(err: str) -> str:  # bash's last line, without the scratch directory
        return last_line(err.replace(f"{staged}/", ""))

    for name in names:
        parsed = subprocess.run(["bash", "-n", str(staged / name)], capture_output=True, text=True, check=False)
        if parsed.returncode != 0:
            raise Refused(f"{name}: bash cannot parse the new program: {said(parsed.stderr)}")
    rules = as_account(account, f"set -euo pipefail; source {shlex.quote(str(staged / 'build-env.sh'))} --rules")
    if rules.returncode != 0:
        reason = said(rules.stderr) if rules.stderr.strip() else f"status {rules.returncode}"
        raise Refused(f"build-env.sh: {runs_as(account)} cannot source its rules (build-env.sh --rules): {reason}")


def start(worker_init: str, staged: Path, runtime: str, account: str, name: str) -> None:
    parsed = subprocess.run(["bash", "-n", "-c", worker_init], capture_output=True, text=True, check=False)
    if parsed.returncode != 0:
        raise Refused(f"python_envs_worker_init_prefix: bash cannot parse the worker_init: {last_line(parsed.stderr)}")
    source = f"\\builtin source {shlex.quote(runtime)}/worker-env.sh "
    if worker_init.count(source) != 1:
        raise Refused(f"{TEMPLATE_PARTS}: the rendered worker_init does not source {runtime}/worker-env.sh once")
    prefix = worker_init[: worker_init.index(source)]
    staged_init = worker_init.replace(source, f"\\builtin source {shlex.quote(str(staged))}/worker-env.sh ")
    started = as_account(account, staged_init + "\ncommand -v process_worker_pool.py >/dev/null")
    if started.returncode == 0:
        return
    who = runs_as(account)
    if prefix.strip():
        alone = as_account(account, prefix)
        if alone.returncode != 0:
            raise Refused(
                f"python_envs_worker_init_prefix: it exits {alone.returncode} for {who}: {last_line(alone.stderr)}"
            )
    reason = last_line(started.stderr) if started.stderr.strip() else "process_worker_pool.py is not on its PATH"
    raise Refused(f"python_envs_default: a worker does not start in {name} as {who}: {reason}")


def main(staged: Path, runtime: str, account: str, python: str, endpoint: str, name: str, names: list[str]) -> str:
    if unchanged(staged, Path(runtime)):
        return "unchanged"
    # The account reads the staged runtime as workers read the deployed one.
    for path in (staged.parent, staged):
        path.chmod(0o755)
    programs(staged, account, names)
    worker_init = load(render(staged, python, endpoint))
    start(worker_init, staged, runtime, account, name)
    return "checked"


if __name__ == "__main__":
    try:
        print(main(Path(sys.argv[1]), *sys.argv[2:7], sys.argv[7:]))
    except Refused as refused:
        print(refused, file=sys.stderr)
        sys.exit(1)
