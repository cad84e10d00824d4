"""The steps of a task's life that :class:`taskplane.containers.Client` takes, each failure one
error naming the task: start, wait, the status before a delete, a teardown that could not
remove a file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plugins import errdefs
from taskplane.errors import prefixed

if TYPE_CHECKING:
    from runtime_v2.shim import Exit, ShimTask

__all__ = ["start", "status_of", "teardown_error", "wait", "wants_terminal", "with_terminal"]


def wants_terminal(spec: Mapping[str, Any]) -> bool:
    """Whether the spec asks for a terminal (``process.terminal``)."""
    process = spec.get("process")
    return bool(isinstance(process, Mapping) and process.get("terminal"))


def with_terminal(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with ``process.terminal`` set (runc asks the shim for a console only then)."""
    copy = dict(spec)
    copy["process"] = {**dict(spec.get("process") or {}), "terminal": True}
    return copy


async def status_of(task: ShimTask) -> str:
    """The task's status in lower case (``running``...); ``stopped`` when the shim no longer
    knows it."""
    try:
        state = await task.state()
    except errdefs.NotFound:
        return "stopped"
    return str(state.status.value).lower()


def _shim_died(task: ShimTask) -> errdefs.Unavailable:
    return errdefs.Unavailable(
        f'the shim of task "{task.id}" died while the task ran; its exit status is lost'
    )


async def start(task: ShimTask) -> None:
    """``task.start()``; a failure names the task (``failed to start task "web": OCI runtime
    start failed: ...``), and a shim that dies meanwhile (the process may already be running:
    its output can arrive before the Start answer) is one clear error naming the task."""
    from runtime_v2 import ttrpc

    try:
        await task.start()
    except ttrpc.Closed:
        raise _shim_died(task) from None
    except errdefs.ContainerdError as exc:
        raise prefixed(exc, f'failed to start task "{task.id}"') from exc


async def wait(task: ShimTask) -> Exit:
    """``task.wait()``; a shim that dies meanwhile is one clear error naming the task."""
    from runtime_v2 import ttrpc

    try:
        return await task.wait()
    except ttrpc.Closed:
        raise _shim_died(task) from None


def teardown_error(container_id: str, exc: OSError) -> errdefs.Unavailable:
    """A file of the task that could not be removed (or read) while deleting it, as one
    sentence naming the task and the file."""
    what = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    return errdefs.Unavailable(f'cannot delete task "{container_id}": {what}')
