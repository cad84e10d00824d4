"""runtime_v2's built-in plugins: the shim manager and the task manager.

Passed to :func:`registry.boot_async` as a builtin (``taskplane.boot`` does it), this module's
hookimpl registers ``io.containerd.shim.v1.manager`` and ``io.containerd.runtime.v2.task``.
"""

from __future__ import annotations

from registry import Registration, hookimpl
from runtime_v2 import shim_manager, task_manager

__all__ = ["taskplane_registrations"]


@hookimpl
def taskplane_registrations() -> list[Registration]:
    """The shim plugin, then the task plugin that requires it."""
    return [shim_manager.registration(), task_manager.registration()]
