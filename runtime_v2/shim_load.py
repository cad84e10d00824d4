"""Restart recovery: reattach to the shims a previous process left (containerd's ``shim_load.go``).

For every namespace directory in STATE and every bundle in it, :func:`load_existing_shims`
decides one :class:`LoadOutcome`:

- ``reattached``: the shim answered ``Connect`` and still has the task; it is back in the map.
- ``reaped``: the shim is dead (its socket refuses connections or is gone) or has no task; the
  shim's ``delete`` command ran (which kills and deletes the container), the bundle and the
  stale socket were removed. A live shim without a task is shut down first.
- ``removed``: the bundle had no shim to speak of (empty, no address, unknown runtime, no
  ``shim-binary-path`` and no container record); it was unmounted and removed.
- ``skipped``: the shim did not answer within the deadline. It is left in place, untouched
  (a wedged or overloaded shim is not a dead one -- containerd#13784), and its work dir is kept.
  Also skipped: a task whose lock another process holds (it is being created, deleted or
  reaped there).

Peers (:mod:`runtime_v2.locks`): every bundle is handled under its task's lock, taken with
``LOCK_NB``, so recovery never reaps what a peer is building or removing; a task whose lock is
free but whose bundle says a delete began (``.deleting``) is finished. Work dirs are not swept:
each ``ROOT/<ns>/<id>`` is removed only under that id's lock and only when no bundle exists for it
then, so a task created after the listing keeps its work dir.

Differences from containerd: bundles load in parallel with a bound (:data:`PARALLELISM`) and each
has a deadline (:data:`LOAD_TIMEOUT`), so one wedged shim cannot hang boot (containerd#5597);
every bundle gets a logged outcome with its reason; leaked-shim detection asks the shim for the
task's ``State`` (NotFound means no task) instead of guessing from an empty ``Pids``.
After the bundles, work dirs in ``ROOT/<ns>`` whose task has no bundle are removed.
As in containerd, a bundle's ``log`` FIFO is opened and drained before its shim is contacted
(a shim blocked on a full log pipe cannot answer); it stays open only for reattached shims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Literal

import attrs

from runtime_v2 import errdefs, identifiers
from runtime_v2 import ttrpc as _ttrpc
from runtime_v2.api import task_v3_pb2 as task_pb2
from runtime_v2.binary import ShimBinary
from runtime_v2.bundle import Bundle, load_bundle, remove_all
from runtime_v2.locks import task_lock
from runtime_v2.shim import Shim, connect
from runtime_v2.shim_manager import ShimManager, read_sandbox_id, reap_dead_shim
from runtime_v2.start_response import restore_bootstrap_params

__all__ = [
    "LOAD_TIMEOUT",
    "PARALLELISM",
    "LoadOutcome",
    "load_existing_shims",
]

log = logging.getLogger("taskplane.runtime_v2.shim_load")

#: containerd's ``io.containerd.timeout.shim.load``: the deadline for one bundle.
LOAD_TIMEOUT = 5.0
#: How many bundles load at once.
PARALLELISM = 8

Outcome = Literal["reattached", "reaped", "removed", "skipped"]

_SHIM_BINARY_PATH = "shim-binary-path"


@attrs.frozen
class LoadOutcome:
    """What restart recovery did with one bundle, and why."""

    namespace: str
    id: str
    outcome: Outcome
    reason: str


class _Done(Exception):
    """Ends one bundle's processing with an outcome."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


async def load_existing_shims(
    manager: ShimManager,
    *,
    state: str,
    root: str,
    parallelism: int = PARALLELISM,
    timeout: float = LOAD_TIMEOUT,
) -> list[LoadOutcome]:
    """Reattach to live shims under ``state`` and clean up the rest; return one outcome per bundle.

    Namespace directories that are hidden or not identifiers are left alone, as are hidden
    entries and plain files inside them.
    """
    try:
        namespaces = sorted(os.listdir(state))
    except FileNotFoundError:
        return []
    semaphore = asyncio.Semaphore(parallelism)
    outcomes: list[LoadOutcome] = []
    for namespace in namespaces:
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
        ids = [
            e
            for e in entries
            if not e.startswith(".")
            and os.path.isdir(os.path.join(ns_dir, e))
            and not os.path.islink(os.path.join(ns_dir, e))
        ]

        async def one(task_id: str, namespace: str = namespace) -> LoadOutcome:
            async with semaphore:
                return await _load_bundle(manager, state, namespace, task_id, timeout)

        ns_outcomes = await asyncio.gather(*(one(i) for i in ids))
        outcomes.extend(ns_outcomes)
        await _cleanup_work_dirs(state, root, namespace)
    return outcomes


async def _load_bundle(
    manager: ShimManager, state: str, namespace: str, task_id: str, timeout: float
) -> LoadOutcome:
    bundle = load_bundle(state, namespace, task_id)
    try:
        try:
            identifiers.validate_task_id(task_id)
        except errdefs.InvalidArgument:
            raise _Done("skipped", "the directory name is not a task id; left alone") from None
        lock = task_lock(bundle.path)
        async with lock.try_acquire() as taken:
            if not taken:
                raise _Done("skipped", "another process is working on it (its lock is held)")
            try:
                try:
                    empty = not os.listdir(bundle.path)
                except FileNotFoundError:
                    raise _Done("removed", "removed by another process meanwhile") from None
                if empty:
                    await _remove(bundle)
                    raise _Done("removed", "empty bundle")
                await _load_shim(manager, bundle, timeout)
            except _Done as done:
                if done.outcome in ("reaped", "removed") and not os.path.lexists(bundle.path):
                    lock.set_step("")  # the task is gone: its recorded step with it
                raise
    except _Done as done:
        outcome = LoadOutcome(namespace, task_id, done.outcome, done.reason)
    except Exception as exc:  # unexpected: keep going with the other bundles
        log.exception("task %s/%s: restart recovery failed", namespace, task_id)
        outcome = LoadOutcome(namespace, task_id, "skipped", f"unexpected error: {exc}")
    level = logging.WARNING if outcome.outcome == "skipped" else logging.INFO
    log.log(
        level,
        "restart recovery: task %s/%s %s: %s",
        namespace,
        task_id,
        outcome.outcome,
        outcome.reason,
    )
    return outcome


