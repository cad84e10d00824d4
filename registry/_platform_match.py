"""The platform matchers of :mod:`registry.platforms` (``Matcher``, ``ALL``, and what
``only``, ``ordered`` and ``new_matcher`` return), apart from it: a boot reads and formats
platforms but matches none, so it does not build the matcher class. Read them as
``registry.platforms.Matcher`` and ``registry.platforms.ALL``."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from registry.platforms import Platform, normalize

__all__ = ["ALL", "Matcher"]


def _platform_tuple(values: Iterable[Platform]) -> tuple[Platform, ...]:
    return tuple(values)


@attrs.frozen
class Matcher:
    """Matches platforms against an ordered list of accepted (normalized) platforms.

    ``match`` compares os, architecture and variant after normalizing the candidate;
    ``less`` orders candidates by the first accepted platform they match.
    """

    platforms: tuple[Platform, ...] = attrs.field(converter=_platform_tuple)

    def match(self, platform: Platform) -> bool:
        """Whether *platform* matches any accepted platform."""
        return self._index(platform) is not None

    def less(self, a: Platform, b: Platform) -> bool:
        """Whether *a* is preferred over *b* (it matches an earlier accepted platform)."""
        ia, ib = self._index(a), self._index(b)
        return ia is not None and (ib is None or ia < ib)

    def _index(self, platform: Platform) -> int | None:
        p = normalize(platform)
        key = (p.os, p.architecture, p.variant)
        for i, want in enumerate(self.platforms):
            if (want.os, want.architecture, want.variant) == key:
                return i
        return None


class _AllMatcher(Matcher):
    def match(self, platform: Platform) -> bool:
        return True

    def less(self, a: Platform, b: Platform) -> bool:
        return False


ALL: Matcher = _AllMatcher(())
"""Matches every platform, with no preference."""
