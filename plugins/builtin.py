"""The built-in plugins of this package, for the registry's pluggy discovery.

Registers:

- ``io.containerd.event.v1.exchange`` -- an :class:`~plugins.events.Exchange` sharing events
  with the other processes on the state dir through ``<plugin state>/events.log``;
- ``io.containerd.metadata.v1.sqlite`` -- a :class:`~plugins.metadata.ContainerStore` on
  ``<plugin root>/meta.db`` (the root directory is created with mode 0711).

Boot them with ``registry.boot_async(..., builtins=[plugins.builtin])``.
"""

from __future__ import annotations

import os

from plugins.events import Exchange
from plugins.events_journal import EventJournal
from plugins.metadata import DB_FILENAME, ContainerStore
from plugins.types import EVENT_PLUGIN, METADATA_PLUGIN
from registry import InitContext, Registration, hookimpl

__all__ = ["EXCHANGE_ID", "METADATA_ID", "taskplane_registrations"]

#: The id of the event exchange plugin (``io.containerd.event.v1.exchange``).
EXCHANGE_ID = "exchange"
#: The id of the metadata plugin (``io.containerd.metadata.v1.sqlite``).
METADATA_ID = "sqlite"


def _init_exchange(ic: InitContext) -> Exchange:
    # Nothing is created on disk until the first event or subscription.
    return Exchange(journal=EventJournal(ic.state))


def _init_metadata(ic: InitContext) -> ContainerStore:
    # The store creates its directory (ic.root, mode 0711) when missing.
    return ContainerStore(os.path.join(ic.root, DB_FILENAME))


@hookimpl
def taskplane_registrations() -> list[Registration]:
    """Return the registrations of the event exchange and the SQLite metadata store."""
    return [
        Registration(type=EVENT_PLUGIN, id=EXCHANGE_ID, init=_init_exchange),
        Registration(type=METADATA_PLUGIN, id=METADATA_ID, init=_init_metadata),
    ]
