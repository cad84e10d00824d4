"""What a runtime reports about a task's processes: a process's :class:`State` (containerd's
``runtime.State``) and one process of a task, :class:`ProcessInfo` (``Pids``).

Part of the runtime contract and re-exported by :mod:`runtime_v2.runtime`
(``from runtime_v2.runtime import State`` works as before); defined here so that building these
classes is paid by a process that asks a task for its state or its processes (``tasks ls``,
``tasks ps``), not by every process that imports the contract (``taskplane run`` asks neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import datetime as _dt

    from google.protobuf import any_pb2

    from runtime_v2.runtime import Status

__all__ = ["ProcessInfo", "State"]


@attrs.frozen
class State:
    """A process's state as the runtime reports it (containerd's ``runtime.State``)."""

    id: str
    exec_id: str
    bundle: str
    pid: int
    status: Status
    stdin: str
    stdout: str
    stderr: str
    terminal: bool
    exit_status: int
    exited_at: _dt.datetime | None


@attrs.frozen
class ProcessInfo:
    """One process of a task (``Pids``): its host pid and the runtime's extra info, if any."""

    pid: int
    info: any_pb2.Any | None = None
