# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: from_stamp
short_description: Read an environment's ready stamp
description:
  - An environment's C(.ready) stamp, as build-env.sh and worker-env-build write it, the site's
    builds and users' alike - one C(key=value) per line, the value the rest of the line; a list
    (C(packages), C(requirements)) repeats its key, one line per item.
  - Until the next release, also a JSON stamp, which site builds of earlier releases wrote.
positional: _input
options:
  _input:
    description: The stamp's text.
    type: str
    required: true
  lists:
    description: Keys that hold a list; each is in the result, empty when the stamp has no line for it.
    type: list
    elements: str
    default: [packages, requirements]
  strict:
    description:
      - With C(true), text that is not a stamp (a line without C(=), a key other than a list's given twice, JSON
        that is not an object) is an error.
      - With C(false), such text reads as an empty dict, so that a test can tell it from a stamp; the python_envs
        role takes such a build as not ready, and has build-env.sh build it anew (C(--replace)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The packages of a site environment
  ansible.builtin.debug:
    msg: >-
      {{ lookup('ansible.builtin.file', '/opt/envs/py3.12-gce4.19.0/.ready')
         | hpc.globus_compute.from_stamp(lists=['packages']) }}
"""

RETURN = r"""
_value:
  description: The stamp's keys and values; a list key's value is the list of its lines' values.
  type: dict
"""

import json

from ansible.errors import AnsibleFilterError

LISTS = ["packages", "requirements"]


def from_stamp(text: str, lists: list[str] | None = None, strict: bool = True) -> dict[str, object]:
    """The stamp's keys and values.

    :raises AnsibleFilterError: text is not a str; or, when ``strict``, it is not a stamp.
    """
    if not isinstance(text, str):
        raise AnsibleFilterError(f"from_stamp: expected the stamp's text, got {type(text).__name__}")
    try:
        return read(text, LISTS if lists is None else list(lists))
    except AnsibleFilterError:
        if strict:
            raise
        return {}


def read(text: str, lists: list[str]) -> dict[str, object]:
    if text.lstrip().startswith("{"):
        try:
            stamp = json.loads(text)
        except ValueError as error:
            raise AnsibleFilterError(f"from_stamp: not a JSON stamp: {error}") from error
        if not isinstance(stamp, dict):
            raise AnsibleFilterError("from_stamp: a JSON stamp is an object")
        return {key: stamp.get(key, []) for key in lists} | stamp
    found: dict[str, object] = {key: [] for key in lists}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise AnsibleFilterError(f"from_stamp: {line[:80]!r} is not key=value")
        if key in lists:
            found[key].append(value)  # type: ignore[union-attr]
        elif key in found:
            raise AnsibleFilterError(f"from_stamp: {key[:80]!r} is given twice")
        else:
            found[key] = value
    return found


class FilterModule:
    def filters(self):
        return {"from_stamp": from_stamp}
