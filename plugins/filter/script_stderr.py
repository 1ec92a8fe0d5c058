# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: script_stderr
short_description: What a script task's script wrote to stderr, over any connection
description:
  - The roles' scripts (C(ansible.builtin.script)) say why they refused on stderr. How that reaches the
    registered result depends on the connection.
  - The C(ssh) connection runs a script on a terminal (C(ssh -tt), its C(use_tty) default): the script's
    stderr arrives in C(stdout), with carriage returns, and C(stderr) holds only ssh's own
    C(Shared connection to HOST closed.). Mitogen's strategy does the same for every connection. The
    C(local) and C(community.docker.docker) connections keep the two streams apart.
  - This returns the script's stderr without that line of the connection's. When nothing else is on
    stderr and the script failed, its stdout stands for it, since the terminal joined the two there.
    Carriage returns are removed, and so are blank lines at either end.
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
    msg: "{{ checked | hpc.globus_compute.script_stderr | split('\n') | last }}; nothing was replaced."
  when: checked.rc != 0
"""

RETURN = r"""
_value:
  description: The lines the script wrote to stderr, joined with newlines; empty when it wrote none.
  type: str
"""

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# OpenSSH's multiplexing client prints this when a session with a terminal ends; Mitogen prints the
# same, to look like ssh (ansible_mitogen/connection.py, exec_command).
CONNECTION_LINE = re.compile(r"^Shared connection to .* closed\.$")


def _lines(text: object) -> list[str]:
    return [line.rstrip("\r") for line in str(text or "").replace("\r\n", "\n").split("\n")]


def _trimmed(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def script_stderr(result: Mapping[str, object]) -> str:
    """The script's own stderr: ``result["stderr"]`` without the connection's closing line, or, when
    that leaves nothing and ``result["rc"]`` is not 0, ``result["stdout"]`` (a terminal joined them).

    :raises AnsibleFilterError: ``result`` is not a mapping (a registered task result).
    """
    if not isinstance(result, Mapping):
        raise AnsibleFilterError(f"script_stderr: expects a registered script result, got {type(result).__name__}")
    stderr = _trimmed([line for line in _lines(result.get("stderr")) if not CONNECTION_LINE.match(line)])
    if stderr or result.get("rc", 0) == 0:
        return stderr
    return _trimmed(_lines(result.get("stdout")))


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"script_stderr": script_stderr}
