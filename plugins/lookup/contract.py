# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: contract
short_description: The request contract between the roles, the endpoint's template and the runtime
description:
  - The one definition of what a request may carry to a worker, and of what the
    roles write about it, as each language needs it. The roles read it from here;
    python_envs writes what the runtime needs into C(worker-env.conf) (bash regular
    expressions) and into the user config template's site line (the same rules as
    data, for the endpoint's Jinja, which has no regular expressions).
  - C(python_pattern), C(endpoint_pattern), C(requirement_pattern) - for Ansible's
    C(match) test and for Python's C(re) (anchored with C(\Z), so that a trailing
    newline is refused as bash refuses it).
  - C(python_ere), C(endpoint_ere), C(requirement_ere), C(user_env_ere) - the same
    rules as POSIX extended regular expressions, for bash's C(=~). In
    C(requirement_ere) the first group is the name.
  - C(requirement), C(requirement_chars) - the requirement grammar unanchored (for a
    JSON schema), and the characters it is made of.
  - C(template_rule) - the version rules as data, for the endpoint template.
  - C(env_name) - the name of an environment, with C({python}) and C({endpoint}).
  - C(env_name_parts) - the same name as the two strings around the Python version,
    C([prefix, infix]); the name is prefix, X.Y, infix, version. For bash, which
    builds a name without a process (C(worker-env.conf)'s C(WORKER_ENV_NAME), and
    C(build-env.sh)'s C(BUILD_ENV_NAME)).
  - C(env_glob) - a glob that matches every environment's name (and a user's, with
    C(-req-) and its hash), for C(ansible.builtin.find) and shell globs.
  - C(release_pattern), C(release_ere) - the versions of site environments that may serve
    a client by minor (python_envs_version_match C(minor)), releases X.Y.Z or X.Y.Z.postN,
    each number without leading zeros. Groups 1 to 3 are X, Y and Z, group 5 the post
    number. A client's version is any the endpoint pattern takes; its X.Y are its first
    two numbers, as integers.
  - C(minor_match) - the site version that serves the client version O(client) by
    minor among O(site), the newest (by Z, then the post number, as integers) of those
    that are releases with the client's X.Y; empty when none is. Major versions never cross.
options:
  _terms:
    description: The names of the parts wanted.
    required: true
  client:
    description: For C(minor_match), the version a client sent.
    type: str
    default: ""
  site:
    description: For C(minor_match), the versions of the site's environments.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check an endpoint version as every part of the collection checks it
  ansible.builtin.assert:
    that: endpoint_version is match(lookup('hpc.globus_compute.contract', 'endpoint_pattern'))
"""

RETURN = r"""
_raw:
  description: Each part asked for, a string, (env_name_parts) a list or (template_rule) a dict;
    C(minor_match) a version or an empty string.
  type: list
"""

import re

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# Python X.Y: the major version, and at most this many digits of minor.
PYTHON_MAJOR = 3
PYTHON_MINOR_DIGITS = 2
# An endpoint (SDK) version: X.Y.Z, then at most one pre-release tag, then
# the suffixes in this order, each at most once; every number is 1 to
# VERSION_DIGITS ASCII digits. Not the whole of PEP 440: exactly the shapes
# that name a directory and go on a command line unquoted.
VERSION_DIGITS = 4
PRE_TAGS = ("a", "b", "rc")
SUFFIXES = ("post", "dev")
# What a user may ask for: PEP 508 names with extras and version
# specifiers, nothing else (no markers, options, paths or URLs).
REQ_NAME = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REQ_SPEC = "(?:===|==|!=|<=|>=|~=|<|>) *[A-Za-z0-9.*+!_-]+"
REQUIREMENT = f"{REQ_NAME}(?: *\\[ *{REQ_NAME}(?: *, *{REQ_NAME})* *\\])?(?: *{REQ_SPEC}(?: *, *{REQ_SPEC})*)?"
REQUIREMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-[],<>=!~*+ "
# An environment's name; a user's environment with requirements adds -req-<16 hex>.
ENV_NAME = "py{python}-gce{endpoint}"
# The name's parts, which bash puts around the versions: the name must start
# with the Python version's prefix and end with the endpoint version (a user's
# -req-<hash> and a build's -<spec>.<host>-<pid> follow it), and the parts are
# plain characters, literal in every glob and regular expression.
ENV_NAME_PREFIX = ENV_NAME.partition("{python}")[0]
ENV_NAME_INFIX = ENV_NAME.partition("{python}")[2].partition("{endpoint}")[0]
if (
    ENV_NAME != f"{ENV_NAME_PREFIX}{{python}}{ENV_NAME_INFIX}{{endpoint}}"
    or not re.fullmatch("[A-Za-z0-9._-]+", ENV_NAME_PREFIX + ENV_NAME_INFIX)
    or not ENV_NAME_INFIX
):
    raise ValueError(f"ENV_NAME {ENV_NAME!r}: expected PREFIX{{python}}INFIX{{endpoint}} of [A-Za-z0-9._-]")

_N = f"[0-9]{{1,{VERSION_DIGITS}}}"
PYTHON = f"{PYTHON_MAJOR}\\.[0-9]{{1,{PYTHON_MINOR_DIGITS}}}"
ENDPOINT = f"{_N}\\.{_N}\\.{_N}(({'|'.join(PRE_TAGS)}){_N})?" + "".join(f"(\\.{suffix}{_N})?" for suffix in SUFFIXES)
# The releases a site environment may serve by minor: no pre-release or dev
# tag (never taken for a release unless asked for by name), and numbers
# written one way only, so that one release has one name.
_R = f"(0|[1-9][0-9]{{0,{VERSION_DIGITS - 1}}})"
RELEASE = f"{_R}\\.{_R}\\.{_R}(\\.post{_R})?"
# The longest version the rule takes: the template refuses longer strings first.
ENDPOINT_MAX_LENGTH = 3 * VERSION_DIGITS + 2 + max(map(len, PRE_TAGS)) + VERSION_DIGITS
ENDPOINT_MAX_LENGTH += sum(1 + len(suffix) + VERSION_DIGITS for suffix in SUFFIXES)


def _spelled(bracket: re.Match) -> str:
    """A bracket expression with its ranges (0-9, a-z) written out."""
    return re.sub(
        r"([0-9A-Za-z])-([0-9A-Za-z])",
        lambda r: "".join(map(chr, range(ord(r.group(1)), ord(r.group(2)) + 1))),
        bracket.group(0),
    )


def ere(pattern: str) -> str:
    """A pattern of this module as a POSIX extended regular expression (no (?:...) groups), its
    ranges spelled out: in bash under a UTF-8 locale, [0-9] also takes other scripts' digits (U+00B2, U+0661)."""
    return re.sub(r"\[[^]]*\]", _spelled, pattern.replace("(?:", "("))


