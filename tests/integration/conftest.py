"""Fixtures that several test modules read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from local_site import LocalSite, converge


@pytest.fixture(scope="session")
def local_site(tmp_path_factory: pytest.TempPathFactory) -> LocalSite:
    """make run's site.yml, converged once for the tests that read it, or change it and put it back
    (test_one_home, test_tags: one xdist group, so one worker runs them, one after the other)."""
    return converge(tmp_path_factory.mktemp("local-site"))


@pytest.fixture
def root_only(tmp_path: Path) -> Path:
    """A 0700 directory holding a working python3.11 (a copy of the system's) and python3 (a link to it),
    like ~root/.pyenv: root can run them, no other account can."""
    private = tmp_path / "root-home" / "bin"
    private.mkdir(parents=True)
    private.parent.chmod(0o700)
    shutil.copy2(os.path.realpath("/usr/bin/python3.11"), private / "python3.11")
    (private / "python3").symlink_to("python3.11")
    return private
