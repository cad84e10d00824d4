"""Containers and their tasks on a booted host: containerd's client, in miniature.

A container is a metadata record (id, runtime, runtime options, OCI spec) in the metadata
plugin's store; its task is the running thing, owned by the runtime v2 task manager. The shim
manager needs the record to reattach to a task's shim after a restart, so both are created
together and removed together. :class:`Client` does that for the command line and embedders::

    async with await taskplane.boot_async(root=..., state=...) as host:
        client = Client(host, namespace="default")
        result = await client.run("hello", oci.default_spec("hello", rootfs=..., args=[...]))
        print(result.exit_status, result.stdout)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as _signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from google.protobuf import any_pb2
from google.protobuf.message import Message

from plugins import errdefs
from plugins.types import METADATA_PLUGIN, RUNTIME_PLUGIN_V2, RUNTIME_RUNC_V2
from taskplane import DEFAULT_NAMESPACE
from taskplane.oci import spec_bytes
from taskplane.stdio import FifoPair, file_uri, make_io_dir, remove_io_dir

__all__ = [
    "DEFAULT_RUNTIME",
    "IO_DIR_NAME",
    "TASK_MANAGER_ID",
    "Client",
    "RunResult",
    "runc_options",
]

#: The id of the runtime v2 task manager plugin (other runtime v2 plugins may be installed).
TASK_MANAGER_ID = "task"
#: The runtime every container uses unless told otherwise.
DEFAULT_RUNTIME = RUNTIME_RUNC_V2
#: Directory under the state dir holding each task's FIFOs and detached log
#: (``<state>/taskplane.io/<namespace>/<id>/``).
IO_DIR_NAME = "taskplane.io"
#: How long ``delete(force=True)`` waits for a killed task to exit.
KILL_TIMEOUT = 10.0
#: How long to wait for the shim to finish copying output after the process exited.
DRAIN_TIMEOUT = 5.0

_ACTIVE = ("created", "running", "paused", "pausing")


@attrs.frozen
class RunResult:
    """What :meth:`Client.run` returns: the exit status and everything the process wrote."""

    exit_status: int
    stdout: bytes
    stderr: bytes


def runc_options(binary_name: str | None = None, **fields: Any) -> Message:
    """Return ``containerd.runc.v1.Options`` (e.g. ``binary_name`` = the runc to use)."""
    from runtime_v2.api import runc_options_pb2

    if binary_name:
        fields["binary_name"] = binary_name
    return runc_options_pb2.Options(**fields)


def _pack(options: Message | any_pb2.Any | None) -> any_pb2.Any | None:
    if options is None:
        return None
    from runtime_v2 import typeurl

    return typeurl.pack(options)


def _single_instance(host: Any, plugin_type: str) -> Any:
    """The instance of the one loaded plugin of ``plugin_type`` on ``host``."""
    found = [p for p in host.plugins.by_type(plugin_type).values() if p.loaded]
    if not found:
        raise errdefs.NotFound(
            f"no loaded plugin of type {plugin_type} (see 'taskplane plugins ls --detailed')"
        )
    return found[0].instance


class Client:
    """Create, find and delete containers with their tasks in one namespace of a booted Host."""

    def __init__(self, host: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
        from runtime_v2 import identifiers

        identifiers.validate_namespace(namespace)
        self.host = host
        self.namespace = namespace

    @property
    def task_manager(self) -> Any:
        """The runtime v2 task manager (``io.containerd.runtime.v2.task``)."""
        return self.host.get(RUNTIME_PLUGIN_V2, TASK_MANAGER_ID)

    @property
    def store(self) -> Any:
        """The metadata plugin's container store."""
        return _single_instance(self.host, METADATA_PLUGIN)

    def io_dir(self, container_id: str) -> Path:
        """Where a task's FIFOs and detached log live: ``<state>/taskplane.io/<ns>/<id>``."""
        return Path(self.host.state) / IO_DIR_NAME / self.namespace / container_id

    def log_path(self, container_id: str) -> Path:
        """The log file of a detached task (stdout and stderr, appended by the shim)."""
        return self.io_dir(container_id) / "output.log"

    async def create_task(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str = DEFAULT_RUNTIME,
        runtime_options: Message | any_pb2.Any | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> Any:
        """Create the container record and its task (not started); return the task.

        If the task cannot be created the record is removed again, so a failed create leaves
        nothing behind. An id in use raises ``errdefs.AlreadyExists`` naming it.
        """
        from plugins.metadata import Container
        from runtime_v2 import identifiers
        from runtime_v2.task_manager import CreateOpts

        identifiers.validate_task_id(container_id)
        options_any = _pack(runtime_options)
        data = spec_bytes(spec)
        record = Container(
            id=container_id,
            runtime_name=runtime,
            runtime_options=options_any.SerializeToString() if options_any is not None else None,
            spec=data,
        )
        try:
            self.store.create(self.namespace, record)
        except errdefs.AlreadyExists:
            raise errdefs.AlreadyExists(
                f'container id "{container_id}" is already in use in namespace '
                f'"{self.namespace}" (remove it with: taskplane tasks rm {container_id})'
            ) from None
        try:
            return await self.task_manager.create(
                container_id,
                CreateOpts(
                    spec=data,
                    stdout=stdout,
                    stderr=stderr,
                    runtime=runtime,
                    runtime_options=options_any,
                ),
                namespace=self.namespace,
            )
        except BaseException:
            with contextlib.suppress(errdefs.NotFound):
                self.store.delete(self.namespace, container_id)
            raise

    async def task(self, container_id: str) -> Any:
        """The task of ``container_id``; ``errdefs.NotFound`` naming it when there is none."""
        try:
            return await self.task_manager.get(container_id, namespace=self.namespace)
        except errdefs.NotFound:
            raise errdefs.NotFound(
                f'no task "{container_id}" in namespace "{self.namespace}"'
            ) from None

    async def tasks(self) -> list[Any]:
        """Every task in this namespace."""
        return list(await self.task_manager.tasks(namespace=self.namespace))

    def container(self, container_id: str) -> Any:
        """The container record of ``container_id`` (``errdefs.NotFound`` naming it)."""
        try:
            return self.store.get(self.namespace, container_id)
        except errdefs.NotFound:
            raise errdefs.NotFound(
                f'no container "{container_id}" in namespace "{self.namespace}"'
            ) from None

    async def delete(self, container_id: str, *, force: bool = False) -> Any:
        """Delete the task (if any), the container record and the io directory.

        A task that has not exited raises ``errdefs.FailedPrecondition`` unless ``force``, which
        kills it (SIGKILL to every process) and waits for it first. Returns the task's Exit, or
        None when there was only a record. Nothing at all raises ``errdefs.NotFound``.
        """
        from runtime_v2 import identifiers

        identifiers.validate_task_id(container_id)
        exit_ = None
        found = False
        try:
            task = await self.task_manager.get(container_id, namespace=self.namespace)
        except errdefs.NotFound:
            task = None
        if task is not None:
            found = True
            status = await _status_of(task)
            if status in _ACTIVE:
                if not force:
                    raise errdefs.FailedPrecondition(
                        f'task "{container_id}" is {status}; stop it first '
                        f"(taskplane tasks kill {container_id}) or use --force"
                    )
                await _kill_and_wait(task)
            exit_ = await self.task_manager.delete(container_id, namespace=self.namespace)
        try:
            self.store.delete(self.namespace, container_id)
            found = True
        except errdefs.NotFound:
            pass
        remove_io_dir(self.io_dir(container_id))
        if not found:
            raise errdefs.NotFound(
                f'no container or task "{container_id}" in namespace "{self.namespace}"'
            )
        return exit_

    async def start_detached(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str = DEFAULT_RUNTIME,
        runtime_options: Message | any_pb2.Any | None = None,
    ) -> Any:
        """Create and start a task whose output the shim appends to :meth:`log_path`.

        The task outlives this process (``taskplane run -d``); nothing is left behind when it
        cannot be created or started. Returns the started task.
        """
        log = self.log_path(container_id)
        make_io_dir(log.parent)
        uri = file_uri(log)
        try:
            task = await self.create_task(
                container_id,
                spec,
                runtime=runtime,
                runtime_options=runtime_options,
                stdout=uri,
                stderr=uri,
            )
        except BaseException:
            remove_io_dir(log.parent)
            raise
        try:
            await task.start()
        except BaseException:
            with contextlib.suppress(errdefs.ContainerdError):
                await self.delete(container_id, force=True)
            raise
        return task

    async def run(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str = DEFAULT_RUNTIME,
        runtime_options: Message | any_pb2.Any | None = None,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
        remove: bool = True,
        started: Callable[[Any], object] | None = None,
    ) -> RunResult:
        """Run a container to completion: create, start, stream output, wait, (delete).

        Output is collected into the result; ``on_stdout``/``on_stderr`` additionally see each
        chunk as it arrives. ``started(task)`` is called once the task runs (the command line
        uses it to forward signals). With ``remove`` (the default) the task and record are
        deleted afterwards, whatever happened.
        """
        out: list[bytes] = []
        err: list[bytes] = []

        def sink(buf: list[bytes], cb: Callable[[bytes], object] | None) -> Callable[[bytes], None]:
            def write(chunk: bytes) -> None:
                buf.append(chunk)
                if cb is not None:
                    cb(chunk)

            return write

        io_dir = self.io_dir(container_id)
        fifos = FifoPair(io_dir).open()
        try:
            try:
                task = await self.create_task(
                    container_id,
                    spec,
                    runtime=runtime,
                    runtime_options=runtime_options,
                    stdout=fifos.stdout,
                    stderr=fifos.stderr,
                )
            except BaseException:
                fifos.close()
                remove_io_dir(io_dir)
                raise
            try:
                async with fifos.copying(
                    sink(out, on_stdout), sink(err, on_stderr), DRAIN_TIMEOUT
                ) as drain:
                    try:
                        await task.start()
                    except BaseException:
                        if not remove:  # a task that never started is no use to anyone
                            with contextlib.suppress(errdefs.ContainerdError):
                                await self.delete(container_id, force=True)
                        raise
                    fifos.release()
                    if started is not None:
                        started(task)
                    exit_ = await task.wait()
                    await drain()
            finally:
                if remove:
                    await self.delete(container_id, force=True)
        finally:
            fifos.close()
        return RunResult(exit_status=exit_.status, stdout=b"".join(out), stderr=b"".join(err))


async def _status_of(task: Any) -> str:
    try:
        state = await task.state()
    except errdefs.NotFound:
        return "stopped"
    status = state.status
    return str(getattr(status, "value", status)).lower()


async def _kill_and_wait(task: Any) -> None:
    waiter = asyncio.ensure_future(task.wait())
    try:
        with contextlib.suppress(errdefs.NotFound):
            await task.kill(_signal.SIGKILL, all=True)
        await asyncio.wait_for(waiter, KILL_TIMEOUT)
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
