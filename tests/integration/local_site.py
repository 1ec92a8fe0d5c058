"""make run's site.yml (inventories/local) as root on this machine, offline, into a private passwd home."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from accounts import uv_release
from artifacts import offline_policy
from role_runner import ROOT, listing, run_playbook


def local_site_variables(tmp_path: Path) -> dict[str, object]:
    """`make run`'s variables on this machine, offline: uv from the project's release tarball, Python 3.11."""
    tarball, version = uv_release(tmp_path)
    return {
        "uv_source": "controller",
        "uv_controller_archive": str(tarball),
        "uv_version": version,
        "uv_controller_cache_dir": str(tmp_path / "uv-cache"),
        "endpoint_python": "/usr/bin/python3.11",
        "python_envs_interpreter_paths": {"3.11": "/usr/bin/python3.11"},
    }


@dataclass
class LocalSite:
    """The site converged once; the runs' home is tmp / "home"."""

    tmp: Path  # the runs' directory: pass it to run_playbook, with local_site_variables(tmp)
    first: subprocess.CompletedProcess[str]  # the converging run
    other: Path  # what HOME named in that run: a directory the roles must not write
    other_before: list[str]  # its listing before the run


def run(tmp: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """site.yml with the local inventory, as root, into tmp's private passwd home; args are further
    ansible-playbook arguments; HOME names `home` if given, else the passwd home."""
    env = {"USER": "root", **offline_policy(tmp), **({"HOME": str(home)} if home else {})}
    playbook, inventory = str(ROOT / "playbooks" / "site.yml"), str(ROOT / "inventories" / "local")
    return run_playbook(tmp, playbook, local_site_variables(tmp), ["-i", inventory, *args], env)


def converge(tmp: Path) -> LocalSite:
    """The first run, with HOME naming another directory, as after `sudo` without -H."""
    other = tmp / "other-home"
    other.mkdir()
    before = listing(other)
    return LocalSite(tmp, run(tmp, home=other), other, before)
