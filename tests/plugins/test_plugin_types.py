"""plugins.types: containerd 2's plugin type names and property keys."""

from __future__ import annotations

import registry
from plugins import types


def test_plugin_types_are_containerd_names() -> None:
    assert types.INTERNAL_PLUGIN == "io.containerd.internal.v1"
    assert types.RUNTIME_PLUGIN_V2 == "io.containerd.runtime.v2"
    assert types.SHIM_PLUGIN == "io.containerd.shim.v1"
    assert types.EVENT_PLUGIN == "io.containerd.event.v1"
    assert types.METADATA_PLUGIN == "io.containerd.metadata.v1"
    assert types.GRPC_PLUGIN == "io.containerd.grpc.v1"
    assert types.TTRPC_PLUGIN == "io.containerd.ttrpc.v1"
    assert types.WARNING_PLUGIN == "io.containerd.warning.v1"
    assert types.MOUNT_MANAGER_PLUGIN == "io.containerd.mount-manager.v1"


def test_types_added_in_containerd_2_are_listed() -> None:
    assert types.METRICS_PLUGIN == "io.containerd.metrics.v1"
    assert types.SERVER_PLUGIN == "io.containerd.server.v1"
    assert types.MOUNT_HANDLER_PLUGIN == "io.containerd.mount-handler.v1"
    for value in (types.METRICS_PLUGIN, types.SERVER_PLUGIN, types.MOUNT_HANDLER_PLUGIN):
        assert value in types.ALL_PLUGIN_TYPES


def test_every_type_is_listed_once_and_exported() -> None:
    assert len(set(types.ALL_PLUGIN_TYPES)) == len(types.ALL_PLUGIN_TYPES)
    for value in types.ALL_PLUGIN_TYPES:
        assert value.startswith("io.containerd.")
    for name in types.__all__:
        assert hasattr(types, name)


def test_property_keys_are_the_registry_values() -> None:
    assert types.PROPERTY_ROOT_DIR == registry.PROPERTY_ROOT == "io.containerd.plugin.root"
    assert types.PROPERTY_STATE_DIR == registry.PROPERTY_STATE == "io.containerd.plugin.state"
    assert types.PROPERTY_GRPC_ADDRESS == registry.PROPERTY_GRPC_ADDRESS
    assert types.PROPERTY_GRPC_ADDRESS == "io.containerd.plugin.grpc.address"
    assert types.PROPERTY_TTRPC_ADDRESS == registry.PROPERTY_TTRPC_ADDRESS
    assert types.PROPERTY_TTRPC_ADDRESS == "io.containerd.plugin.ttrpc.address"
