"""A ready stamp edited by hand into one the roles cannot read marks no ready build.

python_envs reads each environment's stamp with from_stamp, the collection's one
reader of stamps; one that does not read as a stamp of the environment's spec
(a line that is not key=value, a key given twice, another spec, more than the
probe reads) makes the environment not current. The real run builds it anew
(build-env.sh --replace) and publishes it by the link's rename, retiring the
edited build, for two kinds; --check says it would build, for the others. The
role runs for real as root, offline, as in test_version_sets.
"""

from __future__ import annotations

import os
import re

import pytest
from accounts import is_root
from collection_plugins import read_stamp
from test_version_sets import NEW, python_envs, site, wheelhouse  # noqa: F401 (fixtures)
from versions import GCE

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the builds are checked as an unprivileged account")

MATRIX = [{"python": "3.11", "endpoint": GCE}]
EDITS = {
    "stray line": lambda text: text + "checked by bob\n",
    "key twice": lambda text: text + "python=9.9\n",
    "other spec": lambda text: re.sub("^spec=.*$", "spec=0123456789ab", text, flags=re.MULTILINE),
    "not JSON": lambda text: "{not json\n",
    "larger than the probe reads": lambda text: text + "k=v\n" * 20000,
}
# The kinds a real run builds anew, proving the role took them as not ready; check mode proves the others.
BUILT = ("stray line", "not JSON")


def test_a_stamp_that_does_not_read_is_built_anew(site, wheelhouse) -> None:  # noqa: F811
    first = python_envs(site, wheelhouse, MATRIX)
    assert first.returncode == 0, first.stdout[-3000:]
    env = site / "runtime" / "envs" / NEW
    stamp = env / ".ready"
    ready = stamp.read_text()
    # The role judges each kind the same way whether it then builds or not: check mode shows it
    # for each kind the real runs below do not make, and the stamp put back reads as ready again.
    for kind, edit in EDITS.items():
        if kind in BUILT:
            continue
        stamp.write_text(edit(ready))
        edited = stamp.read_text()
        checked = python_envs(site, wheelhouse, MATRIX, ["--check"])
        assert checked.returncode == 0, f"{kind}: {checked.stdout[-3000:]}"
        assert f"would build: {NEW};" in checked.stdout, kind
        assert stamp.read_text() == edited, kind
        stamp.write_text(ready)
    # The real run builds anew whatever the kind (build-env.sh --replace): one kind of lines, one
    # that is not.
    for kind in BUILT:
        old = os.readlink(env)
        stamp.write_text(EDITS[kind](stamp.read_text()))
        built = python_envs(site, wheelhouse, MATRIX)
        assert built.returncode == 0, f"{kind}: {built.stdout[-3000:]}"
        assert os.readlink(env) != old, kind
        assert read_stamp(stamp.read_text())["python"].startswith("3.11."), kind
        assert (env.parent / old / ".unpublished").is_file(), kind
    again = python_envs(site, wheelhouse, MATRIX)
    assert re.search(r"changed=0 ", again.stdout), again.stdout[-3000:]
