"""The runtime contract: what a task and its processes are, whatever runs them.

containerd keeps it in ``core/runtime/task.go`` and ``core/runtime/runtime.go``: the
:class:`Task` and :class:`Process` interfaces the task manager and its callers program against,
the options a task is created with (:class:`CreateOpts`) and the values they exchange
(:class:`Exit`, :class:`State`, :class:`Status`, :class:`ProcessInfo`). Here they are
:class:`typing.Protocol` classes and frozen attrs values; :class:`runtime_v2.shim.ShimTask` and
:class:`runtime_v2.process.Process` implement them over a shim's ttrpc task service.

Example::

    async def stop(task: Task) -> Exit:
        await task.kill(signal.SIGTERM)
        return await task.wait()

The module loads no protobuf (building a :class:`CreateOpts` does), so anything may import it
cheaply; :class:`State` and :class:`ProcessInfo` are defined in :mod:`runtime_v2.process_state`
and built on first use.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from registry._lazy import export_lazily

if TYPE_CHECKING:
    from google.protobuf import any_pb2, timestamp_pb2
    from google.protobuf.message import Message

    from runtime_v2.api import mount_pb2
    from runtime_v2.options import OptionsInput
    from runtime_v2.process_state import ProcessInfo, State

__all__ = [
    "DEFAULT_RUNTIME",
    "CreateOpts",
    "Exit",
    "Process",
    "ProcessInfo",
    "State",
    "Status",
    "Task",
    "from_timestamp",
]


# State and ProcessInfo live in runtime_v2.process_state, built on first use: a run asks no
# process for its state.
__getattr__ = export_lazily(
    __name__, {"ProcessInfo": "runtime_v2.process_state", "State": "runtime_v2.process_state"}
)


#: The runtime used when :class:`CreateOpts` names none.
DEFAULT_RUNTIME = "io.containerd.runc.v2"

#: Go's zero ``time.Time`` as a protobuf Timestamp (0001-01-01T00:00:00Z).
_GO_ZERO_SECONDS = -62135596800
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def from_timestamp(ts: timestamp_pb2.Timestamp | None) -> _dt.datetime | None:
    """Convert a protobuf Timestamp to an aware UTC datetime; Go's zero time and unset give None."""
    if ts is None or ts.seconds == _GO_ZERO_SECONDS:
        return None
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return _EPOCH + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


class Status(enum.Enum):
    """A process status (containerd's ``runtime.Status``); UNKNOWN is the zero value."""

    UNKNOWN = "unknown"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    PAUSING = "pausing"


@attrs.frozen
class Exit:
    """How a process ended: its pid, exit status and time (None when the shim did not say)."""

    pid: int
    status: int
    timestamp: _dt.datetime | None


def _to_mount(m: mount_pb2.Mount | Mapping[str, Any]) -> mount_pb2.Mount:
    # Imported here, as in _spec_bytes: only building create options needs protobuf.
    from runtime_v2.api import mount_pb2

    if isinstance(m, mount_pb2.Mount):
        return m
    return mount_pb2.Mount(
        type=m.get("type", ""),
        source=m.get("source", ""),
        target=m.get("target", ""),
        options=list(m.get("options", ())),
    )


def _mounts(value: Iterable[mount_pb2.Mount | Mapping[str, Any]]) -> tuple[mount_pb2.Mount, ...]:
    return tuple(_to_mount(m) for m in value)


def _spec_bytes(value: bytes | str | Mapping[str, Any] | any_pb2.Any | None) -> bytes | None:
    if value is None:
        return None
    from google.protobuf import any_pb2

    if isinstance(value, any_pb2.Any):
        return bytes(value.value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return json.dumps(value, separators=(",", ":")).encode()


@attrs.frozen
class CreateOpts:
    """What :meth:`TaskManager.create` needs (containerd's ``runtime.CreateOpts``).

    ``spec`` is the OCI runtime spec (JSON bytes; a dict or an Any holding it are converted).
    ``rootfs`` are mounts for the shim to mount at ``<bundle>/rootfs`` (empty when the spec's
    ``root.path`` points at a ready directory). ``stdin``/``stdout``/``stderr`` are what the shim
    connects the process to: FIFO paths, ``file:///path`` or ``binary:///path`` URIs, or "".
    ``runtime`` is a runtime name or an absolute path to a shim binary; ``runtime_options`` and
    ``task_options`` are protobuf messages or Anys (e.g. ``containerd.runc.v1.Options``) merged
    into one effective value. ``sandbox_id`` names a task of the same namespace whose shim runs
    this task too (containerd's sandboxed tasks): no shim is started, the bundle records the
    sandbox in its ``sandbox`` file, and deleting the task leaves that shim running.
    """

    spec: bytes | None = attrs.field(default=None, converter=_spec_bytes)
    rootfs: tuple[mount_pb2.Mount, ...] = attrs.field(default=(), converter=_mounts)
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    runtime: str = DEFAULT_RUNTIME
    runtime_options: OptionsInput = None
    task_options: OptionsInput = None
    checkpoint: str = ""
    sandbox_id: str = ""


@runtime_checkable
class Process(Protocol):
    """A process of a task: its init process or an exec (containerd's ``runtime.Process``)."""

    @property
    def id(self) -> str:
        """The process id: the exec id (the task id for the init process)."""
        ...

    async def start(self) -> int:
        """Start the process; return its pid."""
        ...

    async def kill(self, signal: int, all: bool = False) -> None:
        """Send ``signal`` to the process (``all``: to every process of the task)."""
        ...

    async def wait(self) -> Exit:
        """Wait for the process to exit and return how it ended."""
        ...

    async def state(self) -> State:
        """The process's state."""
        ...

    async def resize_pty(self, width: int, height: int) -> None:
        """Resize the process's terminal."""
        ...

    async def close_io(self) -> None:
        """Close the process's stdin."""
        ...

    async def delete(self) -> Exit:
        """Delete the exited process and return how it ended."""
        ...


@runtime_checkable
class Task(Process, Protocol):
    """A task: a container's init process and what acts on the whole container (containerd's
    ``runtime.Task``)."""

    @property
    def namespace(self) -> str:
        """The namespace the task lives in."""
        ...

    @property
    def bundle(self) -> str:
        """The task's bundle directory."""
        ...

    async def pid(self) -> int:
        """The init process's pid."""
        ...

    async def pids(self) -> list[ProcessInfo]:
        """Every process of the task."""
        ...

    async def pause(self) -> None:
        """Freeze every process of the task."""
        ...

    async def resume(self) -> None:
        """Thaw a paused task."""
        ...

    async def stats(self) -> any_pb2.Any:
        """The runtime's statistics for the task (e.g. cgroup metrics)."""
        ...

    async def update(
        self,
        resources: Mapping[str, Any] | any_pb2.Any | Message | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Update the task's resources (an OCI ``LinuxResources`` object) and annotations."""
        ...

    async def checkpoint(self, path: str, options: Message | any_pb2.Any | None = None) -> None:
        """Checkpoint the task into ``path``."""
        ...

    async def exec(
        self,
        exec_id: str,
        process_spec: Mapping[str, Any] | any_pb2.Any | bytes,
        *,
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        terminal: bool = False,
    ) -> Process:
        """Add an exec process (an OCI ``process`` object); start it with its ``start``."""
        ...

    def process(self, exec_id: str) -> Process:
        """A handle on an existing exec process."""
        ...
