"""A script's refusal reaches the roles' messages whether or not the connection ran it on a terminal."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hpc.globus_compute.plugins.filter.script_stderr import script_stderr

REFUSAL = "python_envs_provider: the endpoint's loader refuses it: 'NoSuchProvider' is not a valid provider."


@pytest.mark.parametrize(
    "result",
    [
        # local and community.docker.docker: the streams as the script wrote them.
        {"rc": 1, "stdout": "checking\n", "stderr": f"a warning\n{REFUSAL}\n"},
        # ssh -tt: the terminal joined stderr to stdout, with carriage returns; ssh's own line on stderr.
        {"rc": 1, "stdout": f"checking\r\na warning\r\n{REFUSAL}\r\n", "stderr": "Shared connection to n1 closed.\r\n"},
        # Mitogen's strategy: the same, its closing line ending in a newline alone.
        {
            "rc": 1,
            "stdout": f"checking\r\na warning\r\n{REFUSAL}\r\n",
            "stderr": "Shared connection to localhost closed.\n",
        },
    ],
    ids=["separate-streams", "ssh-tty", "mitogen"],
)
def test_the_refusal_is_the_last_line_over_every_connection(result: dict) -> None:
    said = script_stderr(result)
    assert said.split("\n")[-1] == REFUSAL
    assert "\r" not in said
    assert "Shared connection" not in said


def test_a_script_that_succeeded_said_nothing_on_stderr_whatever_its_stdout() -> None:
    assert (
        script_stderr({"rc": 0, "stdout": "/usr/bin/python3.11\r\n", "stderr": "Shared connection to n1 closed.\r\n"})
        == ""
    )


def test_stderr_kept_apart_is_used_even_beside_the_connection_line() -> None:
    result = {"rc": 3, "stdout": "", "stderr": f"{REFUSAL}\nShared connection to n1 closed.\r\n"}
    assert script_stderr(result) == REFUSAL


def test_a_failed_script_that_said_nothing_gives_an_empty_message() -> None:
    assert script_stderr({"rc": 1, "stdout": "", "stderr": "Shared connection to n1 closed.\r\n"}) == ""
    assert script_stderr({"rc": 1}) == ""


def test_anything_but_a_result_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="expects a registered script result, got str"):
        script_stderr("stderr text")  # type: ignore[arg-type]
