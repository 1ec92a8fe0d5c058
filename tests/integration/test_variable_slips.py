"""An admin's slips: values typed as `-e key=value`, misspelled names, wrong types.

Each runs the real role (or site.yml) on this machine against an existing
deployment in a private directory, and checks that a slip fails naming the
variable, in a short message, with every file unchanged: the private directory
by checksum, and (as root) every system tree, /etc/uv and /var/lib included,
through overlays that list whatever path a run wrote (role_runner); and that
`-e` strings take effect with their type.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from role_runner import ROOT, assert_fails_with, checksums, run_playbook, run_role
from test_template_render import deploy_runtime

UV = str(ROOT / ".venv" / "bin" / "uv")


def python_envs_vars(site: Path) -> dict[str, object]:
    return {
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_owner": getpass.getuser(),
        "python_envs_group": getpass.getuser(),
        "python_envs_uv": UV,
        "python_envs_facts_dir": str(site / "facts"),
    }


def endpoint_vars(site: Path) -> dict[str, object]:
    return {
        "endpoint_owner": "root",
        "endpoint_mode": "multi_user",
        "endpoint_config_dir": str(site / "gc" / "hpc"),
        "endpoint_install_root": str(site / "install"),
        "endpoint_bin_dir": str(site / "bin"),
        "endpoint_facts_dir": str(site / "facts"),
        "endpoint_service": False,
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
        # Not the first python3 on the test's PATH (the toolchain's, under root's 0700 home), which the
        # endpoint's checks refuse before the settings that depend on each other.
        "endpoint_python": "/usr/bin/python3",
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """What an earlier run left: files a refused run must not touch."""
    site = tmp_path / "site"
    (site / "runtime").mkdir(parents=True)
    (site / "runtime" / "worker-env.conf").write_text("WORKER_ENV_USER_BUILDS=true\n")
    (site / "runtime" / "envs").mkdir()
    (site / "gc" / "hpc").mkdir(parents=True)
    (site / "gc" / "hpc" / "config.yaml").write_text("display_name: hpc\n")
    (site / "facts").mkdir()
    return site


def assert_refused(result, site: Path, before: dict[str, str], *shown: str) -> None:
    assert_fails_with(result, *shown)
    output = result.stdout + result.stderr
    # One short line names the variable; never the whole argument spec, nor a truncated line of Ansible's own
    # check of an entry's keys ("python_envs_matrix.endpiont; allowed: list of dict").
    assert "argument_spec_data" not in output
    assert "found in" not in output and "Supported parameters" not in output and "of dict" not in output
    assert any(shown[0] in line and len(line) < 400 for line in output.splitlines()), output
    assert checksums(site) == before


NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="a multi-user endpoint is deployed by root")


@pytest.mark.parametrize(
    ("role", "variables", "args", "shown"),
    [
        ("python_envs", {"python_envs_user_packages": "numpy scipy"}, [], ["python_envs_user_packages", "numpy scipy"]),
        (
            "python_envs",
            {"python_envs_matix": [{"python": "3.12", "endpoint": "4.19.0"}]},
            [],
            ["python_envs_matix", "did you mean python_envs_matrix?"],
        ),
        ("python_envs", {}, ["-e", "python_envs_prune=perhaps"], ["python_envs_prune", '"perhaps"', "not a bool"]),
        ("python_envs", {}, ["-e", "python_envs_user_envs_max=ten"], ["python_envs_user_envs_max", '"ten"']),
        ("python_envs", {}, ["-e", "python_envs_lock_wait=-1"], ["python_envs_lock_wait", "-1 s", "86400"]),
        (
            "python_envs",
            {},
            ["-e", "python_envs_version_match=minr"],
            ["python_envs_version_match", '"minr"', "exact, minor"],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"python": 3.1, "endpoint": "4.19.0"}]},
            [],
            ["python_envs_matrix[0].python = 3.1", "quote it"],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"python": "3.11", "endpiont": "4.19.0"}]},
            [],
            ["python_envs_matrix[0].endpiont is not a key of a python_envs_matrix entry: did you mean endpoint?"],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}, {"python": "3.12", "newst": 2}]},
            [],
            ["python_envs_matrix[1].newst is not a key of a python_envs_matrix entry: did you mean newest?"],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0", "index": "https://pypi.org/simple"}]},
            [],
            [
                "python_envs_matrix[0].index is not a key of a python_envs_matrix entry: its keys are endpoint, newest,"
                " packages, prereleases, python"
            ],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"python": "3.11", "endpoint": ">=4.17", "newest": "two"}]},
            [],
            ['python_envs_matrix[0].newest = "two": not an int; allowed: int'],
        ),
        (
            "python_envs",
            {"python_envs_matrix": [{"endpoint": "4.19.0"}]},
            [],
            ["python_envs_matrix[0].python is missing: a python_envs_matrix entry needs it"],
        ),
        ("uv", {"uv_scop": "user"}, [], ["uv_scop", "did you mean uv_scope?"]),
        (
            "endpoint",
            {"endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)", "outptu": "{0}"}]},
            [],
            [
                "endpoint_identity_mapping[0].outptu is not a key of an endpoint_identity_mapping entry:"
                " did you mean output?"
            ],
        ),
        (
            "endpoint",
            {"endpoint_identity_mapping": [{"source": "{username}", "match": "(.*)"}]},
            [],
            ["endpoint_identity_mapping[0].output is missing: an endpoint_identity_mapping entry needs it"],
        ),
        (
            "endpoint",
            {"endpoint_identity_maping": [{"source": "{username}", "match": "(.*)", "output": "{0}"}]},
            [],
            ["endpoint_identity_maping", "did you mean endpoint_identity_mapping?"],
        ),
        ("endpoint", {"endpoint_identity_mapping": []}, [], ["endpoint_identity_mapping", "maps nobody"]),
        ("endpoint", {}, ["-e", "endpoint_mode=both"], ["endpoint_mode", '"both"', "multi_user, single_user"]),
        (
            "endpoint",
            {"endpoint_user_environment": {"UV_INDEX_URL": None}},
            [],
            ["endpoint_user_environment", "UV_INDEX_URL", "null", '"None"'],
        ),
        (
            "endpoint",
            {"endpoint_user_environment": {"UV_CONFIG": {"offline": True}}},
            [],
            ["endpoint_user_environment", "UV_CONFIG"],
        ),
        # Both refused by one check, so both are named at once.
        (
            "endpoint",
            {"endpoint_user_environment": {"UV_INDEX_URL": None}, "endpoint_identity_mapping": []},
            [],
            ["endpoint_user_environment", "UV_INDEX_URL", "endpoint_identity_mapping", "maps nobody"],
        ),
        (
            "endpoint",
            {"endpoint_service": True, "endpoint_service_state": "started"},
            [],
            ["endpoint_service_state", "/run/systemd/system"],
        ),
    ],
    ids=[
        "string-for-list",
        "misspelled-matrix",
        "cli-not-a-bool",
        "cli-not-an-int",
        "cli-negative-wait",
        "cli-bad-match",
        "python-as-number",
        "misspelled-matrix-key",
        "misspelled-matrix-newest",
        "unknown-matrix-key",
        "matrix-entry-not-an-int",
        "matrix-entry-without-python",
        "misspelled-uv",
        "misspelled-mapping-key",
        "mapping-entry-without-output",
        "misspelled-mapping",
        "no-mapping",
        "cli-bad-choice",
        "null-environment",
        "nested-environment",
        "environment-and-no-mapping",
        "service-without-systemd",
    ],
)
def test_a_slip_fails_naming_the_variable_and_changes_nothing(
    site: Path, role: str, variables: dict, args: list[str], shown: list[str]
) -> None:
    if role == "endpoint" and os.geteuid() != 0:
        pytest.skip("a multi-user endpoint is deployed by root")
    if "service_state" in str(variables) and (
        Path("/run/systemd/system").is_dir() or not Path("/etc/systemd/system").is_dir()
    ):
        pytest.skip("needs /etc/systemd/system without a running systemd")
    base = {
        "python_envs": python_envs_vars(site),
        "endpoint": endpoint_vars(site),
        "uv": {"uv_scope": "system", "uv_bin_dir": str(site / "bin"), "uv_controller_cache_dir": str(site / "cache")},
    }[role]
    before = checksums(site)
    result = run_role(site.parent, role, {**base, **variables}, args=args, private_system=True)
    assert_refused(result, site, before, *shown)


def test_every_matrix_entry_that_is_not_valid_is_named(site: Path) -> None:
    matrix = [{"python": "3.x", "endpoint": "4.19.0"}, {"python": [], "endpoint": "4.19.0"}]
    before = checksums(site)
    result = run_role(site.parent, "python_envs", {**python_envs_vars(site), "python_envs_matrix": matrix})
    # Each entry as the role read it (with its defaults), in one refusal.
    assert_fails_with(
        result, 'python_envs_matrix: entries {"python": "3.x", "endpoint": "4.19.0"', '{"python": [], "endpoint"'
    )
    assert "are not valid: python must be" in result.stdout
    assert checksums(site) == before


def test_an_interpreter_that_does_not_run_is_refused(site: Path) -> None:
    shim = site.parent / "shims" / "python3.11"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.11: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    before = checksums(site)
    result = run_role(
        site.parent,
        "python_envs",
        {**python_envs_vars(site), "python_envs_interpreter_paths": {"3.11": str(shim)}},
        private_system=True,
    )
    assert_refused(result, site, before, "python_envs_interpreter_paths", str(shim), "cannot be run by nobody")


@NEEDS_ROOT
@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        (
            "hpc_gc_report=alway",
            'hpc_gc_report: "alway" is neither changed (the default: start workers only after a run that deployed'
            " something) nor always.",
        ),
        # Ansible reads the next two as the rollout play's keywords, as it starts: a traceback, or (a
        # negative budget) every batch ended before its first task without a word.
        ("hpc_gc_serial=abc", 'hpc_gc_serial: "abc" is not a batch size'),
        ("hpc_gc_serial=2.5", 'hpc_gc_serial: "2.5" is not a batch size'),
        ("hpc_gc_serial=0%", 'hpc_gc_serial: "0%" is not a batch size'),
        ('{"hpc_gc_serial": [1, "x"]}', 'hpc_gc_serial: [1, "x"] is not a batch size'),
        ('{"hpc_gc_serial": []}', "hpc_gc_serial: [] is not a batch size"),
        ("hpc_gc_max_fail_percentage=-5", 'hpc_gc_max_fail_percentage: "-5" is not a percentage from 0 to 100'),
        ("hpc_gc_max_fail_percentage=150", 'hpc_gc_max_fail_percentage: "150" is not a percentage from 0 to 100'),
        ("hpc_gc_seria=1", "hpc_gc_seria is not a variable of site.yml: did you mean hpc_gc_serial?"),
        ("hpc_gc_canary=node1", "hpc_gc_canary is not a variable of site.yml: it reads hpc_gc_hosts, hpc_gc_endpoint"),
    ],
    ids=[
        "report",
        "serial-word",
        "serial-fraction",
        "serial-no-hosts",
        "serial-list",
        "serial-empty",
        "budget-negative",
        "budget-over",
        "misspelt",
        "unknown",
    ],
)
def test_a_slip_in_the_rollouts_own_variables_stops_it_before_any_role(site: Path, extra: str, shown: str) -> None:
    before = checksums(site)
    result = run_playbook(
        site.parent,
        "hpc.globus_compute.site",
        {**python_envs_vars(site), **endpoint_vars(site)},
        args=["--skip-tags", "uv", "-e", extra],
        private_system=True,
    )
    assert_refused(result, site, before, shown)
    assert "PLAY [Roll out" not in result.stdout


def first_runtime(site: Path) -> None:
    """No runtime yet: without a built default environment, only a first one is installed (unchecked)."""
    (site / "runtime" / "worker-env.conf").unlink()


def test_strings_from_the_command_line_take_effect(site: Path) -> None:
    first_runtime(site)
    result = run_role(
        site.parent,
        "python_envs",
        python_envs_vars(site),
        args=[
            "--tags=python_envs_runtime",
            *("-e", "python_envs_user_builds=false"),
            *("-e", "python_envs_user_requirements=no"),
            *("-e", "python_envs_user_packages=numpy,scipy>=1.14"),
            *("-e", "python_envs_user_envs_max=3"),
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    conf = (site / "runtime" / "worker-env.conf").read_text()
    assert "WORKER_ENV_USER_BUILDS=false\n" in conf
    assert "WORKER_ENV_USER_REQUIREMENTS=false\n" in conf
    assert "WORKER_ENV_EXTRA_PACKAGES=(numpy 'scipy>=1.14')\n" in conf
    assert "WORKER_ENV_USER_ENVS_MAX=3\n" in conf


def test_prune_from_the_command_line_runs(site: Path) -> None:
    # A published environment that left the matrix; check mode shows it would go.
    (site / "runtime" / "envs" / "py3.9-gce2.0.0").symlink_to(".builds/py3.9-gce2.0.0-0")
    before = checksums(site)
    result = run_role(
        site.parent,
        "python_envs",
        python_envs_vars(site),
        args=["--check", "-v", "--tags=python_envs_build", "-e", "python_envs_prune=true"],
        private_system=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unpublish environments that left the matrix" in output
    assert '"stdout_lines": ["would unpublish py3.9-gce2.0.0"]' in output
    assert checksums(site) == before
    assert result.system_changes in ([], None)


@NEEDS_ROOT
@pytest.mark.parametrize(
    ("slip", "shown"),
    [
        ({"args": ["-e", "endpoint_amqp_port=amqp"]}, ["endpoint_amqp_port", '"amqp"', "not an int"]),
        ({"vars": {"endpoint_user_environment": {"UV_INDEX_URL": None}}}, ["endpoint_user_environment", "null"]),
        ({"vars": {"endpoint_identity_mapping": []}}, ["endpoint_identity_mapping", "maps nobody"]),
        ({"args": ["-e", "python_envs_user_packages=numpy scipy"]}, ["-e:", '"scipy"', "not name=value"]),
        (
            {"vars": {"python_envs_matrix": [{"python": "3.11", "endpiont": "4.19.0"}]}},
            ["python_envs_matrix[0].endpiont is not a key of a python_envs_matrix entry: did you mean endpoint?"],
        ),
        (
            {"args": ["-e", "python_envs_keep_superseded=-1"]},
            ["python_envs_keep_superseded = -1: must be 0 or more days."],
        ),
        (
            # Two at once: one sentence for each, in the one refusal.
            {
                "args": ["-e", "python_envs_lock_wait=0"],
                "vars": {"python_envs_user_indexes": ["ftp://mirror.example.org/"]},
            },
            ["python_envs_lock_wait: 0 s", "86400", "python_envs_user_indexes:", "ftp://mirror.example.org/"],
        ),
        (
            # A fact site.yml does not gather (docs/fleet.md, Facts), and a misspelt name: neither is ever defined.
            {
                "vars": {
                    "python_envs_lock_wait": "{{ 60 if ansible_facts.distribution == 'Debian' else 120 }}",
                    "endpoint_display_name": "{{ my_sites_name }}",
                }
            },
            ["python_envs_lock_wait: its value does not template", "distribution", "endpoint_display_name:"],
        ),
        (
            # Values the endpoint's services or its own loaders would refuse, known without facts.
            {
                "vars": {
                    "endpoint_name": "bad name",
                    "endpoint_email": "not an address",
                    "endpoint_client_id": "0f6d8a94-2c8c-4c8f-9a4f-3c3f8f1c5d11",
                }
            },
            [
                "endpoint_name: 'bad name' is not a valid endpoint name",
                "endpoint_email: 'not an address' is not an e-mail address.",
                "endpoint_client_id and endpoint_client_secret: give both or neither.",
            ],
        ),
        (
            # uv's values that depend on each other: once only when its role ran, in the rollout's batches.
            {"vars": {"uv_scope": "user", "uv_users": [], "uv_version": "latest"}},
            ["uv_scope=user needs uv_users (got []).", 'uv_version must be a release number (got "latest").'],
        ),
        (
            {"args": ["-e", "endpoint_version=4.2.0"], "vars": {"endpoint_high_assurance": True}},
            [
                "endpoint_version: 4.2.0 is older than 4.3.0",
                "endpoint_high_assurance: a high-assurance endpoint needs endpoint_subscription_id.",
            ],
        ),
    ],
    ids=[
        "cli-not-an-int",
        "null-environment",
        "no-mapping",
        "cli-split-value",
        "misspelled-matrix-key",
        "cli-out-of-range",
        "lock-wait-and-index",
        "fact-not-gathered",
        "endpoint-values",
        "uv-values",
        "old-endpoint-high-assurance",
    ],
)
def test_site_checks_every_role_before_any_changes(site: Path, slip: dict, shown: list[str]) -> None:
    variables = {**site_vars(site), **slip.get("vars", {})}
    before = checksums(site)
    result = run_playbook(
        site.parent, "hpc.globus_compute.site", variables, args=slip.get("args", []), private_system=True
    )
    assert_refused(result, site, before, *shown)
    # The rollout never started: the refusal came from the first play.
    assert "PLAY [Roll out" not in result.stdout


def site_vars(site: Path) -> dict[str, object]:
    """site.yml's variables for every role, into the site directory."""
    return {
        **python_envs_vars(site),
        **endpoint_vars(site),
        "uv_scope": "system",
        "uv_bin_dir": str(site / "bin"),
        "uv_source": "controller",
        "uv_controller_archive": str(site / "uv.tar.gz"),
        "uv_controller_cache_dir": str(site / "cache"),
        "python_envs_interpreter_paths": {},
    }


