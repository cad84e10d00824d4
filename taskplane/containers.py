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
while it deletes it, not while the process runs. The metadata store (SQLite, which may wait on
a peer's write for seconds) is called from a worker thread, never on the event loop.

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

Listing (``tasks ls``) lives in :mod:`taskplane.task_list`; the steps of a task's life
(start, wait, the errors naming the task) in :mod:`taskplane.task_run`, imported on a task's
first run or delete, so that listing stays cheap. This module is long because it is the whole
public face of :class:`Client`, every method documented; the work is in those two modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from plugins import errdefs, securefs
from plugins.types import METADATA_PLUGIN, RUNTIME_PLUGIN_V2, RUNTIME_RUNC_V2, SNAPSHOT_PLUGIN
from registry._lazy import export_lazily
from registry.log import get_logger
from taskplane import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from pathlib import Path

    from google.protobuf import any_pb2
    from google.protobuf.message import Message

    from plugins.metadata import Container, ContainerStore
    from plugins.overlay import OverlaySnapshotter
    from registry import Host
    from runtime_v2.api import mount_pb2
    from runtime_v2.locks import TaskLock
    from runtime_v2.runtime import Exit, ProcessInfo
    from runtime_v2.shim import ShimTask
    from runtime_v2.task_manager import TaskManager
    from taskplane.metrics import Metrics
    from taskplane.stdio import StdinSource
    from taskplane.task_list import TaskEntry
    from taskplane.task_run import DRAIN_TIMEOUT, RunResult

__all__ = [
    "CLAIM_MODULES",
    "CREATE_MODULES",
    "DEFAULT_RUNTIME",
    "DRAIN_TIMEOUT",
    "IO_DIR_NAME",
    "TASK_MANAGER_ID",
    "Client",
    "RunResult",
    "cgroups_path",
    "runc_options",
]

log = get_logger(__name__)


# Re-exported from taskplane.task_run, imported on first use: listing tasks runs nothing.
__getattr__ = export_lazily(
    __name__, {"DRAIN_TIMEOUT": "taskplane.task_run", "RunResult": "taskplane.task_run"}
)


T = TypeVar("T")

#: The id of the runtime v2 task manager plugin (other runtime v2 plugins may be installed).
TASK_MANAGER_ID = "task"
#: The runtime every container uses unless told otherwise.
DEFAULT_RUNTIME = RUNTIME_RUNC_V2
#: Directory under the state dir holding each task's FIFOs and detached log
#: (``<state>/taskplane.io/<namespace>/<id>/``).
IO_DIR_NAME = "taskplane.io"

#: What a run needs first once its id is claimed (the io dir's FIFOs, the cgroup path's hash):
#: imported on a worker thread while the claim waits for the task's lock and the metadata store.
CLAIM_MODULES = ("taskplane.stdio", "hashlib")
#: What creating a task needs after its record is written (the runtime contract's CreateOpts,
#: the effective runtime options, the shim binary's start): imported on a worker thread while
#: SQLite writes the record (:func:`runtime_v2.preimport.import_meanwhile`), which a cold
#: ``taskplane run`` otherwise waits for doing nothing.
CREATE_MODULES = ("runtime_v2.runtime", "runtime_v2.options", "runtime_v2.binary")
#: The cgroup path :func:`taskplane.oci.default_spec` writes (before the state dir's hash).
_DEFAULT_CGROUPS = re.compile(r"^/taskplane@[^@/]*@(?P<id>[^@/]+)$")


def cgroups_path(state: str, namespace: str, container_id: str) -> str:
    """The cgroup of ``container_id`` in ``namespace`` of the state dir ``state``: unique per
    (state dir, namespace, id), with the namespace name in it and no parent directory."""
    import hashlib  # only when a task is created

    digest = hashlib.sha256(os.path.realpath(state).encode()).hexdigest()[:8]
    return f"/taskplane@{namespace}@{container_id}@{digest}"


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


def _validate_task_id(container_id: str) -> None:
    from plugins import identifiers

    identifiers.validate_task_id(container_id)


class Client:
    """Create, find and delete containers with their tasks in one namespace of a booted Host."""

    def __init__(
        self, host: Host, namespace: str = DEFAULT_NAMESPACE, *, cleanup_on_close: bool = False
    ) -> None:
        from plugins import identifiers

        identifiers.validate_namespace(namespace)
        self.host = host
        self.namespace = namespace
        self.cleanup_on_close = cleanup_on_close
        self._log_max_size: int | None = None
        #: Ids of the containers this client created and did not delete.
        self.created: set[str] = set()
        if cleanup_on_close:
            self.task_manager.at_close(self.aclose)

    @property
    def log_max_size(self) -> int:
        """Size at which a task's log is rotated (see :mod:`taskplane.logs`; its default until
        set). The log module is imported when a log is written or read: a listing does neither."""
        if self._log_max_size is None:
            from taskplane import logs

            self._log_max_size = logs.DEFAULT_MAX_SIZE
        return self._log_max_size

    @log_max_size.setter
    def log_max_size(self, size: int) -> None:
        self._log_max_size = size

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

    # -- the plugins it works through ---------------------------------------------------------

    @property
    def task_manager(self) -> TaskManager:
        """The runtime v2 task manager (``io.containerd.runtime.v2.task``)."""
        from runtime_v2.task_manager import TaskManager  # loaded by the boot that made the host

        return self.host.get(RUNTIME_PLUGIN_V2, TASK_MANAGER_ID, TaskManager)

    @property
    def snapshotter(self) -> OverlaySnapshotter:
        """The overlay snapshotter (``io.containerd.snapshotter.v1.overlayfs``); NotFound
        saying why when it is not loaded (e.g. disabled in the config)."""
        from plugins.builtin import OVERLAY_ID
        from plugins.overlay import OverlaySnapshotter
        from registry import PluginNotFound

        try:
            return self.host.get(SNAPSHOT_PLUGIN, OVERLAY_ID, OverlaySnapshotter)
        except PluginNotFound as exc:
            raise errdefs.NotFound(str(exc)) from None

    @property
    def store(self) -> ContainerStore:
        """The metadata plugin's container store (from async code, call its ``a*`` methods: SQLite
        may wait seconds for a peer's write, which must not stop this process's event loop)."""
        found = [p for p in self.host.plugins.by_type(METADATA_PLUGIN).values() if p.loaded]
        if not found:
            raise errdefs.NotFound(
                f"no loaded plugin of type {METADATA_PLUGIN} "
                "(see 'taskplane plugins ls --detailed')"
            )
        return cast("ContainerStore", found[0].instance)

    # -- paths ----------------------------------------------------------------------------------

    # The public paths are Paths; a run works with the same paths as strings (``_io_root``,
    # ``_io_path``), so that it never imports pathlib (with urllib.parse and ipaddress: 3.5 ms).

    @property
    def io_root(self) -> Path:
        """The io dirs of this namespace: ``<state>/taskplane.io/<ns>``."""
        from pathlib import Path

        return Path(self._io_root)

    def io_dir(self, container_id: str) -> Path:
        """Where a task's FIFOs and detached log live: ``<state>/taskplane.io/<ns>/<id>``."""
        return self.io_root / container_id

    def log_path(self, container_id: str) -> Path:
        """The current log file of a task (json-file lines, see :mod:`taskplane.logs`)."""
        from taskplane import logs

        return self.io_dir(container_id) / logs.LOG_NAME

    @property
    def _io_root(self) -> str:
        return os.path.join(self.host.state, IO_DIR_NAME, self.namespace)

    def _io_path(self, container_id: str) -> str:
        """:meth:`io_dir` as a string."""
        return os.path.join(self._io_root, container_id)

    def _layer_key(self, container_id: str) -> str:
        return f"{self.namespace}/{container_id}"

    def _has_layer(self, container_id: str) -> bool:
        try:
            snapshotter = self.snapshotter
        except errdefs.ContainerdError:  # the snapshotter is disabled: nothing can be there
            return False
        return bool(snapshotter.exists(self._layer_key(container_id)))

    def _cgroups_path(self, spec: Mapping[str, Any], container_id: str) -> str:
        """The container's cgroup when taskplane chose it (unique to this container, so a
        forced teardown may empty and remove it), else "" (a spec's own cgroup is runc's)."""
        own = cgroups_path(self.host.state, self.namespace, container_id)
        linux = spec.get("linux")
        spec_path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
        return own if spec_path in (None, own) else ""

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

    # -- the id's lock and whether it is free ---------------------------------------------------

    def lock(self, container_id: str) -> TaskLock:
        """The lock of ``container_id``'s task (see :mod:`runtime_v2.locks`)."""
        # An unsafe io root (e.g. world-writable) is refused as such before anything is created
        # (the lock file included) or anything in it is looked at.
        if os.path.exists(self._io_root):
            securefs.check_trusted(self._io_root)
        return self.task_manager.lock(container_id, namespace=self.namespace)

    async def _in_use(self, container_id: str) -> str:
        """Why ``container_id`` is in use ("" when free); call under its lock."""
        # A shim another process left is reattached, or a dead one's remains reaped, first.
        await self.task_manager.load_task(container_id, namespace=self.namespace)
        why: str = self.task_manager.in_use(container_id, namespace=self.namespace)
        if why:
            return why
        if self._has_layer(container_id):
            return "it has an overlay layer"
        try:
            await self.store.aget(self.namespace, container_id)
            return "it has a container record"
        except errdefs.NotFound:
            pass
        io_dir = self._io_path(container_id)
        if os.path.lexists(io_dir):
            return f"its io dir {io_dir} exists"
        return ""

    def _in_use_error(self, container_id: str, why: str = "") -> errdefs.AlreadyExists:
        reason = f"{why}; " if why else ""
        return errdefs.AlreadyExists(
            f'container id "{container_id}" is already in use in namespace '
            f'"{self.namespace}" ({reason}remove it with: taskplane tasks rm {container_id})'
        )

    async def _reserve(self, container_id: str) -> None:
        why = await self._in_use(container_id)
        if why:
            raise self._in_use_error(container_id, why)

    async def _claim(self, container_id: str) -> TaskLock:
        """Validate the id, take its lock and check it is free; return the held lock (the
        caller releases it). Nothing is created before this: a refused id touches nothing."""
        from runtime_v2 import preimport

        _validate_task_id(container_id)
        preimport.import_meanwhile(CLAIM_MODULES)  # while the lock and the store are waited for
        lock = self.lock(container_id)
        await lock.__aenter__()
        try:
            await self._reserve(container_id)
        except BaseException:
            await lock.__aexit__(None, None, None)
            raise
        return lock

    async def _discard(self, container_id: str) -> None:
        """Remove a task that never started (a forced delete that may fail quietly: the error
        that brought us here is the one to report)."""
        with contextlib.suppress(errdefs.ContainerdError):
            await self.delete(container_id, force=True)

    # -- records --------------------------------------------------------------------------------

    async def spec(self, container_id: str) -> dict[str, Any]:
        """The OCI spec of ``container_id``: from its record, else from its bundle (a task stays
        usable when the metadata database lost its record). NotFound naming it otherwise."""
        with contextlib.suppress(errdefs.NotFound):
            record = await self.store.aget(self.namespace, container_id)
            if record.spec:
                return dict(json.loads(record.spec))
        bundle = self.task_manager.bundle(container_id, namespace=self.namespace).path
        try:
            with open(os.path.join(bundle, "config.json"), "rb") as f:
                return dict(json.loads(f.read()))
        except (OSError, ValueError):
            raise errdefs.NotFound(
                f'no container "{container_id}" in namespace "{self.namespace}"'
            ) from None

    async def spec_or_empty(self, container_id: str) -> dict[str, Any]:
        """:meth:`spec`, or {} when neither the record nor the bundle has one."""
        try:
            return await self.spec(container_id)
        except errdefs.NotFound:
            return {}

    async def container(self, container_id: str) -> Container:
        """The container record of ``container_id`` (``errdefs.NotFound`` naming it)."""
        try:
            return await self.store.aget(self.namespace, container_id)
        except errdefs.NotFound:
            raise errdefs.NotFound(
                f'no container "{container_id}" in namespace "{self.namespace}"'
            ) from None

    async def containers(self) -> list[Container]:
        """Every container record of this namespace (``plugins.metadata.Container``), by id."""
        found = await self.store.alist(self.namespace)
        return sorted(found, key=lambda c: c.id)

    # -- create ---------------------------------------------------------------------------------

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
    ) -> ShimTask:
        """Create the container record and its task (not started); return the task.

        ``labels`` are stored on the container record; ``overlay`` gives the task a private
        writable layer over the spec's ``root.path`` (see the module docstring). If the task
        cannot be created the record (and layer) are removed again, so a failed create leaves
        nothing behind. An id in use raises ``errdefs.AlreadyExists`` naming it.
        """
        lock = await self._claim(container_id)
        try:
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
        finally:
            await lock.__aexit__(None, None, None)

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
    ) -> ShimTask:
        """create_task once the id is claimed (its lock held, nothing of it exists)."""
        from plugins.metadata import Container
        from runtime_v2 import preimport
        from taskplane.oci import spec_bytes

        options_any = _pack(runtime_options)
        spec = self._with_cgroups(container_id, spec)
        rootfs: tuple[mount_pb2.Mount, ...] = ()
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
            preimport.import_meanwhile(CREATE_MODULES)  # while SQLite writes the record
            try:
                await self.store.acreate(self.namespace, record)
            except errdefs.AlreadyExists:
                raise self._in_use_error(container_id) from None
            from runtime_v2.runtime import CreateOpts

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
                    await self.store.adelete(self.namespace, container_id)
                raise
        except BaseException:
            if overlay:
                self.snapshotter.remove(self._layer_key(container_id))
            raise
        self.created.add(container_id)
        return task

    def _prepare_layer(
        self, container_id: str, spec: Mapping[str, Any]
    ) -> tuple[dict[str, Any], tuple[mount_pb2.Mount, ...]]:
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

    # -- tasks ----------------------------------------------------------------------------------

    async def task(self, container_id: str) -> ShimTask:
        """The task of ``container_id``; ``errdefs.NotFound`` naming it when there is none."""
        try:
            return await self.task_manager.get(container_id, namespace=self.namespace)
        except errdefs.NotFound:
            raise errdefs.NotFound(
                f'no task "{container_id}" in namespace "{self.namespace}"'
            ) from None

    async def tasks(self) -> list[ShimTask]:
        """Every task in this namespace."""
        return list(await self.task_manager.tasks(namespace=self.namespace))

    async def entries(self) -> list[TaskEntry]:
        """Every task of this namespace and every leftover of one, sorted by id (see
        :func:`taskplane.task_list.entries`)."""
        from taskplane.task_list import entries  # only listing needs it: a run builds no TaskEntry

        return await entries(self)

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the task (its status becomes PAUSED)."""
        async with self.lock(container_id):
            await (await self.task(container_id)).pause()

    async def resume(self, container_id: str) -> None:
        """Thaw a paused task (RUNNING again)."""
        async with self.lock(container_id):
            await (await self.task(container_id)).resume()

    async def ps(self, container_id: str) -> list[ProcessInfo]:
        """Every process of the task (``runtime_v2.shim.ProcessInfo``: pid and info)."""
        return list(await (await self.task(container_id)).pids())

    async def metrics(self, container_id: str) -> Metrics:
        """The task's cgroup statistics, decoded (:class:`taskplane.metrics.Metrics`)."""
        from taskplane.metrics import decode

        return decode(await (await self.task(container_id)).stats())

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, container_id: str, *, force: bool = False) -> Exit | None:
        """Delete the task (if any), the container record and the io directory.

        A task that has not exited raises ``errdefs.FailedPrecondition`` unless ``force``, which
        kills it -- through runc itself when its shim does not answer or is gone -- so nothing
        of it keeps running (``errdefs.Unavailable`` naming it when that fails). Leftovers of an
        interrupted command (a lifecycle step, a record, an io dir) are removed too. Returns the
        task's Exit, or None when there was no task. Nothing at all raises ``errdefs.NotFound``.
        A file that cannot be removed is ``errdefs.Unavailable`` naming the task and the file.
        """
        return await self._delete(container_id, force=force)

    async def _delete(self, container_id: str, *, force: bool, exited: bool = False) -> Exit | None:
        """:meth:`delete`; ``exited``: the caller saw the task exit (see
        :func:`taskplane.task_run.delete`)."""
        _validate_task_id(container_id)
        async with self.lock(container_id):
            from taskplane import task_run

            try:
                return await task_run.delete(self, container_id, force=force, exited=exited)
            except OSError as exc:
                raise task_run.teardown_error(container_id, exc) from exc

    # -- run ------------------------------------------------------------------------------------

    async def start_detached(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        *,
        runtime: str = DEFAULT_RUNTIME,
        runtime_options: Message | any_pb2.Any | None = None,
        labels: Mapping[str, str] | None = None,
        overlay: bool = False,
    ) -> ShimTask:
        """Create and start a task whose output its shim's logging binary writes to the log
        (:mod:`taskplane.logs`, stdout and stderr apart, a timestamp per line).

        The task outlives this process (``taskplane run -d``); nothing is left behind when it
        cannot be created or started. ``labels`` and ``overlay`` are :meth:`create_task`'s.
        Returns the started task. A spec asking for a terminal is refused: nobody would be
        attached to it.
        """
        from taskplane import task_run

        return await task_run.start_detached(
            self,
            container_id,
            spec,
            runtime=runtime,
            runtime_options=runtime_options,
            labels=labels,
            overlay=overlay,
        )

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
        started: Callable[[ShimTask], object] | None = None,
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
        from taskplane import task_run

        return await task_run.run(
            self,
            container_id,
            spec,
            runtime=runtime,
            runtime_options=runtime_options,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            remove=remove,
            started=started,
            stdin=stdin,
            tty=tty,
            tty_size=tty_size,
            labels=labels,
            overlay=overlay,
        )
