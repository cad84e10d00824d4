"""Registration (what a plugin declares) and Registry (an explicit, ordered list of them)."""

from __future__ import annotations

import builtins
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from registry._errors import (
    IDRegistered,
    InvalidRequires,
    NoPluginID,
    NoType,
    RequiresOwnType,
    WildcardMixedRequires,
)

if TYPE_CHECKING:
    from registry._context import InitContext
    from registry._failures import Blocked

__all__ = ["WILDCARD", "DisabledFilter", "Registration", "Registry"]

#: ``requires=("*",)`` means "every other plugin is initialised before me".
WILDCARD = "*"

InitFn = Callable[["InitContext"], "object | Awaitable[object]"]
ConfigMigration = Callable[[Mapping[str, Any], int], dict[str, Any]]
#: ``graph(disabled=...)`` accepts a predicate or a collection of URIs.
DisabledFilter = Callable[["Registration"], bool] | Collection[str]


def _intern(value: str) -> str:
    """The interned copy of a plain string (anything else unchanged): plugin types are looked
    up in dicts many times per boot, and equal interned strings compare by identity."""
    return sys.intern(value) if builtins.type(value) is str else value


def _requires_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"requires must be a sequence of plugin types, not the string {value!r}")
    return tuple(map(_intern, value))


@attrs.frozen
class Registration:
    """A plugin's declaration: what it is, what it needs, and how to build it.

    >>> reg = Registration("io.containerd.event.v1", "exchange", init=lambda ic: object())
    >>> reg.uri
    'io.containerd.event.v1.exchange'

    ``init`` receives an :class:`InitContext` and returns the plugin instance, directly or
    as an awaitable. ``requires`` lists plugin *types* (every registration of each type is
    initialised first) or is the single wildcard ``("*",)``. ``config`` is an attrs class whose
    default instance is the default configuration. ``config_migration(plugins, from_version)``
    is a pure function from the whole ``plugins`` table of an older config file to the new one.
    """

    type: str = attrs.field(converter=_intern)
    id: str
    init: InitFn = attrs.field(repr=False)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_requires_tuple)
    config: builtins.type | None = None
    config_migration: ConfigMigration | None = attrs.field(default=None, repr=False)

    #: ``"<type>.<id>"``, the name used in config files and statuses (computed once).
    uri: str = attrs.field(init=False, eq=False, repr=False)

    @uri.default
    def _uri(self) -> str:
        return f"{self.type}.{self.id}"


def _check(reg: Registration) -> None:
    if not reg.type:
        raise NoType(f"plugin registration with id {reg.id!r} has no type", registration=reg)
    if not reg.id:
        raise NoPluginID(f"plugin registration of type {reg.type!r} has no id", registration=reg)
    if WILDCARD in reg.requires and len(reg.requires) != 1:
        raise WildcardMixedRequires(
            f"plugin {reg.uri} mixes the wildcard requirement '*' with other types "
            f"{list(reg.requires)}; use ('*',) alone",
            registration=reg,
        )
    if reg.type in reg.requires:
        raise RequiresOwnType(
            f"plugin {reg.uri} requires its own type {reg.type}", registration=reg
        )
    for required in reg.requires:
        if not required:
            raise InvalidRequires(
                f"plugin {reg.uri} requires an empty plugin type", registration=reg
            )


class Registry:
    """An ordered collection of registrations; no global state, build one and fill it.

    >>> registry = Registry()
    >>> registry.register(Registration("io.example.v1", "a", init=lambda ic: None))
    >>> [r.uri for r in registry.graph()]
    ['io.example.v1.a']
    """

    def __init__(self, registrations: Iterable[Registration] = ()) -> None:
        self._registrations: list[Registration] = []
        #: URI -> the first registration with it. Two registrations can share a URI
        #: (type ``a.b`` id ``c`` and type ``a`` id ``b.c``): containerd keeps both, and so
        #: does this registry; config tables, ``disabled_plugins`` and statuses name them by URI.
        self._by_uri: dict[str, Registration] = {}
        self._keys: set[tuple[str, str]] = set()
        self.register(*registrations)

    def register(self, *regs: Registration) -> None:
        """Add registrations, all or none; raises a :class:`PluginError` subclass naming the
        first bad one (NoType, NoPluginID, IDRegistered, or InvalidRequires: its subclasses
        WildcardMixedRequires and RequiresOwnType, or itself for an empty required type).

        Uniqueness is by (type, id), as containerd's ``checkUnique``: the URI alone may repeat.
        """
        batch: dict[tuple[str, str], Registration] = {}
        for reg in regs:
            if not isinstance(reg, Registration):
                raise TypeError(f"expected a Registration, got {type(reg).__name__}: {reg!r}")
            _check(reg)
            key = (reg.type, reg.id)
            if key in self._keys or key in batch:
                raise IDRegistered(f"plugin {reg.uri} is already registered", registration=reg)
            batch[key] = reg
        self._registrations.extend(regs)
        self._keys.update(batch)
        for reg in batch.values():
            self._by_uri.setdefault(reg.uri, reg)

    def registrations(self) -> tuple[Registration, ...]:
        """Every registration, in registration order."""
        return tuple(self._registrations)

    def get(self, uri: str) -> Registration | None:
        """The (first) registration with this URI, or None."""
        return self._by_uri.get(uri)

    def __contains__(self, uri: object) -> bool:
        return uri in self._by_uri

    def __iter__(self) -> Iterator[Registration]:
        return iter(tuple(self._registrations))

    def __len__(self) -> int:
        return len(self._registrations)

    def graph(self, disabled: DisabledFilter = ()) -> list[Registration]:
        """Initialisation order, as containerd's ``Registry.Graph``: disabled plugins are left
        out; each plugin comes after every registration of the types it requires.
        Raises :class:`PluginCircularDependency` naming the whole cycle."""
        from registry._graph import graph

        return graph(self._registrations, disabled)

    def blocked(self, disabled: DisabledFilter = ()) -> dict[str, Blocked]:
        """Plugins that cannot load whatever happens at init, by URI: a required type that no
        enabled plugin provides, or every provider of it is itself blocked."""
        from registry._graph import find_blocked, plan

        return find_blocked(*plan(self._registrations, disabled))
