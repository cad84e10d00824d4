"""What a plugin's init sees: InitContext, and the Set of plugins initialised before it."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from registry._errors import (
    PluginInitialized,
    PluginMultipleInstances,
    PluginNotFound,
    UnexpectedInstance,
)
from registry._properties import (
    PROPERTY_GRPC_ADDRESS,
    PROPERTY_ROOT,
    PROPERTY_STATE,
    PROPERTY_TTRPC_ADDRESS,
)
from registry._registration import Registration

if TYPE_CHECKING:
    from registry.platforms import Platform

__all__ = [
    "PROPERTY_GRPC_ADDRESS",
    "PROPERTY_ROOT",
    "PROPERTY_STATE",
    "PROPERTY_TTRPC_ADDRESS",
    "InitContext",
    "Meta",
    "Plugin",
    "Set",
    "expect_instance",
]

T = TypeVar("T")


def expect_instance(
    instance: object, cls: type[T], uri: str, registration: Registration | None = None
) -> T:
    """``instance`` typed as ``cls``; :class:`UnexpectedInstance` naming the plugin and both
    classes when it is not one."""
    if not isinstance(instance, cls):
        raise UnexpectedInstance(
            f"plugin {uri} is a {type(instance).__qualname__}, not a {cls.__qualname__}",
            registration=registration,
        )
    return instance


@attrs.define
class Meta:
    """What a plugin declares about itself during init (filled in through ``ic.meta``)."""

    platforms: list[Platform] = attrs.field(factory=list)
    exports: dict[str, str] = attrs.field(factory=dict)
    capabilities: list[str] = attrs.field(factory=list)


@attrs.define
class Plugin:
    """The result of one plugin's init: its instance, or the error its init raised.

    Reading ``instance`` of a plugin whose init failed raises that error; ``error`` is None
    for a loaded plugin.
    """

    registration: Registration
    config: Any
    meta: Meta
    _instance: Any = None
    error: BaseException | None = None

    @property
    def instance(self) -> Any:
        """The instance init returned; raises the init error if init failed."""
        if self.error is not None:
            raise self.error
        return self._instance

    @property
    def loaded(self) -> bool:
        """True when init succeeded."""
        return self.error is None


class Set:
    """Every plugin whose init ran (loaded, failed, skipped or blocked), in initialisation
    order, unique by (type, id) -- containerd's ``plugin.Set``. Reading ``instance`` of one
    that did not load raises its init error (a :class:`SkipPlugin` for a skipped one).
    """

    def __init__(self) -> None:
        self._ordered: list[Plugin] = []
        self._by_type: dict[str, dict[str, Plugin]] = {}  # type -> id -> plugin

    def add(self, plugin: Plugin) -> None:
        """Append ``plugin``; raises :class:`PluginInitialized` if its (type, id) is present."""
        reg = plugin.registration
        of_type = self._by_type.setdefault(reg.type, {})
        if reg.id in of_type:
            raise PluginInitialized(f"plugin {reg.uri} is already initialised", registration=reg)
        of_type[reg.id] = plugin
        self._ordered.append(plugin)

    def get(self, type: str, id: str) -> Plugin | None:
        """The plugin with this type and id, or None."""
        return self._by_type.get(type, {}).get(id)

    def by_type(self, type: str) -> dict[str, Plugin]:
        """Plugins of ``type`` by id, in initialisation order (a copy)."""
        return dict(self._by_type.get(type, {}))

    def __iter__(self) -> Iterator[Plugin]:
        return iter(tuple(self._ordered))

    def __reversed__(self) -> Iterator[Plugin]:
        return reversed(tuple(self._ordered))

    def __len__(self) -> int:
        return len(self._ordered)

    def __repr__(self) -> str:
        return f"Set({[p.registration.uri for p in self._ordered]})"


class InitContext:
    """Passed to a plugin's ``init``: its properties, decoded config, metadata, and access to
    the plugins initialised before it.

    >>> def init(ic: InitContext) -> object:
    ...     exchange = ic.get_by_id("io.containerd.event.v1", "exchange")
    ...     ic.meta.exports["root"] = ic.root
    ...     return MyService(exchange, ic.config)
    """

    def __init__(
        self,
        registration: Registration,
        *,
        properties: dict[str, str] | None = None,
        config: Any = None,
        plugins: Set | None = None,
        readiness: Callable[[], Callable[[], None]] | None = None,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.registration = registration
        self.properties: dict[str, str] = properties if properties is not None else {}
        self.timeouts: Mapping[str, float] = timeouts if timeouts is not None else {}
        self.config: Any = config
        self.meta = Meta()
        self.plugins: Set = plugins if plugins is not None else Set()
        self._readiness = readiness
        self._ready_callbacks: list[Callable[[], None]] | None = None

    def timeout(self, key: str, default: float) -> float:
        """The config's ``[timeouts]`` *key* in seconds, or *default* when it is not set."""
        return self.timeouts.get(key, default)

    @property
    def root(self) -> str:
        """This plugin's persistent directory, ``<root>/<uri>`` (not created by boot)."""
        return self.properties[PROPERTY_ROOT]

    @property
    def state(self) -> str:
        """This plugin's runtime directory, ``<state>/<uri>`` (not created by boot)."""
        return self.properties[PROPERTY_STATE]

    def register_readiness(self) -> Callable[[], None]:
        """Tell the host this plugin becomes ready later; call the returned function once it
        is. The host is ready when every registered readiness has been signalled."""
        ready = self._readiness() if self._readiness is not None else (lambda: None)
        if self._ready_callbacks is None:
            self._ready_callbacks = []
        self._ready_callbacks.append(ready)
        return ready

    @property
    def registered_readiness(self) -> bool:
        """True if init called :meth:`register_readiness`."""
        return bool(self._ready_callbacks)

    @overload
    def get_single(self, type: str) -> Any: ...
    @overload
    def get_single(self, type: str, cls: builtins.type[T]) -> T: ...
    def get_single(self, type: str, cls: builtins.type[Any] | None = None) -> Any:
        """The instance of the one initialised plugin of ``type`` (containerd's ``GetSingle``),
        typed ``cls`` when given: ``ic.get_single(SHIM_PLUGIN, ShimManager)``.

        Raises :class:`PluginNotFound` if there is none, :class:`PluginMultipleInstances` if
        several were initialised (whether or not they loaded: as in containerd, disable the
        ones you do not want), the init error if the only one did not load, and
        :class:`UnexpectedInstance` if its instance is not a ``cls``.
        """
        of_type = self.plugins.by_type(type)
        if not of_type:
            raise PluginNotFound(
                f"no plugins registered for {type}", registration=self.registration
            )
        if len(of_type) > 1:
            uris = ", ".join(p.registration.uri for p in of_type.values())
            raise PluginMultipleInstances(
                f"plugin {self.registration.uri} asked for a single {type} plugin, "
                f"but several are registered: {uris}",
                registration=self.registration,
            )
        (only,) = of_type.values()
        if cls is None:
            return only.instance
        return expect_instance(only.instance, cls, only.registration.uri, self.registration)

    @overload
    def get_by_id(self, type: str, id: str) -> Any: ...
    @overload
    def get_by_id(self, type: str, id: str, cls: builtins.type[T]) -> T: ...
    def get_by_id(self, type: str, id: str, cls: builtins.type[Any] | None = None) -> Any:
        """The instance of plugin ``<type>.<id>``, typed ``cls`` when given; raises its init
        error if it failed, :class:`PluginNotFound` if it is not initialised and
        :class:`UnexpectedInstance` if it is not a ``cls``."""
        plugin = self.plugins.get(type, id)
        if plugin is None:
            raise PluginNotFound(
                f"no plugins registered for {type}.{id}", registration=self.registration
            )
        if cls is None:
            return plugin.instance
        return expect_instance(plugin.instance, cls, plugin.registration.uri, self.registration)

    def get_by_type(self, type: str) -> dict[str, Plugin]:
        """Every initialised plugin of ``type`` by id, skipped and failed ones included (check
        ``.loaded``/``.error`` or read ``.instance``); raises :class:`PluginNotFound` if there
        is none. containerd's ``GetByType`` fails as a whole when one of them failed; this
        returns them all and lets the caller choose."""
        found = self.plugins.by_type(type)
        if not found:
            raise PluginNotFound(
                f"no plugins registered for {type}", registration=self.registration
            )
        return found

    def get_all(self) -> list[Plugin]:
        """Every plugin initialised so far (skipped and failed ones included), in
        initialisation order."""
        return list(self.plugins)
