"""taskplane's plugin registry: containerd's plugin model with explicit objects.

Declare plugins as :class:`Registration` values, collect them in a :class:`Registry` (or let
:func:`boot` discover them through pluggy: built-in modules, then ``taskplane.plugins`` entry
points), and boot::

    from registry import Registration, Registry, boot

    registry = Registry()
    registry.register(Registration("io.example.v1", "hello", init=lambda ic: "hi"))
    with boot(registry=registry) as host:
        assert host.get("io.example.v1", "hello") == "hi"
        for status in host.statuses:
            print(status.uri, status.status, status.reason)

Every plugin ends a boot in one :class:`PluginStatus`: loaded, skipped, failed, disabled or
blocked (naming the missing or failed dependency).

Plugin semantics are containerd's (``containerd/plugin``, ``cmd/containerd/server``), so a plugin
written for containerd behaves the same here: ``requires`` only orders (init runs even when a
required type has no loaded provider; the plugin decides), every init result -- skipped and
failed ones too -- is in the :class:`Set`, ``get_single`` refuses a type with several initialised
plugins, a plugin that registered readiness and then fails or skips aborts the boot, and
uniqueness is by (type, id). What taskplane adds: a plugin whose init fails while a requirement
is unmet is reported ``blocked`` with that root cause rather than a bare failure; a circular
``requires`` is an error naming the cycle, not a panic; ``Meta.capabilities`` appear on the
status (``plugins ls --json``).

The names below are loaded on first use (PEP 562): ``from registry import Registration`` costs
the registration module, not the boot, the config reader and asyncio with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry import platforms
    from registry._boot import boot, boot_async
    from registry._context import (
        InitContext,
        Meta,
        Plugin,
        Set,
    )
    from registry._errors import (
        BootError,
        DiscoveryError,
        IDRegistered,
        InvalidRequires,
        NoPluginID,
        NoType,
        PluginCircularDependency,
        PluginError,
        PluginInitialized,
        PluginMultipleInstances,
        PluginNotFound,
        RequiresOwnType,
        SkipPlugin,
        UnexpectedInstance,
        WildcardMixedRequires,
    )
    from registry._failures import Blocked, LoadFailure
    from registry._host import Host
    from registry._properties import (
        PROPERTY_GRPC_ADDRESS,
        PROPERTY_ROOT,
        PROPERTY_STATE,
        PROPERTY_TTRPC_ADDRESS,
    )
    from registry._registration import WILDCARD, Registration, Registry
    from registry._status import PluginStatus
    from registry.config import ConfigError, ConfigIssue
    from registry.discovery import discover
    from registry.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec

#: Each public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "boot": "registry._boot",
    "boot_async": "registry._boot",
    "InitContext": "registry._context",
    "Meta": "registry._context",
    "PROPERTY_GRPC_ADDRESS": "registry._properties",
    "PROPERTY_ROOT": "registry._properties",
    "PROPERTY_STATE": "registry._properties",
    "PROPERTY_TTRPC_ADDRESS": "registry._properties",
    "Plugin": "registry._context",
    "Set": "registry._context",
    "BootError": "registry._errors",
    "DiscoveryError": "registry._errors",
    "IDRegistered": "registry._errors",
    "InvalidRequires": "registry._errors",
    "NoPluginID": "registry._errors",
    "NoType": "registry._errors",
    "PluginCircularDependency": "registry._errors",
    "PluginError": "registry._errors",
    "PluginInitialized": "registry._errors",
    "PluginMultipleInstances": "registry._errors",
    "PluginNotFound": "registry._errors",
    "RequiresOwnType": "registry._errors",
    "SkipPlugin": "registry._errors",
    "UnexpectedInstance": "registry._errors",
    "WildcardMixedRequires": "registry._errors",
    "Blocked": "registry._failures",
    "Host": "registry._host",
    "Registration": "registry._registration",
    "Registry": "registry._registration",
    "WILDCARD": "registry._registration",
    "PluginStatus": "registry._status",
    "ConfigError": "registry._config_model",
    "ConfigIssue": "registry._config_model",
    "LoadFailure": "registry._failures",
    "discover": "registry.discovery",
    "ENTRY_POINT_GROUP": "registry.hookspecs",
    "hookimpl": "registry.hookspecs",
    "hookspec": "registry.hookspecs",
    "platforms": "registry.platforms",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROPERTY_GRPC_ADDRESS",
    "PROPERTY_ROOT",
    "PROPERTY_STATE",
    "PROPERTY_TTRPC_ADDRESS",
    "WILDCARD",
    "Blocked",
    "BootError",
    "ConfigError",
    "ConfigIssue",
    "DiscoveryError",
    "Host",
    "IDRegistered",
    "InitContext",
    "InvalidRequires",
    "LoadFailure",
    "Meta",
    "NoPluginID",
    "NoType",
    "Plugin",
    "PluginCircularDependency",
    "PluginError",
    "PluginInitialized",
    "PluginMultipleInstances",
    "PluginNotFound",
    "PluginStatus",
    "Registration",
    "Registry",
    "RequiresOwnType",
    "Set",
    "SkipPlugin",
    "UnexpectedInstance",
    "WildcardMixedRequires",
    "boot",
    "boot_async",
    "discover",
    "hookimpl",
    "hookspec",
    "platforms",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: the import statement's path, which
    # ``python -X importtime`` reports (tests/cli/test_imports.py reads it).
    loaded = __import__(module, fromlist=[name])
    value = loaded if module == f"{__name__}.{name}" else getattr(loaded, name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