def _runtime_of(manager: ShimManager, bundle: Bundle) -> str | None:
    try:
        with open(os.path.join(bundle.path, _SHIM_BINARY_PATH), encoding="utf-8") as f:
            runtime = f.read().strip()
    except FileNotFoundError:
        runtime = ""
    if runtime:
        return runtime
    if manager.containers is None:
        return None
    try:
        record = manager.containers.get(bundle.namespace, bundle.id)
    except errdefs.NotFound:
        return None
    return str(record.runtime_name) or None


async def _remove(bundle: Bundle) -> None:
    await asyncio.to_thread(bundle.delete)


async def _load_shim(manager: ShimManager, bundle: Bundle, timeout: float) -> None:
    runtime = _runtime_of(manager, bundle)
    if runtime is None:
        await _remove(bundle)  # Bundle.delete unmounts the rootfs first
        raise _Done("removed", "no shim-binary-path and no container record to name the runtime")
    try:
        runtime_path = manager.resolve_runtime_path(runtime)
    except errdefs.ContainerdError as exc:
        await _remove(bundle)
        raise _Done("removed", f"runtime {runtime} cannot be resolved: {exc}") from None
    binary = manager.binary(runtime_path, bundle)
    try:
        endpoint = restore_bootstrap_params(bundle.path)
    except (errdefs.ContainerdError, OSError) as exc:
        # The shim's start never finished: shut down whatever it left, then drop the bundle.
        await manager.reap_unconnected(binary)
        await _remove(bundle)
        raise _Done("removed", f"no shim address: {exc}") from None

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
    shim: Shim | None = None
    try:
        shim = await _connect_shim(
            manager, binary, bundle, endpoint.address, endpoint.protocol, endpoint.version, timeout
        )
    finally:
        if shim is None:
            binary.close()
    raise _Done("reattached", f"shim pid {shim.shim_pid}, task API v{shim.version}")


async def _connect_shim(
    manager: ShimManager,
    binary: ShimBinary,
    bundle: Bundle,
    address: str,
    protocol: str,
    version: int,
    timeout: float,
) -> Shim:
    """Connect to the shim at ``address`` and return it once it is back in the map
    (reattached); raise :class:`_Done` with any other outcome."""
    client: _ttrpc.Client | None = None
    shim: Shim | None = None
    has_task = False
    failure: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            client = await connect(address, timeout=timeout)
            shim = Shim(bundle, client, address=address, protocol=protocol, version=version)
            shim.sandbox_id = read_sandbox_id(bundle)
            await shim.negotiate(version=max(version, 2))
            has_task = await _has_task(shim)
    except (TimeoutError, errdefs.DeadlineExceeded):
        # Slow is not dead: a wedged or overloaded shim keeps its container (#13784).
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        raise _Done("skipped", f"shim did not answer within {timeout:g} s; left in place") from None
    except (errdefs.ContainerdError, OSError, EOFError) as exc:
        failure = exc
    if failure is not None:
        if client is not None:
            await client.close()
        await reap_dead_shim(binary, bundle, address)
        raise _Done("reaped", f"shim is dead ({failure})")
    assert shim is not None
    if not has_task:
        await manager.abort(shim)
        await reap_dead_shim(binary, bundle, address)
        raise _Done("reaped", "shim is alive but has no task (leaked shim); shut it down")
    shim.binary = binary
    try:
        manager.shims.add(bundle.namespace, bundle.id, shim)
    except errdefs.AlreadyExists:
        await shim.close()
        raise _Done("skipped", "already loaded") from None
    manager.watch(shim, binary)
    if shim.client.closed:
        # Died between the check and the watch: its on-close callback never ran.
        manager.shims.delete(bundle.namespace, bundle.id)
        await reap_dead_shim(binary, bundle, address)
        raise _Done("reaped", "shim exited while being reattached")
    return shim


async def _has_task(shim: Shim) -> bool:
    try:
        await shim.call("State", task_pb2.StateRequest(id=shim.id), task_pb2.StateResponse)
    except errdefs.NotFound:
        return False
    return True


async def _cleanup_work_dirs(state: str, root: str, namespace: str) -> None:
    """Remove each ``ROOT/<ns>/<id>`` whose task has no bundle, under that task's lock."""
    ns_root = os.path.join(root, namespace)
    try:
        entries = os.listdir(ns_root)
    except FileNotFoundError:
        return
    for entry in entries:
        task_id = entry[1:] if entry.startswith(".") else entry
        try:
            identifiers.validate_task_id(task_id)
        except errdefs.InvalidArgument:
            continue
        bundle = load_bundle(state, namespace, task_id)
        async with task_lock(bundle.path).try_acquire() as taken:
            # Locked: a peer is creating or deleting it. A bundle: it belongs to a task.
            if not taken or os.path.lexists(bundle.path):
                continue
            path = os.path.join(ns_root, entry)
            log.info("restart recovery: removing stray work dir %s", path)
            try:
                await asyncio.to_thread(remove_all, path)
            except OSError as exc:
                log.warning("failed to remove stray work dir %s: %s", path, exc)
