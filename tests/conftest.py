"""Shared pytest setup: the checkout importable as hpc.globus_compute, bench/'s readers of a run,
and how pytest-xdist shares the tests out (longest_first)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".cache" / "collections"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
# bench/executions.py reads a run's output for the benches and the tests alike.
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

# build-env.sh takes an environment's name from its caller, as the _common
# role gives it: the tests that run it directly give the contract's.
from collection_plugins import CONTRACT  # noqa: E402

# How pytest-xdist's workers share the tests: a shared fixture made once, the longest first.
from longest_first import pytest_addoption, pytest_collection_modifyitems, pytest_configure  # noqa: E402, F401

os.environ.setdefault("BUILD_ENV_NAME", " ".join(map(str, CONTRACT["env_name_parts"])))  # type: ignore[call-overload]
