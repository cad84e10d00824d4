"""Restart recovery: reattach to the shims a previous process left (containerd's ``shim_load.go``).

For every namespace directory in STATE (or the namespaces asked for) and every bundle in it,
:func:`load_existing_shims` decides one :class:`LoadOutcome`; :func:`load_task` does the same for
one task:

- ``reattached``: the shim answered ``Connect`` and still has the task; it is back in the map.
- ``reaped``: the shim is dead (its socket refuses connections or is gone) or has no task; the
  shim's ``delete`` command ran (which kills and deletes the container), the bundle and the
  stale socket were removed. A live shim without a task is shut down first.
- ``removed``: the bundle had no shim to speak of (empty, no address, unknown runtime, no
  ``shim-binary-path`` and no container record); it was unmounted and removed.
- ``skipped``: the shim did not answer within the deadline, or its process is stopped. It is
  left in place, untouched (a wedged or overloaded shim is not a dead one -- containerd#13784),
  and its work dir is kept.
  Also skipped: a task whose lock another process holds (it is being created, deleted or
  reaped there).

Peers (:mod:`runtime_v2.locks`): whatever recovery removes or reaps, it does under the task's
lock, taken with ``LOCK_NB``, so it never reaps what a peer is building or removing; a task whose
lock is free but whose bundle says a delete began (``.deleting``) is finished. A task whose
recorded step says nothing is pending (``created``, ``running``) is reattached without taking
its lock; only when its shim needs cleaning up is the lock taken and the bundle looked at again.
Work dirs are not swept: each ``ROOT/<ns>/<id>`` is removed only under that id's lock and only
when no bundle exists for it then, so a task created after the listing keeps its work dir.

Differences from containerd: bundles of every namespace load in parallel with a bound
(:data:`PARALLELISM`) and each has a deadline (:data:`LOAD_TIMEOUT`), so one wedged shim cannot
hang boot (containerd#5597); a shim whose process is stopped (the pid it gave at start names a
process in state T) is skipped at once instead of after the deadline;
every bundle gets a logged outcome with its reason; leaked-shim detection asks the shim for the
task's ``State`` (NotFound means no task) instead of guessing from an empty ``Pids``.
After the bundles, work dirs in ``ROOT/<ns>`` whose task has no bundle are removed.
containerd loads every bundle when its daemon starts; a taskplane process is not a daemon, so
its task manager calls these at a namespace's or a task's first use
(:class:`runtime_v2.task_manager.TaskManager`), and a task this process already has in its map
is not loaded again.
As in containerd, a bundle's ``log`` FIFO is opened and drained before its shim is contacted
(a shim blocked on a full log pipe cannot answer); it stays open only for reattached shims.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Literal

import attrs

from plugins import identifiers
from registry.log import get_logger
from runtime_v2 import errdefs
from runtime_v2.bundle import SHIM_BINARY_PATH_FILE, Bundle, load_bundle, remove_all
from runtime_v2.locks import lock_path, read_step, task_lock
from runtime_v2.shim_cleanup import read_sandbox_id, read_shim_pid, reap_dead_shim, shim_argv

if TYPE_CHECKING:
    from runtime_v2.api.task_v3_pb2 import StateResponse
    from runtime_v2.binary import ShimBinary
    from runtime_v2.shim import Shim
    from runtime_v2.shim_manager import ShimManager

__all__ = [
    "LOAD_TIMEOUT",
    "PARALLELISM",
    "FirstUseLoader",
    "LoadOutcome",
    "load_existing_shims",
    "load_task",
]

log = get_logger(__name__)

#: containerd's ``io.containerd.timeout.shim.load``: the deadline for one bundle.
LOAD_TIMEOUT = 5.0
#: How many bundles load at once (across namespaces).
PARALLELISM = 16

Outcome = Literal["reattached", "reaped", "removed", "skipped"]

#: Steps after which nothing is pending: the task was created (and maybe started) and its shim
#: owns it. Such a task is reattached without its lock; the lock is taken only when the shim
#: turns out to need cleaning up.
_SETTLED_STEPS = frozenset({"created", "running"})


@attrs.frozen
class LoadOutcome:
    """What restart recovery did with one bundle, and why. ``state`` is the task's ``State``
    as its shim answered it while being reattached (None for every other outcome)."""

    namespace: str
    id: str
    outcome: Outcome
    reason: str
    state: StateResponse | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)


def _result(outcome: Outcome, reason: str, state: StateResponse | None = None) -> LoadOutcome:
    """One bundle's outcome and its reason, before :func:`_load_bundle` names it with the
    task (a class of its own would cost every process that loads a bundle its building)."""
    return LoadOutcome("", "", outcome, reason, state=state)


#: Returned by the lock-free attempt when there is work that needs the task's lock.
_NEEDS_LOCK = _result("skipped", "")


async def load_existing_shims(
    manager: ShimManager,
    *,
    state: str,
    root: str,
    parallelism: int = PARALLELISM,
    timeout: float = LOAD_TIMEOUT,
    namespaces: Collection[str] | None = None,
) -> list[LoadOutcome]:
    """Reattach to live shims under ``state`` and clean up the rest; return one outcome per bundle
    (ordered by namespace, then id). Bundles of every namespace (of ``namespaces`` when given)
    load at once, ``parallelism`` at a time; a task ``manager`` already has is left out.

    Namespace directories that are hidden or not identifiers are left alone, as are hidden
    entries and plain files inside them.
    """
    if namespaces is None:
        try:
            namespaces = os.listdir(state)
        except FileNotFoundError:
            return []
    found: list[tuple[str, str]] = []
    loaded: list[str] = []
    for namespace in sorted(namespaces):
        ns_dir = os.path.join(state, namespace)
        if namespace.startswith(".") or not os.path.isdir(ns_dir):
            continue
        try:
            identifiers.validate_namespace(namespace)
        except errdefs.InvalidArgument:
            log.warning("ignoring %s in the task state dir: not a namespace name", ns_dir)
            continue
        try:
            entries = sorted(os.listdir(ns_dir))
        except OSError as exc:
            log.error("failed to list namespace dir %s: %s", ns_dir, exc)
            continue
        loaded.append(namespace)
        found += [
            (namespace, e)
            for e in entries
            if not e.startswith(".")
            and not manager.has(namespace, e)
            and os.path.isdir(os.path.join(ns_dir, e))
            and not os.path.islink(os.path.join(ns_dir, e))
        ]
    semaphore = asyncio.Semaphore(parallelism)
    # Bundles name their shim binary by path, mostly the same one: it is resolved (and its
    # trust checked, a stat per directory on its path) once per pass, not once per bundle.
    # Nothing runs it during the pass; a shim that dies later is cleaned up with the binary
    # resolved here, as it would be had it been resolved a few milliseconds later.
    resolve = functools.cache(manager.resolve_runtime_path)

    async def one(namespace: str, task_id: str) -> LoadOutcome:
        async with semaphore:
            return await _load_bundle(manager, state, namespace, task_id, timeout, resolve)

    outcomes = list(await asyncio.gather(*(one(ns, i) for ns, i in found)))
    for namespace in loaded:
        await _cleanup_work_dirs(state, root, namespace)
    return outcomes


class FirstUseLoader:
    """Restart recovery at first use, for one task manager: each namespace's bundles once
    (:meth:`namespace`), a task's whenever it is not loaded (:meth:`task`). Mutable state of
    one process (what was loaded), not a value.

    containerd's daemon loads every bundle when it starts; a taskplane process is a command or
    an embedder, not a daemon, so it loads what it uses when it first uses it. That is safe
    with peers killed at any instant: everything recovery does is decided per task under that
    task's lock, exactly as at init, only later; a task nobody in this process uses is left to
    whichever process uses it, as containerd leaves it until its daemon starts. Recovery never
    published the exit of a shim that died unwatched, so deferring it loses no event. A task
    skipped (a peer held its lock, its shim is stopped) is tried again at its next use.
    """

    def __init__(self, manager: ShimManager, *, state: str, root: str, timeout: float) -> None:
        self._manager = manager
        self._state = state
        self._root = root
        self._timeout = timeout
        #: Every outcome so far, in load order.
        self.outcomes: list[LoadOutcome] = []
        #: Namespaces whose bundles were all loaded (None: every namespace was).
        self._namespaces: set[str] | None = set()
        # One load at a time: a task is never connected to twice (two readers of its log
        # FIFO). Loads take task locks only without waiting: a caller holding one cannot
        # deadlock with a load.
        self._loading = asyncio.Lock()

    async def namespace(self, namespace: str | None) -> list[LoadOutcome]:
        """Load ``namespace`` (every namespace for None) unless it was; this call's outcomes."""
        async with self._loading:
            if self._namespaces is None or namespace in self._namespaces:
                return []
            outcomes = await load_existing_shims(
                self._manager,
                state=self._state,
                root=self._root,
                timeout=self._timeout,
                namespaces=None if namespace is None else (namespace,),
            )
            self.outcomes += outcomes
            if namespace is None:
                self._namespaces = None
            else:
                self._namespaces.add(namespace)
            return outcomes

    async def task(self, namespace: str, task_id: str) -> LoadOutcome | None:
        """:func:`load_task` for one task, recorded with the others. A task that is loaded
        or has nothing on disk (a new id) returns at once, without waiting behind another
        task's load (a wedged shim holds a load for up to its deadline)."""
        if self._manager.has(namespace, task_id) or not load_bundle(
            self._state, namespace, task_id
        ).has_remains(self._root):
            return None
        async with self._loading:
            outcome = await load_task(
                self._manager,
                state=self._state,
                root=self._root,
                namespace=namespace,
                task_id=task_id,
                timeout=self._timeout,
            )
            if outcome is not None:
                self.outcomes.append(outcome)
            return outcome


