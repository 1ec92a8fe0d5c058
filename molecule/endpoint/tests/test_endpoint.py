"""A multi-user and a single-user endpoint, deployed, checked and used as the endpoint would."""

from __future__ import annotations

import pytest
import yaml
from conftest import (
    GCE_VERSION,
    RUNTIME_DIR,
    assert_nothing_writable_by_others,
    node,
    read_json,
    read_stamp,
    recorded_paths,
    render_endpoint,
    run_as,
    sdk_runtime,
    start_worker,
)

MULTI_DIR = "/root/.globus_compute/hpc"
SINGLE_DIR = "/home/alice/.globus_compute/hpc"
UNIT = "/etc/systemd/system/globus-compute-endpoint-hpc.service"
CREDENTIALS = "/etc/globus-compute/hpc.env"


@pytest.fixture(scope="module")
def multi():
    return node("ep-multi")


@pytest.fixture(scope="module")
def single():
    return node("ep-single")


@pytest.fixture(scope="module")
def runs(multi) -> dict:
    return read_json(multi, "/var/tmp/endpoint-runs.json")


@pytest.fixture(scope="module")
def single_runs(single) -> dict:
    return read_json(single, "/var/tmp/endpoint-runs.json")


def read_yaml(host, path: str) -> dict:
    return yaml.safe_load(host.file(path).content_string)


def test_endpoint_is_installed_in_its_own_environment_with_a_wrapper(multi, single) -> None:
    for host in (multi, single):
        wrapper = host.file("/usr/local/bin/globus-compute-endpoint")
        assert wrapper.mode == 0o755 and wrapper.user == "root"
        assert GCE_VERSION in host.check_output("globus-compute-endpoint version")
        env = host.file("/opt/hpc_globus_compute/endpoint/globus-compute-endpoint")
        assert env.is_symlink and ".builds/globus-compute-endpoint-" in env.linked_to
        assert read_stamp(host, f"{env.linked_to}/.ready")["endpoint"] == GCE_VERSION


def test_multi_user_directory_has_the_configure_layout(multi) -> None:
    directory = multi.file(MULTI_DIR)
    assert (directory.user, directory.mode) == ("root", 0o700)
    modes = {
        "config.yaml": 0o600,
        "identity_mapping.json": 0o600,
        "user_environment.yaml": 0o600,
    }
    assert sorted(multi.check_output(f"ls -A {MULTI_DIR}").split()) == sorted(modes)
    for name, mode in modes.items():
        f = multi.file(f"{MULTI_DIR}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "root", mode), name


def test_multi_user_config_holds_the_variables(multi) -> None:
    config = read_yaml(multi, f"{MULTI_DIR}/config.yaml")
    assert config == {
        "display_name": "Test cluster (multi-user)",
        "allowed_functions": ["5f1c0a9e-0000-4000-8000-000000000001"],
        "email": "hpc-admins@example.org",
        "public": True,
        "identity_mapping_config_path": f"{MULTI_DIR}/identity_mapping.json",
        "user_config_template_path": f"{RUNTIME_DIR}/user_config_template.yaml.j2",
        "user_config_schema_path": f"{RUNTIME_DIR}/user_config_schema.json",
    }
    mapping = read_json(multi, f"{MULTI_DIR}/identity_mapping.json")
    assert mapping[0]["DATA_TYPE"] == "expression_identity_mapping#1.0.0"
    assert [rule["source"] for rule in mapping[0]["mappings"]] == ["{username}", "{email}"]
    environment = read_yaml(multi, f"{MULTI_DIR}/user_environment.yaml")
    assert environment["PATH"].split(":")[0] == "/usr/local/bin"


def test_template_and_schema_are_the_site_runtime_ones_in_one_copy(multi, single) -> None:
    for host, directory in ((multi, MULTI_DIR), (single, SINGLE_DIR)):
        config = read_yaml(host, f"{directory}/config.yaml")
        assert config["user_config_template_path"] == f"{RUNTIME_DIR}/user_config_template.yaml.j2"
        assert config["user_config_schema_path"] == f"{RUNTIME_DIR}/user_config_schema.json"
        # No copy in the endpoint directory to disagree with the runtime's.
        assert not host.file(f"{directory}/user_config_template.yaml.j2").exists


def test_single_user_directory_belongs_to_the_user_and_maps_nobody(single) -> None:
    directory = single.file(SINGLE_DIR)
    assert (directory.user, directory.mode) == ("alice", 0o700)
    assert single.file("/home/alice/.globus_compute").user == "alice"
    names = sorted(single.check_output(f"ls -A {SINGLE_DIR}").split())
    assert names == ["config.yaml", "user_environment.yaml"]
    for name in names:
        assert single.file(f"{SINGLE_DIR}/{name}").user == "alice"
    config = read_yaml(single, f"{SINGLE_DIR}/config.yaml")
    assert "identity_mapping_config_path" not in config
    # As enable-on-boot writes it for a user's endpoint: run by that user.
    unit = single.file(UNIT).content_string
    assert "User=alice" in unit
    assert "Environment=GLOBUS_COMPUTE_USER_DIR=/home/alice/.globus_compute" in unit


@pytest.mark.parametrize(
    ("name", "user", "python"),
    [("multi", "root", "3.11"), ("single", "alice", "3.13")],
)
def test_deployed_endpoint_renders_a_worker_init_that_activates(request, name: str, user: str, python: str) -> None:
    host = request.getfixturevalue(name)
    config = render_endpoint(host, user, sdk_runtime(python))
    worker_init = config["engine"]["provider"]["worker_init"]
    assert f"worker-env.sh {python} {GCE_VERSION}" in worker_init
    # Workers run as the mapped user, never as the endpoint's owner.
    result = start_worker(host, "bob" if user == "root" else user, worker_init)
    assert result.rc == 0, result.stderr
    got_python, got_version, prefix = result.stdout.split()
    assert (got_python, got_version) == (python, GCE_VERSION)
    assert prefix.startswith("/opt/hpc_globus_compute/envs/")


def test_unit_has_the_enable_on_boot_shape_and_verifies(multi) -> None:
    unit = multi.file(UNIT)
    assert (unit.user, unit.mode) == ("root", 0o644)
    text = unit.content_string
    assert "ExecStart=/usr/local/bin/globus-compute-endpoint start hpc" in text
    assert "User=root" in text
    assert f"EnvironmentFile=-{CREDENTIALS}" in text
    assert "s3cret" not in text
    result = multi.run(f"systemd-analyze verify {UNIT}")
    assert result.rc == 0, result.stderr


def test_credentials_are_readable_by_root_only_and_rotate_without_showing(multi, runs) -> None:
    credentials = multi.file(CREDENTIALS)
    assert (credentials.user, credentials.mode) == ("root", 0o600)
    assert multi.file("/etc/globus-compute").mode == 0o700
    assert "GLOBUS_COMPUTE_CLIENT_SECRET=rotated-s3cret-value" in credentials.content_string
    rotated = runs["rotate_secret"]
    assert rotated["rc"] == 0 and not rotated["unchanged"]
    assert not rotated["secret_shown"], "the secret appeared in a --diff -v run"
    read = run_as(multi, "alice", f"cat {CREDENTIALS}")
    assert (read.rc, read.stdout) == (1, "") and "Permission denied" in read.stderr, read.stderr


def test_check_mode_reports_but_changes_nothing(runs) -> None:
    check = runs["check_mode"]
    assert check["rc"] == 0 and check["unchanged"]
    assert "changed=0" not in check["recap"][0]


def test_the_listing_covers_every_path_the_roles_record(multi, single, runs, single_runs) -> None:
    for host, observed in ((multi, runs["deployed"]), (single, single_runs["deployed"])):
        # What a bad-input run is compared on: each path listed, and all below it.
        roots = observed["roots"]
        recorded = recorded_paths(host)
        uncovered = [p for p in recorded if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)]
        assert uncovered == [], f"recorded but not listed: {uncovered}; listed: {roots}"
        # The runtime's template and the environments are among them, which the refused runs rewrite.
        facts = read_json(host, "/etc/ansible/facts.d/hpc_globus_compute_envs.fact")
        assert {facts["root"], facts["runtime_dir"]} <= set(recorded)
    # The credentials' directory, which every endpoint on the node writes into, is recorded as
    # shared, and so listed too; the single-user endpoint writes no credentials.
    assert read_json(multi, "/etc/ansible/facts.d/hpc_globus_compute_endpoint_hpc.fact")["shared"] == [
        "/opt/hpc_globus_compute/endpoint",
        "/etc/globus-compute",
    ]
    assert "/etc/globus-compute" in runs["deployed"]["roots"]
    assert "/etc/globus-compute" not in single_runs["deployed"]["roots"]


