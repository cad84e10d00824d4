"""The registry's exception tree.

Every error is a :class:`PluginError`; each containerd sentinel error (``ErrNoType``,
``ErrIDRegistered``, ...) is its own subclass, so callers match on the class, never on the
message text. Errors carry the registration they are about as ``.registration``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry._registration import Registration
    from registry._status import PluginStatus

__all__ = [
    "BootError",
    "DiscoveryError",
    "IDRegistered",
    "InvalidRequires",
    "NoPluginID",
    "NoType",
    "PluginCircularDependency",
    "PluginError",
    "PluginInitialized",
    "PluginMultipleInstances",
    "PluginNotFound",
    "RequiresOwnType",
    "SkipPlugin",
    "UnexpectedInstance",
    "WildcardMixedRequires",
]


class PluginError(Exception):
    """Base class of every registry error; ``registration`` names the plugin concerned."""

    def __init__(self, message: str, *, registration: Registration | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.registration = registration

    def __str__(self) -> str:
        return self.message


class NoType(PluginError):
    """A registration has an empty type."""


class NoPluginID(PluginError):
    """A registration has an empty id."""


class IDRegistered(PluginError):
    """A registration with the same type and id is already in the registry."""


class InvalidRequires(PluginError):
    """A registration's ``requires`` is malformed (containerd's ``ErrInvalidRequires``).

    The specific cases are subclasses (:class:`WildcardMixedRequires`,
    :class:`RequiresOwnType`); an empty required type raises this class itself.
    """


class WildcardMixedRequires(InvalidRequires):
    """A registration's ``requires`` mixes the wildcard ``"*"`` with plugin types."""


class RequiresOwnType(InvalidRequires):
    """A registration requires its own plugin type."""


class SkipPlugin(PluginError):
    """Raised by a plugin's init to say "do not load me" (status ``skipped``, not ``failed``).

    The message is the reason shown by ``taskplane plugins ls``::

        def init(ic: InitContext) -> object:
            if not shutil.which("runc"):
                raise SkipPlugin("runc is not installed")
    """

    def __init__(
        self, reason: str = "skip plugin", *, registration: Registration | None = None
    ) -> None:
        super().__init__(reason, registration=registration)


class PluginInitialized(PluginError):
    """A plugin with the same type and id was already added to the :class:`Set`."""


class PluginNotFound(PluginError):
    """No loaded plugin matches the lookup."""


class PluginMultipleInstances(PluginError):
    """``get_single`` found more than one loaded plugin of the type."""


class UnexpectedInstance(PluginError, TypeError):
    """A typed lookup (``ic.get_single(type, cls)``, ``host.get(type, id, cls)``) found a
    plugin whose instance is not an instance of the class asked for."""


class PluginCircularDependency(PluginError):
    """The requirements form a cycle; ``cycle`` holds the URIs, first == last."""

    def __init__(self, cycle: Sequence[str], *, registration: Registration | None = None) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            "circular plugin dependency: " + " -> ".join(self.cycle), registration=registration
        )


class DiscoveryError(PluginError):
    """A built-in plugin module is broken (bad or misspelt hook implementation)."""


class BootError(PluginError):
    """Boot was aborted: a required plugin did not load, or a plugin that registered
    readiness failed. ``statuses`` holds every status decided before the abort."""

    def __init__(
        self,
        message: str,
        *,
        registration: Registration | None = None,
        statuses: Sequence[PluginStatus] = (),
    ) -> None:
        super().__init__(message, registration=registration)
        self.statuses = list(statuses)
