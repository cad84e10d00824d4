"""runtime_v2.locks: the per-task flock, its re-entrance along one flow, and the step it holds.

A "peer" here is another open file description flock-ing the same file, which is what another
process is to the kernel (flock locks belong to open file descriptions).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_v2.locks import ids_with_steps, lock_path, read_step, task_lock

TIMEOUT = 10


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    (tmp_path / "ns").mkdir()
    return str(tmp_path / "ns" / "t1")


@contextlib.contextmanager
def peer_holds(path: str) -> Iterator[int]:
    """A peer process's lock on ``path`` (another open file description)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def test_the_lock_file_sits_next_to_the_bundle_hidden(bundle: str) -> None:
    assert lock_path(bundle) == os.path.join(os.path.dirname(bundle), ".t1.lock")


async def test_the_lock_is_reentrant_along_one_flow(bundle: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        async with task_lock(bundle) as outer:
            async with task_lock(bundle) as inner:
                assert inner.held()
                inner.set_step("creating")
            assert outer.held()  # the inner release did not drop it
            assert outer.step() == "creating"
            outer.set_step("")
        assert not outer.held()


async def test_two_flows_of_one_process_exclude_each_other(bundle: str) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with task_lock(bundle):
            order.append("first in")
            first_in.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with task_lock(bundle):
            order.append("second in")

    async with asyncio.timeout(TIMEOUT):
        jobs = [asyncio.ensure_future(first()), asyncio.ensure_future(second())]
        await first_in.wait()
        for _ in range(5):
            await asyncio.sleep(0)  # give second every chance to (wrongly) get in
        release_first.set()
        await asyncio.gather(*jobs)
    assert order == ["first in", "first out", "second in"]


async def test_a_peer_blocks_the_lock_without_blocking_the_event_loop(bundle: str) -> None:
    with peer_holds(lock_path(bundle)) as fd:
        waiter = asyncio.ensure_future(task_lock(bundle).__aenter__())
        async with asyncio.timeout(TIMEOUT):
            for _ in range(20):
                await asyncio.sleep(0)  # the loop keeps running while the waiter waits
        assert not waiter.done()
        fcntl.flock(fd, fcntl.LOCK_UN)
        async with asyncio.timeout(TIMEOUT):
            lock = await waiter
    assert peer_is_locked_out(lock_path(bundle))
    await lock.__aexit__(None, None, None)
    assert not os.path.exists(lock_path(bundle))


async def blocked_on(inode: int) -> None:
    """Return once some flock waiter is blocked on ``inode`` (``/proc/locks`` lists waiters
    with ``->``); checked on every loop turn, bounded by TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            with open("/proc/locks") as f:
                for line in f:
                    fields = line.split()
                    if "->" in fields and fields[-3].endswith(f":{inode}"):
                        return
            await asyncio.sleep(0.01)


def peer_is_locked_out(path: str) -> bool:
    """Whether a peer's non-blocking flock on ``path`` fails (someone holds that file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def test_try_acquire_does_not_wait_for_a_peer(bundle: str) -> None:
    with peer_holds(lock_path(bundle)):
        async with task_lock(bundle).try_acquire() as taken:
            assert not taken
    async with task_lock(bundle).try_acquire() as taken:
        assert taken


async def test_a_step_stays_after_release_and_no_step_unlinks_the_file(bundle: str) -> None:
    async with task_lock(bundle) as lock:
        lock.set_step("running")
    assert read_step(lock_path(bundle)) == "running"
    assert ids_with_steps(os.path.dirname(bundle)) == {"t1": "running"}
    async with task_lock(bundle) as lock:
        assert lock.step() == "running"
        lock.set_step("")
    assert not os.path.exists(lock_path(bundle))
    assert ids_with_steps(os.path.dirname(bundle)) == {}


async def test_a_waiter_on_an_unlinked_lock_file_retries_on_the_new_one(bundle: str) -> None:
    """A releases with no step (unlinks the file) while B waits on the old file: B must not
    think it holds the lock while C locks the new file."""
    path = lock_path(bundle)
    with peer_holds(path) as fd:
        waiter = asyncio.ensure_future(task_lock(bundle).__aenter__())
        await blocked_on(os.fstat(fd).st_ino)  # B waits on the old file
        os.unlink(path)  # the holder releases with no step
        with peer_holds(path):  # C takes the new file before B wakes up
            fcntl.flock(fd, fcntl.LOCK_UN)
            # B wakes on the old file; C still holds the new one.
    async with asyncio.timeout(TIMEOUT):
        lock = await waiter
    # B holds the file at the path, not the unlinked one: a peer is locked out.
    assert peer_is_locked_out(path)
    await lock.__aexit__(None, None, None)


async def test_a_cancelled_waiter_does_not_keep_the_lock(bundle: str) -> None:
    with peer_holds(lock_path(bundle)):
        waiter = asyncio.ensure_future(task_lock(bundle).__aenter__())
        for _ in range(5):
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    # The waiter's thread gets the peer's lock once it is released, and drops it at once.
    async with asyncio.timeout(TIMEOUT), task_lock(bundle) as lock:
        assert lock.held()


async def test_a_task_started_under_the_lock_is_not_reentrant_after_release(bundle: str) -> None:
    started = asyncio.Event()
    proceed = asyncio.Event()
    got_it: list[bool] = []

    async def child() -> None:  # like a connection's reader task, created inside the lock
        started.set()
        await proceed.wait()
        async with task_lock(bundle).try_acquire() as taken:
            got_it.append(taken)

    async with asyncio.timeout(TIMEOUT):
        async with task_lock(bundle):
            job = asyncio.ensure_future(child())
            await started.wait()
        async with task_lock(bundle):  # another holder now
            proceed.set()
            await job
    assert got_it == [False]


async def test_ids_with_steps_leaves_out_the_ids_it_is_told_to_skip(bundle: str) -> None:
    async with task_lock(bundle) as lock:
        lock.set_step("running")
    namespace_dir = os.path.dirname(bundle)
    assert ids_with_steps(namespace_dir, skip={"t1"}) == {}
    assert ids_with_steps(namespace_dir, skip={"other"}) == {"t1": "running"}
    async with task_lock(bundle) as lock:
        lock.set_step("")