def test_bad_input_fails_clearly_and_keeps_the_deployment(runs) -> None:
    observed = runs["broken_template_variable"]
    assert int(observed["rc"]) != 0
    message = "python_envs_engine: the endpoint's loader refuses it: 'NoSuchEngine'"
    assert any(message in line for line in observed["errors"]), observed["errors"]
    assert not observed["secret_shown"]
    assert observed["unchanged"], observed["differs"]


def test_next_good_run_puts_back_the_deployment_from_before_the_bad_run(runs) -> None:
    assert int(runs["restore"]["rc"]) == 0, runs["restore"]["errors"]
    assert runs["restore"]["after"] == runs["broken_template_variable"]["before"]


def test_the_node_records_its_environments_and_endpoint_as_local_facts(multi, single) -> None:
    for host, python, multi_user in ((multi, "3.11", True), (single, "3.13", False)):
        envs = read_json(host, "/etc/ansible/facts.d/hpc_globus_compute_envs.fact")
        assert envs["default"] == f"py{python}-gce{GCE_VERSION}"
        [env] = envs["environments"]
        assert env["name"] == envs["default"] and env["endpoint"] == GCE_VERSION
        assert env["python"].startswith(f"{python}.") and env["built"]
        endpoint = read_json(host, "/etc/ansible/facts.d/hpc_globus_compute_endpoint_hpc.fact")
        assert (endpoint["name"], endpoint["multi_user"], endpoint["version"]) == ("hpc", multi_user, GCE_VERSION)
        assert GCE_VERSION in host.check_output(f"{endpoint['executable']} version")


def test_nothing_deployed_on_the_multi_user_host_is_writable_by_users(multi) -> None:
    assert_nothing_writable_by_others(multi)


def test_secrets_are_root_s_alone(multi) -> None:
    for path in (CREDENTIALS, f"{MULTI_DIR}/config.yaml", f"{MULTI_DIR}/identity_mapping.json"):
        f = multi.file(path)
        assert (f.user, f.mode) == ("root", 0o600), path
    for path in ("/etc/globus-compute", MULTI_DIR):
        assert (multi.file(path).user, multi.file(path).mode) == ("root", 0o700), path
    for path in (CREDENTIALS, f"{MULTI_DIR}/config.yaml"):
        read = run_as(multi, "alice", f"cat {path}")
        assert (read.rc, read.stdout) == (1, ""), path
        assert "Permission denied" in read.stderr, read.stderr
