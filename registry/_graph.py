"""Initialisation order (containerd's ``Registry.Graph``) and the pre-init requirement check.

Both walks are iterative: a chain or cycle of any length costs memory, never the Python stack.
They work on flat lists of indices (no per-plugin containers), so their cost stays linear in
the number of plugins and requirements, and they add little for the garbage collector to scan.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from registry._errors import PluginCircularDependency
from registry._registration import WILDCARD, DisabledFilter, Registration

__all__ = [
    "Blocked",
    "RequirementTracker",
    "find_blocked",
    "graph",
    "plan",
]

_WILDCARD_ONLY = (WILDCARD,)


def _disabled_flags(regs: Sequence[Registration], disabled: DisabledFilter) -> list[bool]:
    """One flag per registration: True when ``disabled`` leaves it out."""
    if callable(disabled):
        return [bool(disabled(reg)) for reg in regs]
    if not disabled:
        return [False] * len(regs)
    uris = frozenset(disabled)
    return [reg.uri in uris for reg in regs]


def _order(regs: Sequence[Registration], handled: list[bool]) -> list[Registration]:
    """containerd's Graph walk over ``regs``; ``handled`` marks the disabled ones (and is
    consumed: every placed registration gets marked too)."""
    count = len(regs)
    # Providers of each type as a chain of indices in registration order: first[type] is the
    # first provider, after[i] the next provider of regs[i]'s type (-1 at the end).
    first: dict[str, int] = {}
    after = [-1] * count
    for i in range(count - 1, -1, -1):
        t = regs[i].type
        after[i] = first.get(t, -1)
        first[t] = i

    # Each registration's requirements, flattened into one list: every provider of each
    # required type, in requires order; regs[i]'s are needs[cursor[i]:end[i]]. A wildcard
    # registration needs everyone (itself skipped below): its cursor walks 0..count and the
    # cursor is the index itself.
    needs: list[int] = []
    cursor = [0] * count
    end = [0] * count
    wild = [False] * count
    for i, reg in enumerate(regs):
        requires = reg.requires
        if not requires:
            cursor[i] = end[i] = len(needs)
            continue
        if requires == _WILDCARD_ONLY:
            wild[i] = True
            end[i] = count
            continue
        cursor[i] = len(needs)
        for t in requires:
            j = first.get(t, -1)
            while j >= 0:
                needs.append(j)
                j = after[j]
        end[i] = len(needs)
    position = [-1] * count  # index in the stack while being placed, else -1

    ordered: list[Registration] = []
    for root in range(count):
        if handled[root]:
            continue
        # An explicit stack replaces containerd's recursion.
        stack = [root]
        position[root] = 0
        while stack:
            i = stack[-1]
            c = cursor[i]
            stop = end[i]
            w = wild[i]
            while c < stop:
                dep = c if w else needs[c]
                c += 1
                if handled[dep] or dep == i:
                    continue
                if position[dep] >= 0:
                    cycle = [regs[j].uri for j in stack[position[dep] :]] + [regs[dep].uri]
                    raise PluginCircularDependency(cycle, registration=regs[dep])
                cursor[i] = c
                position[dep] = len(stack)
                stack.append(dep)
                break
            else:
                stack.pop()
                position[i] = -1
                handled[i] = True
                ordered.append(regs[i])
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
    off = (
        [reg for reg, flag in zip(registrations, flags, strict=True) if flag] if any(flags) else []
    )
    return _order(registrations, flags), off


@attrs.frozen
class Blocked:
    """Why a plugin cannot be initialised: ``reason`` is a sentence; ``dependency`` is the
    missing type, or the URI of the dependency that did not load. ``disabled`` lists the
    disabled plugins (URIs) whose absence blocks it, directly or through blocked providers."""

    reason: str
    dependency: str
    disabled: tuple[str, ...] = ()


_PHRASES = {"blocked": "is blocked", "failed": "failed", "skipped": "was skipped"}


class RequirementTracker:
    """Decides, plugin by plugin in graph order, whether a plugin's requirements can be met.

    A required type is met while at least one enabled provider of it is loaded or not yet
    decided; it is missing when no enabled plugin provides it, and down when every provider
    ended blocked, failed or skipped (recorded through :meth:`record`).
    """

    def __init__(self, order: Sequence[Registration], disabled: Sequence[Registration]) -> None:
        # type -> its only provider, or the list of its providers when there are several
        # (most types have one: no list per type).
        providers: dict[str, Registration | list[Registration]] = {}
        for reg in order:
            t = reg.type
            known = providers.get(t)
            if known is None:
                providers[t] = reg
            elif isinstance(known, list):
                known.append(reg)
            else:
                providers[t] = [known, reg]
        self._providers = providers
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
        down = self._down
        for required in reg.requires:
            if required == WILDCARD:
                continue
            known = self._providers.get(required)
            if known is None:
                off = self._disabled.get(required, ())
                causes.extend(r.uri for r in off)
                if found is None:
                    reason = f"requires {required}, which no plugin provides"
                    if off:
                        verb = "is" if len(off) == 1 else "are"
                        reason += f" ({', '.join(r.uri for r in off)} {verb} disabled)"
                    found = (reason, required)
                continue
            if not down:
                continue
            present = known if isinstance(known, list) else [known]
            if down.get(required, 0) != len(present):
                continue
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
