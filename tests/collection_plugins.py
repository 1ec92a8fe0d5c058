"""The collection's own controller plugins, for the tests: the ready-stamp
reader (plugins/filter/from_stamp.py) and the request contract
(plugins/lookup/contract.py), loaded from this checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

_PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hpc_globus_compute_{Path(relative).stem}", _PLUGINS / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_STAMP = _load("filter/from_stamp.py")
CONTRACT: dict[str, object] = _load("lookup/contract.py").parts()


def read_stamp(text: str) -> dict[str, object]:
    """A stamp's keys and values (packages and requirements as lists)."""
    return _STAMP.from_stamp(text)
