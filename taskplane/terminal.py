"""The caller's terminal while a process on a pseudo-terminal is attached to it (``-t``).

What ``ctr``/``nerdctl`` do (containerd ``pkg/console``, ``cmd/ctr/commands``
``HandleConsoleResize``): the caller's terminal goes into raw mode, so every key reaches the
process's terminal, which does the echoing and line editing; its size is given to the process
before it starts and again on every SIGWINCH (ResizePty). The modes are restored however the
attachment ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import termios
import tty
from collections.abc import Callable, Iterator

__all__ = ["Terminal"]


class Terminal:
    """A terminal of ours (a descriptor on a tty), e.g. the stdin of ``taskplane run -it``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def of_caller(cls, *fds: int) -> Terminal | None:
        """The first of ``fds`` that is a terminal, or None."""
        for fd in fds:
            with contextlib.suppress(OSError, ValueError):
                if os.isatty(fd):
                    return cls(fd)
        return None

    def size(self) -> tuple[int, int] | None:
        """(columns, rows) of the terminal; None when it has no size."""
        try:
            columns, rows = os.get_terminal_size(self.fd)
        except OSError:
            return None
        return (columns, rows) if columns and rows else None

    @contextlib.contextmanager
    def raw(self) -> Iterator[None]:
        """Raw mode for the block; the previous modes come back on every way out."""
        saved = termios.tcgetattr(self.fd)
        try:
            tty.setraw(self.fd, termios.TCSANOW)
            yield
        finally:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)

    @contextlib.contextmanager
    def forwarding_resizes(self, on_change: Callable[[], None]) -> Iterator[None]:
        """Call ``on_change`` on every SIGWINCH (the window size changed) during the block."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGWINCH, on_change)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
