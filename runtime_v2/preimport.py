"""Importing what comes next while this thread waits: :func:`import_meanwhile`.

A cold ``taskplane`` process spends much of its time importing, and some of it waiting (for a
child process, for SQLite's write to reach the disk). A module needed only after such a wait
can be imported during it on a worker thread, where it costs no time on the main thread's path.
Python's import lock keeps this safe: a thread that needs the module before the worker is done
waits for it, as for any import, and a failed import is raised where the module is used. Two
threads importing never wait on each other in a ring: the project's module-level imports have
no circles (``tests/test_shape.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence

__all__ = ["import_meanwhile"]


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        importlib.import_module(name)


def import_meanwhile(names: Sequence[str]) -> asyncio.Future[None] | None:
    """Import those of ``names`` not imported yet on a worker thread of the running loop;
    return the import's future, or None when every module is imported already (or the loop's
    executor is shut down: then whoever needs them imports them).

    Nobody has to wait for the future: it is there for a caller that wants to.
    """
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return None
    try:
        future = asyncio.get_running_loop().run_in_executor(None, _import_all, missing)
    except RuntimeError:  # the loop's executor is shut down: the importer imports them itself
        return None
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: not logged
    return future
