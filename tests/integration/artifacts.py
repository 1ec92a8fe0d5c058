"""The offline artifact store (uv wheels and releases, the wheelhouse), made on first use.

The unit stage runs before the Molecule harness, so a cold run has no store
yet: it is built here (scripts/harness/artifacts, cached by its stamps)
rather than the tests that need it being skipped.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from role_runner import ROOT


@functools.cache
def artifacts() -> Path:
    subprocess.run([str(ROOT / "scripts" / "harness" / "artifacts")], check=True, stdout=subprocess.DEVNULL)
    cache = Path(os.environ.get("HPC_GC_CACHE", Path.home() / ".cache" / "hpc.globus_compute"))
    return cache / "artifacts"


def offline_policy(base: Path) -> dict[str, str]:
    """The environment of an account whose uv policy is the offline wheelhouse: its own uv.toml under
    XDG_CONFIG_HOME (the scripts that build drop UV_* variables: only a policy file decides), with a
    cache of its own under `base`."""
    config = base / "config"
    (config / "uv").mkdir(parents=True, exist_ok=True)
    (config / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{artifacts() / "wheelhouse"}"]\n'
        f'python-downloads = "never"\ncache-dir = "{base / "uv-cache"}"\n'
    )
    return {"XDG_CONFIG_HOME": str(config)}
