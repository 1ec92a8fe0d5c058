"""A script's refusal reaches the roles' messages whether or not the connection ran it on a terminal.

The results below are as Ansible registered them for a script that prints `checking` on stdout,
then `a warning` and the refusal on stderr, and exits 1: over the local connection, over ssh to an
sshd on 127.0.0.1 with Ansible's ssh arguments (multiplexed) and with ANSIBLE_SSH_ARGS="" (not
multiplexed, host key not known), and under Mitogen's strategy.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hpc.globus_compute.plugins.filter.script_stderr_lines import script_stderr_lines

REFUSAL = "python_envs_provider: the endpoint's loader refuses it: 'NoSuchProvider' is not a valid provider."
JOINED = f"checking\r\na warning\r\n{REFUSAL}\r\n"


@pytest.mark.parametrize(
    ("result", "lines"),
    [
        ({"rc": 1, "stdout": "checking\n", "stderr": f"a warning\n{REFUSAL}\n"}, ["a warning", REFUSAL]),
        (
            {"rc": 1, "stdout": JOINED, "stderr": "Shared connection to n1 closed.\r\n"},
            ["checking", "a warning", REFUSAL],
        ),
        (
            {
                "rc": 1,
                "stdout": JOINED,
                "stderr": "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\r\n"
                "Connection to 127.0.0.1 closed.\r\n",
            },
            ["checking", "a warning", REFUSAL],
        ),
        (
            {"rc": 1, "stdout": JOINED, "stderr": "Shared connection to localhost closed.\n"},
            ["checking", "a warning", REFUSAL],
        ),
    ],
    ids=["local", "ssh-multiplexed", "ssh-not-multiplexed", "mitogen"],
)
def test_the_refusal_is_the_last_line_over_every_connection(result: dict, lines: list[str]) -> None:
    assert script_stderr_lines(result) == lines


def test_a_programs_colours_on_a_terminal_are_left_out() -> None:
    # uv, finding a terminal over ssh -tt.
    said = "\x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m No solution found when resolving dependencies\r\n"
    result = {"rc": 1, "stdout": said, "stderr": "Shared connection to n1 closed.\r\n"}
    assert script_stderr_lines(result) == ["error: No solution found when resolving dependencies"]


def test_stderr_kept_apart_is_used_even_beside_an_ssh_line() -> None:
    result = {"rc": 3, "stdout": "", "stderr": f"{REFUSAL}\nShared connection to n1 closed.\r\n"}
    assert script_stderr_lines(result) == [REFUSAL]


def test_a_script_that_said_nothing_gives_no_line() -> None:
    assert script_stderr_lines({"rc": 0, "stdout": "/usr/bin/python3.11\n", "stderr": ""}) == []
    assert script_stderr_lines({"rc": 1, "stdout": "", "stderr": "Connection to n1 closed.\r\n"}) == []
    assert script_stderr_lines({"rc": 1}) == []


def test_anything_but_a_result_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="expects a registered script result, got str"):
        script_stderr_lines("stderr text")  # type: ignore[arg-type]
