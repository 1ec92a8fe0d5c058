#!/usr/bin/python
# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Gathers the few facts the roles read, named and valued as ansible.builtin.setup names and values them."""

from __future__ import annotations

DOCUMENTATION = r"""
module: node_facts
short_description: Gather the facts the roles read, and no others
description:
  - Sets the facts the roles of this collection and its example inventories read, under the names
    M(ansible.builtin.setup) gives them and with the values it gives them on Linux - the connecting account
    (C(user_id), C(user_uid), C(user_gid), C(user_gecos), C(user_dir), C(user_shell)), the node
    (C(architecture), C(hostname)), the module's environment (C(env)) and its Python (C(python)).
  - It costs about one plain module call. M(ansible.builtin.setup), even with C(gather_subset=min), carries every
    fact collector of Ansible to the node and imports them all, which costs about as much again.
  - Facts of any other kind (distribution, network, hardware, local facts) are not gathered; a play that reads
    them runs M(ansible.builtin.setup) itself.
version_added: 0.2.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options: {}
attributes:
  check_mode:
    description: Changes nothing in any mode; it gathers the same facts in check mode.
    support: full
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: none
  facts:
    description: Sets the facts it gathers, as M(ansible.builtin.setup) does.
    support: full
"""

EXAMPLES = r"""
- name: Gather the facts the roles read
  hpc.globus_compute.node_facts:
"""

RETURN = r"""
ansible_facts:
  description: The facts, as M(ansible.builtin.setup) returns them (with the C(ansible_) prefix).
  returned: always
  type: dict
  contains:
    ansible_user_id:
      description: The connecting account's name.
      type: str
    ansible_user_uid:
      description: Its uid, from the passwd database.
      type: int
    ansible_user_gid:
      description: Its primary gid, from the passwd database.
      type: int
    ansible_user_gecos:
      description: Its GECOS field.
      type: str
    ansible_user_dir:
      description: Its home, from the passwd database (not C($HOME)).
      type: str
    ansible_user_shell:
      description: Its login shell.
      type: str
    ansible_architecture:
      description: The machine architecture (C(i386) for every 32-bit x86).
      type: str
    ansible_hostname:
      description: The node's name up to its first dot.
      type: str
    ansible_env:
      description: The module's environment.
      type: dict
    ansible_python:
      description: The module's Python - version, version_info, executable, has_sslcontext, type.
      type: dict
"""

import getpass
import os
import platform
import pwd
import re
import sys

from ansible.module_utils.basic import AnsibleModule

try:
    import ssl

    HAS_SSLCONTEXT = hasattr(ssl, "SSLContext") and hasattr(ssl, "create_default_context")
except ImportError:
    HAS_SSLCONTEXT = False


def user_facts() -> dict[str, object]:
    """The account the module runs as: by its login name, or by its uid when the name is not in passwd."""
    name = getpass.getuser()
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = pwd.getpwuid(os.getuid())
    return {
        "user_id": name,
        "user_uid": entry.pw_uid,
        "user_gid": entry.pw_gid,
        "user_gecos": entry.pw_gecos,
        "user_dir": entry.pw_dir,
        "user_shell": entry.pw_shell,
    }


def platform_facts() -> dict[str, object]:
    """The architecture setup reports on Linux (every 32-bit x86 is i386) and the short host name."""
    machine = platform.machine()
    return {
        "architecture": "i386" if re.search(r"i([3456]86|86pc)", machine) else machine,
        "hostname": platform.node().split(".")[0],
    }


def python_facts() -> dict[str, object]:
    info = sys.version_info
    return {
        "python": {
            "version": {
                "major": info[0],
                "minor": info[1],
                "micro": info[2],
                "releaselevel": info[3],
                "serial": info[4],
            },
            "version_info": list(info),
            "executable": sys.executable,
            "has_sslcontext": HAS_SSLCONTEXT,
            "type": sys.implementation.name,
        }
    }


def gather() -> dict[str, object]:
    facts = {**user_facts(), **platform_facts(), "env": dict(os.environ), **python_facts()}
    return {"ansible_" + k: v for k, v in facts.items()}


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts=gather())


if __name__ == "__main__":
    main()
