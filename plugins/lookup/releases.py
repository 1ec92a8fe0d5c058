# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: releases
short_description: Resolve version sets of a package from where a uv policy installs from
description:
  - Lists the releases of one package once, on the controller, from where a uv policy (uv.toml's keys)
    installs from, and returns the releases each version set selects.
  - The places are the policy's C(find-links) (directories or pages of links), and unless it says
    C(offline) or C(no-index), its indexes (C(index-url), C(extra-index-url), C(index); PyPI when none).
  - A set is a PEP 440 specifier, the newest N releases, or both. Pre-releases and yanked files are
    left out unless a set asks for pre-releases.
  - A set that selects nothing fails the lookup, with one line naming the set.
  - Each selected release comes with the Pythons it supports (its C(Requires-Python)), from an index's
    C(requires-python) (PEP 691) or C(data-requires-python) (PEP 503, and pages of links), or from the
    METADATA of its wheel in a find-links directory.
options:
  _terms:
    description: The package, for example C(globus-compute-endpoint).
    required: true
  sets:
    description:
      - The version sets, each a dict with C(name) (how a failure names it), C(specifier) (PEP 440, empty
        for every release), C(newest) (a count, or null for all) and C(prereleases) (a boolean).
    type: list
    elements: dict
    required: true
  policy:
    description: The uv policy, as uv.toml's keys (the uv role's C(uv_config)).
    type: dict
    default: {}
  variable:
    description: The variable a failure to list the releases names.
    type: str
    default: releases
  return_errors:
    description: Return a failure as one dict with C(error) (one line) instead of failing, for an assert to show.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The newest two 4.x releases of globus-compute-endpoint on PyPI
  ansible.builtin.debug:
    msg: >-
      {{ query('hpc.globus_compute.releases', 'globus-compute-endpoint',
               sets=[{'name': 'example', 'specifier': '>=4,<5', 'newest': 2, 'prereleases': false}]) }}
"""

RETURN = r"""
_raw:
  description:
    - One dict per set, in the order given, with C(name), C(versions) (oldest first), C(source)
      (the places listed) and C(requires_python) (each version's C(Requires-Python), empty when its
      files say none).
  type: list
  elements: dict
