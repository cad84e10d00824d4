"""How a command that works on tasks talks to them: boot, one :class:`Client`, close.

:func:`with_client` boots the registry, runs the command's body with a Client on the same event
loop and closes the host (the task manager reattaches to a task's shim when the body first uses
the task, to a namespace's shims when it first lists them; see :mod:`runtime_v2.task_manager`);
:func:`for_each_id` runs an action on several ids as ctr does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from plugins import errdefs
from taskplane.cli_common import Options
from taskplane.collector import without_cycle_collection
from taskplane.containers import Client

__all__ = ["for_each_id", "validate_ids", "with_client"]

T = TypeVar("T")


def validate_ids(opts: Options, task_id: str, exec_id: str | None = None) -> None:
    """Refuse a bad namespace, task id or exec id before anything is booted."""
    from plugins import identifiers

    identifiers.validate_namespace(opts.namespace)
    identifiers.validate_task_id(task_id)
    if exec_id is not None:
        identifiers.validate_exec_id(exec_id)


def with_client(opts: Options, body: Callable[[Client], Awaitable[T]]) -> T:
    """Boot the registry (without the cycle collector: :mod:`taskplane.collector`), run
    ``body(client)`` with it and close the host, all on one event loop."""

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
