"""A connected shim and the task it runs (containerd's ``shim.go`` and ``bridge.go``).

:class:`Shim` is one shim process we hold a ttrpc connection to (containerd's ``ShimInstance``);
:class:`ShimTask` is the task API over it (containerd's ``shimTask``, a
:class:`runtime_v2.runtime.Task`); its exec processes are in :mod:`runtime_v2.process`.

The task service comes in two versions, ``containerd.task.v3.Task`` (shims of containerd 2.x)
and ``containerd.task.v2.Task`` (1.6/1.7 shims, such as Debian's). Their messages are
wire-identical, so this module always builds the v3 message classes and only the service name
changes with :attr:`Shim.version` (that is all containerd's ``ttrpcV2Bridge`` does).

Every call carries the task's namespace in the ttrpc metadata. This is where the runtime talks
ttrpc, so this is where ttrpc's status errors become :mod:`runtime_v2.errdefs` classes
(:func:`connect`, :meth:`Shim.call`), as containerd's ``errgrpc.ToNative`` does after every shim
call; a dropped connection is :class:`ConnectionClosed`, both ttrpc's ``Closed`` (containerd
checks ``ttrpc.ErrClosed``) and :class:`errdefs.Unavailable`, and becomes
:class:`errdefs.NotFound` for ``state`` as in containerd.

Differences from containerd, on purpose:

- The task API version the shim announced is tried first with ``Connect`` (which doubles as a
  liveness check); a shim answering NotImplemented there is spoken to over the other version
  it serves (containerd downgrades v3 to v2 only when Create says NotImplemented, and never
  upgrades a shim that announced too little).
- Once the shim has deleted the task, a bundle that cannot be removed is logged and the Exit
  returned, as in containerd; the task is then forgotten, and ``tasks rm --force`` (or the
  next create of the id, under its lock) finishes removing the bundle.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from plugins import identifiers
from registry.log import get_logger
from runtime_v2 import errdefs
from runtime_v2 import ttrpc as _ttrpc
from runtime_v2.api import mount_pb2
from runtime_v2.api import task_v3_pb2 as task_pb2
from runtime_v2.crashpoint import crashpoint
from runtime_v2.process import Process, exit_from, state_from
from runtime_v2.runtime import Exit
from runtime_v2.start_response import CURRENT_SHIM_VERSION

if TYPE_CHECKING:
    from runtime_v2.binary import ShimBinary
    from runtime_v2.bundle import Bundle
    from runtime_v2.process_state import ProcessInfo, State
    from runtime_v2.runtime import Task

__all__ = [
    "CALL_TIMEOUT",
    "CURRENT_SHIM_VERSION",
    "DELETING_MARKER",
    "SHUTDOWN_TIMEOUT",
    "TASK_SERVICE_V2",
    "TASK_SERVICE_V3",
    "ConnectionClosed",
    "Shim",
    "ShimTask",
    "connect",
    "is_being_deleted",
]

log = get_logger(__name__)

M = TypeVar("M", bound=Message)

TASK_SERVICE_V2 = "containerd.task.v2.Task"
TASK_SERVICE_V3 = "containerd.task.v3.Task"
#: containerd's ``io.containerd.timeout.shim.shutdown`` default (``[timeouts]`` sets it).
SHUTDOWN_TIMEOUT = 3.0
#: The deadline of every shim call but ``Wait`` (which lasts as long as the process): a shim that
#: does not answer (stopped, wedged) fails the call with DeadlineExceeded instead of hanging.
CALL_TIMEOUT = 30.0


class ConnectionClosed(_ttrpc.Closed, errdefs.Unavailable):
    """The connection to a shim is gone: ttrpc's :class:`~runtime_v2.ttrpc.Closed` (containerd
    checks ``ttrpc.ErrClosed`` by name) that is also the errdefs class it maps to, Unavailable."""


async def connect(address: str, *, timeout: float) -> _ttrpc.Client:
    """Dial the shim at ttrpc ``address``; failures are errdefs classes (:func:`errdefs.from_grpc`:
    no such socket is NotFound, nobody listening Unavailable, ``timeout`` DeadlineExceeded)."""
    try:
        return await _ttrpc.Client.connect(address, timeout=timeout)
    except _ttrpc.StatusError as exc:
        raise errdefs.from_grpc(exc) from exc


class Shim:
    """One running shim we are connected to (containerd's ``shim`` / ``ShimInstance``).

    ``address`` is the shim's ttrpc address as it printed it (``unix:///run/containerd/s/<hex>``),
    ``protocol`` its protocol ("ttrpc") and ``version`` the task API version spoken on it (3 or 2;
    :meth:`downgrade` lowers it). Built by the shim manager; embedders receive :class:`ShimTask`.
    """

    def __init__(
        self,
        bundle: Bundle,
        client: _ttrpc.Client,
        *,
        address: str,
        protocol: str = "ttrpc",
        version: int = 2,
    ) -> None:
        self.bundle = bundle
        self.client = client
        self.address = address
        self.protocol = protocol
        self.version = version
        #: Pid of the shim daemon, learnt from Connect (0 until then).
        self.shim_pid = 0
        #: True once the task was deleted and the shim asked to shut down: the connection
        #: closing afterwards is expected and needs no dead-shim cleanup.
        self.orderly_shutdown = False
        #: Pid of the task's init process (from Create, Start or Connect; 0 when unknown).
        self.task_pid = 0
        #: The shim binary that started this shim (runs its ``delete``), when known.
        self.binary: ShimBinary | None = None
        #: The Shutdown call's deadline; the shim manager sets the config's ``[timeouts]`` one.
        self.shutdown_timeout = SHUTDOWN_TIMEOUT
        #: The sandbox this task runs in ("" for none): its shim is the sandbox's, which
        #: outlives the task (containerd's sandboxed tasks).
        self.sandbox_id = ""
        #: Awaited with the method's name before every call; the shim manager's watch sets it
        #: (it serves the events address before a call that makes the shim publish events).
        self.before_call: Callable[[str], Awaitable[object]] | None = None

    @property
    def id(self) -> str:
        """The task id."""
        return self.bundle.id

    @property
    def namespace(self) -> str:
        """The task's namespace."""
        return self.bundle.namespace

    @property
    def endpoint(self) -> str:
        """``<protocol>+<address>``, as containerd's ``Endpoint()`` reports it."""
        return f"{self.protocol}+{self.address}"

    @property
    def service(self) -> str:
        """The ttrpc task service name for :attr:`version`."""
        return TASK_SERVICE_V3 if self.version >= 3 else TASK_SERVICE_V2

    def downgrade(self) -> None:
        """Speak the previous task API version (3 -> 2); raise NotImplemented below 3."""
        if self.version < CURRENT_SHIM_VERSION:
            raise errdefs.NotImplemented(
                f"shim of task {self.id} speaks task API v{self.version}; "
                "no older version to fall back to"
            )
        self.version -= 1

    async def call(
        self,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        timeout: float | None = None,
    ) -> M:
        """Call ``method`` of the task service with the task's namespace in the metadata.

        Every call but ``Wait`` has a deadline (``timeout``, else :data:`CALL_TIMEOUT`).
        """
        if timeout is None and method != "Wait":
            timeout = CALL_TIMEOUT
        if self.before_call is not None:
            await self.before_call(method)
        try:
            return await self.client.call(
                self.service,
                method,
                request,
                response_type,
                namespace=self.namespace,
                timeout=timeout,
            )
        except _ttrpc.Closed as exc:
            raise ConnectionClosed(exc.message) from exc
        except _ttrpc.StatusError as exc:
            raise errdefs.from_grpc(exc) from exc

    async def negotiate(
        self, *, version: int = CURRENT_SHIM_VERSION, timeout: float | None = None
    ) -> task_pb2.ConnectResponse:
        """Find the task API version the shim serves: ``version`` (the one it announced)
        first, then the other one.

        Sends ``Connect{id}`` (which doubles as a liveness check) and records the shim pid.
        containerd trusts the announced version and only downgrades v3 to v2 when Create says
        NotImplemented; a shim that answers NotImplemented for the announced service is spoken
        to over the other version it serves instead of failing (v3 -> v2 as containerd, and
        v2 -> v3 for a shim that announced too little).
        """
        request = task_pb2.ConnectRequest(id=self.id)
        candidates = [version, *(v for v in (CURRENT_SHIM_VERSION, 2) if v != version)]
        refusals: list[str] = []
        for candidate in candidates:
            self.version = candidate
            try:
                response = await self.call(
                    "Connect", request, task_pb2.ConnectResponse, timeout=timeout
                )
            except errdefs.NotImplemented as exc:
                refusals.append(str(exc))
                continue
            self.shim_pid = response.shim_pid
            self.task_pid = response.task_pid
            return response
        self.version = version
        raise errdefs.NotImplemented(
            f"shim of task {self.id} at {self.address} serves neither "
            f"{TASK_SERVICE_V3} nor {TASK_SERVICE_V2} ({'; '.join(refusals)}); it is not a "
            "containerd runtime v2 shim, or one too new for taskplane"
        )

    async def close(self) -> None:
        """Close the connection (the shim keeps running)."""
        await self.client.close()


#: Written into a bundle once its task is deleted, before the shim is shut down, so that other
#: processes sharing the state dir see the connection drop as a delete, not as a dead shim.
DELETING_MARKER = ".deleting"


def _mark_deleting(bundle: Bundle) -> None:
    try:
        fd = os.open(
            os.path.join(bundle.path, DELETING_MARKER),
            os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
            0o600,
        )
    except OSError:
        return
    os.close(fd)


def is_being_deleted(bundle: Bundle) -> bool:
    """Whether ``bundle``'s task was deleted (the bundle is gone or marked for removal)."""
    # The marker first: a bundle deleted (renamed away) between the two checks then still
    # counts as deleted, where checking the directory first would see neither.
    return os.path.exists(os.path.join(bundle.path, DELETING_MARKER)) or not os.path.isdir(
        bundle.path
    )


def _process_spec_any(spec: Mapping[str, Any] | any_pb2.Any | bytes) -> any_pb2.Any:
    if isinstance(spec, any_pb2.Any):
        return spec
    from runtime_v2 import typeurl  # only exec packs a spec: a listing needs none

    return typeurl.pack_json("Process", spec)


def _resources_any(resources: Mapping[str, Any] | any_pb2.Any | Message | None) -> any_pb2.Any:
    from runtime_v2 import typeurl

    if resources is None:
        return any_pb2.Any()
    if isinstance(resources, Message):
        return typeurl.pack(resources)
    return typeurl.pack_json("LinuxResources", resources)


class ShimTask:
    """A task running in a shim (containerd's ``shimTask``): the object embedders use.

    Get one from :meth:`runtime_v2.TaskManager.create` or ``get``. Example::

        task = await tasks.create("web", opts, namespace="default")
        await task.start()
        exit = await task.wait()
        await tasks.delete("web", namespace="default")
    """

    def __init__(self, shim: Shim) -> None:
        self.shim = shim

    def __repr__(self) -> str:
        return f"<ShimTask {self.namespace}/{self.id} v{self.shim.version} {self.shim.address}>"

    @property
    def id(self) -> str:
        """The task (container) id."""
        return self.shim.id

    @property
    def namespace(self) -> str:
        """The namespace the task lives in."""
        return self.shim.namespace

    @property
    def bundle(self) -> str:
        """The bundle path, ``STATE/<namespace>/<id>``."""
        return self.shim.bundle.path

    async def create(
        self,
        *,
        rootfs: tuple[mount_pb2.Mount, ...] = (),
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        terminal: bool = False,
        checkpoint: str = "",
        options: any_pb2.Any | None = None,
    ) -> int:
        """Send the Create RPC (used by the task manager); return the init pid.

        When a v3 shim answers NotImplemented, downgrade to v2 and retry once (containerd).
        """
        request = task_pb2.CreateTaskRequest(
            id=self.id,
            bundle=self.bundle,
            rootfs=list(rootfs),
            terminal=terminal,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            checkpoint=checkpoint,
        )
        if options is not None and options.type_url:
            request.options.CopyFrom(options)
        try:
            response = await self.shim.call("Create", request, task_pb2.CreateTaskResponse)
        except errdefs.NotImplemented:
            if self.shim.version < CURRENT_SHIM_VERSION:
                raise
            log.warning(
                "task %s/%s: shim rejected task API v3, retrying with v2", self.namespace, self.id
            )
            self.shim.downgrade()
            response = await self.shim.call("Create", request, task_pb2.CreateTaskResponse)
        self.shim.task_pid = response.pid
        return response.pid

    async def start(self) -> int:
        """Start the task's init process; return its pid."""
        response = await self.shim.call(
            "Start", task_pb2.StartRequest(id=self.id), task_pb2.StartResponse
        )
        self.shim.task_pid = response.pid
        crashpoint("start:started")
        return response.pid

    async def kill(self, signal: int, all: bool = False) -> None:
        """Send ``signal`` to the init process (``all``: to every process of the task)."""
        await self.shim.call(
            "Kill", task_pb2.KillRequest(id=self.id, signal=signal, all=all), empty_pb2.Empty
        )

    async def pid(self) -> int:
        """The init process's pid (Connect)."""
        response = await self.shim.call(
            "Connect", task_pb2.ConnectRequest(id=self.id), task_pb2.ConnectResponse
        )
        self.shim.task_pid = response.task_pid
        return response.task_pid

    async def wait(self) -> Exit:
        """Wait for the init process to exit and return how it ended."""
        pid = self.shim.task_pid or await self.pid()
        response = await self.shim.call(
            "Wait", task_pb2.WaitRequest(id=self.id), task_pb2.WaitResponse
        )
        return exit_from(pid, response.exit_status, response.exited_at)

    async def state(self) -> State:
        """The init process's state; a shim whose connection is gone gives NotFound."""
        try:
            response = await self.shim.call(
                "State", task_pb2.StateRequest(id=self.id), task_pb2.StateResponse
            )
        except _ttrpc.Closed:
            raise errdefs.NotFound(
                f'task "{self.id}" in namespace "{self.namespace}": shim connection closed'
            ) from None
        return state_from(response)

    async def pids(self) -> list[ProcessInfo]:
        """Every process of the task."""
        from runtime_v2.process_state import ProcessInfo

        response = await self.shim.call(
            "Pids", task_pb2.PidsRequest(id=self.id), task_pb2.PidsResponse
        )
        return [
            ProcessInfo(pid=p.pid, info=p.info if p.HasField("info") else None)
            for p in response.processes
        ]

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
        """Add an exec process (an OCI ``process`` object); start it with :meth:`Process.start`."""
        identifiers.validate_exec_id(exec_id)
        request = task_pb2.ExecProcessRequest(
            id=self.id,
            exec_id=exec_id,
            terminal=terminal,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            spec=_process_spec_any(process_spec),
        )
        try:
            await self.shim.call("Exec", request, empty_pb2.Empty)
        except errdefs.AlreadyExists:
            # The runc shim says only "id <exec id>"; the caller knows the task.
            raise errdefs.AlreadyExists(f'exec "{exec_id}" already exists') from None
        return Process(self, exec_id)

    def process(self, exec_id: str) -> Process:
        """A handle on an existing exec process (no RPC)."""
        identifiers.validate_exec_id(exec_id)
        return Process(self, exec_id)

    async def resize_pty(self, width: int, height: int) -> None:
        """Resize the init process's terminal."""
        await self.shim.call(
            "ResizePty",
            task_pb2.ResizePtyRequest(id=self.id, width=width, height=height),
            empty_pb2.Empty,
        )

    async def close_io(self) -> None:
        """Close the init process's stdin."""
        await self.shim.call(
            "CloseIO", task_pb2.CloseIORequest(id=self.id, stdin=True), empty_pb2.Empty
        )

    async def update(
        self,
        resources: Mapping[str, Any] | any_pb2.Any | Message | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Update the task's resources (an OCI ``LinuxResources`` object) and annotations."""
        request = task_pb2.UpdateTaskRequest(id=self.id, annotations=dict(annotations or {}))
        packed = _resources_any(resources)
        if packed.type_url:
            request.resources.CopyFrom(packed)
        await self.shim.call("Update", request, empty_pb2.Empty)

    async def stats(self) -> any_pb2.Any:
        """The runtime's statistics for the task (an Any, e.g. cgroup metrics)."""
        response = await self.shim.call(
            "Stats", task_pb2.StatsRequest(id=self.id), task_pb2.StatsResponse
        )
        return response.stats

    async def pause(self) -> None:
        """Freeze every process of the task."""
        await self.shim.call("Pause", task_pb2.PauseRequest(id=self.id), empty_pb2.Empty)

    async def resume(self) -> None:
        """Thaw a paused task."""
        await self.shim.call("Resume", task_pb2.ResumeRequest(id=self.id), empty_pb2.Empty)

    async def checkpoint(self, path: str, options: Message | any_pb2.Any | None = None) -> None:
        """Checkpoint the task into ``path`` (NotImplemented when the runtime cannot)."""
        request = task_pb2.CheckpointTaskRequest(id=self.id, path=path)
        if options is not None:
            from runtime_v2 import typeurl

            request.options.CopyFrom(typeurl.pack(options))
        await self.shim.call("Checkpoint", request, empty_pb2.Empty)

    async def shutdown(self) -> None:
        """Ask the shim to exit (it refuses while it still has tasks); a closed shim is fine."""
        try:
            await self.shim.call(
                "Shutdown",
                task_pb2.ShutdownRequest(id=self.id),
                empty_pb2.Empty,
                timeout=self.shim.shutdown_timeout,
            )
        except _ttrpc.Closed:
            pass

    async def delete(self, remove_task: Callable[[], object] = lambda: None) -> Exit:
        """Delete the task in the shim, shut the shim down and remove the bundle.

        containerd's ``shimTask.delete``: a Delete RPC error other than NotFound is returned
        without touching the shim, so the delete can be retried. A closed connection (the shim
        died) raises :class:`runtime_v2.ttrpc.Closed` and leaves the bundle: the dead-shim
        cleanup needs it to run the shim binary's ``delete``, which kills the container. After
        a successful Delete ``remove_task`` runs, so the connection closing is not mistaken for
        a dead shim. A Delete answered NotFound (an earlier delete was interrupted) still shuts
        the shim down and removes the bundle, then raises it; ``remove_task`` is left to the
        caller, which keeps the task registered until it has published what containerd's
        dead-shim cleanup publishes. Once the shim has deleted the task, a bundle that cannot be
        removed is logged and the Exit returned, as containerd does. Cancelling the caller does
        not interrupt the teardown once it has begun.
        """
        rpc_error: errdefs.NotFound | None = None
        response: task_pb2.DeleteResponse | None = None
        try:
            response = await self.shim.call(
                "Delete", task_pb2.DeleteRequest(id=self.id), task_pb2.DeleteResponse
            )
        except errdefs.NotFound as exc:
            rpc_error = exc
        # Either way the connection closing from here on is expected, not a dead shim.
        self.shim.orderly_shutdown = True
        if response is not None:
            remove_task()
            _mark_deleting(self.shim.bundle)
            crashpoint("delete:deleted")
        # From here on the shim is going away: finish even if the caller is cancelled.
        await asyncio.shield(self._teardown())
        if rpc_error is not None:
            raise rpc_error
        assert response is not None
        return exit_from(response.pid, response.exit_status, response.exited_at)

    async def _teardown(self) -> None:
        # Stopping the shim and removing the bundle are independent: do both at once.
        async def stop_shim() -> None:
            sandbox = self.shim.sandbox_id
            if sandbox and os.path.isdir(os.path.join(os.path.dirname(self.bundle), sandbox)):
                # The sandbox's shim: it goes with the sandbox (containerd). Once the sandbox
                # task is gone there is no one else to stop it: asked like any shim, it exits
                # after its last task.
                await self.shim.close()
                return
            try:
                await self.shutdown()
            except errdefs.ContainerdError as exc:
                log.warning(
                    "task %s/%s: failed to shut the shim down: %s", self.namespace, self.id, exc
                )
            await self.shim.close()

        async def remove_bundle() -> None:
            try:
                await asyncio.to_thread(self.shim.bundle.delete)
            except OSError as exc:
                # containerd logs it and returns the Exit: the task is gone from the shim, and
                # `tasks rm --force` (or the next create of the id) finishes the removal.
                log.warning(
                    "task %s/%s: failed to remove the bundle: %s", self.namespace, self.id, exc
                )

        await asyncio.gather(stop_shim(), remove_bundle())


if TYPE_CHECKING:

    def _is_a_task(task: ShimTask) -> Task:
        return task  # mypy checks that ShimTask implements the runtime's Task
