"""One ``taskplane.plugins`` entry point as the cache keeps it (:mod:`registry._discovery_cache`).

A module of its own so that the class is built by the first entry point read or scanned, not by
every command: most environments have no third-party plugin.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["PluginEntryPoint"]

#: importlib.metadata's EntryPoint value syntax: ``module[:attr[.attr]] [extras]``; compiled
#: by the first entry point loaded (re caches it), not by every command.
_VALUE = r"(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[.*\])?\s*$"


@attrs.frozen
class PluginEntryPoint:
    """One ``taskplane.plugins`` entry point: its distribution, name and ``module:attr`` value."""

    distribution: str
    name: str
    value: str

    def load(self) -> object:
        """Import the module the value names and return it, or the attribute it names."""
        import importlib

        match = re.match(_VALUE, self.value)
        if match is None:
            raise ValueError(f"entry point value {self.value!r} is not 'module' or 'module:attr'")
        target: object = importlib.import_module(match.group("module"))
        for part in (match.group("attr") or "").split("."):
            if part:
                target = getattr(target, part)
        return target
