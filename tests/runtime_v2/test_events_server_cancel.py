"""``EventsServer.start`` cancelled while it waits for the address's lock file: the file stays
open until the thread that locks it is done with it, then is closed (never closed under the
thread, whose call would then lock whatever file got the number next)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime_v2 import events_server
from runtime_v2.events_server import EventsServer


async def _nowhere(envelope: Any) -> None:
    raise AssertionError("no event is expected")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_a_start_cancelled_while_locking_closes_the_lock_file_after_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, go_on, returned = threading.Event(), threading.Event(), threading.Event()
    locked: list[int] = []

    def flock(fd: int, operation: int) -> None:  # a lock a peer holds until go_on
        if operation == fcntl.LOCK_UN:
            return
        locked.append(fd)
        entered.set()
        go_on.wait(30)
        returned.set()

    monkeypatch.setattr(events_server.fcntl, "flock", flock)
    server = EventsServer(str(tmp_path / "e.sock"), _nowhere, timeout=1)
    start = asyncio.ensure_future(server.start())
    await asyncio.to_thread(entered.wait, 30)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    (fd,) = locked
    assert _is_open(fd)  # the thread is still in its call on it
    go_on.set()
    await asyncio.to_thread(returned.wait, 30)
    for _ in range(100):  # the loop runs the thread's done callback: a few turns
        if not _is_open(fd):
            break
        await asyncio.sleep(0)
    assert not _is_open(fd)
    assert not server.serving
