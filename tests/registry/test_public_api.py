"""registry/__init__ is the public face: it exports the contract's names and nothing else
needs importing from the private modules."""

from __future__ import annotations

import registry

CONTRACT = {
    "Registration",
    "Registry",
    "InitContext",
    "Plugin",
    "Set",
    "Meta",
    "PluginStatus",
    "Host",
    "boot",
    "boot_async",
    "hookimpl",
    "hookspec",
    "ENTRY_POINT_GROUP",
    "PROPERTY_ROOT",
    "PROPERTY_STATE",
    "PROPERTY_GRPC_ADDRESS",
    "PROPERTY_TTRPC_ADDRESS",
    "PluginError",
    "NoType",
    "NoPluginID",
    "IDRegistered",
    "InvalidRequires",
    "WildcardMixedRequires",
    "RequiresOwnType",
    "SkipPlugin",
    "PluginInitialized",
    "PluginNotFound",
    "PluginMultipleInstances",
    "PluginCircularDependency",
    "BootError",
    "ConfigError",
    "platforms",
}


def test_every_contract_name_is_exported() -> None:
    assert CONTRACT <= set(registry.__all__)
    for name in registry.__all__:
        assert hasattr(registry, name), name


def test_property_keys_and_entry_point_group_have_containerds_values() -> None:
    assert registry.ENTRY_POINT_GROUP == "taskplane.plugins"
    assert registry.PROPERTY_ROOT == "io.containerd.plugin.root"
    assert registry.PROPERTY_STATE == "io.containerd.plugin.state"
    assert registry.PROPERTY_GRPC_ADDRESS == "io.containerd.plugin.grpc.address"
    assert registry.PROPERTY_TTRPC_ADDRESS == "io.containerd.plugin.ttrpc.address"


def test_every_registry_error_is_a_plugin_error() -> None:
    for name in (
        "NoType",
        "NoPluginID",
        "IDRegistered",
        "InvalidRequires",
        "WildcardMixedRequires",
        "RequiresOwnType",
        "SkipPlugin",
        "PluginInitialized",
        "PluginNotFound",
        "PluginMultipleInstances",
        "PluginCircularDependency",
        "BootError",
        "DiscoveryError",
    ):
        assert issubclass(getattr(registry, name), registry.PluginError), name


def test_requires_errors_share_containerds_invalid_requires_parent() -> None:
    for name in ("WildcardMixedRequires", "RequiresOwnType"):
        cls = getattr(registry, name)
        assert issubclass(cls, registry.InvalidRequires), name
        assert cls is not registry.InvalidRequires


def test_public_callables_have_docstrings() -> None:
    for name in registry.__all__:
        obj = getattr(registry, name)
        if callable(obj):
            assert obj.__doc__, name


def test_importing_registry_registers_nothing_globally() -> None:
    # No import-time registration: a fresh Registry is empty.
    assert registry.Registry().registrations() == ()
