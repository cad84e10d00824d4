"""The property keys :class:`registry.InitContext` fills in for every plugin (containerd's
``plugins/types.go``), apart from the init context itself: naming them (``plugins.types``,
``taskplane config validate``) does not build the boot's classes."""

from __future__ import annotations

__all__ = ["PROPERTY_GRPC_ADDRESS", "PROPERTY_ROOT", "PROPERTY_STATE", "PROPERTY_TTRPC_ADDRESS"]

PROPERTY_ROOT = "io.containerd.plugin.root"
PROPERTY_STATE = "io.containerd.plugin.state"
PROPERTY_GRPC_ADDRESS = "io.containerd.plugin.grpc.address"
PROPERTY_TTRPC_ADDRESS = "io.containerd.plugin.ttrpc.address"
