"""root never acts in a user's home with root's rights: a user's links steer nothing.

The roles run for real as root on this machine for unprivileged accounts. One
account has made the directories the roles write into links to directories
of root's. Its install is refused, named in one line, and the targets stay
root's and empty; the other accounts still get theirs. Nothing of the
accounts' is run by root (a program planted in their home is never started).
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from accounts import accounts, as_user, is_root, tree_digest, uv_release
from role_runner import run_role
from test_endpoint_existing_install import GCE
from test_template_render import deploy_runtime

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root to make unprivileged accounts")


def root_targets(base: Path, *names: str) -> dict[str, Path]:
    """Directories of root's, each the target of one of the hostile account's links."""
    targets = {}
    for name in names:
        target = base / f"root-{name}"
        target.mkdir(mode=0o755)
        targets[name] = target
    return targets


def link_in_home(login: str, home: Path, relative: str, target: Path) -> None:
    result = as_user(login, f"mkdir -p {(home / relative).parent} && ln -s {target} {home / relative}")
    assert result.returncode == 0, result.stderr


def assert_untouched(target: Path, before: dict[str, str]) -> None:
    assert target.stat().st_uid == 0
    assert tree_digest(target) == before, f"{target} changed"
    assert list(target.iterdir()) == []


def test_uv_for_users_refuses_links_into_roots_directories_and_serves_the_others(tmp_path: Path) -> None:
    tarball, version = uv_release(tmp_path)
    with accounts("linker", "plain") as homes:
        (linker, linker_home), (plain, plain_home) = homes.items()
        targets = root_targets(linker_home.parent, "bin", "config", "share")
        link_in_home(linker, linker_home, ".local/bin", targets["bin"])
        link_in_home(linker, linker_home, ".config/uv", targets["config"])
        link_in_home(linker, linker_home, ".local/share", targets["share"])
        before = {name: tree_digest(t) for name, t in targets.items()}

        result = run_role(
            tmp_path,
            "uv",
            {
                "uv_scope": "user",
                "uv_users": [linker, plain],
                "uv_source": "controller",
                "uv_controller_archive": str(tarball),
                "uv_version": version,
                "uv_controller_cache_dir": str(tmp_path / "cache"),
                "uv_config": {"offline": True, "python-downloads": "never"},
            },
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        refusals = [line for line in output.splitlines() if line.startswith("[ERROR]") and "uv_users:" in line]
        assert len(refusals) == 1, output
        assert f"home_file: {linker}: " in refusals[0] and "is a link" in refusals[0], refusals
        assert plain not in refusals[0], refusals
        for name, target in targets.items():
            assert_untouched(target, before[name])
        for relative in (".local/bin", ".config/uv", ".local/share"):
            assert (linker_home / relative).is_symlink()

        # The other account got its own uv and policy, owned by it, runnable by it.
        uid = pwd.getpwnam(plain).pw_uid
        installed = (".local/bin/uv", ".local/bin/uvx", ".config/uv/uv.toml", ".local/share/hpc_globus_compute/uv.json")
        for path in installed:
            assert (plain_home / path).stat().st_uid == uid, path
        ran = as_user(plain, f"{plain_home}/.local/bin/uv --version")
        assert ran.stdout.startswith(f"uv {version} "), ran.stderr
        assert not any(p.stat().st_uid == 0 for p in [plain_home, *plain_home.rglob("*")])


def test_a_user_whose_home_is_not_there_is_named_and_the_others_served(tmp_path: Path) -> None:
    """Before, the probe of every home failed on the missing one's errno ("No such file or directory:
    '/…'"), naming no account, and nobody got uv."""
    tarball, version = uv_release(tmp_path)
    with accounts("homeless", "plain") as homes:
        (homeless, homeless_home), (plain, plain_home) = homes.items()
        homeless_home.rmdir()
        result = run_role(
            tmp_path,
            "uv",
            {
                "uv_scope": "user",
                "uv_users": [homeless, plain],
                "uv_source": "controller",
                "uv_controller_archive": str(tarball),
                "uv_version": version,
                "uv_controller_cache_dir": str(tmp_path / "cache"),
            },
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        refusals = [line for line in output.splitlines() if line.startswith("[ERROR]") and "uv_users:" in line]
        assert len(refusals) == 1 and f"home_file: {homeless}: {homeless_home}/" in refusals[0], output
        assert not homeless_home.exists()
        ran = as_user(plain, f"{plain_home}/.local/bin/uv --version")
        assert ran.stdout.startswith(f"uv {version} "), ran.stderr


def test_a_single_user_endpoint_for_another_account_is_written_with_its_rights(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    deploy_runtime(site)
    with accounts("eplinker", "epowner") as homes:
        (linker, linker_home), (owner, owner_home) = homes.items()
        targets = root_targets(linker_home.parent, "globus_compute")
        link_in_home(linker, linker_home, ".globus_compute", targets["globus_compute"])
        before = tree_digest(targets["globus_compute"])

        def endpoint_for(login: str, facts: str):
            return run_role(
                tmp_path,
                "endpoint",
                {
                    "endpoint_owner": login,
                    "endpoint_mode": "single_user",
                    "endpoint_install_method": "none",
                    "endpoint_executable": str(GCE),
                    "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
                    "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
                    "endpoint_facts_dir": str(tmp_path / facts),
                    "endpoint_service": False,
                },
            )

        refused = endpoint_for(linker, "facts-linker")
        assert refused.returncode != 0, refused.stdout
        assert_untouched(targets["globus_compute"], before)
        assert (linker_home / ".globus_compute").is_symlink()

        written = endpoint_for(owner, "facts-owner")
        assert written.returncode == 0, written.stdout + written.stderr
        uid = pwd.getpwnam(owner).pw_uid
        directory = owner_home / ".globus_compute" / "hpc"
        assert directory.stat().st_uid == uid and directory.stat().st_mode & 0o777 == 0o700
        assert all(p.stat().st_uid == uid for p in directory.iterdir())
        assert (directory / "config.yaml").stat().st_mode & 0o777 == 0o600


def test_environments_owned_by_another_account_are_written_with_its_rights(tmp_path: Path) -> None:
    with accounts("envlinker") as homes:
        ((linker, linker_home),) = homes.items()
        targets = root_targets(linker_home.parent, "globus_compute")
        link_in_home(linker, linker_home, ".globus_compute", targets["globus_compute"])
        before = tree_digest(targets["globus_compute"])
        result = run_role(
            tmp_path,
            "python_envs",
            {
                "python_envs_owner": linker,
                "python_envs_group": linker,
                "python_envs_runtime_dir": f"{linker_home}/.globus_compute/runtime",
                "python_envs_root": f"{linker_home}/.globus_compute/envs",
                "python_envs_uv": str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin" / "uv"),
                "python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}],
                "python_envs_facts_dir": str(tmp_path / "facts"),
            },
        )
        assert result.returncode != 0, result.stdout
        assert "python_envs_owner: " in result.stdout + result.stderr
        assert_untouched(targets["globus_compute"], before)


def uv_role(tmp_path: Path, users: list[str], **variables: object):
    tarball, version = uv_release(tmp_path)
    return run_role(
        tmp_path,
        "uv",
        {
            "uv_scope": "user",
            "uv_users": users,
            "uv_source": "controller",
            "uv_controller_archive": str(tarball),
            "uv_version": version,
            "uv_controller_cache_dir": str(tmp_path / "cache"),
            **variables,
        },
    )


def test_a_program_planted_where_uv_goes_is_replaced_never_run(tmp_path: Path) -> None:
    with accounts("planter") as homes:
        ((login, home),) = homes.items()
        marker = home.parent / "planted-ran"
        planted = f"#!/bin/sh\nid -u > {marker}\necho 'uv 0.0.0'\n"
        uv = home / ".local/bin/uv"
        script = f"mkdir -p {uv.parent} && printf %s {planted!r} > {uv} && chmod 755 {uv}"
        assert as_user(login, script).returncode == 0
        result = uv_role(tmp_path, [login])
        assert result.returncode == 0, result.stdout + result.stderr
        assert not marker.exists(), "root ran the account's program"
        assert "planted-ran" not in (home / ".local/bin/uv").read_bytes().decode(errors="replace")
        assert uv_role(tmp_path, [login]).stdout.count("changed=0") == 1


def test_runs_with_other_policies_on_the_node_leave_each_home_its_own(tmp_path: Path) -> None:
    """Two inventories (or a rollout beside a manual run) stage uv on one node with
    different policies: neither home gets the other's, and neither run undoes the other."""
    with accounts("polone", "poltwo") as homes:
        caches = {login: tmp_path / f"cache-{n}" for n, login in enumerate(homes)}
        for login in homes:
            result = uv_role(tmp_path, [login], uv_config={"cache-dir": str(caches[login])})
            assert result.returncode == 0, result.stdout + result.stderr
        first = next(iter(homes))
        again = uv_role(tmp_path, [first], uv_config={"cache-dir": str(caches[first])})
        assert again.stdout.count("changed=0") == 1, again.stdout
        for login, home in homes.items():
            policy = (home / ".config/uv/uv.toml").read_text()
            assert [line for line in policy.splitlines() if "cache-dir" in line] == [f'cache-dir = "{caches[login]}"']


def test_a_hostile_record_removes_nothing_of_roots_and_a_fifo_stalls_nothing(tmp_path: Path) -> None:
    with accounts("recorder") as homes:
        ((login, home),) = homes.items()
        assert uv_role(tmp_path, [login]).returncode == 0
        victim = home.parent / "root-file"
        victim.write_text("root's\n")
        record = home / ".local/share/hpc_globus_compute/uv.json"
        forged = f'{{"files": ["{home}/.local/bin/uv", "{victim}", "{home}/../root-file", "/etc/passwd"]}}'
        assert as_user(login, f"printf %s '{forged}' > {record}").returncode == 0
        removed = uv_role(tmp_path, [login], uv_state="absent")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert victim.read_text() == "root's\n"
        assert not (home / ".local/bin/uv").exists()
        # A FIFO where the record is read: the run neither blocks nor reads it.
        assert as_user(login, f"mkdir -p {record.parent} && rm -f {record} && mkfifo {record}").returncode == 0
        again = uv_role(tmp_path, [login], uv_state="absent")
        assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize(
    "layout", ["install root in the home", "executable of the account's", "executable through the account's link"]
)
def test_root_runs_no_endpoint_of_the_accounts(tmp_path: Path, layout: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    deploy_runtime(site)
    with accounts("eprunner") as homes:
        ((login, home),) = homes.items()
        variables: dict[str, object] = {
            "endpoint_owner": login,
            "endpoint_mode": "single_user",
            "endpoint_user_config_template_src": str(site / "runtime" / "user_config_template.yaml.j2"),
            "endpoint_user_config_schema_src": str(site / "runtime" / "user_config_schema.json"),
            "endpoint_facts_dir": str(tmp_path / "facts"),
            "endpoint_service": False,
        }
        if layout == "install root in the home":
            variables |= {"endpoint_install_root": f"{home}/.e", "endpoint_bin_dir": f"{home}/.local/bin"}
            expected = "endpoint_install_root"
        elif layout == "executable through the account's link":
            # root's own endpoint, reached through a link the account can re-point while root runs it:
            # its Python is root's too, and notes each run (by anybody) before it is the real one.
            program = home.parent / "root-gce" / "bin" / GCE.name
            program.parent.mkdir(parents=True)
            runs = home.parent / "runs"
            runs.mkdir()
            runs.chmod(0o777)
            marker = runs / "log"
            python = program.with_name("python")
            python.write_text(f'#!/bin/sh\necho "$(id -un) $*" >>{marker}\nexec {GCE.with_name("python")} "$@"\n')
            python.chmod(0o755)
            program.write_text(f"#!{python}\n" + GCE.read_text().split("\n", 1)[1])
            program.chmod(0o755)
            assert as_user(login, f"ln -s {program.parent.parent} {home}/gce").returncode == 0
            variables |= {"endpoint_install_method": "none", "endpoint_executable": f"{home}/gce/bin/{GCE.name}"}
            expected = f"belongs to {login}"
        else:
            fake = home / "gce"
            marker = home.parent / "ran"
            assert (
                as_user(login, f"printf '#!/bin/sh\\nid -u > {marker}\\n' > {fake} && chmod 755 {fake}").returncode == 0
            )
            variables |= {"endpoint_install_method": "none", "endpoint_executable": str(fake)}
            expected = f"belongs to {login}"
        result = run_role(tmp_path, "endpoint", variables)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert expected in output, output
        assert not (home / ".globus_compute").exists()
        if layout != "install root in the home":
            assert not marker.exists()
        if layout == "executable through the account's link":
            # The same program named by its own path is run: the marker is one a run does make.
            variables["endpoint_executable"] = str(program)
            direct = run_role(tmp_path, "endpoint", variables)
            assert direct.returncode == 0, direct.stdout + direct.stderr
            assert marker.read_text().startswith(("root ", f"{login} ")), marker.read_text()


def test_a_partly_refused_install_is_recorded_and_removed_by_absent(tmp_path: Path) -> None:
    with accounts("halfway") as homes:
        ((login, home),) = homes.items()
        (target,) = root_targets(home.parent, "config").values()
        link_in_home(login, home, ".config/uv", target)
        refused = uv_role(tmp_path, [login], uv_config={"offline": True})
        assert refused.returncode != 0 and f"home_file: {login}: " in refused.stdout, refused.stdout
        assert (home / ".local/bin/uv").exists() and list(target.iterdir()) == []
        record = home / ".local/share/hpc_globus_compute/uv.json"
        assert json.loads(record.read_text())["files"] == [f"{home}/.local/bin/uv", f"{home}/.local/bin/uvx"]
        removed = uv_role(tmp_path, [login], uv_state="absent")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert not (home / ".local/bin/uv").exists() and not record.exists()
