"""An in-process fake shim: the task service over real ttrpc on a unix socket.

It serves ``containerd.task.v2.Task`` and/or ``containerd.task.v3.Task`` with a tiny in-memory
task model, records every call (service, method, namespace, request) and can be told to fail a
method with an errdefs error. Used by the runtime_v2 unit tests instead of a real shim.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from google.protobuf import empty_pb2

from runtime_v2 import errdefs, ttrpc
from runtime_v2.api import task_types_pb2, task_v2_pb2, task_v3_pb2
from runtime_v2.api import task_v3_pb2 as t

GO_ZERO = -62135596800


class FakeTask:
    """One task (or exec) in the fake shim."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status = task_types_pb2.CREATED
        self.exit_status = 0
        self.exited = asyncio.Event()


class FakeShim:
    """A fake shim serving the task API ``versions`` at ``path``."""

    def __init__(self, path: str, *, versions: tuple[int, ...] = (3,)) -> None:
        self.path = path
        self.versions = versions
        self.server = ttrpc.Server(check_peer=None)
        self.tasks: dict[tuple[str, str], FakeTask] = {}
        self.calls: list[tuple[str, str, str | None, Any]] = []
        self.fail: dict[str, BaseException] = {}
        self.hang: set[str] = set()
        #: Set once a call of a method in :attr:`hang` has arrived and hangs.
        self.hanging = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self._next_pid = 1000
        handlers = {name: self._handler(name) for name in _METHODS}
        for version in versions:
            module = task_v3_pb2 if version == 3 else task_v2_pb2
            self.server.register(module.DESCRIPTOR.services_by_name["Task"], handlers)

    @property
    def address(self) -> str:
        """``unix://<path>``."""
        return "unix://" + self.path

    async def start(self) -> FakeShim:
        """Listen."""
        await self.server.serve(self.path)
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (the shim 'dies')."""
        await self.server.close()

    def methods(self) -> list[str]:
        """The methods called so far, in order."""
        return [method for _, method, _, _ in self.calls]

    def _handler(self, name: str) -> Any:
        impl = getattr(self, "_" + name)

        async def handle(request: Any, ctx: ttrpc.CallContext) -> Any:
            self.calls.append((ctx.service, name, ctx.namespace, request))
            if name in self.hang:
                self.hanging.set()
                await asyncio.Event().wait()
            if name in self.fail:
                raise self.fail[name]
            return await impl(request, ctx.namespace or "")

        return errdefs.grpc_handler(handle)  # a shim answers errdefs errors with their status

    def _task(self, namespace: str, request: Any) -> FakeTask:
        key = (namespace, request.id + "/" + getattr(request, "exec_id", ""))
        task = self.tasks.get(key)
        if task is None:
            raise errdefs.NotFound(f"task {request.id}: not found")
        return task

    def _new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    async def _Create(self, r: t.CreateTaskRequest, ns: str) -> t.CreateTaskResponse:
        key = (ns, r.id + "/")
        if key in self.tasks:
            raise errdefs.AlreadyExists(f"task {r.id}")
        self.tasks[key] = FakeTask(self._new_pid())
        return t.CreateTaskResponse(pid=self.tasks[key].pid)

    async def _Start(self, r: t.StartRequest, ns: str) -> t.StartResponse:
        task = self._task(ns, r)
        task.status = task_types_pb2.RUNNING
        return t.StartResponse(pid=task.pid)

    async def _State(self, r: t.StateRequest, ns: str) -> t.StateResponse:
        task = self._task(ns, r)
        response = t.StateResponse(
            id=r.id,
            exec_id=r.exec_id,
            pid=task.pid,
            status=task.status,
            exit_status=task.exit_status,
        )
        if task.exited.is_set():
            response.exited_at.FromSeconds(1_700_000_000)
        else:
            response.exited_at.seconds = GO_ZERO
        return response

    async def _Kill(self, r: t.KillRequest, ns: str) -> empty_pb2.Empty:
        task = self._task(ns, r)
        task.status = task_types_pb2.STOPPED
        task.exit_status = 128 + r.signal
        task.exited.set()
        return empty_pb2.Empty()

    async def _Wait(self, r: t.WaitRequest, ns: str) -> t.WaitResponse:
        task = self._task(ns, r)
        await task.exited.wait()
        response = t.WaitResponse(exit_status=task.exit_status)
        response.exited_at.FromSeconds(1_700_000_000)
        return response

    async def _Delete(self, r: t.DeleteRequest, ns: str) -> t.DeleteResponse:
        task = self._task(ns, r)
        if task.status == task_types_pb2.RUNNING:
            raise errdefs.FailedPrecondition(f"task {r.id} is running")
        del self.tasks[(ns, r.id + "/" + r.exec_id)]
        response = t.DeleteResponse(pid=task.pid, exit_status=task.exit_status)
        response.exited_at.FromSeconds(1_700_000_000)
        return response

    async def _Pids(self, r: t.PidsRequest, ns: str) -> t.PidsResponse:
        task = self._task(ns, r)
        return t.PidsResponse(processes=[task_types_pb2.ProcessInfo(pid=task.pid)])

    async def _Exec(self, r: t.ExecProcessRequest, ns: str) -> empty_pb2.Empty:
        self._task(ns, t.StateRequest(id=r.id))
        self.tasks[(ns, f"{r.id}/{r.exec_id}")] = FakeTask(self._new_pid())
        return empty_pb2.Empty()

    async def _Connect(self, r: t.ConnectRequest, ns: str) -> t.ConnectResponse:
        task = self.tasks.get((ns, r.id + "/"))
        return t.ConnectResponse(shim_pid=os.getpid(), task_pid=task.pid if task else 0)

    async def _Shutdown(self, r: t.ShutdownRequest, ns: str) -> empty_pb2.Empty:
        self.shutdown_requested.set()
        if not self.tasks:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        return empty_pb2.Empty()

    async def _Empty(self, r: Any, ns: str) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async def _Stats(self, r: t.StatsRequest, ns: str) -> t.StatsResponse:
        self._task(ns, r)
        response = t.StatsResponse()
        response.stats.type_url = "fake.Stats"
        return response

    _Pause = _Resume = _ResizePty = _CloseIO = _Update = _Empty

    async def _Checkpoint(self, r: Any, ns: str) -> empty_pb2.Empty:
        raise errdefs.NotImplemented("checkpoint is not supported by the fake shim")


_METHODS = (
    "State",
    "Create",
    "Start",
    "Delete",
    "Pids",
    "Pause",
    "Resume",
    "Checkpoint",
    "Kill",
    "Exec",
    "ResizePty",
    "CloseIO",
    "Update",
    "Wait",
    "Stats",
    "Connect",
    "Shutdown",
)
