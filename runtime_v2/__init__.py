"""runtime_v2: containerd's runtime v2 (shim task runtime) in Python.

The public face; the work lives in modules named after containerd's files:
``runtime`` (the task and process contract: Exit, State, Status), ``bundle`` (the directory on
disk), ``binary`` (running the shim binary), ``shim`` (a connected shim and its task),
``process`` (an exec in it), ``shim_load`` (restart recovery), ``shim_manager`` (the shim
plugin) and ``task_manager`` (the task plugin). Names are imported lazily, so importing a
submodule does not import the whole package.

Example::

    from runtime_v2 import CreateOpts

    tasks = host.get("io.containerd.runtime.v2", "task")      # a TaskManager
    task = await tasks.create("hello", CreateOpts(spec=spec_json), namespace="default")
    await task.start()
    exit = await task.wait()
    await tasks.delete("hello", namespace="default")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime_v2.nsmap import NSMap
    from runtime_v2.process import Process
    from runtime_v2.runtime import CreateOpts, Exit, ProcessInfo, State, Status
    from runtime_v2.shim import Shim, ShimTask
    from runtime_v2.shim_config import ShimConfig
    from runtime_v2.shim_load import LoadOutcome, load_existing_shims
    from runtime_v2.shim_manager import ShimManager
    from runtime_v2.task_config import TaskConfig
    from runtime_v2.task_manager import TaskManager

__all__ = [
    "CreateOpts",
    "Exit",
    "LoadOutcome",
    "NSMap",
    "Process",
    "ProcessInfo",
    "Shim",
    "ShimConfig",
    "ShimManager",
    "ShimTask",
    "State",
    "Status",
    "TaskConfig",
    "TaskManager",
    "load_existing_shims",
]

_WHERE = {
    "NSMap": "nsmap",
    "Exit": "runtime",
    "Process": "process",
    "ProcessInfo": "runtime",
    "Shim": "shim",
    "ShimTask": "shim",
    "State": "runtime",
    "Status": "runtime",
    "LoadOutcome": "shim_load",
    "load_existing_shims": "shim_load",
    "ShimConfig": "shim_config",
    "ShimManager": "shim_manager",
    "CreateOpts": "runtime",
    "TaskConfig": "task_config",
    "TaskManager": "task_manager",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime_v2' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"runtime_v2.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
