"""Checks a staged endpoint directory with the endpoint's own loaders.

    <endpoint python> check_config.py STAGED_DIR config.yaml
    <endpoint python> check_config.py STAGED_DIR rendered.yaml

config.yaml is loaded as the endpoint loads its own configuration (unknown
fields and missing paths are errors), with the identity mapping next to it.
rendered.yaml, what render-user-config made of the staged template, is loaded
as a user endpoint would load it (engine and provider fields included). Any
failure is printed as one line and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(staged: Path, name: str) -> None:
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    config = load_config_yaml((staged / name).read_text())
    engine = getattr(config, "engine", None)
    if engine is not None:
        engine.shutdown()
    if name == "rendered.yaml":
        if engine is None:
            raise ValueError("the rendered user config has no engine")
        return

    mapping = staged / "identity_mapping.json"
    if mapping.exists():
        from globus_identity_mapping.loader import load_mappers

        if not load_mappers(json.loads(mapping.read_text())):
            raise ValueError("the identity mapping defines no usable mapper")


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), sys.argv[2])
    except Exception as err:  # every failure is reported the same way
        print(f"{type(err).__name__}: {err}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
