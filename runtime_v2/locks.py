"""One lock per task, and the task's lifecycle step: how daemonless peers stay consistent.

taskplane has no daemon: every ``taskplane`` command and every embedder is a peer on the same
state dir, and any of them may be killed at any instant. containerd serialises work per container
in its one daemon; podman, daemonless like us, gives every container a lock that each operation
takes first (``libpod/lock/``) and keeps the container's state in its record so the next process
can finish what a crashed one began (``libpod/container_internal.go``). taskplane does the same
with one file per task:

- **The lock.** ``STATE/<namespace>/.<id>.lock`` (STATE is the task plugin's state dir, next to
  the bundle ``STATE/<namespace>/<id>``), ``flock``-ed exclusively. It is taken before any file of
  the id is touched (the io dir, the bundle, the record) and held across create and start (with
  their cleanup), delete, the dead-shim reap and restart recovery of that task; it is *not* held
  while an attached ``run`` waits for its process, so ``tasks rm --force`` from another terminal
  is not blocked by it. A crash releases it (the kernel drops the lock with the process).
  ``flock`` locks belong to an open file description, so within one process the lock is
  re-entrant along one flow of control (a context variable): ``Client.run`` holds it while the
  task manager's create and delete take it again. Other coroutines of the same process wait on
  an :class:`asyncio.Lock`; waiting for a peer's ``flock`` happens in a thread, never on the
  event loop.
- **The step.** The lock file's content is the task's lifecycle step: ``creating`` (written once
  the id is reserved, before the bundle exists), ``created`` (after the Create RPC), ``running``
  (after Start), ``deleting`` (before the Delete RPC). The file is removed, under the lock, when
  the task is gone (deleted, reaped after its shim died, or torn down by ``tasks rm --force``).
  There is no ``stopped`` step: no process is guaranteed to be there when a task exits, and the
  shim (taskplane's conmon) owns the exit status until Delete, so its answer is the truth.
  A step found by the next process that takes the lock is the account of a crashed step:
  ``tasks ls`` shows it (ORPHAN when no bundle is left) and ``tasks rm`` finishes or undoes it.
  The step is a file, not a metadata record, so an emptied or missing metadata database never
  makes a task invisible: the bundle, the step and the shim are the truth for running tasks.
- **Reservation.** An id is in use when it has a task, its bundle exists, its step is set, or a
  caller-specific record says so (the Client adds its container record and io dir); the check
  and the ``creating`` step are written under the lock, so two peers racing for one id get
  exactly one winner and the loser touches nothing. A ``.<id>`` left by a crashed bundle
  removal does not count: the next create (under the lock) finishes removing it.
- **Recovery** takes each task's lock with ``LOCK_NB`` (:meth:`TaskLock.try_acquire`): a task
  locked by a peer is being worked on and is skipped, never swept.

A lock file is unlinked when it is released with no step (the id is free again); a waiter that
then gets the lock on the unlinked file notices (the inode changed) and retries on the new file.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Collection
from typing import Literal

from plugins import securefs

__all__ = [
    "Step",
    "TaskLock",
    "lock_path",
    "read_step",
    "task_lock",
]

Step = Literal["creating", "created", "running", "deleting"]

_LOCK_SUFFIX = ".lock"


def lock_path(bundle_path: str) -> str:
    """The lock file of the task whose bundle is ``bundle_path`` (``STATE/<ns>/.<id>.lock``)."""
    parent, name = os.path.split(os.path.normpath(bundle_path))
    return os.path.join(parent, f".{name}{_LOCK_SUFFIX}")


def ids_with_steps(namespace_dir: str, *, skip: Collection[str] = ()) -> dict[str, str]:
    """Task id -> recorded step for every lock file in ``STATE/<ns>`` (read without locking),
    but the ids in ``skip`` (whose step the caller does not need: their files are not read)."""
    found: dict[str, str] = {}
    try:
        entries = os.listdir(namespace_dir)
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.startswith(".") and entry.endswith(_LOCK_SUFFIX):
            task_id = entry[1 : -len(_LOCK_SUFFIX)]
            if task_id in skip:
                continue
            step = read_step(os.path.join(namespace_dir, entry))
            if task_id and step:
                found[task_id] = step
    return found


def read_step(path: str) -> str:
    """The step recorded in lock file ``path`` ("" when none or no file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    try:
        # A step is one short word: a single read gets it all, with no file object to build
        # (restart recovery reads one per task).
        return os.read(fd, 4096).decode("utf-8").strip()
    finally:
        os.close(fd)


# _Entry and _Holder are this process's mutable lock state (identity matters, no value
# semantics): plain classes, which cost nothing to define at import, unlike attrs classes.


class _Entry:
    """This process's state for one lock file."""

    __slots__ = ("fd", "mutex", "owner", "users")

    def __init__(self) -> None:
        self.mutex = asyncio.Lock()
        self.users = 0
        self.fd = -1
        self.owner: _Holder | None = None


class _Holder:
    """One flow of control holding a lock; ``active`` until its outermost release."""

    __slots__ = ("active", "task")

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self.active = True
        #: The task that took the lock (re-entrant for it even if its context lost the holder).
        self.task = task


_table: dict[str, _Entry] = {}
_held: contextvars.ContextVar[dict[str, _Holder]] = contextvars.ContextVar("taskplane_task_locks")


def _open_locked(path: str, blocking: bool) -> int | None:
    """Open and flock ``path`` (creating it); None when ``blocking`` is False and a peer holds
    it. Runs in a thread when blocking."""
    while True:
        # Parents made and checked, no symlink followed, like every file taskplane creates.
        fd = securefs.open_file(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder may have unlinked the file after we opened it: then our lock is
        # on a file nobody else will open. Retry on the current one.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


class TaskLock:
    """The lock of one task (see the module docstring); use :func:`task_lock` to get one.

    ``async with lock:`` waits for it; :meth:`try_acquire` does not wait. While held,
    :meth:`step` / :meth:`set_step` read and write the task's lifecycle step.
    """

    def __init__(self, bundle_path: str) -> None:
        self.path = lock_path(bundle_path)
        self._reentered: list[bool] = []

    def held(self) -> bool:
        """Whether this flow of control holds the lock: the context says so (this task or the
        task that started it holds it), or this very task took it."""
        holder = _held.get({}).get(self.path)
        if holder is not None and holder.active:
            return True
        entry = _table.get(self.path)
        return (
            entry is not None
            and entry.owner is not None
            and entry.owner.active
            and entry.owner.task is not None
            and entry.owner.task is _current_task()
        )

    async def __aenter__(self) -> TaskLock:
        await self._acquire(blocking=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    @contextlib.asynccontextmanager
    async def try_acquire(self) -> AsyncIterator[bool]:
        """Take the lock if nobody holds it; yields whether it was taken (held for the block)."""
        taken = await self._acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._release()

    async def _acquire(self, *, blocking: bool) -> bool:
        if self.held():
            self._reentered.append(True)
            _table[self.path].users += 1
            return True
        entry = _table.setdefault(self.path, _Entry())
        if not blocking and entry.mutex.locked():
            return False
        entry.users += 1
        try:
            await entry.mutex.acquire()
        except BaseException:
            self._forget(entry)
            raise
        try:
            fd = _open_locked(self.path, False)
            if fd is None and blocking:
                fd = await _in_thread(self.path)
        except BaseException:
            entry.mutex.release()
            self._forget(entry)
            raise
        if fd is None:
            entry.mutex.release()
            self._forget(entry)
            return False
        holder = _Holder(task=_current_task())
        entry.fd, entry.owner = fd, holder
        held = dict(_held.get({}))
        held[self.path] = holder
        _held.set(held)
        self._reentered.append(False)
        return True

    def _release(self) -> None:
        reentered = self._reentered.pop()
        entry = _table[self.path]
        if reentered:
            entry.users -= 1
            return
        fd, holder = entry.fd, entry.owner
        entry.fd, entry.owner = -1, None
        if holder is not None:
            holder.active = False
        held = dict(_held.get({}))
        held.pop(self.path, None)
        _held.set(held)
        try:
            if fd >= 0:
                if not _read_fd(fd):
                    # No step: the id is free. Unlink while still holding the lock, so no peer
                    # keeps using a file that is gone (a waiter notices and retries).
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                os.close(fd)
        finally:
            entry.mutex.release()
            self._forget(entry)

    def _forget(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users <= 0 and _table.get(self.path) is entry:
            del _table[self.path]

    def _fd(self) -> int:
        if not self.held():
            raise RuntimeError(f"lock {self.path} is not held")
        return _table[self.path].fd

    def step(self) -> str:
        """The recorded step ("" for none); the lock must be held."""
        return _read_fd(self._fd())

    def set_step(self, step: Step | Literal[""]) -> None:
        """Record ``step`` ("" clears it: the id is free once the lock is released)."""
        fd = self._fd()
        os.ftruncate(fd, 0)
        if step:
            os.pwrite(fd, step.encode(), 0)


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _read_fd(fd: int) -> str:
    return os.pread(fd, 64, 0).decode("utf-8", "replace").strip()


async def _in_thread(path: str) -> int:
    """Wait for ``path``'s flock in a thread of its own (not the default executor, whose few
    threads a handful of waits could starve); a cancelled waiter's lock is dropped on arrival."""
    loop = asyncio.get_running_loop()
    job: asyncio.Future[int | None] = loop.create_future()

    def wait() -> None:
        try:
            fd: int | None = _open_locked(path, True)
        except BaseException as exc:  # handed to the waiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(failed, exc)
            return
        try:
            loop.call_soon_threadsafe(arrived, fd)
        except RuntimeError:  # the loop closed meanwhile (its waiter was cancelled): drop it
            if fd is not None:
                os.close(fd)

    def failed(exc: BaseException) -> None:
        if not job.done():
            job.set_exception(exc)

    def arrived(fd: int | None) -> None:
        if job.cancelled():
            if fd is not None:
                os.close(fd)  # the waiter was cancelled meanwhile: drop the lock
            return
        job.set_result(fd)

    threading.Thread(target=wait, name=f"flock {path}", daemon=True).start()
    fd = await job
    assert fd is not None
    return fd


def task_lock(bundle_path: str) -> TaskLock:
    """The lock of the task whose bundle is (or would be) ``bundle_path``."""
    return TaskLock(bundle_path)