async def load_task(
    manager: ShimManager,
    *,
    state: str,
    root: str,
    namespace: str,
    task_id: str,
    timeout: float = LOAD_TIMEOUT,
) -> LoadOutcome | None:
    """:func:`load_existing_shims` for the one task ``task_id`` of ``namespace`` (both valid
    identifiers): its outcome, or None when ``manager`` already has the task or it has no
    bundle. Its work dir goes when it has no bundle, as the namespace's would."""
    if manager.has(namespace, task_id):
        return None
    bundle = load_bundle(state, namespace, task_id)
    if not os.path.isdir(bundle.path) or os.path.islink(bundle.path):
        for entry in (task_id, f".{task_id}"):
            if os.path.lexists(os.path.join(root, namespace, entry)):
                await _cleanup_work_dir(state, root, namespace, entry)
        return None
    return await _load_bundle(
        manager, state, namespace, task_id, timeout, manager.resolve_runtime_path
    )


#: How a pass resolves a runtime name or path to its shim binary (ShimManager's, maybe cached).
_Resolve = Callable[[str], str]


async def _load_bundle(
    manager: ShimManager,
    state: str,
    namespace: str,
    task_id: str,
    timeout: float,
    resolve: _Resolve,
) -> LoadOutcome:
    bundle = load_bundle(state, namespace, task_id)
    try:
        result = await _recover(manager, bundle, timeout, resolve)
    except Exception as exc:  # unexpected: keep going with the other bundles
        log.exception("task %s/%s: restart recovery failed", namespace, task_id)
        result = _result("skipped", f"unexpected error: {exc}")
    level = logging.WARNING if result.outcome == "skipped" else logging.INFO
    log.log(
        level,
        "restart recovery: task %s/%s %s: %s",
        namespace,
        task_id,
        result.outcome,
        result.reason,
    )
    return attrs.evolve(result, namespace=namespace, id=task_id)


