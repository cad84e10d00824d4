"""The one logger naming scheme: every logger of the project lives under ``taskplane``.

An embedder configures the whole project with ``logging.getLogger("taskplane")``. A module
names its logger after its own dotted path: ``get_logger(__name__)`` in ``runtime_v2/shim.py``
is ``taskplane.runtime_v2.shim``; in ``taskplane/containers.py`` it is ``taskplane.containers``.
A logger for something a module relays (a shim's own stderr) is a child of the module's logger.

A logger is logging's own from its first use on: :func:`get_logger` returns a stand-in that
imports :mod:`logging` and looks the logger up by its name when it is first asked for anything
(a record to log, its level, a child), so a command that logs nothing (``taskplane config
validate``) does not import logging at all. Whoever sets logging up (the command line) can
defer that to the same moment with :func:`on_first_use`; code about to run what may log
through :mod:`logging` directly (a third-party plugin, asyncio) calls :func:`first_use` first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

__all__ = ["ROOT", "first_use", "get_logger", "on_first_use"]

#: The name of the project's root logger.
ROOT = "taskplane"

#: What runs before a logger of :func:`get_logger` is next used (see :func:`on_first_use`).
_pending: list[Callable[[], None]] = []
#: Held while they run: another thread's first record waits for the setup. Re-entrant, and
#: ``_running`` set, so that a callback that itself logs does not wait for itself.
_pending_lock = threading.RLock()
_running = False


def on_first_use(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` once, just before a logger of :func:`get_logger` is next used or
    :func:`first_use` is next called; returns a function that drops it if it has not run."""
    with _pending_lock:
        _pending.append(callback)

    def cancel() -> None:
        with _pending_lock:
            if callback in _pending:
                _pending.remove(callback)

    return cancel


def first_use() -> None:
    """Run (once each) what :func:`on_first_use` deferred: logging is about to be used."""
    global _running
    if not _pending:
        return
    with _pending_lock:
        if _running:
            return
        _running = True
        try:
            while _pending:
                callback = _pending[0]
                try:
                    callback()
                finally:  # taken off when done: until then another thread waits above
                    if _pending and _pending[0] is callback:
                        del _pending[0]
        finally:
            _running = False


class _Logger:
    """Stands in for ``logging.getLogger(name)`` until its first use, then passes everything
    to it. Records carry the caller's file and line: a method is handed out, not wrapped."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def __getattr__(self, attribute: str) -> Any:
        first_use()
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self.name)
        return getattr(logger, attribute)

    def __repr__(self) -> str:
        return f"<taskplane logger {self.name} (used on first use)>"


def get_logger(module: str) -> logging.Logger:
    """Return the logger of ``module`` (pass ``__name__``), under the ``taskplane`` root,
    looked up when it is first used (see the module docstring)."""
    name = module if module == ROOT or module.startswith(ROOT + ".") else f"{ROOT}.{module}"
    return cast("logging.Logger", _Logger(name))