def minor_match(client: str, site: list[str]) -> str:
    """The site version that serves `client` by minor: of the site's releases with the client's X.Y
    (as integers), the newest by Z, then post number (none before 0); the first of equals. Empty if none.
    worker-env.sh makes the same choice in bash, from release_ere; the parity test holds them to it."""
    if not re.match(f"^{ENDPOINT}\\Z", client):
        return ""
    want = [int(n) for n in client.split(".")[:2]]
    best, key = "", (-1, -1)
    for version in site:
        release = re.match(f"^{RELEASE}\\Z", version)
        if not release or [int(release[1]), int(release[2])] != want:
            continue
        this = (int(release[3]), int(release[5]) if release[5] else -1)
        if this > key:
            best, key = version, this
    return best


def parts() -> dict[str, object]:
    return {
        "python_pattern": f"^{PYTHON}\\Z",
        "endpoint_pattern": f"^{ENDPOINT}\\Z",
        "requirement_pattern": f"^{REQUIREMENT}\\Z",
        "requirement": REQUIREMENT,
        "requirement_chars": REQUIREMENT_CHARS,
        "python_ere": f"^{ere(PYTHON)}$",
        "endpoint_ere": f"^{ere(ENDPOINT)}$",
        # Spaces around it are allowed, as a requirements file has them; the name is group 1.
        "requirement_ere": f"^ *({ere(REQ_NAME)}){ere(REQUIREMENT)[len(ere(REQ_NAME)) :]} *$",
        "user_env_ere": (
            "^" + ENV_NAME.format(python=ere(PYTHON), endpoint=ere(ENDPOINT)) + ere("(-req-[0-9a-f]{16})?$")
        ),
        "env_name": ENV_NAME,
        "env_name_parts": [ENV_NAME_PREFIX, ENV_NAME_INFIX],
        "env_glob": f"{ENV_NAME_PREFIX}*{ENV_NAME_INFIX}*",
        "release_pattern": f"^{RELEASE}\\Z",
        "release_ere": f"^{ere(RELEASE)}$",
        "template_rule": {
            "python_major": PYTHON_MAJOR,
            "python_minor_digits": PYTHON_MINOR_DIGITS,
            "digits": VERSION_DIGITS,
            "pre": list(PRE_TAGS),
            "suffixes": list(SUFFIXES),
            "max_length": ENDPOINT_MAX_LENGTH,
        },
    }


class LookupModule(LookupBase):
    def run(self, terms: list, variables: dict | None = None, **kwargs: object) -> list:
        self.set_options(var_options=variables, direct=kwargs)
        known = parts()
        known["minor_match"] = minor_match(str(self.get_option("client")), list(map(str, self.get_option("site"))))
        unknown = [term for term in terms if term not in known]
        if unknown:
            names = ", ".join(map(str, unknown))
            raise AnsibleLookupError(f"contract: no part named {names} (parts: {', '.join(known)})")
        return [known[term] for term in terms]