async def _recover(
    manager: ShimManager, bundle: Bundle, timeout: float, resolve: _Resolve
) -> LoadOutcome:
    try:
        identifiers.validate_task_id(bundle.id)
    except errdefs.InvalidArgument:
        return _result("skipped", "the directory name is not a task id; left alone")
    if read_step(lock_path(bundle.path)) in _SETTLED_STEPS:
        # Nothing is pending: a live shim is reattached without the lock (cheap, and a peer
        # holding it for an exec or a kill is no reason to skip the task).
        result = await _load_shim(manager, bundle, timeout, resolve, locked=False)
        if result is not _NEEDS_LOCK:
            return result
    lock = task_lock(bundle.path)
    async with lock.try_acquire() as taken:
        if not taken:
            return _result("skipped", "another process is working on it (its lock is held)")
        result = await _recover_locked(manager, bundle, timeout, resolve)
        if result.outcome in ("reaped", "removed") and not os.path.lexists(bundle.path):
            lock.set_step("")  # the task is gone: its recorded step with it
        return result


async def _recover_locked(
    manager: ShimManager, bundle: Bundle, timeout: float, resolve: _Resolve
) -> LoadOutcome:
    try:
        empty = not os.listdir(bundle.path)
    except FileNotFoundError:
        return _result("removed", "removed by another process meanwhile")
    if empty:
        await _remove(bundle)
        return _result("removed", "empty bundle")
    return await _load_shim(manager, bundle, timeout, resolve, locked=True)


