"""Checks a staged endpoint directory with the endpoint's own loaders.

    <endpoint python> check_config.py STAGED_DIR config.yaml
    <endpoint python> check_config.py STAGED_DIR identity_mapping.json
    <endpoint python> check_config.py STAGED_DIR rendered.yaml

config.yaml is loaded as the endpoint loads its own configuration (unknown
fields and missing paths are errors). It is staged as it is deployed, naming
the deployed identity_mapping.json: the check's copy, config.checked.yaml,
names the staged one instead, and is what render-user-config is given. identity_mapping.json is loaded by the
endpoint's identity mapper, which then maps each sample identity of
identity_samples.json ([{"identity": {...}, "user": "name" or null}]) and
must give the user it names. rendered.yaml, what render-user-config made of the staged template, is loaded
as a user endpoint would load it (engine and provider fields included). Any
failure is printed as one line and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(staged: Path, name: str) -> None:
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    text = (staged / name).read_text()
    if name == "config.yaml":
        text = checked_copy(staged, text)
    config = load_config_yaml(text)
    engine = getattr(config, "engine", None)
    if engine is not None:
        engine.shutdown()
    if name == "rendered.yaml":
        if engine is None:
            raise ValueError("the rendered user config has no engine")
        return


def checked_copy(staged: Path, text: str) -> str:
    """config.yaml naming the staged identity mapping, written beside it as config.checked.yaml."""
    import yaml

    try:
        fields = yaml.safe_load(text)
    except yaml.YAMLError:
        # The endpoint's loader says what is wrong with it.
        return text
    if isinstance(fields, dict) and "identity_mapping_config_path" in fields:
        fields["identity_mapping_config_path"] = str(staged / "identity_mapping.json")
        text = yaml.safe_dump(fields, sort_keys=False)
    (staged / "config.checked.yaml").write_text(text)
    return text


def check_mapping(staged: Path) -> None:
    from globus_compute_endpoint.endpoint.identity_mapper import PosixIdentityMapper

    mapper = PosixIdentityMapper(staged / "identity_mapping.json", "hpc-globus-compute-check")
    mapper.stop_watching()
    if not mapper.identity_mappings:
        raise ValueError("it defines no usable mapper")
    samples = staged / "identity_samples.json"
    for sample in json.loads(samples.read_text()) if samples.exists() else []:
        # As the endpoint does: the first mapper that maps the identity decides.
        found = next(filter(None, (m.map_identity(sample["identity"]) for m in mapper.identity_mappings)), None)
        # null (or an empty name): the identity must map to nobody.
        wanted = sample.get("user") or None
        if found != wanted:
            raise ValueError(
                f"endpoint_identity_mapping_samples: {json.dumps(sample['identity'])} maps to "
                f"{json.dumps(found)}, not {json.dumps(wanted)}"
            )


if __name__ == "__main__":
    try:
        if sys.argv[2] == "identity_mapping.json":
            check_mapping(Path(sys.argv[1]))
        else:
            main(Path(sys.argv[1]), sys.argv[2])
    except Exception as err:  # every failure is reported the same way
        print(f"{type(err).__name__}: {err}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
