"""Host: a booted registry -- its plugins, their statuses, its readiness and its shutdown."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from registry._context import Set, expect_instance
from registry._errors import PluginMultipleInstances, PluginNotFound
from registry._registration import Registry
from registry._status import PluginStatus
from registry.log import get_logger

if TYPE_CHECKING:
    from registry._config_files import Config
    from registry._failures import LoadFailure

__all__ = ["Host", "close_loop", "describe", "traceback_if_debug"]

log = get_logger(__name__)

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """The error's message, or its class name when it has none."""
    text = str(exc)
    return text if text else type(exc).__name__


def traceback_if_debug(logger: logging.Logger, exc: BaseException) -> BaseException | None:
    """``exc_info`` for a warning about ``exc``: the traceback only when ``logger`` is enabled
    for DEBUG (``--debug``); otherwise the one-line message stands alone."""
    return exc if logger.isEnabledFor(logging.DEBUG) else None


class _Readiness:
    """Counts registered readiness; ``event`` is set once every one has been signalled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._pending = 0
        self.event = asyncio.Event()
        self.event.set()

    def register(self) -> Callable[[], None]:
        self._pending += 1
        self.event.clear()
        done = False

        def mark() -> None:
            self._pending -= 1
            if self._pending == 0:
                self.event.set()

        def ready() -> None:
            nonlocal done
            if done:
                return
            done = True
            if threading.get_ident() == self._thread:
                mark()
            else:
                self._loop.call_soon_threadsafe(mark)

        return ready


class Host:
    """A booted registry: the initialised plugins, a status for every registered plugin, and
    the effective config. Close it (``await host.aclose()``, ``host.close()`` or a ``with``
    block) to close the loaded instances in reverse initialisation order.

    >>> with boot({"version": 3}, builtins=[my_plugins]) as host:
    ...     tasks = host.get("io.containerd.runtime.v2", "task")
    """

    def __init__(
        self,
        *,
        registry: Registry,
        config: Config,
        load_failures: Iterable[LoadFailure] = (),
        root: str,
        state: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.registry = registry
        self.config = config
        self.load_failures: list[LoadFailure] = list(load_failures)
        self.root = root
        self.state = state
        self.plugins = Set()
        self.statuses: list[PluginStatus] = []
        self.boot_time = 0.0
        self._readiness = _Readiness(loop)
        self._loop: asyncio.AbstractEventLoop | None = None  # set for sync hosts only
        self._closed = False

    # -- lookups -----------------------------------------------------------------------

    @overload
    def get(self, type: str, id: str) -> Any: ...
    @overload
    def get(self, type: str, id: str, cls: builtins.type[T]) -> T: ...
    def get(self, type: str, id: str, cls: builtins.type[Any] | None = None) -> Any:
        """The loaded instance of ``<type>.<id>``, typed ``cls`` when given
        (``host.get(RUNTIME_PLUGIN_V2, "task", TaskManager)``); :class:`PluginNotFound`
        (naming its status) if that plugin is not loaded, :class:`UnexpectedInstance` if it
        is not a ``cls``."""
        plugin = self.plugins.get(type, id)
        if plugin is not None and plugin.loaded:
            if cls is None:
                return plugin.instance
            return expect_instance(plugin.instance, cls, plugin.registration.uri)
        uri = f"{type}.{id}"
        status = self.status(uri)
        if status is None:
            raise PluginNotFound(f"plugin {uri} is not registered")
        detail = f": {status.reason}" if status.reason else ""
        raise PluginNotFound(
            f"plugin {uri} is not loaded ({status.status}{detail})",
            registration=self.registry.get(uri),
        ) from status.error

    @overload
    def get_single(self, type: str) -> Any: ...
    @overload
    def get_single(self, type: str, cls: builtins.type[T]) -> T: ...
    def get_single(self, type: str, cls: builtins.type[Any] | None = None) -> Any:
        """The loaded instance of the one plugin of ``type``, typed ``cls`` when given.

        :class:`PluginNotFound` when no plugin of ``type`` is registered or it did not load
        (naming its status), :class:`PluginMultipleInstances` when several were initialised,
        :class:`UnexpectedInstance` when it is not a ``cls``.
        """
        of_type = self.plugins.by_type(type)
        if len(of_type) > 1:
            raise PluginMultipleInstances(
                f"a single {type} plugin was asked for, but several are initialised: "
                + ", ".join(plugin.registration.uri for plugin in of_type.values())
            )
        if of_type:
            (id,) = of_type
        else:  # registered but never initialised (disabled), or not registered at all
            ids = [reg.id for reg in self.registry if reg.type == type]
            if len(ids) != 1:
                raise PluginNotFound(f"no plugin of type {type} is loaded")
            (id,) = ids
        if cls is None:
            return self.get(type, id)
        return self.get(type, id, cls)

    def status(self, uri: str) -> PluginStatus | None:
        """The status of the plugin with this URI, or None if it is not registered."""
        for status in self.statuses:
            if status.uri == uri:
                return status
        return None

    # -- readiness ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once every plugin that registered readiness has signalled it."""
        return self._readiness.event.is_set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until :attr:`ready`; raises TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._readiness.event.wait()

    # -- shutdown ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close loaded instances in reverse initialisation order: ``await inst.aclose()``,
        else ``inst.close()`` (awaited if it returns an awaitable). One failing does not stop
        the others; every failure is logged and, at the end, raised together as an
        ExceptionGroup (each error noted with its plugin). Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        errors: list[Exception] = []
        for plugin in reversed(self.plugins):
            if not plugin.loaded:
                continue
            instance = plugin.instance
            uri = plugin.registration.uri
            try:
                closer = getattr(instance, "aclose", None)
                if callable(closer):
                    await closer()
                    continue
                closer = getattr(instance, "close", None)
                if callable(closer):
                    result = closer()
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:
                log.warning(
                    "closing plugin %s failed: %s",
                    uri,
                    describe(exc),
                    exc_info=traceback_if_debug(log, exc),
                )
                exc.add_note(f"while closing plugin {uri}")
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"closing {len(errors)} plugin(s) failed", errors)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sync hosts --------------------------------------------------------------------

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(
                "this host was booted with boot_async() and has no event loop of its own; "
                "use await host.aclose() / async with"
            )
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the host's event loop (hosts from :func:`boot`)."""
        loop = self._sync_loop()
        if loop.is_closed():
            coro.close()
            raise RuntimeError("the host is closed")
        return loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the plugins (as :meth:`aclose`), cancel what is left on the host's loop and
        close the loop. Safe to call twice."""
        loop = self._sync_loop()
        if loop.is_closed():
            return
        try:
            loop.run_until_complete(self.aclose())
        finally:
            close_loop(loop)

    def __enter__(self) -> Self:
        self._sync_loop()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks plugins left on ``loop``, finish its generators and executor, close it
    (what ``asyncio.run`` does on the way out)."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