def test_a_default_made_of_a_refused_variable_is_not_refused_as_well(site: Path) -> None:
    """python_envs_default is the matrix's first entry: of a matrix given as "3.12", the "3"."""
    before = checksums(site)
    args = ["-e", "python_envs_matrix=3.12"]
    result = run_playbook(site.parent, "hpc.globus_compute.site", site_vars(site), args=args, private_system=True)
    assert_refused(result, site, before, 'python_envs_matrix[0] = "3.12": not a dict')
    assert "python_envs_default" not in result.stdout + result.stderr


def test_a_worker_init_prefix_is_taken_as_written(site: Path) -> None:
    prefix = 'ARR=(a b); echo "${#ARR[@]} {{ not ansible }} {% raw %}"'
    first_runtime(site)
    result = run_role(
        site.parent,
        "python_envs",
        {**python_envs_vars(site), "python_envs_worker_init_prefix": prefix},
        args=["--tags=python_envs_runtime"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runtime = site / "runtime"
    # The endpoint's own renderer gives the prefix back, as written, in worker_init.
    (site.parent / "runtime.json").write_text(
        json.dumps({"python_version": "3.11.9", "globus_compute_sdk_version": "4.19.0"})
    )
    rendered = subprocess.run(
        [
            str(ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"),
            "render-user-config",
            *("-t", str(runtime / "user_config_template.yaml.j2")),
            *("-s", str(runtime / "user_config_schema.json")),
            *("--user-runtime", str(site.parent / "runtime.json")),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(site.parent / "gcuser")},
    )
    assert rendered.returncode == 0, rendered.stderr
    worker_init = yaml.safe_load(rendered.stdout)["engine"]["provider"]["worker_init"]
    assert worker_init.startswith(prefix + "\n"), worker_init


@NEEDS_ROOT
@pytest.mark.parametrize(
    ("mapping", "samples", "shown"),
    [
        (
            # The endpoint's mapper takes [ ] and + literally: this maps nobody.
            [{"source": "{username}", "match": "(adm[a-z]+)@example\\.org", "output": "{0}"}],
            [{"identity": {"username": "admin@example.org"}, "user": "admin"}],
            [
                'endpoint_identity_mapping_samples: {"username": "admin@example.org"} maps to null, not "admin";'
                " nothing was replaced."
            ],
        ),
        (
            # The mapping loads; a sample the mapper cannot take is the samples' fault, not the mapping's.
            [{"source": "{username}", "match": "(.*)@example\\.org", "output": "{0}"}],
            [{"identity": {"username": 12345}, "user": "admin"}],
            ["endpoint_identity_mapping_samples: TypeError: "],
        ),
        (
            [{"source": "{username}", "match": "(unclosed@example\\.org", "output": "{0}"}],
            [],
            ["endpoint_identity_mapping:", "(identity_mapping.json)", "unterminated subpattern"],
        ),
    ],
    ids=["sample-maps-nobody", "sample-not-a-string", "mapping-does-not-compile"],
)
def test_a_mapping_the_endpoint_refuses_names_it_and_changes_nothing(
    site: Path, mapping: list, samples: list, shown: list[str]
) -> None:
    runtime = deploy_runtime(site.parent)
    before = checksums(site)
    variables = {
        **endpoint_vars(site),
        "endpoint_install_method": "none",
        "endpoint_executable": str(ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"),
        "endpoint_user_config_template_src": str(runtime / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(runtime / "user_config_schema.json"),
        "endpoint_identity_mapping": mapping,
        "endpoint_identity_mapping_samples": samples,
    }
    result = run_role(site.parent, "endpoint", variables, private_system=True)
    assert_refused(result, site, before, *shown)


@NEEDS_ROOT
def test_samples_that_map_as_stated_pass(site: Path) -> None:
    runtime = deploy_runtime(site.parent)
    variables = {
        **endpoint_vars(site),
        "endpoint_install_method": "none",
        "endpoint_executable": str(ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"),
        "endpoint_user_config_template_src": str(runtime / "user_config_template.yaml.j2"),
        "endpoint_user_config_schema_src": str(runtime / "user_config_schema.json"),
        "endpoint_identity_mapping": [{"source": "{username}", "match": "(adm.*)@example\\.org", "output": "{0}"}],
        "endpoint_identity_mapping_samples": [
            {"identity": {"username": "admin@example.org"}, "user": "admin"},
            {"identity": {"username": "mallory@elsewhere.org"}, "user": None},
        ],
    }
    result = run_role(site.parent, "endpoint", variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "gc" / "hpc" / "identity_mapping.json").is_file()


@pytest.mark.parametrize("role", ["uv", "python_envs", "endpoint"])
def test_the_documented_example_passes_validation(tmp_path: Path, role: str) -> None:
    page = (ROOT / "docs" / "roles" / f"{role}.md").read_text()
    example = page.split("Example (every variable at its default; set only what differs):", 1)[1]
    play = yaml.safe_load(example.split("```yaml\n", 1)[1].split("```", 1)[0])
    variables = play[0]["roles"][0]["vars"]
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
    (tmp_path / "check.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - hpc.globus_compute.validate_vars:\n        roles: [{role}]\n"
    )
    result = run_playbook(tmp_path, str(tmp_path / "check.yml"), {}, args=["-e", f"@{tmp_path / 'vars.yml'}"])
    assert result.returncode == 0, result.stdout + result.stderr
