"""The task plugin (``io.containerd.runtime.v2.task``): creates, finds and deletes tasks.

containerd's ``task_manager.go`` -- the seed file of this project. The :class:`TaskManager` makes
a task's bundle, validates the runtime's features, has the shim manager start a shim in the
bundle and sends the Create RPC; it deletes tasks and reloads a previous process's shims.

What taskplane does differently from containerd, on purpose:

- **One effective runtime options value per task** (:mod:`runtime_v2.options`): the runtime
  options overlaid by the fields the task options set. The same value goes to the shim's
  ``start``, to ``-info`` (feature validation and PluginInfo), to the Create RPC and to the
  shim's ``delete``. containerd picks one of the two blobs at each call site, so task options
  carrying only ``io_uid``/``io_gid`` lost ``binary_name`` (containerd#10249 and friends).
- **Features are validated before the shim starts**: a spec the runtime cannot run (idmap
  mounts on runc < 1.2) is refused without starting a shim process.
- **A failed create leaves nothing**: whatever step fails (bad id, bundle, runtime not found,
  feature validation, shim start, the Create RPC), the started shim is deleted and shut down and
  the bundle and work dir removed. Ids are validated before anything touches the disk. Cleanup
  also runs when the caller is cancelled (an in-flight Create RPC is allowed to finish first, so
  the teardown deletes what the shim made). Create errors carry the shim's warning/error log
  lines.
- **Peers on one state dir** (:mod:`runtime_v2.locks`): create, delete, :meth:`TaskManager.remove`
  and restart recovery take the task's lock first, the id is reserved (step ``creating``) before
  the bundle exists, and each step is recorded so the next process can finish or undo a crashed
  one. Each state dir has its own runc root (``STATE/.runc``, set in the effective options unless
  the user set ``root``), so no state dir sees or kills another's runc containers.
- **Delete is idempotent and retriable**: an unknown task gives NotFound; a Delete the shim
  rejects (e.g. the task still runs) changes nothing and can be retried; a task the shim already
  deleted is torn down the rest of the way; a task whose shim died is reaped (the shim binary's
  ``delete`` runs while the bundle still exists, then the bundle goes). A task the shim answers
  NotFound for gets ``/tasks/exit`` and ``/tasks/delete`` as in containerd (whose dead-shim
  cleanup publishes them), with status 255 and pid 0 always: containerd's carry what the shim
  binary's ``delete`` said, which for a runc shim is 137 with pid 0, never the real status.
- **Every shim call has a deadline** (:data:`runtime_v2.shim.CALL_TIMEOUT`, ``Wait`` excepted), and
  :meth:`TaskManager.remove` (``tasks rm --force``) leaves nothing running even when the shim does
  not answer or is gone: it kills the container through runc itself and the shim process.
- The container record in the metadata store is not required (containerd main requires it,
  which turns a missing record into a leaked shim).
- **Shims are reloaded at first use, not at init** (:class:`runtime_v2.shim_load.FirstUseLoader`):
  a task's when it is first used (get, create, delete, remove), a namespace's when its tasks
  are first listed; ``tasks ls -n a`` touches no shim of ``b``, ``run`` of a new id none.
  Reattaching serves no events address: the first call that acts on a shim does
  (:meth:`runtime_v2.shim_manager.ShimManager.start_events_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import registry
from plugins import identifiers, securefs, types
from plugins.containerd_config import TIMEOUT_SHIM_LOAD
from registry._lazy import export_lazily
from registry.log import get_logger
from runtime_v2 import errdefs
from runtime_v2.crashpoint import crashpoint
from runtime_v2.errdefs import wrap as _wrap
from runtime_v2.locks import TaskLock, lock_path, read_step, task_lock
from runtime_v2.shim_manager import ShimManager
from runtime_v2.task_config import TaskConfig, parse_platforms

if TYPE_CHECKING:
    from google.protobuf import any_pb2
    from google.protobuf.message import Message

    from runtime_v2.api import introspection_pb2
    from runtime_v2.bundle import Bundle
    from runtime_v2.runtime import DEFAULT_RUNTIME, CreateOpts, Exit, State
    from runtime_v2.shim import Shim, ShimTask
    from runtime_v2.shim_load import FirstUseLoader, LoadOutcome

__all__ = [
    "DEFAULT_RUNTIME",
    "LOG_URI_SCHEMES",
    "CreateOpts",
    "TaskManager",
    "init",
    "uses_idmap_mounts",
    "validate_runtime_features",
]

log = get_logger(__name__)


# Re-exported from runtime_v2.runtime, imported when a task is created or reattached.
__getattr__ = export_lazily(
    __name__, {"DEFAULT_RUNTIME": "runtime_v2.runtime", "CreateOpts": "runtime_v2.runtime"}
)


#: The runc root of a state dir's tasks, under the task plugin's STATE (hidden: not a namespace).
RUNC_ROOT_DIR = ".runc"
#: ``Meta.exports["log-uri-schemes"]`` on Linux.
LOG_URI_SCHEMES = "fifo,binary,binary-v2,file"

_FEATURES_KIND = "features/Features"
#: How many shims :meth:`TaskManager.states` asks at once.
STATE_PARALLELISM = 16


def uses_idmap_mounts(spec: Mapping[str, Any]) -> bool:
    """Whether any mount of the OCI ``spec`` is an idmapped mount (containerd's rule)."""
    for mount in spec.get("mounts") or ():
        if not isinstance(mount, Mapping):
            continue
        if mount.get("uidMappings") is not None or mount.get("gidMappings") is not None:
            return True
        options = mount.get("options") or ()
        if "idmap" in options or "ridmap" in options:
            return True
    return False


def _idmap_enabled(features: Any) -> None:
    linux = features.get("linux") if isinstance(features, Mapping) else None
    extensions = linux.get("mountExtensions") if isinstance(linux, Mapping) else None
    idmap = extensions.get("idmap") if isinstance(extensions, Mapping) else None
    if not isinstance(idmap, Mapping):
        raise errdefs.FailedPrecondition(
            "missing `mountExtensions.idmap` entry in `features` command"
        )
    if idmap.get("enabled") is not True:
        raise errdefs.FailedPrecondition(
            "entry `mountExtensions.idmap.Enabled` in `features` command not present or disabled"
        )


async def validate_runtime_features(
    shims: ShimManager, runtime: str, spec: bytes | None, options: any_pb2.Any | None
) -> None:
    """containerd's ``validateRuntimeFeatures``: idmap mounts need a runtime that supports them.

    ``options`` is the task's effective runtime options (what the shim itself runs with).
    Raises FailedPrecondition with containerd's texts, prefixed
    ``failed to validate OCI runtime features:``.
    """
    if not spec:
        return
    from runtime_v2 import typeurl

    try:
        decoded = json.loads(spec)
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"unmarshal spec: {exc}") from None
    if not isinstance(decoded, Mapping) or not uses_idmap_mounts(decoded):
        return
    prefix = "failed to validate OCI runtime features"
    try:
        info = await shims.runtime_info(runtime, options)
    except errdefs.ContainerdError as exc:
        raise _wrap(exc, f"{prefix}: runtime info") from exc
    try:
        features = typeurl.unpack(info.features)
    except errdefs.ContainerdError as exc:
        raise errdefs.FailedPrecondition(f"{prefix}: unmarshal runtime features: {exc}") from None
    if not isinstance(features, typeurl.JSONValue) or features.kind != _FEATURES_KIND:
        return  # not a runc-compatible runtime: nothing to check
    try:
        _idmap_enabled(features.value)
    except errdefs.FailedPrecondition as exc:
        raise errdefs.FailedPrecondition(f"{prefix}: idmap mounts not supported: {exc}") from None


