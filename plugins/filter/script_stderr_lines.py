# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: script_stderr_lines
short_description: The lines a script task's script wrote to stderr, over any connection
description:
  - The roles' scripts (C(ansible.builtin.script)) say why they refused on stderr. How that reaches the
    registered result depends on the connection.
  - The C(local) and C(community.docker.docker) connections keep the script's two streams apart.
  - The C(ssh) connection runs a script on a terminal (C(ssh -tt), its C(use_tty) default), and Mitogen's
    strategy does the same for every connection. The terminal joins the script's stderr to its stdout and
    ends each line with a carriage return; C(stderr) then holds only the ssh client's own lines, such as
    C(Shared connection to HOST closed.), C(Connection to HOST closed.) or C(Warning - Permanently added ...).
    A program that finds a terminal may also colour its output.
  - This returns the script's stderr, one line per item. When the output shows a terminal (a line of
    C(stdout) ends in a carriage return), or when the script failed and C(stderr) holds nothing but the ssh
    client's lines, that is C(stdout), where the terminal put it. Carriage returns, terminal colour codes,
    blank lines and the ssh client's lines are left out.
positional: _input
options:
  _input:
    description: A registered result of C(ansible.builtin.script), or one item of a loop's C(results).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Name what the check refused
  ansible.builtin.fail:
    msg: "{{ checked | hpc.globus_compute.script_stderr_lines | last | default('no message') }}; nothing was replaced."
  when: checked.rc != 0
"""

RETURN = r"""
_value:
  description: The lines the script wrote to stderr, in order, without line ends; empty when it wrote none.
  type: list
  elements: str
"""

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# What the OpenSSH client itself prints on stderr around a command, and Mitogen the same, to look
# like ssh (ansible_mitogen/connection.py, exec_command).
SSH_CLIENT_LINE = re.compile(
    r"^(?:Shared connection to \S+ closed\."
    r"|Connection to \S+ closed(?: by remote host)?\."
    r"|Warning: Permanently added .* to the list of known hosts\.)$"
)
# ECMA-48 control sequences (colours, cursor moves): what a program writes when it finds a terminal.
CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _lines(text: object) -> list[str]:
    """Each line without its end, control sequences or surrounding blanks; blank lines left out."""
    found = (CONTROL_SEQUENCE.sub("", line).strip() for line in str(text or "").splitlines())
    return [line for line in found if line and not SSH_CLIENT_LINE.match(line)]


def script_stderr_lines(result: Mapping[str, object]) -> list[str]:
    """The script's own stderr lines, from ``result["stderr"]`` or, when a terminal joined the two streams,
    from ``result["stdout"]``.

    :raises AnsibleFilterError: ``result`` is not a mapping (a registered task result).
    """
    if not isinstance(result, Mapping):
        raise AnsibleFilterError(
            f"script_stderr_lines: expects a registered script result, got {type(result).__name__}"
        )
    on_a_terminal = "\r\n" in str(result.get("stdout") or "")
    stderr = _lines(result.get("stderr"))
    if on_a_terminal or (not stderr and result.get("rc", 0) != 0):
        return _lines(result.get("stdout"))
    return stderr


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"script_stderr_lines": script_stderr_lines}
