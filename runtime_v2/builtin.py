"""runtime_v2's built-in plugins: the shim manager and the task manager.

Passed to :func:`registry.boot_async` as a builtin (``taskplane.boot`` does it), this module's
hookimpl registers ``io.containerd.shim.v1.manager`` and ``io.containerd.runtime.v2.task``.
A registration names its config type (:mod:`runtime_v2.shim_config`,
:mod:`runtime_v2.task_config`); the plugin's own module is imported only when the plugin is
booted, so listing or checking registrations (``taskplane config validate``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugins import types
from registry import Registration, hookimpl
from runtime_v2.shim_config import ShimConfig, migrate_sched_core
from runtime_v2.task_config import TaskConfig

if TYPE_CHECKING:
    from registry import InitContext

__all__ = ["registrations", "taskplane_registrations"]


async def _init_shim_manager(ic: InitContext) -> object:
    from runtime_v2 import shim_manager

    return await shim_manager.init(ic)


async def _init_task_manager(ic: InitContext) -> object:
    from runtime_v2 import task_manager

    return await task_manager.init(ic)


def registrations() -> list[Registration]:
    """The shim plugin, then the task plugin that requires it."""
    return [
        Registration(
            type=types.SHIM_PLUGIN,
            id="manager",
            init=_init_shim_manager,
            requires=(types.EVENT_PLUGIN, types.METADATA_PLUGIN),
            config=ShimConfig,
            config_migration=migrate_sched_core,
        ),
        Registration(
            type=types.RUNTIME_PLUGIN_V2,
            id="task",
            init=_init_task_manager,
            requires=(types.SHIM_PLUGIN,),
            config=TaskConfig,
        ),
    ]


@hookimpl
def taskplane_registrations() -> list[Registration]:
    """The shim plugin, then the task plugin that requires it."""
    return registrations()
