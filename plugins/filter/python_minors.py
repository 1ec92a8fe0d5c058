# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: python_minors
short_description: The Python minors a release's Requires-Python admits, newest last
description:
  - Takes Python minors (C(3.X) strings), drops repeats and anything else, sorts them as versions
    (C(3.9) before C(3.10)), and keeps those a PEP 440 C(Requires-Python) specifier admits.
  - A minor is admitted when the specifier admits one of its releases (C(>=3.9.2) admits C(3.9)), as an
    interpreter of that minor may be that release.
  - An empty specifier admits every minor (a release that says nothing).
positional: _input
options:
  _input:
    description: The minors, for example C(["3.11", "3.9"]).
    type: list
    elements: str
    required: true
  requires_python:
    description: The specifier, for example C(>=3.10); empty for any.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The minors globus-compute-endpoint 4.19.0 supports among the node's
  ansible.builtin.debug:
    msg: "{{ ['3.9', '3.11', '3.13'] | hpc.globus_compute.python_minors('>=3.10') }}"
"""

RETURN = r"""
_value:
  description: The admitted minors, oldest first.
  type: list
  elements: str
"""

import re

from ansible.errors import AnsibleFilterError

# packaging comes with ansible-core on every controller; ansible-test's import
# check runs without it.
try:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError as missing:
    PACKAGING_MISSING: ImportError | None = missing
else:
    PACKAGING_MISSING = None

# Patch releases tried for a minor: more than any Python minor has had.
PATCHES = range(100)


def python_minors(minors: list[str], requires_python: str = "") -> list[str]:
    if PACKAGING_MISSING is not None:
        raise AnsibleFilterError(
            f"python_minors needs the Python package packaging on the controller: {PACKAGING_MISSING}"
        )
    wanted = SpecifierSet(requires_python or "")
    # Anything but X.Y (a stray key of python_envs_interpreter_paths) names no Python to build for.
    ordered = sorted({str(m) for m in minors if re.fullmatch(r"[0-9]+\.[0-9]+", str(m))}, key=Version)
    return [m for m in ordered if any(wanted.contains(f"{m}.{p}", prereleases=True) for p in PATCHES)]


class FilterModule:
    def filters(self):
        return {"python_minors": python_minors}
