# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: to_toml
short_description: Serialise a dict of settings as TOML
description:
  - Turns a dict into a TOML document, as uv's C(uv.toml) expects. Scalars and
    lists become keys; dicts become tables; lists of dicts become arrays of
    tables (for example uv's C([[index]])).
  - Keys that are not plain TOML keys are quoted; strings are escaped, so no
    value can inject another key.
positional: _input
options:
  _input:
    description: The settings.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Render uv settings
  ansible.builtin.copy:
    content: "{{ {'offline': true, 'find-links': ['/shared/wheels']} | hpc.globus_compute.to_toml }}"
    dest: /etc/uv/uv.toml
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The TOML text, ending with a newline.
  type: str
"""

import json
import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise AnsibleFilterError(f"to_toml: {value!r} has no TOML form")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise AnsibleFilterError(f"to_toml: cannot write {type(value).__name__} {value!r}")


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
    )


def _table(data: Mapping, prefix: str, out: list[str]) -> None:
    nested = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping) or _is_table_array(value):
            nested.append((key, value))
        else:
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, Mapping):
            out.extend(["", f"[{name}]"])
            _table(value, name, out)
        else:
            for item in value:
                out.extend(["", f"[[{name}]]"])
                _table(item, name, out)


def to_toml(data: Mapping) -> str:
    if not isinstance(data, Mapping):
        raise AnsibleFilterError(f"to_toml: expected a dict, got {type(data).__name__}")
    out: list[str] = []
    _table(data, "", out)
    return "\n".join(out).lstrip("\n") + "\n" if out else ""


class FilterModule:
    def filters(self):
        return {"to_toml": to_toml}
