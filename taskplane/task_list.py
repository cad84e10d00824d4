"""``tasks ls``: every task of a namespace and every leftover of one (:func:`entries`).

Nothing is hidden: a task whose shim does not answer is UNKNOWN, what an interrupted command
left (a record, an io dir, a lifecycle step, runc state, an overlay layer, no bundle) is ORPHAN,
and a task a peer is creating or deleting right now is CREATING / DELETING. The shims of the
tasks are asked for their State concurrently (at most :data:`LIST_CONCURRENCY` at once), so
listing many tasks costs about as much as listing a few.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from plugins import errdefs

if TYPE_CHECKING:
    from taskplane.containers import Client

__all__ = ["LIST_CONCURRENCY", "LIST_TIMEOUT", "TaskEntry", "entries"]

#: How long ``tasks ls`` waits for a shim's State before showing the task as UNKNOWN.
LIST_TIMEOUT = 2.0
#: How many shims ``tasks ls`` asks at once.
LIST_CONCURRENCY = 16


@attrs.frozen
class TaskEntry:
    """One row of :func:`entries`: a task, or what is left of one.

    ``status`` is the shim's (CREATED, RUNNING, STOPPED, PAUSED, ...); UNKNOWN when a bundle
    exists but its shim does not answer; CREATING/DELETING while a peer holds the task's lock in
    that step; ORPHAN for leftovers with no bundle (a container record, an io dir, a lifecycle
    step or runc state of an interrupted command). ``pid`` is 0 when unknown.
    """

    id: str
    pid: int
    status: str


async def entries(client: Client) -> list[TaskEntry]:
    """Every task of ``client``'s namespace and every leftover of one, sorted by id. A shim
    that does not answer within :data:`LIST_TIMEOUT` shows UNKNOWN."""
    from plugins import identifiers

    states = await client.task_manager.states(
        namespace=client.namespace, timeout=LIST_TIMEOUT, parallelism=LIST_CONCURRENCY
    )
    rows: dict[str, TaskEntry] = {
        task_id: TaskEntry(task_id, 0, "UNKNOWN")
        if state is None
        else TaskEntry(task_id, state.pid, state.status.value.upper())
        for task_id, state in states.items()
    }
    for container_id in await _candidates(client, set(rows)) - set(rows):
        try:
            identifiers.validate_task_id(container_id)
        except errdefs.InvalidArgument:
            continue
        rows[container_id] = TaskEntry(container_id, 0, await _leftover(client, container_id))
    return [rows[k] for k in sorted(rows)]


async def _candidates(client: Client, listed: set[str]) -> set[str]:
    """The ids something of a task is left of, besides the ``listed`` tasks: a lifecycle step,
    a bundle, an io dir, a container record, an overlay layer, runc state."""
    from runtime_v2.locks import ids_with_steps

    tm = client.task_manager
    namespace = client.namespace
    ns_dir = os.path.join(tm.state, namespace)
    bundles = {name for name in _names(ns_dir) if not name.startswith(".")}
    # A listed task's or a bundle's id is a candidate whatever its step: not read.
    candidates = bundles | set(ids_with_steps(ns_dir, skip=listed | bundles))
    candidates |= _names(str(client.io_root))
    with contextlib.suppress(errdefs.ContainerdError):
        candidates |= {c.id for c in await client.containers()}
    with contextlib.suppress(errdefs.ContainerdError):
        prefix = f"{namespace}/"
        candidates |= {k[len(prefix) :] for k in client.snapshotter.keys() if k.startswith(prefix)}
    return candidates | _names(os.path.join(tm.runc_root, namespace))


def _names(directory: str) -> set[str]:
    """The entries of ``directory`` (none when it is missing or no directory): names, not
    paths, as a listing of many tasks reads three such directories."""
    try:
        return set(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return set()


async def _leftover(client: Client, container_id: str) -> str:
    tm = client.task_manager
    step = str(tm.step(container_id, namespace=client.namespace))
    async with client.lock(container_id).try_acquire() as taken:
        if not taken and step in ("creating", "deleting"):
            return step.upper()  # a peer is in that step right now
    if Path(tm.bundle(container_id, namespace=client.namespace).path).exists():
        return "UNKNOWN"  # a bundle whose shim did not answer (or a peer holds its lock)
    return "ORPHAN"
