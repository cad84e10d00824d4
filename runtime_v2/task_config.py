"""The task plugin's config (``[plugins."io.containerd.runtime.v2.task"]``).

Kept apart from :mod:`runtime_v2.task_manager` so that reading and checking a config
(``taskplane config validate``) does not load the task manager itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

import registry

__all__ = ["TaskConfig", "parse_platforms"]


def _default_platforms() -> list[str]:
    return [registry.platforms.default_string()]


def parse_platforms(specifiers: Iterable[str]) -> list[registry.platforms.Platform]:
    """Parse and normalize ``platforms`` entries; :class:`registry.platforms.PlatformError`
    (a ValueError naming the bad specifier) for the first that does not parse."""
    return [registry.platforms.normalize(registry.platforms.parse(s)) for s in specifiers]


def _validate_platforms(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    parse_platforms(value)


@attrs.define
class TaskConfig:
    """``[plugins."io.containerd.runtime.v2.task"]``: ``platforms`` this runtime can run
    (default: this host's, e.g. ``["linux/amd64"]``). Each entry is parsed when the config is
    loaded, so ``taskplane config validate`` names a bad one."""

    platforms: list[str] = attrs.field(factory=_default_platforms, validator=_validate_platforms)