async def _runtime_of(manager: ShimManager, bundle: Bundle) -> str | None:
    try:
        with open(os.path.join(bundle.path, SHIM_BINARY_PATH_FILE), encoding="utf-8") as f:
            runtime = f.read().strip()
    except FileNotFoundError:
        runtime = ""
    if runtime:
        return runtime
    containers = manager.containers
    if containers is None:
        return None
    try:
        # The store is SQLite with a long busy timeout: never on the event loop.
        record = await asyncio.to_thread(containers.get, bundle.namespace, bundle.id)
    except errdefs.NotFound:
        return None
    return str(record.runtime_name) or None


async def _remove(bundle: Bundle) -> None:
    await asyncio.to_thread(bundle.delete)


async def _load_shim(
    manager: ShimManager, bundle: Bundle, timeout: float, resolve: _Resolve, *, locked: bool
) -> LoadOutcome:
    """Reattach ``bundle``'s shim, or (``locked``) clean up what cannot be reattached. Without
    the lock nothing is removed: :data:`_NEEDS_LOCK` says the locked pass must decide."""
    from runtime_v2.start_response import restore_bootstrap_params

    runtime = await _runtime_of(manager, bundle)
    if runtime is None:
        if not locked:
            return _NEEDS_LOCK
        await _remove(bundle)  # Bundle.delete unmounts the rootfs first
        return _result("removed", "no shim-binary-path and no container record to name the runtime")
    try:
        runtime_path = resolve(runtime)
    except errdefs.ContainerdError as exc:
        if not locked:
            return _NEEDS_LOCK
        await _remove(bundle)
        return _result("removed", f"runtime {runtime} cannot be resolved: {exc}")
    binary = manager.binary(runtime_path, bundle)
    try:
        endpoint = restore_bootstrap_params(bundle.path)
    except (errdefs.ContainerdError, OSError) as exc:
        if not locked:
            return _NEEDS_LOCK
        # The shim's start never finished: shut down whatever it left, then drop the bundle.
        await manager.reap_unconnected(binary)
        await _remove(bundle)
        return _result("removed", f"no shim address: {exc}")
    recorded_pid = read_shim_pid(bundle)
    stopped = _stopped_shim_pid(recorded_pid)
    if stopped:
        # A stopped process accepts connections (the kernel queues them) but cannot answer:
        # waiting for the deadline would cost every command that much. Not dead, so left alone.
        return _result("skipped", f"shim process {stopped} is stopped; left in place")

    # containerd opens the log first, too: a shim whose log FIFO filled up while no process
    # read it is blocked writing and would not answer Connect (#4509). Kept open only for a
    # shim that is reattached; every other outcome closes it.
    try:
        binary.log.open()
    except (errdefs.ContainerdError, OSError) as exc:
        log.warning(
            "task %s/%s: cannot open the shim log %s: %s",
            bundle.namespace,
            bundle.id,
            binary.log.path,
            exc,
        )
    try:
        result = await _connect_shim(
            manager,
            binary,
            bundle,
            endpoint.address,
            endpoint.protocol,
            endpoint.version,
            timeout,
            locked=locked,
            shim_pid=recorded_pid,
        )
    except BaseException:  # cancelled (a load runs inside a caller's call now) or failed
        binary.close()
        raise
    if result.outcome != "reattached":
        binary.close()
    return result


def _stopped_shim_pid(pid: int) -> int:
    """``pid`` (the one a bundle's shim gave when it was started, :func:`read_shim_pid`) when
    that process is stopped (SIGSTOP, traced), else 0. It counts only while that pid is still a
    shim process (not reused by something else)."""
    if pid <= 0:
        return 0
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:  # one read returns the whole line (no file object: one per task)
            line = os.read(fd, 4096)
        finally:
            os.close(fd)
        state = line.rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return 0
    # Whether it is still a shim is asked only of a stopped process (one read per task less).
    return pid if state in (b"T", b"t") and shim_argv(pid) is not None else 0


