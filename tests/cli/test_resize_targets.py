"""Window size changes reach a ``-t`` process even when they come before it is attached.

A real pseudo-terminal stands for the caller's terminal: its size is set with TIOCSWINSZ, as a
terminal emulator does before it sends SIGWINCH.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
from collections.abc import Iterator

import pytest

from taskplane.cli_attach import ResizeTargets
from taskplane.terminal import Terminal


class Recorder:
    """A process whose pseudo-terminal sizes are recorded."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.resized = asyncio.Event()

    async def resize_pty(self, width: int, height: int) -> None:
        self.sizes.append((width, height))
        self.resized.set()


def set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@pytest.fixture
def tty() -> Iterator[int]:
    primary, secondary = os.openpty()
    set_size(secondary, 80, 24)
    yield secondary
    os.close(primary)
    os.close(secondary)


async def test_a_change_before_the_process_is_added_is_forwarded_when_it_is(tty: int) -> None:
    targets = ResizeTargets(Terminal(tty))
    set_size(tty, 120, 40)  # the process was created at 80x24; a SIGWINCH now finds no target
    process = Recorder()
    targets.add(process, (80, 24))
    async with asyncio.timeout(10):  # only stops a hung test
        await process.resized.wait()
    assert process.sizes == [(120, 40)]


async def test_an_unchanged_size_is_not_sent_again_and_later_changes_are(tty: int) -> None:
    targets = ResizeTargets(Terminal(tty))
    process = Recorder()
    targets.add(process, (80, 24))
    set_size(tty, 100, 30)
    targets.changed()  # what SIGWINCH calls
    async with asyncio.timeout(10):  # only stops a hung test
        await process.resized.wait()
    assert process.sizes == [(100, 30)]
