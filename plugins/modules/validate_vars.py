# Copyright: hpc.globus_compute maintainers
# Apache License 2.0 (see LICENSE)
"""Documentation of the validate_vars action (the work is done on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: validate_vars
short_description: Check the variables of this collection's roles and return their typed values
description:
  - Checks every variable of the named roles against the role's C(meta/argument_specs.yml), with the values of
    C(defaults/main.yml) under the play's own, with Ansible's C(ArgumentSpecValidator).
  - Refuses a variable with a role's prefix (C(uv_), C(python_envs_), C(endpoint_)) that the role does not know,
    naming the closest known variable.
  - With O(extra_vars), refuses an extra var with the playbook's prefix that the playbook does not read.
  - Fails with one short line per problem (variable, value, what is allowed), before anything is changed.
  - Returns, as facts named C(__<variable>), the converted value of every option whose type is not a string, so
    that C(-e python_envs_prune=true) is the boolean V(true). The roles read these facts.
version_added: 0.3.0
author: hpc.globus_compute maintainers (@hpc-globus-compute)
options:
  roles:
    description: The roles of hpc.globus_compute whose variables are checked (C(uv), C(python_envs), C(endpoint)).
    type: list
    elements: str
    required: true
  defer_undefined:
    description:
      - Leave out of the check a value that uses a fact a role of the collection publishes as it runs and that is
        not defined yet (C(uv_installed), C(python_envs_deployed), C(endpoint_deployed)); the role checks it itself
        when it runs. Any other undefined name (a fact that was not gathered, a misspelt variable) still fails
        naming the variable. Without it, every such value fails naming the variable.
    type: bool
    default: false
  extra_vars:
    description:
      - The extra vars a playbook itself reads. Any other extra var (C(-e)) that starts with O(extra_vars.prefix)
        is refused, naming the closest of O(extra_vars.names). Inventory variables are not checked, so an
        inventory may define its own with that prefix (as C(inventories/local) defines C(hpc_gc_home)).
      - Extra vars come from the command line (C(ansible.utils.vars.load_extra_vars)), files given with C(-e @file)
        included.
    type: dict
    suboptions:
      playbook:
        description: The playbook's name, as the refusal shows it.
        type: str
        required: true
      prefix:
        description: The prefix of the playbook's own variables.
        type: str
        required: true
      names:
        description: Every variable of the playbook with that prefix.
        type: list
        elements: str
        required: true
attributes:
  check_mode:
    description: Runs in check mode and returns the same result.
    support: full
  diff_mode:
    description: Nothing on the host is changed, so there is no diff.
    support: none
  platform:
    description: Runs on the controller only.
    support: full
    platforms: all
"""

EXAMPLES = r"""
- name: Check every role's variables before changing anything
  hpc.globus_compute.validate_vars:
    roles: [uv, python_envs, endpoint]

- name: Check them, and that every -e hpc_gc_* is one the playbook reads
  hpc.globus_compute.validate_vars:
    roles: [uv, python_envs]
    extra_vars:
      playbook: site.yml
      prefix: hpc_gc_
      names: [hpc_gc_hosts, hpc_gc_serial]
"""

RETURN = r"""
ansible_facts:
  description: The typed value of each non-string option, as C(__<variable>).
  returned: success
  type: dict
"""
