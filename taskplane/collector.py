"""The cycle collector of a ``taskplane`` command: off while the command starts and boots, on
for whatever may run long.

A command builds most of what it keeps for its whole life while it starts (imports, argument
parsing) and boots (plugins): thousands of modules' functions, classes and values, none of them
garbage. Every collection while it does walks what was built so far, dozens of times in a
command that lasts a tenth of a second. So ``taskplane.__main__`` starts without the collector
(:func:`hold`), and the boot gives it back (:func:`release`, called by
``taskplane.cli_common.Options.boot`` and ``boot_async``): every command that waits for
anything (a task, a shim, events) boots first, so whatever may run long runs with the
collector; a command that never boots (``config``, ``oci``, ``--help``) is short and ends
without it. :func:`without_cycle_collection` keeps it off for a block (a boot, a listing).

Giving it back moves what was built to the oldest generation without walking it
(``gc.freeze`` then ``gc.unfreeze``): merely re-enabled, the collector would walk all of it at
the next allocation. An embedder that calls ``taskplane.cli.main`` never holds the collector
(only ``taskplane.__main__`` does), and a block gives back only what it took.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["hold", "release", "without_cycle_collection"]

#: Whether :func:`hold` turned the collector off and nothing has given it back yet.
_held = False
#: How many :func:`without_cycle_collection` blocks are open.
_depth = 0
#: Whether the outermost open block gives the collector back when it closes.
_restore = False


def hold() -> None:
    """Turn the collector off until :func:`release` (``taskplane.__main__``, before it imports
    the command line)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """Give back what :func:`hold` took (nothing when it took nothing); inside a
    :func:`without_cycle_collection` block, the block gives it back when it closes."""
    global _held
    if _held and _depth == 0:
        _held = False
        _give_back()


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Run the block without the collector; the outermost block then gives it back if it was
    on, or held by :func:`hold`, when the block began."""
    global _depth, _restore, _held
    if _depth == 0:
        _restore = gc.isenabled() or _held
        _held = False
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _restore:
            _give_back()


def _give_back() -> None:
    gc.freeze()
    gc.unfreeze()
    gc.enable()
