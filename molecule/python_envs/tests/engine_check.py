"""Run one function through a real GlobusComputeEngine started from a rendered user config.

No Globus service is involved: as on a real endpoint, the client packs the
task with its own Python, the engine (in the endpoint's environment) starts
its interchange and a LocalProvider block whose worker_init picks the worker
environment, and the worker runs the function.

    <client python> engine_check.py pack TASK_FILE
    <endpoint python> engine_check.py run CONFIG RUN_DIR TASK_FILE

`run` prints the worker's Python X.Y, sys.prefix and six's version (null without it) as JSON.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from globus_compute_common import messagepack
from globus_compute_common.messagepack.message_types import Task
from globus_compute_sdk.serialize import ComputeSerializer


def where_am_i() -> tuple[str, str, str | None]:
    import sys

    try:
        import six
    except ImportError:
        six = None
    return f"{sys.version_info[0]}.{sys.version_info[1]}", sys.prefix, six and six.__version__


def pack(task_file: str) -> None:
    serde = ComputeSerializer()
    body = serde.pack_buffers([serde.serialize(where_am_i), serde.serialize(()), serde.serialize({})])
    Path(task_file).write_bytes(messagepack.pack(Task(task_id=uuid.uuid4(), task_buffer=body)))


def run(config_path: str, run_dir: str, task_file: str) -> None:
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml
    from globus_compute_endpoint.engines.base import GCFuture

    packed = Path(task_file).read_bytes()
    engine = load_config_yaml(Path(config_path).read_text()).engine
    engine.start(endpoint_id=uuid.uuid4(), run_dir=run_dir)
    try:
        future = GCFuture(gc_task_id=messagepack.unpack(packed).task_id)
        engine.submit(future, packed, resource_specification={})
        result = messagepack.unpack(future.result(timeout=240))
    finally:
        engine.shutdown()
    if result.is_error:
        raise SystemExit(f"task failed: {result.data}")
    python, prefix, six = ComputeSerializer().deserialize(result.data)
    print(json.dumps({"python": python, "prefix": prefix, "six": six}))


if __name__ == "__main__":
    if sys.argv[1] == "pack":
        pack(sys.argv[2])
    else:
        run(*sys.argv[2:5])
