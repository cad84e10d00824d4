"""Initialisation order (containerd's ``Registry.Graph``) and the pre-init requirement check.

Both walks are iterative: a chain or cycle of any length costs memory, never the Python stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from registry._errors import PluginCircularDependency
from registry._registration import WILDCARD, DisabledFilter, Registration

__all__ = ["Blocked", "RequirementTracker", "check_requirements", "disabled_predicate", "graph"]


def disabled_predicate(disabled: DisabledFilter) -> Callable[[Registration], bool]:
    """Normalise ``disabled`` (a predicate or a collection of URIs) to a predicate."""
    if callable(disabled):
        return disabled
    uris = frozenset(disabled)
    return lambda reg: reg.uri in uris


def graph(
    registrations: Sequence[Registration], disabled: DisabledFilter = ()
) -> list[Registration]:
    """Order ``registrations`` for initialisation exactly as containerd's Graph does.

    Disabled registrations are dropped. Then, in registration order, each registration not yet
    placed is placed after its requirements: for each required type in ``requires`` order, every
    registration of that type (``"*"``: every other registration), in registration order,
    depth first. A requirement met again while it is still being placed is a cycle.
    """
    is_disabled = disabled_predicate(disabled)
    regs = list(registrations)
    count = len(regs)
    # Work on indices: cheaper than hashing URIs, and identical registrations stay distinct.
    handled = [is_disabled(reg) for reg in regs]
    by_type: dict[str, list[int]] = {}
    for i, reg in enumerate(regs):
        by_type.setdefault(reg.type, []).append(i)

    # Each registration's requirements, flattened: every provider of each required type in
    # requires order ("*": everyone, itself skipped below). cursor[i] is how far i has got.
    everyone = range(count)
    needs: list[Sequence[int]] = []
    for reg in regs:
        if reg.requires == (WILDCARD,):
            needs.append(everyone)
        else:
            needs.append([j for t in reg.requires for j in by_type.get(t, ())])
    cursor = [0] * count
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
            pending = needs[i]
            c = cursor[i]
            end = len(pending)
            while c < end:
                dep = pending[c]
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


@attrs.frozen
class Blocked:
    """Why a plugin cannot be initialised: ``reason`` is a sentence; ``dependency`` is the
    missing type, or the URI of the dependency that did not load."""

    reason: str
    dependency: str


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

    def record(self, reg: Registration, status: str, detail: str) -> None:
        """Note that ``reg`` did not load (status blocked, failed or skipped)."""
        self._outcomes[reg.uri] = (status, detail)
        self._down[reg.type] = self._down.get(reg.type, 0) + 1

    def blocked(self, reg: Registration) -> Blocked | None:
        """The first requirement of ``reg`` that cannot be met, or None."""
        for required in reg.requires:
            if required == WILDCARD:
                continue
            present = self._providers.get(required)
            if not present:
                reason = f"requires {required}, which no plugin provides"
                off = self._disabled.get(required)
                if off:
                    verb = "is" if len(off) == 1 else "are"
                    reason += f" ({', '.join(r.uri for r in off)} {verb} disabled)"
                return Blocked(reason, required)
            if self._down.get(required, 0) == len(present):
                details = []
                for provider in present:
                    status, detail = self._outcomes[provider.uri]
                    details.append(f"{provider.uri} {_PHRASES.get(status, status)}: {detail}")
                return Blocked(f"requires {required}; " + "; ".join(details), present[0].uri)
        return None


def check_requirements(
    registrations: Sequence[Registration], disabled: DisabledFilter = ()
) -> tuple[list[Registration], dict[str, Blocked]]:
    """The graph order, and the plugins blocked before anything is initialised
    (a required type nobody enabled provides, or a provider that is itself blocked)."""
    order = graph(registrations, disabled)
    is_disabled = disabled_predicate(disabled)
    tracker = RequirementTracker(order, [r for r in registrations if is_disabled(r)])
    blocked: dict[str, Blocked] = {}
    for reg in order:
        found = tracker.blocked(reg)
        if found is not None:
            blocked[reg.uri] = found
            tracker.record(reg, "blocked", found.reason)
    return order, blocked
