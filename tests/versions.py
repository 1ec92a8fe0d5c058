"""The test versions, read from their one source, tests/versions.yml."""

from __future__ import annotations

from pathlib import Path

import yaml

VERSIONS: dict[str, str] = yaml.safe_load((Path(__file__).with_name("versions.yml")).read_text())

UV = VERSIONS["uv"]
UV_OLD = VERSIONS["uv_old"]
UV_TOO_OLD = VERSIONS["uv_too_old"]
GCE = VERSIONS["gce"]
GCE_PREVIOUS = VERSIONS["gce_previous"]
WHEELHOUSE_PYTHONS = tuple(VERSIONS["wheelhouse_pythons"].split())
EXTRA_WHEEL = VERSIONS["extra_wheel"]
