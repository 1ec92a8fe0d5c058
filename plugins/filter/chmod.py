# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: chmod
short_description: The mode a file has once ansible.builtin.file gives it a mode
description:
  - Applies O(mode), as M(ansible.builtin.file) and M(ansible.builtin.copy) apply their C(mode) option, to a
    file whose mode is now O(_input), and returns the result.
  - A role's no-op check compares what it found with what its write would leave. With this filter both read
    the same mode, octal (C("0700")) or symbolic (C("u+rwx,go+rx")), which leaves a wider mode alone; so
    C(found.mode == found.mode | hpc.globus_compute.chmod(wanted)) is true exactly when the write would not
    change the mode.
  - Symbolic modes are read by ansible-core's own parser, the one the modules use.
positional: _input, mode
options:
  _input:
    description:
      - The file's mode now, four octal digits as M(hpc.globus_compute.probe) and M(ansible.builtin.stat)
        report it (C("0755")).
    type: str
    required: true
  mode:
    description:
      - The mode to apply, as the C(mode) option of M(ansible.builtin.file) takes it. A string of octal
        digits replaces the mode; a symbolic mode changes it.
    type: str
    required: true
  directory:
    description: Whether the file is a directory, which C(X) in a symbolic mode reads.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Widen the directory only when its mode is narrower
  ansible.builtin.file:
    path: /opt/uv/bin
    state: directory
    mode: u+rwx,go+rx
  when: found.mode != found.mode | hpc.globus_compute.chmod('u+rwx,go+rx', directory=true)
"""

RETURN = r"""
_value:
  description: The mode after the change, four octal digits (C("0755")).
  type: str
"""

import re
import stat
from typing import NamedTuple

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import AnsibleModule

OCTAL = re.compile(r"^[0-7]{1,4}$")


class _Status(NamedTuple):
    """What ansible-core's parser reads of a file's status: its type and permission bits."""

    st_mode: int


def chmod(found: object, mode: object, directory: bool = False) -> str:
    """The mode ``found`` (octal digits) becomes once ``mode`` (octal digits or symbolic) is applied.

    :raises AnsibleFilterError: ``found`` is not octal digits, or ``mode`` is neither octal digits nor a
        symbolic mode; the message names which.
    """
    if not isinstance(found, str) or not OCTAL.match(found):
        raise AnsibleFilterError(f"chmod: the file's mode must be octal digits such as '0755', got {found!r}")
    if not isinstance(mode, str) or not mode:
        raise AnsibleFilterError(f"chmod: mode must be octal digits or a symbolic mode, got {mode!r}")
    if OCTAL.match(mode):
        return f"{int(mode, 8):04o}"
    kind = stat.S_IFDIR if directory else stat.S_IFREG
    try:
        after = AnsibleModule._symbolic_mode_to_octal(_Status(kind | int(found, 8)), mode)
    except ValueError as e:
        raise AnsibleFilterError(f"chmod: mode {mode!r}: {e}") from None
    return f"{stat.S_IMODE(after):04o}"


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"chmod": chmod}
