"""Running a task for :class:`taskplane.containers.Client`: attached (:func:`run`, its output
copied from FIFOs and logged) or detached (:func:`start_detached`, its output logged by the
shim's logging binary), and the steps of a task's life each failing with one error naming the
task: start, wait, the status before a delete, a teardown that could not remove a file.

The Client's methods of the same names are the public face; these functions are their bodies
and use the Client's id claim and create (``_claim``, ``_create_task``, ``_discard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from plugins import errdefs
from taskplane import logs

if TYPE_CHECKING:
    from google.protobuf import any_pb2
    from google.protobuf.message import Message

    from runtime_v2.runtime import Exit
    from runtime_v2.shim import ShimTask
    from taskplane.containers import Client
    from taskplane.stdio import StdinSource

__all__ = [
    "DRAIN_TIMEOUT",
    "RunResult",
    "delete",
    "run",
    "start",
    "start_detached",
    "status_of",
    "teardown_error",
    "wait",
    "wants_terminal",
    "with_terminal",
]

#: How long to wait for the shim to finish copying output after the process exited.
DRAIN_TIMEOUT = 5.0
#: The statuses of a task that has not exited (deleting it needs ``force``).
_ACTIVE = ("created", "running", "paused", "pausing")


@attrs.frozen
class RunResult:
    """What :meth:`Client.run` returns: the exit status and everything the process wrote."""

    exit_status: int
    stdout: bytes
    stderr: bytes


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
        raise errdefs.wrap(exc, f'failed to start task "{task.id}"') from exc


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


async def start_detached(
    client: Client,
    container_id: str,
    spec: Mapping[str, Any],
    *,
    runtime: str,
    runtime_options: Message | any_pb2.Any | None,
    labels: Mapping[str, str] | None,
    overlay: bool,
) -> ShimTask:
    """:meth:`Client.start_detached <taskplane.containers.Client.start_detached>`."""
    from plugins import identifiers
    from taskplane.stdio import make_io_dir, remove_io_dir

    identifiers.validate_task_id(container_id)
    if wants_terminal(spec):
        raise errdefs.InvalidArgument(
            f'task "{container_id}" asks for a terminal (process.terminal), which a '
            "detached task cannot have: run it attached (taskplane run -t)"
        )
    io_dir = client._io_path(container_id)
    lock = await client._claim(container_id)
    try:
        make_io_dir(io_dir)
        try:
            uri = logs.install_logger(io_dir, max_size=client.log_max_size)
            task = await client._create_task(
                container_id,
                spec,
                runtime=runtime,
                runtime_options=runtime_options,
                stdout=uri,
                stderr=uri,
                labels=labels,
                overlay=overlay,
            )
        except BaseException:
            remove_io_dir(io_dir)  # ours: created above, after the claim
            raise
        try:
            await start(task)
        except BaseException:
            await client._discard(container_id)
            raise
        lock.set_step("running")
    finally:
        await lock.__aexit__(None, None, None)
    return task


async def run(
    client: Client,
    container_id: str,
    spec: Mapping[str, Any],
    *,
    runtime: str,
    runtime_options: Message | any_pb2.Any | None,
    on_stdout: Callable[[bytes], object] | None,
    on_stderr: Callable[[bytes], object] | None,
    remove: bool,
    started: Callable[[ShimTask], object] | None,
    stdin: StdinSource | None,
    tty: bool,
    tty_size: tuple[int, int] | None,
    labels: Mapping[str, str] | None,
    overlay: bool,
) -> RunResult:
    """:meth:`Client.run <taskplane.containers.Client.run>`."""
    tty = tty or wants_terminal(spec)
    if tty:
        spec = with_terminal(spec)
    out: list[bytes] = []
    err: list[bytes] = []

    def sink(
        buf: list[bytes],
        cb: Callable[[bytes], object] | None,
        log_writer: logs.LogWriter,
        stream: str,
    ) -> Callable[[bytes], None]:
        def write(chunk: bytes) -> None:
            buf.append(chunk)
            log_writer.write(stream, chunk)
            if cb is not None:
                cb(chunk)

        return write

    io_dir = client._io_path(container_id)
    # Held while the task is created and started (and undone on failure), released while it
    # runs, so a peer's ``tasks rm --force`` is not blocked by an attached run.
    lock = await client._claim(container_id)
    locked = True
    try:
        # Imported after the claim, which has it imported while it waits (CLAIM_MODULES).
        from taskplane.stdio import FifoPair, StdinFifo, remove_io_dir

        fifos = FifoPair(io_dir, stderr=not tty).open()
        stdin_fifo = StdinFifo(io_dir).open() if stdin is not None else None
        log_writer = logs.LogWriter(io_dir, max_size=client.log_max_size)
        try:
            try:
                task = await client._create_task(
                    container_id,
                    spec,
                    runtime=runtime,
                    runtime_options=runtime_options,
                    stdout=fifos.stdout,
                    stderr=fifos.stderr,
                    stdin=stdin_fifo.path if stdin_fifo else "",
                    terminal=tty,
                    labels=labels,
                    overlay=overlay,
                )
            except BaseException:
                fifos.close()
                log_writer.close()
                if stdin_fifo is not None:
                    stdin_fifo.close()
                remove_io_dir(io_dir)  # ours: created above, after the claim
                raise
            feeding: asyncio.Future[None] | None = None
            exit_: Exit | None = None
            try:
                async with fifos.copying(
                    sink(out, on_stdout, log_writer, "stdout"),
                    sink(err, on_stderr, log_writer, "stderr"),
                    DRAIN_TIMEOUT,
                ) as drain:
                    try:
                        if tty and tty_size is not None:
                            await task.resize_pty(*tty_size)
                        await start(task)
                    except BaseException:
                        if not remove:  # a task that never started is no use to anyone
                            await client._discard(container_id)
                        raise
                    lock.set_step("running")
                    locked = False
                    await lock.__aexit__(None, None, None)
                    fifos.release()
                    if stdin_fifo is not None and stdin is not None:
                        feeding = asyncio.ensure_future(stdin_fifo.feed(task, stdin))
                    if started is not None:
                        started(task)
                    exit_ = await wait(task)
                    await drain()
            finally:
                if feeding is not None:  # the process exited without reading it all
                    feeding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeding
                log_writer.close()
                if remove:
                    await _remove(client, container_id, exited=exit_ is not None)
        finally:
            fifos.close()
            log_writer.close()
            if stdin_fifo is not None:
                stdin_fifo.close()
    finally:
        if locked:
            await lock.__aexit__(None, None, None)
    assert exit_ is not None  # set once the task exited; every other way out raised
    return RunResult(exit_status=exit_.status, stdout=b"".join(out), stderr=b"".join(err))


async def delete(
    client: Client, container_id: str, *, force: bool, exited: bool = False
) -> Exit | None:
    """The body of :meth:`Client.delete <taskplane.containers.Client.delete>` (under the id's
    lock). ``exited``: the caller saw the task's process exit (``run --rm``), so the task is not
    asked for its status first, as it is before a plain delete otherwise: a stopped container
    never runs again, and should a peer have replaced the task meanwhile, the shim's Delete
    refuses a running one as the status check would have."""
    from taskplane.stdio import remove_io_dir

    tm = client.task_manager
    exit_ = None
    found = False
    try:
        task: ShimTask | None = await tm.get(container_id, namespace=client.namespace)
    except errdefs.NotFound:
        task = None
    if task is not None and not force and not exited:
        status = await status_of(task)
        if status in _ACTIVE:
            raise errdefs.FailedPrecondition(
                f'task "{container_id}" is {status}; stop it first '
                f"(taskplane tasks kill {container_id}) or use --force"
            )
    if task is None and not force:
        bundle = tm.bundle(container_id, namespace=client.namespace).path
        runc_state = os.path.join(tm.runc_root, client.namespace, container_id)
        if os.path.exists(bundle) or os.path.exists(runc_state):
            raise errdefs.FailedPrecondition(
                f'task "{container_id}" has a container but its shim does not answer; '
                f"remove it with: taskplane tasks rm --force {container_id}"
            )
    if task is not None and not force:
        exit_ = await tm.delete(container_id, namespace=client.namespace)
        found = True
    else:
        try:
            exit_ = await tm.remove(
                container_id,
                namespace=client.namespace,
                cgroups_path=client._cgroups_path(
                    await client.spec_or_empty(container_id), container_id
                ),
            )
            found = True
        except errdefs.NotFound:
            pass
    try:
        await client.store.adelete(client.namespace, container_id)
        found = True
    except errdefs.NotFound:
        pass
    io_dir = client._io_path(container_id)
    if os.path.exists(io_dir):
        found = True
        # A detached task's logging binary (the shim's child) ends once the task and its shim
        # are gone; the delete is done when nothing of the task runs any more.
        await logs.logger_exited(io_dir, DRAIN_TIMEOUT)
        remove_io_dir(io_dir)
    if client._has_layer(container_id):  # after the task: its rootfs is unmounted now
        found = True
        client.snapshotter.remove(client._layer_key(container_id))
    client.created.discard(container_id)
    if not found:
        raise errdefs.NotFound(
            f'no container or task "{container_id}" in namespace "{client.namespace}"'
        )
    return exit_


async def _remove(client: Client, container_id: str, *, exited: bool) -> None:
    """``run --rm``'s delete. A task that exited gets containerd's plain delete, as ``ctr run
    --rm`` does (no kill, no forced teardown: about half the time); one that did not exit
    (the run failed or was interrupted) or whose plain delete fails is removed by force."""
    if not exited:
        await client.delete(container_id, force=True)
        return
    try:
        await client._delete(container_id, force=False, exited=True)
        return
    except errdefs.ContainerdError as exc:  # e.g. its shim died meanwhile
        first = exc
    try:
        await client.delete(container_id, force=True)
    except errdefs.NotFound:  # the plain delete removed everything it could: its error stands
        raise first from None
