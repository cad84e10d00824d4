"""How a command that works on tasks talks to them: boot, one :class:`Client`, close.

:func:`with_client` boots the registry, runs the command's body with a Client on the same event
loop and closes the host (the task manager reattaches to a task's shim when the body first uses
the task, to a namespace's shims when it first lists them; see :mod:`runtime_v2.task_manager`);
:func:`for_each_id` runs an action on several ids as ctr does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from plugins import errdefs
from taskplane.cli_common import Options
from taskplane.containers import Client

__all__ = ["for_each_id", "validate_ids", "with_client", "without_cycle_collection"]

T = TypeVar("T")


def validate_ids(opts: Options, task_id: str, exec_id: str | None = None) -> None:
    """Refuse a bad namespace, task id or exec id before anything is booted."""
    from plugins import identifiers

    identifiers.validate_namespace(opts.namespace)
    identifiers.validate_task_id(task_id)
    if exec_id is not None:
        identifiers.validate_exec_id(exec_id)


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Run the block without the cycle collector, then give it back with what the block
    allocated moved to the oldest generation, unwalked (``gc.freeze`` then ``gc.unfreeze``).

    For a short stretch that allocates much and builds no garbage cycles worth freeing (a
    boot, a listing): each collection in it would walk every object made so far, and merely
    re-enabled the collector would walk them all at the next allocation. Nested, only the
    outermost block gives the collector back.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def with_client(opts: Options, body: Callable[[Client], Awaitable[T]]) -> T:
    """Boot the registry (without the cycle collector: :func:`without_cycle_collection`), run
    ``body(client)`` and close the host, all on one event loop."""

    async def main() -> T:
        with without_cycle_collection():
            host = await opts.boot_async()
        try:
            return await body(Client(host, opts.namespace))
        finally:
            await host.aclose()

    return asyncio.run(main())


def for_each_id(
    opts: Options, ids: list[str], action: Callable[[Client, str], Awaitable[object]]
) -> int:
    """Run ``action(client, id)`` for every id in turn, as ctr does for ``rm``/``kill``.

    Every id is tried even when one fails; each failure is one line on stderr naming it and
    the exit status is 1 if any failed. A single id fails as every other command does.
    """
    for task_id in ids:
        validate_ids(opts, task_id)

    async def body(client: Client) -> int:
        failed = 0
        for task_id in ids:
            try:
                await action(client, task_id)
            except errdefs.ContainerdError as exc:
                if len(ids) == 1:
                    raise
                failed += 1
                print(f"taskplane: {exc}", file=sys.stderr)
        return 1 if failed else 0

    return with_client(opts, body)
