"""What a boot in which something does not load reports: :class:`Blocked` (a plugin whose
requirement cannot be met) and :class:`LoadFailure` (a third-party entry point that could not
be used). Imported when the first one is made: a boot in which everything loads builds
neither class. Read them as ``registry.Blocked`` and ``registry.LoadFailure``."""

from __future__ import annotations

import attrs

__all__ = ["Blocked", "LoadFailure"]


@attrs.frozen
class Blocked:
    """Why a plugin cannot be initialised: ``reason`` is a sentence; ``dependency`` is the
    missing type, or the URI of the dependency that did not load. ``disabled`` lists the
    disabled plugins (URIs) whose absence blocks it, directly or through blocked providers."""

    reason: str
    dependency: str
    disabled: tuple[str, ...] = ()


@attrs.frozen
class LoadFailure:
    """A third-party entry point that could not be used, and why."""

    distribution: str
    entry_point: str
    error: BaseException = attrs.field(eq=False)

    @property
    def message(self) -> str:
        """One sentence naming the entry point and the error."""
        return (
            f"plugin entry point {self.entry_point!r} of {self.distribution} "
            f"could not be loaded: {type(self.error).__name__}: {self.error}"
        )

    def __str__(self) -> str:
        return self.message
