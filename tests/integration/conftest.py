"""Fixtures that several test modules read."""

from __future__ import annotations

import pytest
from local_site import LocalSite, converge


@pytest.fixture(scope="session")
def local_site(tmp_path_factory: pytest.TempPathFactory) -> LocalSite:
    """make run's site.yml, converged once for the tests that read it, or change it and put it back
    (test_one_home, test_tags: one xdist group, so one worker runs them, one after the other)."""
    return converge(tmp_path_factory.mktemp("local-site"))
