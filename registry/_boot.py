"""Boot: discover, configure, order and initialise plugins; the :class:`Host` owns the result."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Mapping
from types import CoroutineType, MappingProxyType
from typing import TYPE_CHECKING

from registry import config as _config
from registry._context import (
    PROPERTY_GRPC_ADDRESS,
    PROPERTY_ROOT,
    PROPERTY_STATE,
    PROPERTY_TTRPC_ADDRESS,
    InitContext,
    Plugin,
)
from registry._errors import BootError, SkipPlugin
from registry._graph import RequirementTracker, plan
from registry._host import Host, close_loop, describe, traceback_if_debug
from registry._registration import Registration, Registry
from registry._status import PluginStatus, Status
from registry.discovery import discover
from registry.log import get_logger

__all__ = ["ConfigSource", "Host", "boot", "boot_async"]

if TYPE_CHECKING:
    from registry._failures import Blocked, LoadFailure
    from registry.platforms import Platform

log = get_logger(__name__)

ConfigSource = _config.ConfigSource

#: The daemon's (never served) address, relative to the state directory; shims hash it
#: into their socket path, so it names the daemon's identity.
GRPC_SOCKET_NAME = "taskplane.sock"

#: How an abort message says that a plugin did not load.
_OUTCOME_PHRASES = {"blocked": "was blocked", "skipped": "was skipped", "failed": "failed"}

#: The exports of a status whose plugin exported nothing (shared, read-only).
_NO_EXPORTS: Mapping[str, str] = MappingProxyType({})


def _format_platforms(platforms: Iterable[Platform]) -> tuple[str, ...]:
    # Imported here: only a plugin that declared platforms (and so imported them) gets here.
    from registry import platforms as _platforms

    return tuple(map(_platforms.format, platforms))


def _status(
    reg: Registration,
    status: Status,
    *,
    reason: str | None = None,
    error: BaseException | None = None,
    init_time: float = 0.0,
    plugin: Plugin | None = None,
    dependency: str | None = None,
) -> PluginStatus:
    return PluginStatus(
        type=reg.type,
        id=reg.id,
        uri=reg.uri,
        status=status,
        reason=reason,
        error=error,
        init_time=init_time,
        platforms=_format_platforms(plugin.meta.platforms)
        if plugin is not None and plugin.meta.platforms
        else (),
        exports=dict(plugin.meta.exports)
        if plugin is not None and plugin.meta.exports
        else _NO_EXPORTS,
        requires=reg.requires,
        dependency=dependency,
        capabilities=tuple(plugin.meta.capabilities) if plugin is not None else (),
    )


class _Boot:
    """One boot's bookkeeping: the order, each plugin's status, and the abort rules."""

    def __init__(
        self,
        host: Host,
        registrations: tuple[Registration, ...],
        decoded: Mapping[str, object],
    ) -> None:
        cfg = host.config
        self.host = host
        self.decoded = decoded
        self.disabled = frozenset(cfg.disabled_plugins)
        self.required = frozenset(cfg.required_plugins)
        self.order, self.disabled_regs = plan(registrations, self.disabled)
        self.tracker = RequirementTracker(self.order, self.disabled_regs)
        #: The statuses decided so far, in initialisation order (disabled ones come last).
        self.placed: list[PluginStatus] = []
        #: Disabled plugin URI -> the plugins its absence blocks, in initialisation order.
        self.blocks: dict[str, list[str]] = {}
        self.grpc_address = os.path.join(host.state, GRPC_SOCKET_NAME)
        self.ttrpc_address = self.grpc_address + ".ttrpc"
        # os.path.join(dir, uri) is dir_prefix + uri for a relative uri; joined once here.
        self.root_prefix = os.path.join(host.root, "")
        self.state_prefix = os.path.join(host.state, "")
        self.plugins = host.plugins
        self.register_readiness = host._readiness.register

    def ordered_statuses(self) -> list[PluginStatus]:
        """Initialisation order, then the plugins that never entered it (disabled), each
        naming the plugins it blocks."""
        return self.placed + [self.disabled_status(reg) for reg in self.disabled_regs]

    def disabled_status(self, reg: Registration) -> PluginStatus:
        reason = "disabled by config"
        blocks = self.blocks.get(reg.uri)
        if blocks:
            reason += "; blocks " + ", ".join(blocks)
        return _status(reg, "disabled", reason=reason)

    def note_blocked(self, uri: str, found: Blocked) -> None:
        """Credit the blocked plugin ``uri`` to every disabled plugin behind it."""
        for cause in found.disabled:
            self.blocks.setdefault(cause, []).append(uri)

    def check_required_before_init(self) -> None:
        """Abort before any init when a required plugin is not registered or is disabled.

        A required plugin with an unmet requirement still gets its init (``requires`` only
        orders, as in containerd); it aborts the boot if that init then fails."""
        if not self.required:
            return
        registry = self.host.registry
        for uri in self.host.config.required_plugins:
            reg = registry.get(uri)
            if reg is None:
                problem = "is not registered"
            elif uri in self.disabled:
                problem = "is disabled by config"
            else:
                continue
            raise BootError(
                f"required plugin {uri} {problem}",
                registration=reg,
                statuses=self.ordered_statuses(),
            )

    async def abort(
        self, message: str, reg: Registration, cause: BaseException | None
    ) -> BootError:
        """Close what loaded so far and build the BootError to raise."""
        error = BootError(message, registration=reg, statuses=self.ordered_statuses())
        try:
            await self.host.aclose()
        except Exception as exc:  # each failure was logged by aclose
            error.add_note(f"closing the plugins loaded so far also failed: {exc}")
        error.__cause__ = cause
        return error

    async def run(self) -> None:
        """Initialise every plugin in order; on any exception close what loaded."""
        try:
            for reg in self.order:
                await self.init_one(reg)
        except BaseException:
            if not self.host._closed:
                try:
                    await self.host.aclose()
                except Exception:  # already logged; the original error matters more
                    pass
            raise
        self.host.statuses = self.ordered_statuses()

    async def init_one(self, reg: Registration) -> None:
        """Run one plugin's init and decide its status: loaded, skipped, failed or blocked.

        As in containerd's ``server.New``, ``requires`` only orders: init runs even when a
        required type has no provider or none of its providers loaded, and the plugin decides
        whether it can do without (containerd's own task manager treats its mount-manager
        requirement so). Only when such a plugin's init then fails (or skips) is its status
        ``blocked``, naming the unmet requirement as the root cause; the init error stays on
        the status. Every result, skipped and failed included, is added to the Set.
        """
        uri = reg.uri
        unmet = self.tracker.blocked(reg)
        if uri.startswith("/"):  # os.path.join keeps an absolute second part as it is
            root, state = uri, uri
        else:
            root, state = self.root_prefix + uri, self.state_prefix + uri
        properties = {
            PROPERTY_GRPC_ADDRESS: self.grpc_address,
            PROPERTY_TTRPC_ADDRESS: self.ttrpc_address,
            PROPERTY_ROOT: root,
            PROPERTY_STATE: state,
        }
        plugin_config = self.decoded.get(uri)
        ic = InitContext(
            reg,
            properties=properties,
            config=plugin_config,
            plugins=self.plugins,
            readiness=self.register_readiness,
            timeouts=self.host.config.timeouts,
        )
        began = time.perf_counter()
        error: Exception | None = None
        instance: object = None
        try:
            result = reg.init(ic)
            # Only coroutines are awaited: an init may return a Task or Future as its instance.
            instance = await result if isinstance(result, CoroutineType) else result
        except Exception as exc:
            error = exc
        elapsed = time.perf_counter() - began
        plugin = Plugin(reg, plugin_config, ic.meta, instance, error)
        self.plugins.add(plugin)

        if error is None:
            meta = plugin.meta
            if meta.platforms or meta.exports or meta.capabilities:
                status = _status(reg, "loaded", init_time=elapsed, plugin=plugin)
            else:  # the common case, built directly (boot's hottest line)
                status = PluginStatus(
                    type=reg.type,
                    id=reg.id,
                    uri=uri,
                    status="loaded",
                    init_time=elapsed,
                    exports=_NO_EXPORTS,
                    requires=reg.requires,
                )
            self.placed.append(status)
            return

        if unmet is not None:
            reason = unmet.reason
            self.tracker.record(reg, "blocked", reason, unmet.disabled)
            self.note_blocked(uri, unmet)
            status = _status(
                reg,
                "blocked",
                reason=reason,
                error=error,
                init_time=elapsed,
                plugin=plugin,
                dependency=unmet.dependency,
            )
            log.info("plugin %s blocked: %s (its init: %s)", uri, reason, describe(error))
        elif isinstance(error, SkipPlugin):
            reason = describe(error)
            self.tracker.record(reg, "skipped", reason)
            status = _status(reg, "skipped", reason=reason, error=error, init_time=elapsed)
            log.info("plugin %s skipped: %s", uri, reason)
        else:
            reason = describe(error)
            self.tracker.record(reg, "failed", reason)
            status = _status(
                reg, "failed", reason=reason, error=error, init_time=elapsed, plugin=plugin
            )
            log.warning(
                "plugin %s failed to load: %s", uri, reason, exc_info=traceback_if_debug(log, error)
            )
        self.placed.append(status)
        if ic.registered_readiness:
            # containerd: a plugin that registered readiness must load; a skip counts too.
            raise await self.abort(
                f"plugin {uri} registered readiness and then {_OUTCOME_PHRASES[status.status]}: "
                f"{reason}",
                reg,
                error,
            )
        if uri in self.required:
            if status.status == "blocked":
                message = f"required plugin {uri} cannot load: blocked: {reason}"
            else:
                message = f"required plugin {uri} did not load: {status.status}: {reason}"
            raise await self.abort(message, reg, error)


async def boot_async(
    config: ConfigSource = None,
    *,
    builtins: Iterable[object] = (),
    autoload: bool | None = None,
    registry: Registry | None = None,
    root: str | None = None,
    state: str | None = None,
    known: _config.KnownSettings = _config.NOTHING_KNOWN,
) -> Host:
    """Boot plugins on the running event loop and return the :class:`Host`.

    ``config`` is a TOML file path, a mapping shaped like the file, a ``Config``, or None for
    the defaults. Plugins come from ``registry`` if given, else from :func:`discover`
    (``builtins``, then entry points unless ``autoload`` is False or
    TASKPLANE_DISABLE_PLUGIN_AUTOLOAD=1). ``root``/``state`` override the config's. ``known``
    names settings that are ignored with a warning (logged once here) instead of being errors.

    Steps: load the config, migrate it to version 3, decode every plugin's config (one
    ConfigError lists every problem of the three; each ignored setting is logged once as a
    warning), order the plugins (PluginCircularDependency), check required
    plugins, then initialise each plugin in order. Raises BootError when a required plugin
    does not load or a plugin that registered readiness fails (what loaded is closed first).
    Every other outcome is a status on the host.
    """
    started = time.perf_counter()
    failures: list[LoadFailure] = []
    if registry is None:
        registry, failures = discover(builtins, autoload)
    registrations = registry.registrations()
    checked = _config.check_config(config, registrations, known)
    for warning in checked.warnings:
        log.warning("config: %s", warning)
    cfg, decoded = checked.config, dict(checked.decoded)
    host = Host(
        registry=registry,
        config=cfg,
        load_failures=failures,
        root=root if root is not None else cfg.root,
        state=state if state is not None else cfg.state,
        loop=asyncio.get_running_loop(),
    )
    run = _Boot(host, registrations, decoded)
    run.check_required_before_init()
    await run.run()
    host.boot_time = time.perf_counter() - started
    return host


def boot(
    config: ConfigSource = None,
    *,
    builtins: Iterable[object] = (),
    autoload: bool | None = None,
    registry: Registry | None = None,
    root: str | None = None,
    state: str | None = None,
    known: _config.KnownSettings = _config.NOTHING_KNOWN,
) -> Host:
    """Synchronous :func:`boot_async`: the returned Host owns a new event loop on which the
    plugins were initialised; use ``host.run(coro)`` to drive it and ``host.close()`` (or
    ``with``) to shut down. Must not be called from a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("boot() cannot run inside an event loop; use await boot_async()")
    loop = asyncio.new_event_loop()
    try:
        host = loop.run_until_complete(
            boot_async(
                config,
                builtins=builtins,
                autoload=autoload,
                registry=registry,
                root=root,
                state=state,
                known=known,
            )
        )
    except BaseException:
        close_loop(loop)
        raise
    host._loop = loop
    return host
