"""The pluggy hook a taskplane plugin module implements.

A module (built in, or named by a ``taskplane.plugins`` entry point) provides::

    from registry import Registration, hookimpl

    @hookimpl
    def taskplane_registrations() -> list[Registration]:
        return [Registration("io.containerd.runtime.v2", "example", init=init)]
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from registry._registration import Registration

__all__ = ["ENTRY_POINT_GROUP", "PROJECT", "hookimpl", "hookspec", "taskplane_registrations"]

#: pluggy project name; hook names start with ``taskplane_``.
PROJECT = "taskplane"
#: The entry point group third-party packages declare their plugin modules under.
ENTRY_POINT_GROUP = "taskplane.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def taskplane_registrations() -> Iterable[Registration]:  # type: ignore[empty-body]
    """Return the plugin registrations this module provides, in the order to register them."""
