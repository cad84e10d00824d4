"""PluginStatus: the one outcome every registered plugin ends a boot with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = ["PluginStatus", "Status"]

Status = Literal["loaded", "skipped", "failed", "disabled", "blocked"]


@attrs.frozen
class PluginStatus:
    """The outcome of one plugin in a boot.

    ``status`` is one of loaded, skipped (``reason`` from SkipPlugin), failed (``error`` and
    its text in ``reason``), disabled (by config), blocked (``reason`` names the missing type or
    the dependency that did not load; ``dependency`` is that type or URI). ``init_time`` is the
    seconds spent in init (0.0 when init never ran). A plugin whose init failed while one of
    its required types had no loaded provider is ``blocked``, not ``failed``: ``reason`` names
    the unmet requirement and ``error`` is what its init raised.
    """

    type: str
    id: str
    uri: str
    status: Status
    reason: str | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)
    init_time: float = attrs.field(default=0.0, eq=False)
    platforms: tuple[str, ...] = ()
    exports: Mapping[str, str] = attrs.field(factory=dict, eq=False)
    requires: tuple[str, ...] = ()
    dependency: str | None = None
    #: ``Meta.capabilities`` the plugin declared during init (containerd's introspection
    #: service exports them).
    capabilities: tuple[str, ...] = ()
