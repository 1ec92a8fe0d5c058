"""The endpoint role with an existing installation (endpoint_install_method: none), for real on this machine.

The installation is the project's own globus-compute-endpoint (.venv-gce);
the template and schema are laid down by the python_envs role. The role
writes a single-user endpoint that the endpoint itself renders, and a bad
configuration fails with the endpoint's message and leaves it as it was.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from accounts import tree_digest
from role_runner import ROOT, assert_fails_with, run_role
from test_template_render import deploy_runtime

GCE = ROOT / ".venv-gce" / "bin" / "globus-compute-endpoint"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    deploy_runtime(site)
    return site


def run_endpoint(tmp_path: Path, site: Path, args: list[str] | None = None, **variables: object):
    return run_role(
        tmp_path,
        "endpoint",
        {
            "endpoint_owner": getpass.getuser(),
            "endpoint_mode": "single_user",
            "endpoint_install_method": "none",
            "endpoint_executable": str(GCE),
            "endpoint_config_dir": str(tmp_path / "gc" / "hpc"),
            "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
            "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
            "endpoint_facts_dir": str(tmp_path / "facts"),
            "endpoint_display_name": "existing install",
            "endpoint_service": False,
            **variables,
        },
        args=args,
    )


def modes(directory: Path) -> dict[str, str]:
    """Each entry's owner, group and permission bits (the directory itself as ".")."""
    return {
        name: entry.split()[0] + " " + oct(int(entry.split()[1], 8) & 0o7777)
        for name, entry in tree_digest(directory).items()
    }


