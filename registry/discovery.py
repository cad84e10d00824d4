"""Finding registrations: built-in modules first, then ``taskplane.plugins`` entry points.

Order is deterministic: built-ins in the order given, then entry points sorted by
(distribution name, entry point name), read through a cache keyed by what can change them
(``registry._discovery_cache``: installing or removing a distribution is seen by the next
run); each module's registrations in the order it returns
them. A third-party entry point that fails (import error, misspelt hook, bad registration)
is reported as a :class:`LoadFailure` and left out; it never takes the host down. A broken
built-in is a bug and raises :class:`DiscoveryError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import pluggy

from registry import hookspecs
from registry._discovery_cache import cached
from registry._errors import DiscoveryError
from registry._lazy import export_lazily
from registry._registration import Registration, Registry
from registry.log import first_use, get_logger

if TYPE_CHECKING:
    from registry._entry_point import PluginEntryPoint
    from registry._failures import LoadFailure

__all__ = [
    "AUTOLOAD_ENV",
    "LoadFailure",
    "PluginEntryPoint",
    "autoload_enabled",
    "discover",
    "entry_points",
]

log = get_logger(__name__)

#: Set to "1" to skip entry point discovery (built-ins only).
AUTOLOAD_ENV = "TASKPLANE_DISABLE_PLUGIN_AUTOLOAD"


# LoadFailure is defined on first use (PEP 562), with the first entry point that fails;
# PluginEntryPoint with the first entry point read.
__getattr__ = export_lazily(
    __name__,
    {"LoadFailure": "registry._failures", "PluginEntryPoint": "registry._entry_point"},
)


def autoload_enabled(autoload: bool | None = None) -> bool:
    """``autoload`` if given, else True unless TASKPLANE_DISABLE_PLUGIN_AUTOLOAD is set."""
    if autoload is not None:
        return autoload
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("1", "true", "yes")


def entry_points() -> list[PluginEntryPoint]:
    """The ``taskplane.plugins`` entry points, deduplicated, sorted by (distribution, name)."""
    return cached(hookspecs.ENTRY_POINT_GROUP)


def _registrations_of(pm: pluggy.PluginManager, plugin: object) -> list[Registration]:
    regs: list[Registration] = []
    for impl in pm.hook.taskplane_registrations.get_hookimpls():
        if impl.plugin is not plugin or impl.hookwrapper or impl.wrapper:
            continue
        result = impl.function()
        if result is None:
            continue
        if isinstance(result, Registration) or not isinstance(result, Iterable):
            raise TypeError(
                f"taskplane_registrations() must return an iterable of Registration, "
                f"not {type(result).__name__}"
            )
        for reg in cast(Iterable[object], result):
            if not isinstance(reg, Registration):
                raise TypeError(
                    f"taskplane_registrations() returned {type(reg).__name__} {reg!r}, "
                    "not a Registration"
                )
            regs.append(reg)
    return regs


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin`` and verify it implements known hooks (catches misspellings)."""
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
        if not pm.get_hookcallers(plugin):
            raise pluggy.PluginValidationError(
                plugin,
                f"{name} has no @hookimpl-marked taskplane_registrations() "
                "(is the function missing the @registry.hookimpl decorator?)",
            )
    except pluggy.PluginValidationError:
        pm.unregister(plugin)
        raise


def discover(
    builtins: Iterable[object] = (), autoload: bool | None = None
) -> tuple[Registry, list[LoadFailure]]:
    """Build a :class:`Registry` from built-in plugin modules and, unless autoload is off,
    the ``taskplane.plugins`` entry points. Returns the registry and the entry points that
    could not be used."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    failures: list[LoadFailure] = []

    for index, module in enumerate(builtins):
        name = getattr(module, "__name__", None) or f"builtin-{index}"
        if pm.is_registered(module):
            continue
        try:
            _register_checked(pm, module, name)
        except pluggy.PluginValidationError as exc:
            raise DiscoveryError(f"built-in plugin module {name} is invalid: {exc}") from exc
        registry.register(*_registrations_of(pm, module))

    if not autoload_enabled(autoload):
        return registry, failures

    for ep in entry_points():
        dist = ep.distribution
        first_use()  # a plugin may log through logging as it is imported: set the log up first
        try:
            module = ep.load()
            if pm.is_registered(module):
                continue  # e.g. a built-in module also published as an entry point
            _register_checked(pm, module, f"{dist}:{ep.name}")
            try:
                registry.register(*_registrations_of(pm, module))
            except BaseException:
                pm.unregister(module)
                raise
        except Exception as exc:
            from registry._failures import LoadFailure  # none when every entry point loads

            failure = LoadFailure(dist, ep.name, exc)
            log.warning("%s", failure.message)
            failures.append(failure)
    return registry, failures
