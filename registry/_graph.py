"""Initialisation order (containerd's ``Registry.Graph``) and the pre-init requirement check.

The order is containerd's depth-first walk (``containerd/plugin``'s ``Graph`` and
``children``), written with an explicit stack instead of recursion: a chain of any length costs
memory, never the Python stack, and a requirement met again while it is still on the stack is a
cycle, reported with every plugin on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from registry._errors import PluginCircularDependency
from registry._registration import WILDCARD, DisabledFilter, Registration

if TYPE_CHECKING:
    from registry._failures import Blocked

__all__ = [
    "RequirementTracker",
    "find_blocked",
    "graph",
    "plan",
]


def _disabled_flags(regs: Sequence[Registration], disabled: DisabledFilter) -> list[bool]:
    """One flag per registration: True when ``disabled`` leaves it out."""
    if callable(disabled):
        return [bool(disabled(reg)) for reg in regs]
    uris = frozenset(disabled)
    return [reg.uri in uris for reg in regs]


def _order(regs: Sequence[Registration], disabled: Sequence[bool]) -> list[Registration]:
    """containerd's Graph walk over ``regs`` (by index), leaving out the ``disabled`` ones."""
    providers: dict[str, list[int]] = {}  # type -> its registrations' indices, in order
    for index, reg in enumerate(regs):
        providers.setdefault(reg.type, []).append(index)

    def requirements(index: int) -> Iterator[int]:
        """The registrations ``regs[index]`` comes after: for each required type in order,
        every provider of it in registration order (``"*"``: every registration)."""
        for required in regs[index].requires:
            if required == WILDCARD:
                yield from range(len(regs))
            else:
                yield from providers.get(required, ())

    placed = list(disabled)  # a disabled registration counts as placed: it is never walked
    ordered: list[Registration] = []
    for root in range(len(regs)):
        if placed[root]:
            continue
        # The path from the root to the registration being placed: (index, its requirements
        # not yet looked at). on_path maps an index on it to its position, to name a cycle.
        path: list[tuple[int, Iterator[int]]] = [(root, requirements(root))]
        on_path = {root: 0}
        while path:
            index, pending = path[-1]
            for needed in pending:
                if needed == index or placed[needed]:
                    continue
                if needed in on_path:
                    cycle = [regs[i].uri for i, _ in path[on_path[needed] :]]
                    raise PluginCircularDependency(
                        [*cycle, regs[needed].uri], registration=regs[needed]
                    )
                on_path[needed] = len(path)
                path.append((needed, requirements(needed)))
                break
            else:  # every requirement is placed: place this one
                path.pop()
                del on_path[index]
                placed[index] = True
                ordered.append(regs[index])
    return ordered


def graph(
    registrations: Sequence[Registration], disabled: DisabledFilter = ()
) -> list[Registration]:
    """Order ``registrations`` for initialisation exactly as containerd's Graph does.

    Disabled registrations are dropped. Then, in registration order, each registration not yet
    placed is placed after its requirements: for each required type in ``requires`` order, every
    registration of that type (``"*"``: every other registration), in registration order,
    depth first. A requirement met again while it is still being placed is a cycle.
    """
    return _order(registrations, _disabled_flags(registrations, disabled))


def plan(
    registrations: Sequence[Registration], disabled: DisabledFilter = ()
) -> tuple[list[Registration], list[Registration]]:
    """The graph order and the disabled registrations (in registration order), deciding
    ``disabled`` once per registration."""
    flags = _disabled_flags(registrations, disabled)
    off = [reg for reg, flag in zip(registrations, flags, strict=True) if flag]
    return _order(registrations, flags), off


_PHRASES = {"blocked": "is blocked", "failed": "failed", "skipped": "was skipped"}


class RequirementTracker:
    """Decides, plugin by plugin in graph order, whether a plugin's requirements can be met.

    A required type is met while at least one enabled provider of it is loaded or not yet
    decided; it is missing when no enabled plugin provides it, and down when every provider
    ended blocked, failed or skipped (recorded through :meth:`record`).
    """

    def __init__(self, order: Sequence[Registration], disabled: Sequence[Registration]) -> None:
        self._providers: dict[str, list[Registration]] = {}
        for reg in order:
            self._providers.setdefault(reg.type, []).append(reg)
        self._disabled: dict[str, list[Registration]] = {}
        for reg in disabled:
            self._disabled.setdefault(reg.type, []).append(reg)
        self._down: dict[str, int] = {}  # type -> providers that did not load
        self._outcomes: dict[str, tuple[str, str]] = {}
        self._causes: dict[str, tuple[str, ...]] = {}  # blocked uri -> disabled uris behind it

    def record(
        self, reg: Registration, status: str, detail: str, disabled: tuple[str, ...] = ()
    ) -> None:
        """Note that ``reg`` did not load (status blocked, failed or skipped); ``disabled``
        is :attr:`Blocked.disabled` for a blocked plugin."""
        self._outcomes[reg.uri] = (status, detail)
        self._down[reg.type] = self._down.get(reg.type, 0) + 1
        if disabled:
            self._causes[reg.uri] = disabled

    def blocked(self, reg: Registration) -> Blocked | None:
        """The first requirement of ``reg`` that cannot be met, or None. Its ``disabled``
        covers every unmet requirement, not only the first."""
        found: tuple[str, str] | None = None
        causes: list[str] = []
        for required in reg.requires:
            if required == WILDCARD:
                continue
            present = self._providers.get(required)
            if present is None:
                off = self._disabled.get(required, ())
                causes.extend(r.uri for r in off)
                if found is None:
                    reason = f"requires {required}, which no plugin provides"
                    if off:
                        verb = "is" if len(off) == 1 else "are"
                        reason += f" ({', '.join(r.uri for r in off)} {verb} disabled)"
                    found = (reason, required)
                continue
            if self._down.get(required, 0) < len(present):
                continue  # a provider loaded or is still to be initialised
            for provider in present:
                causes.extend(self._causes.get(provider.uri, ()))
            if found is None:
                details = []
                for provider in present:
                    status, detail = self._outcomes[provider.uri]
                    details.append(f"{provider.uri} {_PHRASES.get(status, status)}: {detail}")
                found = ("requires " + required + "; " + "; ".join(details), present[0].uri)
        if found is None:
            return None
        from registry._failures import Blocked  # a boot where every requirement is met has none

        return Blocked(found[0], found[1], tuple(dict.fromkeys(causes)))


def find_blocked(
    order: Sequence[Registration], disabled: Sequence[Registration]
) -> dict[str, Blocked]:
    """The plugins of ``order`` blocked before anything is initialised, by URI."""
    tracker = RequirementTracker(order, disabled)
    blocked: dict[str, Blocked] = {}
    for reg in order:
        found = tracker.blocked(reg)
        if found is not None:
            blocked[reg.uri] = found
            tracker.record(reg, "blocked", found.reason, found.disabled)
    return blocked