class TaskManager:
    """Creates, finds and deletes tasks; each task runs in its own shim.

    ``root`` and ``state`` are the plugin's ROOT and STATE dirs (bundles live in
    ``state/<namespace>/<id>``, work dirs in ``root/<namespace>/<id>``). Every call names the
    namespace explicitly. Example::

        task = await tasks.create("hello", CreateOpts(spec=spec, stdout="file:///tmp/out"),
                                  namespace="default")
        await task.start()
        print((await task.wait()).status)
        await tasks.delete("hello", namespace="default")
    """

    def __init__(self, *, root: str, state: str, shims: ShimManager) -> None:
        self.root = root
        self.state = state
        self.shims = shims
        self._at_close: list[Callable[[], Awaitable[object]]] = []
        self._loader: FirstUseLoader | None = None

    @property
    def id(self) -> str:
        """``io.containerd.runtime.v2.task``."""
        return f"{types.RUNTIME_PLUGIN_V2}.task"

    @property
    def runc_root(self) -> str:
        """This state dir's runc root (runc's ``--root`` is ``<runc_root>/<namespace>``)."""
        return os.path.join(self.state, RUNC_ROOT_DIR)

    def bundle(self, task_id: str, *, namespace: str) -> Bundle:
        """Where task ``task_id``'s bundle is (or would be); no I/O."""
        from runtime_v2.bundle import load_bundle  # a listing of no task needs no bundle

        identifiers.validate_namespace(namespace)
        identifiers.validate_task_id(task_id)
        return load_bundle(self.state, namespace, task_id)

    def lock(self, task_id: str, *, namespace: str) -> TaskLock:
        """The lock of task ``task_id`` (:mod:`runtime_v2.locks`). Hold it around several calls
        that must not interleave with a peer's; the calls of this class take it themselves
        (re-entrantly)."""
        return task_lock(self.bundle(task_id, namespace=namespace).path)

    def step(self, task_id: str, *, namespace: str) -> str:
        """The recorded lifecycle step of ``task_id`` ("" for none), read without the lock."""
        return read_step(lock_path(self.bundle(task_id, namespace=namespace).path))

    def in_use(self, task_id: str, *, namespace: str) -> str:
        """Why ``task_id`` cannot be created ("" when it can); meant to be called under its lock."""
        bundle = self.bundle(task_id, namespace=namespace)
        if self.shims.has(namespace, task_id):
            return "it has a task"
        if os.path.lexists(bundle.path):
            return f"its bundle {bundle.path} exists"
        step = read_step(lock_path(bundle.path))
        if step:
            return f"an interrupted {step} step left it behind"
        return ""

    def effective_options(self, opts: CreateOpts) -> any_pb2.Any | None:
        """The effective runtime options a task created with ``opts`` runs with (this state
        dir's runc root included)."""
        from runtime_v2.options import effective_runtime_options, with_runc_root

        effective = effective_runtime_options(opts.runtime_options, opts.task_options)
        return with_runc_root(effective, runtime=opts.runtime, root=self.runc_root).any

    async def load_existing_shims(self, namespace: str | None = None) -> list[LoadOutcome]:
        """Reattach to (or reap) the shims other processes left in ``namespace`` (None: every
        namespace), once per process (:class:`~runtime_v2.shim_load.FirstUseLoader` says why
        that is safe); this call's outcomes. Listing a namespace calls it first."""
        if namespace is not None and not os.path.isdir(os.path.join(self.state, namespace)):
            return []  # nothing to load (without importing the loader)
        return await self._first_use().namespace(namespace)

    async def load_task(self, task_id: str, *, namespace: str) -> LoadOutcome | None:
        """Reattach to (or reap) ``task_id``'s shim another process left (None: it is ours, or
        nothing of it is on disk), first in every call on one task, maybe under its lock; then
        serve the events address, outside the act's deadlines (``ShimManager.watch``)."""
        bundle = self.bundle(task_id, namespace=namespace)  # both ids checked; no I/O
        ours = self.shims.has(namespace, task_id)  # or loaded already: no disk access
        if not ours and not bundle.has_remains(self.root):
            return None  # a new id (``run``'s): nothing to load, shim_load not imported
        outcome = None if ours else await self._first_use().task(namespace, task_id)
        if self.shims.has(namespace, task_id):
            await self.shims.start_events_server()
        return outcome

    @property
    def load_outcomes(self) -> list[LoadOutcome]:
        """What restart recovery did with each bundle it loaded so far, in load order."""
        return self._loader.outcomes if self._loader is not None else []

    def _first_use(self) -> FirstUseLoader:
        if self._loader is None:
            from runtime_v2.shim_load import LOAD_TIMEOUT, FirstUseLoader

            self._loader = FirstUseLoader(
                self.shims,
                state=self.state,
                root=self.root,
                timeout=self.shims.timeout(TIMEOUT_SHIM_LOAD, LOAD_TIMEOUT),  # config's
            )
        return self._loader

    # -- create ---------------------------------------------------------------------------------

    async def create(self, task_id: str, opts: CreateOpts, *, namespace: str) -> ShimTask:
        """Create task ``task_id`` in ``namespace`` (created, not started) and return it.

        Raises InvalidArgument for a bad id, AlreadyExists when the id is taken, NotFound when
        the runtime is not installed, FailedPrecondition when the runtime lacks a feature the
        spec needs, or the shim's error for the Create RPC. After a failure nothing is left.
        """
        from runtime_v2.bundle import new_bundle

        identifiers.validate_namespace(namespace)
        identifiers.validate_task_id(task_id)
        if opts.sandbox_id:
            identifiers.validate_task_id(opts.sandbox_id)
        # Computed once; this one value is what the shim runs with everywhere (see _create).
        effective_options = self.effective_options(opts)
        async with self.lock(task_id, namespace=namespace) as lock:
            await self.load_task(task_id, namespace=namespace)  # a dead shim's bundle: reaped
            why = self.in_use(task_id, namespace=namespace)
            if why:
                raise errdefs.AlreadyExists(
                    f'task "{task_id}" in namespace "{namespace}": already exists ({why})'
                )
            lock.set_step("creating")  # the id is reserved: nothing of it exists yet
            crashpoint("create:reserved")
            try:
                bundle = await asyncio.to_thread(
                    new_bundle, self.root, self.state, namespace, task_id, opts.spec
                )
                crashpoint("create:bundle")
                task = await self._create(bundle, opts, effective_options)
            except BaseException:
                lock.set_step("")  # _create (or new_bundle) left nothing: the id is free
                raise
            lock.set_step("created")
            return task

    async def _create(
        self, bundle: Bundle, opts: CreateOpts, effective_options: any_pb2.Any | None
    ) -> ShimTask:
        """Validate the runtime's features, start the shim and create the task, all with
        ``effective_options``: ``-info`` for feature validation, the shim's ``start`` (which
        also records them in the bundle for its ``delete``), and the Create RPC.

        Feature validation needs only the runtime, the options and the spec, so it runs before
        the shim starts and a refused create costs no shim process (containerd starts the shim
        first)."""
        task: ShimTask | None = None
        try:
            await validate_runtime_features(self.shims, opts.runtime, opts.spec, effective_options)
            try:
                task = await self.shims.start(
                    bundle,
                    runtime=opts.runtime,
                    options=effective_options,
                    sandbox_id=opts.sandbox_id,
                )
            except Exception as exc:
                raise _wrap(exc, "failed to start shim") from exc
            crashpoint("create:shim")
            create_call = asyncio.ensure_future(
                task.create(
                    rootfs=opts.rootfs,
                    stdin=opts.stdin,
                    stdout=opts.stdout,
                    stderr=opts.stderr,
                    terminal=opts.terminal,
                    checkpoint=opts.checkpoint,
                    options=effective_options,
                )
            )
            try:
                await asyncio.shield(create_call)
            except asyncio.CancelledError:
                # The shim goes on creating the container: let the RPC finish (bounded), so
                # the teardown below deletes what exists instead of racing with it.
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(self.shims.cleanup_timeout):
                        await create_call
                raise
            except Exception as exc:
                wrapped = _wrap(exc, "failed to create shim task")
                binary = task.shim.binary
                problems = binary.log.problems() if binary is not None else ""
                if problems:  # the shim's own account of what went wrong
                    wrapped = type(wrapped)(f"{wrapped}; shim log:\n{problems}")
                raise wrapped from exc
            crashpoint("create:created")
        except BaseException:
            await asyncio.shield(self._undo_create(bundle, task))
            raise
        return task

    async def _undo_create(self, bundle: Bundle, task: ShimTask | None) -> None:
        name = f"{bundle.namespace}/{bundle.id}"
        if task is not None:
            try:
                await self.shims.abort(task.shim)
            except Exception as exc:
                log.warning(
                    "task %s: failed to shut the shim down after a failed create: %s", name, exc
                )
        try:
            await asyncio.to_thread(bundle.delete)
        except OSError as exc:
            log.warning("task %s: failed to remove the bundle after a failed create: %s", name, exc)

    # -- get / tasks ----------------------------------------------------------------------------

    async def get(self, task_id: str, *, namespace: str) -> ShimTask:
        """The task ``task_id`` of ``namespace``; NotFound when there is none."""
        from runtime_v2.shim import ShimTask

        await self.load_task(task_id, namespace=namespace)
        return ShimTask(self.shims.get(namespace, task_id))

    async def tasks(self, *, namespace: str | None = None, all: bool = False) -> list[ShimTask]:
        """Tasks of ``namespace``, or of every namespace with ``all=True``."""
        if all:
            await self.load_existing_shims()
        elif namespace is not None:
            await self.load_existing_shims(namespace)
        shims = self.shims.connected(namespace, all=all)
        if not shims:
            return []  # without importing the shim client (a cheap ``tasks ls``)
        from runtime_v2.shim import ShimTask

        return [ShimTask(shim) for shim in shims]

    async def states(
        self, *, namespace: str, timeout: float, parallelism: int = STATE_PARALLELISM
    ) -> dict[str, State | None]:
        """Task id -> the ``State`` of every task of ``namespace``, asked of the shims at once
        (``parallelism`` at a time), each within ``timeout`` seconds; None for a task whose shim
        did not answer in time or failed.

        A task reattached by this very call (the namespace's first listing) is not asked again:
        reattaching asked its shim for the ``State`` a moment ago, within this call.
        """
        loaded = await self.load_existing_shims(namespace)
        shims = self.shims.connected(namespace)
        if not shims:
            return {}
        from runtime_v2 import ttrpc
        from runtime_v2.process import state_from
        from runtime_v2.shim import ShimTask

        fresh = {outcome.id: outcome.state for outcome in loaded if outcome.state is not None}
        semaphore = asyncio.Semaphore(parallelism)

        async def state_of(shim: Shim) -> State | None:
            async with semaphore:
                try:
                    async with ttrpc.timeout(timeout):
                        return await ShimTask(shim).state()
                except (errdefs.ContainerdError, TimeoutError, OSError):
                    return None

        # Answered already: no coroutine, no task (most shims, at a namespace's first listing).
        asked = [shim for shim in shims if shim.id not in fresh]
        answers = await asyncio.gather(*(state_of(shim) for shim in asked))
        states = dict(zip((shim.id for shim in asked), answers, strict=True))
        return {s.id: state_from(fresh[s.id]) if s.id in fresh else states[s.id] for s in shims}

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, task_id: str, *, namespace: str) -> Exit:
        """Delete a stopped task: the shim deletes it, shuts down, and the bundle is removed.

        NotFound for an unknown task; the shim's error (e.g. FailedPrecondition for a running
        task) leaves the task as it was, so the call can be retried. A task whose shim died is
        reaped (its shim binary's ``delete`` kills and deletes the container) and the Exit of
        that command is returned (status 255 when it said nothing).
        """
        from runtime_v2 import ttrpc
        from runtime_v2.shim import ShimTask

        async with self.lock(task_id, namespace=namespace) as lock:
            await self.load_task(task_id, namespace=namespace)
            shim = self.shims.get(namespace, task_id)

            def remove_task() -> None:
                self.shims.forget(shim)

            before = lock.step()
            lock.set_step("deleting")
            try:
                exit_ = await ShimTask(shim).delete(remove_task)
            except ttrpc.Closed:
                exit_ = await self._reap_dead(shim)
            except errdefs.NotFound as exc:
                # Deleted in the shim before (an interrupted delete): the teardown finished it.
                # containerd keeps such a task registered through the shim's shutdown, so its
                # dead-shim cleanup still publishes the exit and delete; so do we, then forget it.
                try:
                    await self.shims.publish_task_gone(namespace, task_id, None)
                finally:
                    remove_task()
                lock.set_step("")
                raise _wrap(exc, "failed to delete task") from exc
            except errdefs.ContainerdError as exc:
                lock.set_step(before)  # type: ignore[arg-type]
                raise _wrap(exc, "failed to delete task") from exc
            lock.set_step("")
            return exit_

    async def _reap_dead(self, shim: Shim) -> Exit:
        from runtime_v2.runtime import Exit
        from runtime_v2.shim_cleanup import reap_dead_shim

        self.shims.forget(shim)
        exit_ = await reap_dead_shim(
            shim.binary, shim.bundle, shim.address, self.shims.cleanup_timeout
        )
        return exit_ or Exit(pid=0, status=255, timestamp=None)

    async def remove(self, task_id: str, *, namespace: str, cgroups_path: str = "") -> Exit | None:
        """Remove task ``task_id`` whatever state it is in (``tasks rm --force``).

        Under the task's lock: a task with a shim that answers is killed (SIGKILL to every
        process), waited for and deleted; then whatever is left -- a shim that does not answer
        or is gone, a crashed step, a bundle without a shim, runc state without a bundle -- is
        torn down by :func:`runtime_v2.teardown.force_teardown` (runc kill and delete with the
        task's runc root and binary, the shim process, the bundle, the work dir, the socket).
        ``cgroups_path`` is the container's cgroup, for when the bundle (whose ``config.json``
        names it) is gone. Returns the task's Exit when the shim gave one; NotFound when there
        was nothing at all.
        Raises :class:`errdefs.Unavailable` naming the task when something could not be removed.
        """
        from runtime_v2.shim import ShimTask
        from runtime_v2.teardown import force_teardown, kill_and_delete

        async with self.lock(task_id, namespace=namespace) as lock:
            # What there was to remove, before reattaching reaps a dead shim's remains.
            found = bool(lock.step()) or os.path.lexists(
                self.bundle(task_id, namespace=namespace).path
            )
            await self.load_task(task_id, namespace=namespace)
            exit_: Exit | None = None
            shim = self.shims.find(namespace, task_id)
            if shim is not None:
                found = True
                lock.set_step("deleting")
                exit_ = await kill_and_delete(ShimTask(shim), self.shims.cleanup_timeout)
                if exit_ is None:  # it did not answer: take it out of the map, tear it down
                    self.shims.forget(shim)
            bundle = self.bundle(task_id, namespace=namespace)
            if os.path.lexists(bundle.path):
                lock.set_step("deleting")
            outcome = await force_teardown(
                bundle,
                root=self.root,
                runc_root=self.runc_root,
                shim=shim if exit_ is None else None,
                shims=self.shims,
                cgroups_path=cgroups_path,
            )
            found = found or outcome.found
            if outcome.problems:
                raise errdefs.Unavailable(
                    f'task "{task_id}" in namespace "{namespace}" could not be removed: '
                    + "; ".join(outcome.problems)
                )
            lock.set_step("")
            if not found:
                raise errdefs.NotFound(f'task "{task_id}" in namespace "{namespace}": not found')
            return exit_

    # -- introspection --------------------------------------------------------------------------

    async def plugin_info(
        self, request: introspection_pb2.RuntimeRequest | Message
    ) -> introspection_pb2.RuntimeInfo:
        """Run the runtime's ``-info`` for ``request`` (a ``containerd.types.RuntimeRequest``).

        ``request.runtime_path`` is a runtime name or absolute path; ``request.options`` go to
        the shim on stdin as given: a caller asking about a task passes the task's effective
        options (:func:`runtime_v2.options.effective_runtime_options`), the value
        :func:`validate_runtime_features` runs ``-info`` with. Both share one ``-info`` cache.
        """
        from runtime_v2.api import introspection_pb2

        if not isinstance(request, introspection_pb2.RuntimeRequest):
            raise errdefs.NotImplemented(
                f"unknown request type {type(request).__name__}: not implemented"
            )
        options = request.options if request.HasField("options") else None
        return await self.shims.runtime_info(request.runtime_path, options)

    def at_close(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Await ``callback()`` when the host closes, before the shim connections close (an
        embedder's ``Client(cleanup_on_close=True)`` deletes its tasks there)."""
        self._at_close.append(callback)

    async def aclose(self) -> None:
        """Run the :meth:`at_close` callbacks (failures are logged); the shim manager then
        closes the connections and leaves shims running."""
        callbacks, self._at_close = self._at_close, []
        for callback in callbacks:
            try:
                await callback()
            except Exception as exc:
                log.warning("a task manager close callback failed: %s", exc)


async def init(ic: registry.InitContext) -> TaskManager:
    """The task plugin's init (:mod:`runtime_v2.builtin` registers it): a :class:`TaskManager`
    on the plugin's root and state. Restart recovery happens at first use (see the module
    docstring), not here."""
    config: TaskConfig = ic.config if ic.config is not None else TaskConfig()
    # The config decoder ran the same check; an instance built in code may not have been.
    try:
        parsed = parse_platforms(config.platforms)
    except ValueError as exc:
        raise errdefs.InvalidArgument(
            f'plugins."io.containerd.runtime.v2.task".platforms: {exc}'
        ) from None
    ic.meta.platforms = parsed
    ic.meta.exports["log-uri-schemes"] = LOG_URI_SCHEMES
    shims = ic.get_single(types.SHIM_PLUGIN, ShimManager)
    for path in (ic.root, ic.state):
        securefs.make_dirs(path, 0o711)
    return TaskManager(root=ic.root, state=ic.state, shims=shims)
