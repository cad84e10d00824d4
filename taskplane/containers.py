"""Containers and their tasks on a booted host: containerd's client, in miniature.

A container is a metadata record (id, runtime, runtime options, OCI spec) in the metadata
plugin's store; its task is the running thing, owned by the runtime v2 task manager. The shim
manager needs the record to reattach to a task's shim after a restart, so both are created
together and removed together. :class:`Client` does that for the command line and embedders::

    async with await taskplane.boot_async(root=..., state=...) as host:
        client = Client(host, namespace="default")
        result = await client.run("hello", oci.default_spec("hello", rootfs=..., args=[...]))
        print(result.exit_status, result.stdout)

Peers (see :mod:`runtime_v2.locks`): every method that touches a container takes its task's
lock first, so several ``taskplane`` processes and embedders can share a state dir. An id is in
use while it has a task, a bundle, a recorded lifecycle step, a container record or an io dir;
the check happens under the lock before anything is created, and a failed create removes only
what it created itself. ``run`` holds the lock while it creates and starts the task and again
while it deletes it, not while the process runs.

Each container's cgroup is ``/taskplane@<namespace>@<id>@<8 hex of the state dir>`` (when the
spec leaves it to taskplane): the Client's namespace is the namespace of everything it creates,
and two state dirs never share a cgroup.

With ``overlay=True`` (``taskplane run --overlay``) the spec's ``root.path`` becomes the read-only
lower dir of a private writable layer from the overlay snapshotter
(``io.containerd.snapshotter.v1.overlayfs``), prepared under the task's lock and passed to the
shim as the Create request's rootfs mounts, as containerd does; the layer is removed with the
container (and counts as a use of the id until then).

``Client(host, namespace, cleanup_on_close=True)`` kills and deletes the containers it created
when the host closes (also on an exception, e.g. ``async with host:``) or when the client is
closed (``async with Client(...)`` / :meth:`Client.aclose`); by default they keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from google.protobuf import any_pb2
from google.protobuf.message import Message

from plugins import errdefs, securefs
from plugins.builtin import OVERLAY_ID
from plugins.types import METADATA_PLUGIN, RUNTIME_PLUGIN_V2, RUNTIME_RUNC_V2, SNAPSHOT_PLUGIN
from taskplane import DEFAULT_NAMESPACE, logs
from taskplane.oci import spec_bytes
from taskplane.stdio import FifoPair, StdinFifo, StdinSource, make_io_dir, remove_io_dir

__all__ = [
    "DEFAULT_RUNTIME",
    "IO_DIR_NAME",
    "TASK_MANAGER_ID",
    "Client",
    "RunResult",
    "TaskEntry",
    "cgroups_path",
    "runc_options",
]

log = logging.getLogger("taskplane.containers")

#: The id of the runtime v2 task manager plugin (other runtime v2 plugins may be installed).
TASK_MANAGER_ID = "task"
#: The runtime every container uses unless told otherwise.
DEFAULT_RUNTIME = RUNTIME_RUNC_V2
#: Directory under the state dir holding each task's FIFOs and detached log
#: (``<state>/taskplane.io/<namespace>/<id>/``).
IO_DIR_NAME = "taskplane.io"
#: How long to wait for the shim to finish copying output after the process exited.
DRAIN_TIMEOUT = 5.0

_ACTIVE = ("created", "running", "paused", "pausing")
#: The cgroup path :func:`taskplane.oci.default_spec` writes (before the state dir's hash).
_DEFAULT_CGROUPS = re.compile(r"^/taskplane@[^@/]*@(?P<id>[^@/]+)$")
#: How long ``tasks ls`` waits for a shim's State before showing the task as UNKNOWN.
LIST_TIMEOUT = 2.0


def cgroups_path(state: str, namespace: str, container_id: str) -> str:
    """The cgroup of ``container_id`` in ``namespace`` of the state dir ``state``: unique per
    (state dir, namespace, id), with the namespace name in it and no parent directory."""
    digest = hashlib.sha256(str(Path(state).resolve()).encode()).hexdigest()[:8]
    return f"/taskplane@{namespace}@{container_id}@{digest}"


@attrs.frozen
class TaskEntry:
    """One row of :meth:`Client.entries`: a task, or what is left of one.

    ``status`` is the shim's (CREATED, RUNNING, STOPPED, PAUSED, ...); UNKNOWN when a bundle
    exists but its shim does not answer; CREATING/DELETING while a peer holds the task's lock in
    that step; ORPHAN for leftovers with no bundle (a container record, an io dir, a lifecycle
    step or runc state of an interrupted command). ``pid`` is 0 when unknown.
    """

    id: str
    pid: int
    status: str


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

    def __init__(
        self, host: Any, namespace: str = DEFAULT_NAMESPACE, *, cleanup_on_close: bool = False
    ) -> None:
        from runtime_v2 import identifiers

        identifiers.validate_namespace(namespace)
        self.host = host
        self.namespace = namespace
        self.cleanup_on_close = cleanup_on_close
        #: Size at which a task's log is rotated (see :mod:`taskplane.logs`).
        self.log_max_size = logs.DEFAULT_MAX_SIZE
        #: Ids of the containers this client created and did not delete.
        self.created: set[str] = set()
        if cleanup_on_close:
            self.task_manager.at_close(self.aclose)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.cleanup_on_close:
            await self.aclose()

    async def aclose(self) -> None:
        """Kill and delete every container this client created (``cleanup_on_close``)."""
        for container_id in sorted(self.created):
            try:
                await self.delete(container_id, force=True)
            except errdefs.ContainerdError as exc:
                log.warning("cleanup of container %s failed: %s", container_id, exc)
        self.created.clear()

    def _lock(self, container_id: str) -> Any:
        # An unsafe io root (e.g. world-writable) is refused as such before anything is created
        # (the lock file included) or anything in it is looked at.
        io_root = self.io_dir(container_id).parent
        if io_root.exists():
            securefs.check_trusted(io_root)
        return self.task_manager.lock(container_id, namespace=self.namespace)

    def _in_use(self, container_id: str) -> str:
        """Why ``container_id`` is in use ("" when free); call under its lock."""
        why: str = self.task_manager.in_use(container_id, namespace=self.namespace)
        if why:
            return why
        if self._has_layer(container_id):
            return "it has an overlay layer"
        try:
            self.store.get(self.namespace, container_id)
            return "it has a container record"
        except errdefs.NotFound:
            pass
        io_dir = self.io_dir(container_id)
        if os.path.lexists(io_dir):
            return f"its io dir {io_dir} exists"
        return ""

    def _reserve(self, container_id: str) -> None:
        why = self._in_use(container_id)
        if why:
            raise errdefs.AlreadyExists(
                f'container id "{container_id}" is already in use in namespace '
                f'"{self.namespace}" ({why}; remove it with: taskplane tasks rm {container_id})'
            )

    def _cgroups_path(self, container_id: str) -> str:
        """The container's cgroup when taskplane chose it (unique to this container, so a
        forced teardown may empty and remove it), else "" (a spec's own cgroup is runc's)."""
        own = cgroups_path(self.host.state, self.namespace, container_id)
        linux = self.spec_or_empty(container_id).get("linux")
        spec_path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
        return own if spec_path in (None, own) else ""

    def spec_or_empty(self, container_id: str) -> dict[str, Any]:
        """:meth:`spec`, or {} when neither the record nor the bundle has one."""
        try:
            return self.spec(container_id)
        except errdefs.NotFound:
            return {}

    def _with_cgroups(self, container_id: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        linux = spec.get("linux")
        if not isinstance(linux, Mapping):
            return spec
        current = linux.get("cgroupsPath")
        match = _DEFAULT_CGROUPS.match(current) if isinstance(current, str) else None
        if current and (match is None or match["id"] != container_id):
            return spec  # the spec chose its own cgroup
        path = cgroups_path(self.host.state, self.namespace, container_id)
        return {**spec, "linux": {**linux, "cgroupsPath": path}}

    @property
    def task_manager(self) -> Any:
        """The runtime v2 task manager (``io.containerd.runtime.v2.task``)."""
        return self.host.get(RUNTIME_PLUGIN_V2, TASK_MANAGER_ID)

    @property
    def snapshotter(self) -> Any:
        """The overlay snapshotter (``io.containerd.snapshotter.v1.overlayfs``); NotFound
        saying why when it is not loaded (e.g. disabled in the config)."""
        from registry import PluginNotFound

        try:
            return self.host.get(SNAPSHOT_PLUGIN, OVERLAY_ID)
        except PluginNotFound as exc:
            raise errdefs.NotFound(str(exc)) from None

    def _layer_key(self, container_id: str) -> str:
        return f"{self.namespace}/{container_id}"

    def _has_layer(self, container_id: str) -> bool:
        try:
            snapshotter = self.snapshotter
        except errdefs.ContainerdError:  # the snapshotter is disabled: nothing can be there
            return False
        return bool(snapshotter.exists(self._layer_key(container_id)))

    @property
    def store(self) -> Any:
        """The metadata plugin's container store."""
        return _single_instance(self.host, METADATA_PLUGIN)

    def io_dir(self, container_id: str) -> Path:
        """Where a task's FIFOs and detached log live: ``<state>/taskplane.io/<ns>/<id>``."""
        return Path(self.host.state) / IO_DIR_NAME / self.namespace / container_id

    def log_path(self, container_id: str) -> Path:
        """The current log file of a task (json-file lines, see :mod:`taskplane.logs`)."""
        return self.io_dir(container_id) / logs.LOG_NAME

    async def create_task(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str = DEFAULT_RUNTIME,
        runtime_options: Message | any_pb2.Any | None = None,
        stdout: str = "",
        stderr: str = "",
        labels: Mapping[str, str] | None = None,
        overlay: bool = False,
    ) -> Any:
        """Create the container record and its task (not started); return the task.

        ``labels`` are stored on the container record; ``overlay`` gives the task a private
        writable layer over the spec's ``root.path`` (see the module docstring). If the task
        cannot be created the record (and layer) are removed again, so a failed create leaves
        nothing behind. An id in use raises ``errdefs.AlreadyExists`` naming it.
        """
        from runtime_v2 import identifiers

        identifiers.validate_task_id(container_id)
        async with self._lock(container_id):
            self._reserve(container_id)
            return await self._create_task(
                container_id,
                spec,
                runtime=runtime,
                runtime_options=runtime_options,
                stdout=stdout,
                stderr=stderr,
                labels=labels,
                overlay=overlay,
            )

    async def _create_task(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str,
        runtime_options: Message | any_pb2.Any | None,
        stdout: str,
        stderr: str,
        stdin: str = "",
        terminal: bool = False,
        labels: Mapping[str, str] | None = None,
        overlay: bool = False,
    ) -> Any:
        """create_task once the id is reserved (its lock held, nothing of it exists)."""
        from plugins.metadata import Container
        from runtime_v2.task_manager import CreateOpts

        options_any = _pack(runtime_options)
        spec = self._with_cgroups(container_id, spec)
        rootfs: tuple[Any, ...] = ()
        if overlay:
            spec, rootfs = self._prepare_layer(container_id, spec)
        data = spec_bytes(spec)
        record = Container(
            id=container_id,
            runtime_name=runtime,
            runtime_options=options_any.SerializeToString() if options_any is not None else None,
            spec=data,
            labels=dict(labels or {}),
        )
        try:
            try:
                self.store.create(self.namespace, record)
            except errdefs.AlreadyExists:
                raise errdefs.AlreadyExists(
                    f'container id "{container_id}" is already in use in namespace '
                    f'"{self.namespace}" (remove it with: taskplane tasks rm {container_id})'
                ) from None
            try:
                task = await self.task_manager.create(
                    container_id,
                    CreateOpts(
                        spec=data,
                        rootfs=rootfs,
                        stdin=stdin,
                        stdout=stdout,
                        stderr=stderr,
                        terminal=terminal,
                        runtime=runtime,
                        runtime_options=options_any,
                    ),
                    namespace=self.namespace,
                )
            except BaseException:
                with contextlib.suppress(errdefs.NotFound):
                    self.store.delete(self.namespace, container_id)
                raise
        except BaseException:
            if overlay:
                self.snapshotter.remove(self._layer_key(container_id))
            raise
        self.created.add(container_id)
        return task

    def _prepare_layer(
        self, container_id: str, spec: Mapping[str, Any]
    ) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """Prepare the overlay layer over the spec's root; return the spec rooted at the
        bundle's ``rootfs`` (where the shim mounts the layer) and the Create rootfs mounts."""
        from runtime_v2.api import mount_pb2

        root = spec.get("root")
        lower = root.get("path") if isinstance(root, Mapping) else None
        if not isinstance(root, Mapping) or not isinstance(lower, str) or not os.path.isabs(lower):
            raise errdefs.InvalidArgument(
                f"an overlay needs the spec's root.path to be an absolute directory, not {lower!r}"
            )
        mounts = self.snapshotter.prepare(self._layer_key(container_id), os.path.realpath(lower))
        rooted = {**spec, "root": {**root, "path": "rootfs"}}
        return rooted, tuple(
            mount_pb2.Mount(type=m.type, source=m.source, options=list(m.options)) for m in mounts
        )

    def containers(self) -> list[Any]:
        """Every container record of this namespace (``plugins.metadata.Container``), by id."""
        return sorted(self.store.list(self.namespace), key=lambda c: c.id)

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the task (its status becomes PAUSED)."""
        async with self._lock(container_id):
            await (await self.task(container_id)).pause()

    async def resume(self, container_id: str) -> None:
        """Thaw a paused task (RUNNING again)."""
        async with self._lock(container_id):
            await (await self.task(container_id)).resume()

    async def ps(self, container_id: str) -> list[Any]:
        """Every process of the task (``runtime_v2.shim.ProcessInfo``: pid and info)."""
        return list(await (await self.task(container_id)).pids())

    async def metrics(self, container_id: str) -> Any:
        """The task's cgroup statistics, decoded (:class:`taskplane.metrics.Metrics`)."""
        from taskplane.metrics import decode

        return decode(await (await self.task(container_id)).stats())

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

    async def entries(self) -> list[TaskEntry]:
        """Every task of this namespace and every leftover of one (see :class:`TaskEntry`),
        sorted by id. A shim that does not answer within :data:`LIST_TIMEOUT` shows UNKNOWN."""
        from runtime_v2 import identifiers
        from runtime_v2.locks import ids_with_steps

        tm = self.task_manager
        rows: dict[str, TaskEntry] = {}
        # Every shim is asked at once (bounded), each within LIST_TIMEOUT.
        states = await tm.states(namespace=self.namespace, timeout=LIST_TIMEOUT)
        for task_id, state in states.items():
            if state is None:
                rows[task_id] = TaskEntry(task_id, 0, "UNKNOWN")
            else:
                rows[task_id] = TaskEntry(task_id, state.pid, state.status.value.upper())
        ns_dir = Path(tm.state) / self.namespace
        candidates: set[str] = set(ids_with_steps(str(ns_dir)))
        if ns_dir.is_dir():
            candidates |= {p.name for p in ns_dir.iterdir() if not p.name.startswith(".")}
        io_root = Path(self.host.state) / IO_DIR_NAME / self.namespace
        if io_root.is_dir():
            candidates |= {p.name for p in io_root.iterdir()}
        with contextlib.suppress(errdefs.ContainerdError):
            candidates |= {c.id for c in self.store.list(self.namespace)}
        with contextlib.suppress(errdefs.ContainerdError):
            prefix = self._layer_key("")
            candidates |= {
                k[len(prefix) :] for k in self.snapshotter.keys() if k.startswith(prefix)
            }
        runc_ns = Path(tm.runc_root) / self.namespace
        if runc_ns.is_dir():
            candidates |= {p.name for p in runc_ns.iterdir()}
        for container_id in candidates - set(rows):
            try:
                identifiers.validate_task_id(container_id)
            except errdefs.InvalidArgument:
                continue
            rows[container_id] = TaskEntry(container_id, 0, await self._leftover(container_id))
        return [rows[k] for k in sorted(rows)]

    async def _leftover(self, container_id: str) -> str:
        tm = self.task_manager
        step = str(tm.step(container_id, namespace=self.namespace))
        async with self._lock(container_id).try_acquire() as taken:
            if not taken and step in ("creating", "deleting"):
                return step.upper()  # a peer is in that step right now
        if Path(tm.bundle(container_id, namespace=self.namespace).path).exists():
            return "UNKNOWN"  # a bundle whose shim did not answer (or a peer holds its lock)
        return "ORPHAN"

    def spec(self, container_id: str) -> dict[str, Any]:
        """The OCI spec of ``container_id``: from its record, else from its bundle (a task stays
        usable when the metadata database lost its record). NotFound naming it otherwise."""
        with contextlib.suppress(errdefs.NotFound):
            record = self.store.get(self.namespace, container_id)
            if record.spec:
                return dict(json.loads(record.spec))
        config = Path(self.task_manager.bundle(container_id, namespace=self.namespace).path)
        try:
            return dict(json.loads((config / "config.json").read_bytes()))
        except (OSError, ValueError):
            raise errdefs.NotFound(
                f'no container "{container_id}" in namespace "{self.namespace}"'
            ) from None

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
        kills it -- through runc itself when its shim does not answer or is gone -- so nothing
        of it keeps running (``errdefs.Unavailable`` naming it when that fails). Leftovers of an
        interrupted command (a lifecycle step, a record, an io dir) are removed too. Returns the
        task's Exit, or None when there was no task. Nothing at all raises ``errdefs.NotFound``.
        """
        from runtime_v2 import identifiers

        identifiers.validate_task_id(container_id)
        tm = self.task_manager
        async with self._lock(container_id):
            exit_ = None
            found = False
            try:
                task = await tm.get(container_id, namespace=self.namespace)
            except errdefs.NotFound:
                task = None
            if task is not None and not force:
                status = await _status_of(task)
                if status in _ACTIVE:
                    raise errdefs.FailedPrecondition(
                        f'task "{container_id}" is {status}; stop it first '
                        f"(taskplane tasks kill {container_id}) or use --force"
                    )
            if task is None and not force:
                bundle = Path(tm.bundle(container_id, namespace=self.namespace).path)
                if bundle.exists() or (Path(tm.runc_root) / self.namespace / container_id).exists():
                    raise errdefs.FailedPrecondition(
                        f'task "{container_id}" has a container but its shim does not answer; '
                        f"remove it with: taskplane tasks rm --force {container_id}"
                    )
            if task is not None and not force:
                exit_ = await tm.delete(container_id, namespace=self.namespace)
                found = True
            else:
                try:
                    exit_ = await tm.remove(
                        container_id,
                        namespace=self.namespace,
                        cgroups_path=self._cgroups_path(container_id),
                    )
                    found = True
                except errdefs.NotFound:
                    pass
            try:
                self.store.delete(self.namespace, container_id)
                found = True
            except errdefs.NotFound:
                pass
            io_dir = self.io_dir(container_id)
            if io_dir.exists():
                found = True
                remove_io_dir(io_dir)
            if self._has_layer(container_id):  # after the task: its rootfs is unmounted now
                found = True
                self.snapshotter.remove(self._layer_key(container_id))
            self.created.discard(container_id)
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
        labels: Mapping[str, str] | None = None,
        overlay: bool = False,
    ) -> Any:
        """Create and start a task whose output its shim's logging binary writes to the log
        (:mod:`taskplane.logs`, stdout and stderr apart, a timestamp per line).

        The task outlives this process (``taskplane run -d``); nothing is left behind when it
        cannot be created or started. ``labels`` and ``overlay`` are :meth:`create_task`'s.
        Returns the started task. A spec asking for a terminal is refused: nobody would be
        attached to it.
        """
        from runtime_v2 import identifiers

        identifiers.validate_task_id(container_id)
        if _wants_terminal(spec):
            raise errdefs.InvalidArgument(
                f'task "{container_id}" asks for a terminal (process.terminal), which a '
                "detached task cannot have: run it attached (taskplane run -t)"
            )
        log_file = self.log_path(container_id)
        async with self._lock(container_id) as lock:
            self._reserve(container_id)  # before the io dir: a refused id touches nothing
            make_io_dir(log_file.parent)
            try:
                uri = logs.install_logger(log_file.parent, max_size=self.log_max_size)
                task = await self._create_task(
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
                remove_io_dir(log_file.parent)  # ours: created above, after the reservation
                raise
            try:
                await _start(task)
            except BaseException:
                with contextlib.suppress(errdefs.ContainerdError):
                    await self.delete(container_id, force=True)
                raise
            lock.set_step("running")
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
        stdin: StdinSource | None = None,
        tty: bool = False,
        tty_size: tuple[int, int] | None = None,
        labels: Mapping[str, str] | None = None,
        overlay: bool = False,
    ) -> RunResult:
        """Run a container to completion: create, start, stream output, wait, (delete).

        Output is collected into the result and logged (:meth:`logs`); ``on_stdout``/
        ``on_stderr`` additionally see each chunk as it arrives. ``started(task)`` is called
        once the task runs (the command line uses it to forward signals and window sizes).
        ``labels`` and ``overlay`` are :meth:`create_task`'s. With ``remove`` (the default)
        the task and record are deleted afterwards, whatever happened.

        ``stdin`` (bytes, an async iterator of bytes, or a binary file) is copied to the
        process; when it ends the process's stdin is closed. Without it stdin is /dev/null.
        ``tty`` runs the process on a pseudo-terminal (as does a spec with
        ``process.terminal``): its output arrives as stdout only; ``tty_size`` (columns, rows)
        is set before it starts.
        """
        tty = tty or _wants_terminal(spec)
        if tty:
            spec = _with_terminal(spec)
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

        from runtime_v2 import identifiers

        identifiers.validate_task_id(container_id)
        io_dir = self.io_dir(container_id)
        # Held while the task is created and started (and undone on failure), released while it
        # runs, so a peer's ``tasks rm --force`` is not blocked by an attached run.
        lock = self._lock(container_id)
        await lock.__aenter__()
        locked = True
        try:
            self._reserve(container_id)  # before the io dir: a refused id touches nothing
            fifos = FifoPair(io_dir, stderr=not tty).open()
            stdin_fifo = StdinFifo(io_dir).open() if stdin is not None else None
            log_writer = logs.LogWriter(io_dir, max_size=self.log_max_size)
            try:
                try:
                    task = await self._create_task(
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
                    remove_io_dir(io_dir)  # ours: created above, after the reservation
                    raise
                feeding: asyncio.Future[None] | None = None
                try:
                    async with fifos.copying(
                        sink(out, on_stdout, log_writer, "stdout"),
                        sink(err, on_stderr, log_writer, "stderr"),
                        DRAIN_TIMEOUT,
                    ) as drain:
                        try:
                            if tty and tty_size is not None:
                                await task.resize_pty(*tty_size)
                            await _start(task)
                        except BaseException:
                            if not remove:  # a task that never started is no use to anyone
                                with contextlib.suppress(errdefs.ContainerdError):
                                    await self.delete(container_id, force=True)
                            raise
                        lock.set_step("running")
                        locked = False
                        await lock.__aexit__(None, None, None)
                        fifos.release()
                        if stdin_fifo is not None and stdin is not None:
                            feeding = asyncio.ensure_future(stdin_fifo.feed(task, stdin))
                        if started is not None:
                            started(task)
                        exit_ = await _wait(task)
                        await drain()
                finally:
                    if feeding is not None:  # the process exited without reading it all
                        feeding.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await feeding
                    log_writer.close()
                    if remove:
                        await self.delete(container_id, force=True)
            finally:
                fifos.close()
                log_writer.close()
                if stdin_fifo is not None:
                    stdin_fifo.close()
        finally:
            if locked:
                await lock.__aexit__(None, None, None)
        return RunResult(exit_status=exit_.status, stdout=b"".join(out), stderr=b"".join(err))


def _wants_terminal(spec: Mapping[str, Any]) -> bool:
    process = spec.get("process")
    return bool(isinstance(process, Mapping) and process.get("terminal"))


def _with_terminal(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with ``process.terminal`` set (runc asks the shim for a console only then)."""
    copy = dict(spec)
    copy["process"] = {**dict(spec.get("process") or {}), "terminal": True}
    return copy


async def _status_of(task: Any) -> str:
    try:
        state = await task.state()
    except errdefs.NotFound:
        return "stopped"
    status = state.status
    return str(getattr(status, "value", status)).lower()


def _shim_died(task: Any) -> errdefs.Unavailable:
    return errdefs.Unavailable(
        f'the shim of task "{task.id}" died while the task ran; its exit status is lost'
    )


async def _start(task: Any) -> None:
    """``task.start()``; a shim that dies meanwhile (the process may already be running: its
    output can arrive before the Start answer) is one clear error naming the task."""
    from runtime_v2 import ttrpc

    try:
        await task.start()
    except ttrpc.Closed:
        raise _shim_died(task) from None


async def _wait(task: Any) -> Any:
    """``task.wait()``; a shim that dies meanwhile is one clear error naming the task."""
    from runtime_v2 import ttrpc

    try:
        return await task.wait()
    except ttrpc.Closed:
        raise _shim_died(task) from None
