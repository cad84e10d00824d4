"""The built-in plugins of this package, for the registry's pluggy discovery.

Registers:

- ``io.containerd.event.v1.exchange`` -- an :class:`~plugins.events.Exchange` sharing events
  with the other processes on the state dir through ``<plugin state>/events.log``;
- ``io.containerd.metadata.v1.sqlite`` -- a :class:`~plugins.metadata.ContainerStore` on
  ``<plugin root>/meta.db`` (the root directory is created with mode 0711);
- ``io.containerd.snapshotter.v1.overlayfs`` -- an :class:`~plugins.overlay.OverlaySnapshotter`
  keeping each task's writable layer under ``<plugin root>/snapshots``.

Boot them with ``registry.boot_async(..., builtins=[plugins.builtin])``.

Each plugin's module (the exchange with asyncio, the store with sqlite3, the snapshotter) is
imported by its init, not by this module: listing or checking the registrations (``taskplane
config validate``) imports none of them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import attrs

from plugins.types import EVENT_PLUGIN, METADATA_PLUGIN, SNAPSHOT_PLUGIN
from registry import Registration, hookimpl

if TYPE_CHECKING:
    from plugins.events import Exchange
    from plugins.metadata import ContainerStore
    from plugins.overlay import OverlaySnapshotter
    from registry import InitContext

__all__ = ["EXCHANGE_ID", "METADATA_ID", "OVERLAY_ID", "OverlayConfig", "taskplane_registrations"]

#: The id of the event exchange plugin (``io.containerd.event.v1.exchange``).
EXCHANGE_ID = "exchange"
#: The id of the metadata plugin (``io.containerd.metadata.v1.sqlite``).
METADATA_ID = "sqlite"
#: The id of the overlay snapshotter (``io.containerd.snapshotter.v1.overlayfs``).
OVERLAY_ID = "overlayfs"


def _init_exchange(ic: InitContext) -> Exchange:
    from plugins.events import Exchange
    from plugins.events_journal import EventJournal

    # Nothing is created on disk until the first event or subscription.
    return Exchange(journal=EventJournal(ic.state))


def _init_metadata(ic: InitContext) -> ContainerStore:
    from plugins.metadata import DB_FILENAME, ContainerStore

    # The store creates its directory (ic.root, mode 0711) and file when missing and checks
    # the file is a database; it connects on first use (why that is safe: ContainerStore), so
    # no init waits on another process's write lock, and a command that does not use the
    # store never imports sqlite3.
    return ContainerStore(os.path.join(ic.root, DB_FILENAME), lazy=True)


def _check_root_path(_: object, attribute: object, value: str) -> None:
    if value and not os.path.isabs(value):
        raise ValueError(f"root_path {value!r} must be an absolute path")


@attrs.define
class OverlayConfig:
    """``[plugins."io.containerd.snapshotter.v1.overlayfs"]``.

    ``root_path``: where the layers live (absolute; empty: the plugin's root directory), as
    containerd's overlayfs ``root_path``.
    """

    root_path: str = attrs.field(default="", validator=_check_root_path)


def _init_overlay(ic: InitContext) -> OverlaySnapshotter:
    from plugins.overlay import OverlaySnapshotter

    # Nothing is created on disk until the first layer is prepared.
    config: OverlayConfig = ic.config if ic.config is not None else OverlayConfig()
    return OverlaySnapshotter(config.root_path or ic.root)


@hookimpl
def taskplane_registrations() -> list[Registration]:
    """Return the registrations of the event exchange, the metadata store and the snapshotter."""
    return [
        Registration(type=EVENT_PLUGIN, id=EXCHANGE_ID, init=_init_exchange),
        Registration(type=METADATA_PLUGIN, id=METADATA_ID, init=_init_metadata),
        Registration(type=SNAPSHOT_PLUGIN, id=OVERLAY_ID, init=_init_overlay, config=OverlayConfig),
    ]