"""

import json
import os
import re
import zipfile
from email.parser import HeaderParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase
from ansible_collections.hpc.globus_compute.plugins.lookup.contract import parts as contract

# packaging comes with ansible-core on every controller; ansible-test's import
# check runs without it.
try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import Version
except ImportError as missing:
    PACKAGING_MISSING: ImportError | None = missing
else:
    PACKAGING_MISSING = None

PYPI = "https://pypi.org/simple"
# The releases the runtime serves (the request contract): a release of another
# shape (an epoch, a local version, more parts or digits) is never selected.
SERVED = re.compile(str(contract()["endpoint_pattern"]))
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class _Links(HTMLParser):
    """The links of a PEP 503 page or a find-links page, without the yanked ones: file name and
    Requires-Python (its data-requires-python, which the parser unescapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href") and "data-yanked" not in found:
            name = unquote(urlparse(found["href"] or "").path.rsplit("/", 1)[-1])
            self.files.append((name, found.get("data-requires-python") or ""))


def places(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """Where the policy's uv looks for packages, as (kind, place): its find-links, then its indexes
    unless offline."""

    def listed(key: str) -> list[str]:
        value = policy.get(key) or []
        return [str(v) for v in ([value] if isinstance(value, str) else value)]

    found = [("find-links", place) for place in listed("find-links")]
    if not (policy.get("offline") or policy.get("no-index")):
        indexes = [str(i["url"]) for i in policy.get("index") or [] if isinstance(i, dict) and i.get("url")]
        indexes += listed("index-url") + listed("extra-index-url")
        found += [("index", url.rstrip("/") + "/") for url in indexes or [PYPI]]
    return found


def version_of(filename: str, project: str) -> Version | None:
    """The release a distribution file of `project` holds; None for another project or no distribution."""
    try:
        if filename.endswith(".whl"):
            name, version = parse_wheel_filename(filename)[:2]
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version if name == project else None


def _read(url: str, accept: str) -> tuple[str, str]:
    response = open_url(url, headers={"Accept": accept}, timeout=60)
    return to_text(response.read()), response.headers.get("Content-Type", "")


def wheel_requires_python(wheel: Path) -> str:
    """The Requires-Python of a wheel's METADATA; empty when it says none or cannot be read (uv then
    says why, when it installs from it)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(
                (n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None
            )
            if metadata is None:
                return ""
            headers = HeaderParser().parsestr(archive.read(metadata).decode("utf-8", "replace"))
    except (OSError, zipfile.BadZipFile):
        return ""
    return (headers.get("Requires-Python") or "").strip()


def list_place(kind: str, place: str, project: str) -> dict[Version, str]:
    """Every release of `project` at one place (one listing), with its Requires-Python: an index,
    a directory or a page of links."""
    parsed = urlparse(place)
    files: list[tuple[str, str]] = []
    if parsed.scheme in ("", "file"):
        directory = Path(unquote(parsed.path) if parsed.scheme else place)
        if not directory.is_dir():
            raise ValueError(f"find-links {place} is not a directory the controller can read")
        # Only the project's wheels are opened: a directory has no page that says it.
        # Files only (a link to one too): a directory or a dangling link named like a wheel is none.
        files = [
            (n, wheel_requires_python(directory / n) if n.endswith(".whl") and version_of(n, project) else "")
            for n in os.listdir(directory)
            if (directory / n).is_file()
        ]
    elif kind == "index":
        # An index: its project page, as JSON where it speaks PEP 691.
        page_url = urljoin(place, project + "/")
        text, kind = _read(page_url, f"{SIMPLE_JSON}, text/html;q=0.1")
        if kind.startswith(SIMPLE_JSON):
            files = [
                (f["filename"], f.get("requires-python") or "")
                for f in json.loads(text).get("files", [])
                if not f.get("yanked")
            ]
        else:
            links = _Links()
            links.feed(text)
            files = links.files
    else:
        links = _Links()
        links.feed(_read(place, "text/html")[0])
        files = links.files
    found: dict[Version, str] = {}
    for name, requires in files:
        version = version_of(name, project)
        if version is not None and not found.get(version):
            found[version] = requires.strip() if _specifier(requires) else ""
    return found


def _specifier(text: str) -> bool:
    """Whether a Requires-Python parses; one that does not is ignored, as pip and uv do."""
    try:
        SpecifierSet(text.strip())
    except InvalidSpecifier:
        return False
    return True


def select(available: set[Version], specifier: str, newest: int | None, prereleases: bool) -> list[str]:
    """The releases a set selects, oldest first."""
    served = {v for v in available if SERVED.match(str(v))}
    chosen = sorted(SpecifierSet(specifier or "").filter(served, prereleases=prereleases))
    if not prereleases:
        # filter() lets pre-releases through when nothing else matches; a set never does.
        chosen = [v for v in chosen if not v.is_prerelease]
    if newest is not None:
        chosen = chosen[-newest:] if newest > 0 else []
    return [str(v) for v in chosen]


def resolve(
    project: str, sets: list[dict[str, Any]], policy: dict[str, Any], variable: str = "releases", lister=list_place
) -> list[dict]:
    """Each set's releases, from one listing of each place the policy names."""
    for item in sets:
        try:
            SpecifierSet(item.get("specifier") or "")
        except InvalidSpecifier:
            raise ValueError(
                f"{item['name']}: {item.get('specifier')!r} is neither a release such as 4.19.0 "
                "nor a PEP 440 specifier such as >=4.17,<5"
            ) from None
    where = places(policy)
    if not where:
        raise ValueError(f"{variable}: the uv policy names no place to list releases at (offline, and no find-links)")
    available: dict[Version, str] = {}
    for kind, place in where:
        try:
            # The first place that says a release's Requires-Python is the one kept.
            for version, requires in lister(kind, place, canonicalize_name(project)).items():
                if not available.get(version):
                    available[version] = requires
        except Exception as exc:  # the place, and why, in one line
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(f"{variable}: the releases of {project} cannot be listed at {place}: {reason}") from exc
    shown = ", ".join(place for _kind, place in where)
    found = []
    for item in sets:
        versions = select(
            set(available), item.get("specifier") or "", item.get("newest"), bool(item.get("prereleases"))
        )
        if not versions:
            asked = " ".join(
                filter(
                    None,
                    [
                        item.get("specifier") or "any release",
                        f"(newest {item['newest']})" if item.get("newest") is not None else "",
                        "" if item.get("prereleases") else "without pre-releases",
                    ],
                )
            )
            raise ValueError(f"{item['name']}: no {project} release matches {asked} at {shown}")
        found.append(
            {
                "name": item["name"],
                "versions": versions,
                "source": [place for _kind, place in where],
                "requires_python": {v: available[Version(v)] for v in versions},
            }
        )
    return found


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if PACKAGING_MISSING is not None:
            raise AnsibleLookupError(
                f"releases needs the Python package packaging on the controller: {PACKAGING_MISSING}"
            )
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("releases takes exactly one package")
        try:
            return resolve(
                str(terms[0]), self.get_option("sets"), self.get_option("policy") or {}, self.get_option("variable")
            )
        except Exception as exc:  # every failure becomes one clear line
            if self.get_option("return_errors"):
                return [{"error": str(exc)}]
            raise AnsibleLookupError(str(exc)) from exc