async def _connect_shim(
    manager: ShimManager,
    binary: ShimBinary,
    bundle: Bundle,
    address: str,
    protocol: str,
    version: int,
    timeout: float,
    *,
    locked: bool,
    shim_pid: int,
) -> LoadOutcome:
    """Connect to the shim at ``address``: reattached when it is back in the map. Without the
    lock, a shim to clean up is :data:`_NEEDS_LOCK`. ``shim_pid`` is the daemon's pid as
    recorded at its start (0 when unknown: the shim is asked)."""
    from runtime_v2 import ttrpc
    from runtime_v2.shim import Shim, connect

    client: ttrpc.Client | None = None
    shim: Shim | None = None
    state: StateResponse | None = None
    failure: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            client = await connect(address, timeout=timeout)
            shim = Shim(bundle, client, address=address, protocol=protocol, version=max(version, 2))
            shim.sandbox_id = read_sandbox_id(bundle)
            shim.shim_pid = shim_pid
            state = await _task_state(shim)
    except (TimeoutError, errdefs.DeadlineExceeded):
        # Slow is not dead: a wedged or overloaded shim keeps its container (#13784).
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        return _result("skipped", f"shim did not answer within {timeout:g} s; left in place")
    except (errdefs.ContainerdError, OSError, EOFError) as exc:
        failure = exc
    except BaseException:  # cancelled by the caller whose call loads the task: close, not leak
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(client.close())
        raise
    if failure is not None:
        if client is not None:
            await client.close()
        if not locked:
            return _NEEDS_LOCK
        await reap_dead_shim(binary, bundle, address)
        return _result("reaped", f"shim is dead ({failure})")
    assert shim is not None
    if state is None:
        if not locked:
            await shim.close()
            return _NEEDS_LOCK
        await manager.abort(shim)
        await reap_dead_shim(binary, bundle, address)
        return _result("reaped", "shim is alive but has no task (leaked shim); shut it down")
    shim.binary = binary
    # Reattached, the events address is not served yet: the first call that acts on the shim
    # serves it (ShimManager.start_events_server says why a listing need not).
    if not manager.adopt(shim, binary):
        await shim.close()
        return _result("skipped", "already loaded")
    if shim.client.closed:
        # Died between the check and the watch: its on-close callback never ran.
        manager.forget(shim)
        if not locked:
            return _NEEDS_LOCK
        await reap_dead_shim(binary, bundle, address)
        return _result("reaped", "shim exited while being reattached")
    return _result("reattached", f"shim pid {shim.shim_pid}, task API v{shim.version}", state=state)


async def _task_state(shim: Shim) -> StateResponse | None:
    """The task's ``State`` (None when the shim has no such task), which also proves the shim
    alive and serving the task API version it announced.

    One round trip where ``Connect`` and the leaked-shim check take two: the shim pid
    ``Connect`` would give was recorded when the shim started (``shim.shim_pid``; the daemon
    that answers on the socket is the one that answered then, and SO_PEERCRED would name the
    process that bound the socket, which for a runc shim is its ``start``), and the init pid
    is in the answer. ``Connect`` (:meth:`~runtime_v2.shim.Shim.negotiate`, which also finds
    the version served) is sent only when the pid was not recorded (a bundle containerd
    made) or the shim does not serve the version it announced.
    """
    from runtime_v2.api import task_v3_pb2 as task_pb2

    request = task_pb2.StateRequest(id=shim.id)
    if not shim.shim_pid:
        await shim.negotiate(version=shim.version)
    try:
        try:
            response = await shim.call("State", request, task_pb2.StateResponse)
        except errdefs.NotImplemented:
            await shim.negotiate(version=shim.version)
            response = await shim.call("State", request, task_pb2.StateResponse)
    except errdefs.NotFound:
        return None
    shim.task_pid = response.pid
    return response


async def _cleanup_work_dirs(state: str, root: str, namespace: str) -> None:
    """Remove each ``ROOT/<ns>/<id>`` whose task has no bundle, under that task's lock."""
    try:
        entries = os.listdir(os.path.join(root, namespace))
    except FileNotFoundError:
        return
    for entry in entries:
        await _cleanup_work_dir(state, root, namespace, entry)


async def _cleanup_work_dir(state: str, root: str, namespace: str, entry: str) -> None:
    """Remove ``ROOT/<ns>/<entry>`` (a task's work dir, or ``.<id>`` left by a removal) when its
    task has no bundle, under that task's lock."""
    task_id = entry[1:] if entry.startswith(".") else entry
    try:
        identifiers.validate_task_id(task_id)
    except errdefs.InvalidArgument:
        return
    bundle = load_bundle(state, namespace, task_id)
    if os.path.lexists(bundle.path):
        return  # it belongs to a task (checked again under the lock below)
    async with task_lock(bundle.path).try_acquire() as taken:
        # Locked: a peer is creating or deleting it. A bundle: it belongs to a task.
        if not taken or os.path.lexists(bundle.path):
            return
        path = os.path.join(root, namespace, entry)
        log.info("restart recovery: removing stray work dir %s", path)
        try:
            await asyncio.to_thread(remove_all, path)
        except OSError as exc:
            log.warning("failed to remove stray work dir %s: %s", path, exc)
