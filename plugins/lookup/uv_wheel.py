# Copyright: hpc.globus_compute contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: uv_wheel
short_description: Find the uv wheel for a platform in a PEP 503 simple index
description:
  - Reads the C(uv) project page of a PEP 503 simple index (PyPI, a mirror, or a
    C(file://) directory) on the controller and returns the wheel that matches a
    uv release target, with the sha256 the index publishes for it.
  - Fails when the index publishes no sha256, so every download can be checked.
options:
  _terms:
    description: The uv version, for example C(0.13.9).
    required: true
  index_url:
    description: Base URL of the simple index, for example C(https://pypi.org/simple).
    type: str
    required: true
  target:
    description: uv release target triple, for example C(x86_64-unknown-linux-gnu).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find the x86_64 glibc wheel of uv 0.13.9
  ansible.builtin.debug:
    msg: >-
      {{ lookup('hpc.globus_compute.uv_wheel', '0.13.9',
                index_url='https://pypi.org/simple', target='x86_64-unknown-linux-gnu') }}
"""

RETURN = r"""
_raw:
  description: One dict with C(url), C(filename) and C(sha256) of the wheel.
  type: list
  elements: dict
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase

# uv target triple prefix -> wheel platform-tag architecture.
WHEEL_ARCH = {
    "x86_64": "x86_64",
    "aarch64": "aarch64",
    "armv7": "armv7l",
    "i686": "i686",
    "powerpc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64gc": "riscv64",
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _read_page(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_text(encoding="utf-8")
    return to_text(open_url(url, headers={"Accept": "text/html"}, timeout=60).read())


def pick_wheel(page: str, page_url: str, version: str, target: str) -> dict[str, str]:
    """Return url, filename and sha256 of the wheel of `version` for `target`."""
    arch = WHEEL_ARCH.get(target.split("-")[0])
    if arch is None:
        raise ValueError(f"no uv wheel is published for target {target!r}")
    family = "musllinux" if "-musl" in target else "manylinux"
    wanted = re.compile(
        rf"^uv-{re.escape(version)}-py3-none-(?:[a-z0-9_.]*\.)?{family}[a-z0-9_]*_{re.escape(arch)}(?:\.[a-z0-9_]+)*\.whl$"
    )
    parser = _Links()
    parser.feed(page)
    for href in parser.hrefs:
        url, fragment = urldefrag(urljoin(page_url, href))
        filename = unquote(urlparse(url).path.rsplit("/", 1)[-1])
        if not wanted.match(filename):
            continue
        digest = re.fullmatch(r"sha256=([0-9a-f]{64})", fragment)
        if digest is None:
            raise ValueError(f"the index gives no sha256 for {filename}, so it cannot be checked")
        return {"url": url, "filename": filename, "sha256": digest.group(1)}
    raise ValueError(f"no uv {version} wheel for {target} ({family}, {arch}) at {page_url}")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("uv_wheel takes exactly one version")
        version = str(terms[0])
        page_url = self.get_option("index_url").rstrip("/") + "/uv/"
        try:
            page = _read_page(page_url)
            return [pick_wheel(page, page_url, version, self.get_option("target"))]
        except Exception as exc:  # every failure becomes one clear Ansible error
            raise AnsibleLookupError(f"uv_wheel: {exc}") from exc
