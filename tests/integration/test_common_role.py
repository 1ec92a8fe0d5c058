"""The internal role _common: its entry points are the only way in, and it refuses to run on its own."""

from __future__ import annotations

from pathlib import Path

from role_runner import assert_fails_with, run_playbook, run_role


def test_the_role_refuses_to_run_on_its_own(tmp_path: Path) -> None:
    result = run_role(tmp_path, "_common", {})
    assert_fails_with(
        result,
        "hpc.globus_compute._common is internal: roles include it with tasks_from: build_env; a play does not.",
    )
    assert result.stdout.count("FAILED!") == 1, result.stdout


def test_an_entry_point_checks_its_inputs_against_its_argument_spec(tmp_path: Path) -> None:
    """As python_envs and the endpoint include it: Ansible checks the entry point's argument spec."""
    playbook = tmp_path / "include.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: hpc.globus_compute._common\n"
        "        tasks_from: build_env\n"
        "      vars:\n        _common_build_env_mode: rebuild\n        _common_build_env_runs: []\n"
    )
    result = run_playbook(tmp_path, str(playbook), {})
    assert_fails_with(result, "_common_build_env_mode", "rebuild", "build, probe, trusted, prune")


def test_build_env_runs_build_env_sh_in_the_mode_asked(tmp_path: Path) -> None:
    """--trusted, for one path root owns and one another account could swap: only the caller names it."""
    runs = [{"label": "python", "args": ["/usr/bin/python3"]}]
    result = run_role(
        tmp_path, "_common", {"_common_build_env_mode": "trusted", "_common_build_env_runs": runs}, "build_env"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hpc.globus_compute._common : Run build-env.sh: trusted" in result.stdout