def test_an_existing_install_gets_an_endpoint_it_renders_and_keeps_it_on_bad_input(tmp_path: Path, site: Path) -> None:
    result = run_endpoint(tmp_path, site)
    assert result.returncode == 0, result.stdout + result.stderr
    directory = tmp_path / "gc" / "hpc"
    me = f"{os.getuid()}:{os.getgid()}"
    # The owner's alone: it holds secrets. The template and schema stay where
    # python_envs installed them: config.yaml names them.
    assert modes(directory) == {
        ".": f"{me} 0o700",
        "config.yaml": f"{me} 0o600",
        "user_environment.yaml": f"{me} 0o600",
    }
    assert yaml.safe_load((directory / "config.yaml").read_text()) == {
        "display_name": "existing install",
        "user_config_template_path": str(site / "runtime" / "user_config_template.yaml.j2"),
        "user_config_schema_path": str(site / "runtime" / "user_config_schema.json"),
    }
    fact = json.loads((tmp_path / "facts" / "hpc_globus_compute_endpoint_hpc.fact").read_text())
    assert (fact["executable"], fact["multi_user"]) == (str(GCE), False)

    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"globus_compute_sdk_version": "4.19.0", "python": {"version_tuple": [3, 12, 1]}}))
    rendered = subprocess.run(
        [str(GCE), "render-user-config", "-e", "hpc", "--user-runtime", str(runtime)],
        capture_output=True,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")},
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    worker_init = yaml.safe_load(rendered.stdout)["engine"]["provider"]["worker_init"]
    assert worker_init.endswith("worker-env.sh 3.12 4.19.0 || exit 1")

    # Contents, modes and owners, of the endpoint's directory and of its fact.
    before = {path: tree_digest(path) for path in (tmp_path / "gc", tmp_path / "facts")}
    bad = run_endpoint(tmp_path, site, endpoint_config_extra={"no_such_field": 1})
    assert_fails_with(bad, "does not load (config.yaml); nothing was replaced", "no_such_field")
    assert {path: tree_digest(path) for path in before} == before
    # A template that does not render, and one that renders no user config: each refused by the
    # step that found it, in the endpoint's words.
    refused = "; nothing was replaced. "
    for name, text, said in [
        ("syntax.j2", "engine: {{ nope\n", "does not render" + refused + "globus-compute-endpoint said: (jinja2."),
        ("no-engine.j2", "display_name: x\n", "(rendered.yaml)" + refused + "ValueError: the rendered user config has"),
    ]:
        (tmp_path / name).write_text(text)
        bad = run_endpoint(tmp_path, site, endpoint_user_config_template_src=str(tmp_path / name))
        assert_fails_with(bad, said)
        assert {path: tree_digest(path) for path in before} == before

    # What the check reads, not there or not a regular file (as a link leads): refused before it is read,
    # naming the variable, in check mode too (a path the admin chose is not one this play installs).
    (tmp_path / "schema-dir").mkdir()
    (tmp_path / "schema-link").symlink_to(tmp_path / "schema-dir")
    # The endpoint's command names, on its #! line, a Python of an environment where others can write
    # (a .pth there runs code as root at render-user-config's start): refused before it runs.
    venv = tmp_path / "other-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    pth = venv / "lib" / "python3.11" / "site-packages" / "planted.pth"
    pth.parent.mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    pth.write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    pth.chmod(0o666)
    command = venv / "bin" / GCE.name
    command.write_text(f"#!{venv}/bin/python\n" + GCE.read_text().split("\n", 1)[1])
    command.chmod(0o755)
    bad = run_endpoint(
        tmp_path,
        site,
        endpoint_executable=str(command),
        endpoint_executable_python=str(GCE.with_name("python")),
        endpoint_display_name="renamed",
    )
    said = f"{venv}/bin/python: its environment holds {pth}, which somebody else owns or can write; nothing was"
    assert_fails_with(bad, f'"msg": "endpoint_executable: {said}')
    assert not marker.exists()
    assert {path: tree_digest(path) for path in before} == before

    # A Python that cannot run the check is named as such, not taken for a refused file (with a change
    # the check looks at: the interpreter alone is not one).
    for python, said in [("/usr/bin/python3", "exit 9): ModuleNotFoundError: "), ("/bin/false", "exit 1): no message")]:
        bad = run_endpoint(tmp_path, site, endpoint_executable_python=python, endpoint_display_name="renamed")
        assert_fails_with(bad, f"endpoint_executable_python: {python} did not run the check ({said}")
        assert {path: tree_digest(path) for path in before} == before
    for variable, path, said in [
        ("endpoint_user_config_template_src", tmp_path / "none.j2", "does not exist on localhost"),
        ("endpoint_user_config_schema_src", tmp_path / "schema-link", "is not a regular file"),
    ]:
        for args in ([], ["--check"]):
            bad = run_endpoint(tmp_path, site, args, **{variable: str(path)})
            assert_fails_with(bad, f"{variable}: {path} {said}; nothing was replaced.")
            assert {path: tree_digest(path) for path in before} == before

    again = run_endpoint(tmp_path, site)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout


def test_the_template_copies_of_an_earlier_release_leave_the_endpoints_directory(tmp_path: Path, site: Path) -> None:
    """config.yaml names the runtime's template and schema: copies an earlier release wrote beside it go, once."""
    assert run_endpoint(tmp_path, site).returncode == 0
    directory = tmp_path / "gc" / "hpc"
    kept = tree_digest(directory)
    for name in ("user_config_template.yaml.j2", "user_config_schema.json"):
        (directory / name).write_text((site / "runtime" / name).read_text())
    again = run_endpoint(tmp_path, site)
    assert again.returncode == 0 and "changed=1" in again.stdout, again.stdout
    assert tree_digest(directory) == kept
    last = run_endpoint(tmp_path, site)
    assert last.returncode == 0 and "changed=0" in last.stdout, last.stdout
    # One that config.yaml names is the admin's, and stays.
    named = directory / "user_config_template.yaml.j2"
    named.write_text((site / "runtime" / "user_config_template.yaml.j2").read_text())
    own = run_endpoint(tmp_path, site, endpoint_user_config_template_src=str(named))
    assert own.returncode == 0, own.stdout + own.stderr
    assert named.exists()
    assert yaml.safe_load((directory / "config.yaml").read_text())["user_config_template_path"] == str(named)
