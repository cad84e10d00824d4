"""An exec process inside a task (containerd's ``core/runtime/v2/process.go``).

:class:`Process` is a :class:`runtime_v2.runtime.Process` over the task's shim: every call is the
task service's, naming the exec id. :func:`exit_from` and :func:`state_from` turn the task
service's answers into the runtime's values; Go's zero time (``-62135596800`` s) in a timestamp
becomes ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf import empty_pb2, timestamp_pb2

from runtime_v2 import errdefs
from runtime_v2 import ttrpc as _ttrpc
from runtime_v2.api import task_types_pb2
from runtime_v2.api import task_v3_pb2 as task_pb2
from runtime_v2.runtime import Exit, Status, from_timestamp

if TYPE_CHECKING:
    from runtime_v2.process_state import State
    from runtime_v2.runtime import Process as _RuntimeProcess
    from runtime_v2.shim import ShimTask

__all__ = ["Process", "exit_from", "state_from"]

_STATUS_FROM_PROTO = {
    task_types_pb2.CREATED: Status.CREATED,
    task_types_pb2.RUNNING: Status.RUNNING,
    task_types_pb2.STOPPED: Status.STOPPED,
    task_types_pb2.PAUSED: Status.PAUSED,
    task_types_pb2.PAUSING: Status.PAUSING,
}


def exit_from(pid: int, status: int, ts: timestamp_pb2.Timestamp) -> Exit:
    """The :class:`Exit` of a Wait or Delete answer for ``pid``."""
    return Exit(pid=pid, status=status, timestamp=from_timestamp(ts))


def state_from(response: task_pb2.StateResponse) -> State:
    """The :class:`State` of a State answer (an unknown status is UNKNOWN)."""
    from runtime_v2.process_state import State

    return State(
        id=response.id,
        exec_id=response.exec_id,
        bundle=response.bundle,
        pid=response.pid,
        status=_STATUS_FROM_PROTO.get(response.status, Status.UNKNOWN),
        stdin=response.stdin,
        stdout=response.stdout,
        stderr=response.stderr,
        terminal=response.terminal,
        exit_status=response.exit_status,
        exited_at=from_timestamp(response.exited_at),
    )


class Process:
    """An exec process inside a task (containerd's ``process``); every call names the exec id."""

    def __init__(self, task: ShimTask, exec_id: str) -> None:
        self.task = task
        self.id = exec_id
        #: The pid from :meth:`start` (0 until started).
        self.pid = 0

    def __repr__(self) -> str:
        return f"<Process {self.task.namespace}/{self.task.id}/{self.id}>"

    async def start(self) -> int:
        """Start the exec process; return its pid."""
        response = await self.task.shim.call(
            "Start", task_pb2.StartRequest(id=self.task.id, exec_id=self.id), task_pb2.StartResponse
        )
        self.pid = response.pid
        return response.pid

    async def kill(self, signal: int, all: bool = False) -> None:
        """Signal the exec process (``all`` is ignored for execs, as in containerd)."""
        del all
        await self.task.shim.call(
            "Kill",
            task_pb2.KillRequest(id=self.task.id, exec_id=self.id, signal=signal),
            empty_pb2.Empty,
        )

    async def wait(self) -> Exit:
        """Wait for the exec process to exit."""
        response = await self.task.shim.call(
            "Wait", task_pb2.WaitRequest(id=self.task.id, exec_id=self.id), task_pb2.WaitResponse
        )
        return exit_from(self.pid, response.exit_status, response.exited_at)

    async def state(self) -> State:
        """The exec process's state; a closed shim connection gives NotFound."""
        try:
            response = await self.task.shim.call(
                "State",
                task_pb2.StateRequest(id=self.task.id, exec_id=self.id),
                task_pb2.StateResponse,
            )
        except _ttrpc.Closed:
            raise errdefs.NotFound(
                f'exec "{self.id}" of task "{self.task.id}": shim connection closed'
            ) from None
        return state_from(response)

    async def resize_pty(self, width: int, height: int) -> None:
        """Resize the exec process's terminal."""
        await self.task.shim.call(
            "ResizePty",
            task_pb2.ResizePtyRequest(id=self.task.id, exec_id=self.id, width=width, height=height),
            empty_pb2.Empty,
        )

    async def close_io(self) -> None:
        """Close the exec process's stdin."""
        await self.task.shim.call(
            "CloseIO",
            task_pb2.CloseIORequest(id=self.task.id, exec_id=self.id, stdin=True),
            empty_pb2.Empty,
        )

    async def delete(self) -> Exit:
        """Delete the exited exec process and return how it ended."""
        response = await self.task.shim.call(
            "Delete",
            task_pb2.DeleteRequest(id=self.task.id, exec_id=self.id),
            task_pb2.DeleteResponse,
        )
        return exit_from(response.pid, response.exit_status, response.exited_at)


if TYPE_CHECKING:

    def _is_a_process(process: Process) -> _RuntimeProcess:
        return process  # mypy checks that Process implements the runtime's Process
