"""Names a module exports but defines in another module, imported when first read (PEP 562).

A value class or a helper that most commands never use lives in a module of its own; the module
that has always exported it keeps the name (``from plugins.overlay import Mount`` still works)
through :func:`export_lazily`, so the class is built by its first use, not by every boot.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["export_lazily"]


def export_lazily(module: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module`` (pass ``__name__``) serving ``where`` (name ->
    the module that defines it): that module is imported when the name is first read (an
    import statement's ``__import__``, which ``python -X importtime`` reports), and the value
    is kept in ``module``'s namespace, so later reads do not come here. Any other name is an
    AttributeError, as for a module without one."""

    def __getattr__(name: str) -> Any:
        source = where.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(__import__(source, fromlist=[name]), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
