"""What an attached ``run`` or ``tasks exec`` shares: ``-i``/``-t``, signals forwarded to the
process, output copied to ours, and our terminal in raw mode with its size forwarded."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from plugins import errdefs
from taskplane.cli_common import command_nargs

if TYPE_CHECKING:
    from taskplane.terminal import Terminal

__all__ = [
    "FORWARDED_SIGNALS",
    "Output",
    "ResizeTargets",
    "SignalForwarder",
    "add_process_arguments",
    "attached",
]

#: Signals an attached ``run``/``exec`` forwards to the task instead of dying itself.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Killable(Protocol):
    """A task or exec process: something that can be signalled."""

    async def kill(self, signal: int) -> None: ...


class Resizable(Protocol):
    """A task or exec process whose pseudo-terminal can be resized."""

    async def resize_pty(self, width: int, height: int) -> None: ...


def add_process_arguments(parser: argparse.ArgumentParser, id_help: str) -> None:
    """``-i`` and ``-t`` (docker's spelling), then the task id and the command of ``run`` and
    ``tasks exec``."""
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="attach stdin to the process"
    )
    parser.add_argument(
        "-t", "--tty", action="store_true", help="run the process on a pseudo-terminal"
    )
    parser.add_argument("id", metavar="ID", help=id_help)
    parser.add_argument(
        "cmd",
        metavar="CMD",
        nargs=command_nargs(parser),
        help="the command and its arguments (after --)",
    )


class SignalForwarder:
    """Forwards SIGINT/SIGTERM to a task (or exec) instead of letting them stop taskplane.

    Installed before the task exists; a signal that arrives before :meth:`attach` is held and
    delivered as soon as the task has started.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._target: Killable | None = None
        self._held: list[int] = []
        self._sending: set[asyncio.Task[None]] = set()
        for sig in FORWARDED_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, int(sig))

    def attach(self, target: Killable) -> None:
        """Start forwarding to ``target`` (something with ``async kill(signal)``)."""
        self._target = target
        held, self._held = self._held, []
        for sig in held:
            self._send(target, sig)

    def send_now(self, sig: int) -> None:
        """Send ``sig`` to the target now (or as soon as it is attached)."""
        self._on_signal(sig)

    def _on_signal(self, sig: int) -> None:
        if self._target is None:
            self._held.append(sig)
        else:
            self._send(self._target, sig)

    def _send(self, target: Killable, sig: int) -> None:
        async def send() -> None:
            with contextlib.suppress(errdefs.ContainerdError):
                await target.kill(sig)

        job = self._loop.create_task(send())
        self._sending.add(job)
        job.add_done_callback(self._sending.discard)

    def close(self) -> None:
        """Restore the default signal handling."""
        for sig in FORWARDED_SIGNALS:
            self._loop.remove_signal_handler(sig)


class ResizeTargets:
    """The processes our terminal's window size changes are forwarded to (ResizePty)."""

    def __init__(self, terminal: Terminal | None) -> None:
        self._terminal = terminal
        self._targets: list[Resizable] = []
        self._resizing: set[asyncio.Task[None]] = set()

    def add(self, target: Resizable, size_given: tuple[int, int] | None) -> None:
        """Forward every later change to ``target``, and at once a change since ``size_given``
        (the size it was created or started with): a SIGWINCH that came in between found no
        target to resize."""
        self._targets.append(target)
        size = self._terminal.size() if self._terminal is not None else None
        if size is not None and size != size_given:
            self._resize(target, size)

    def changed(self) -> None:
        """The window size changed (SIGWINCH): resize every target."""
        size = self._terminal.size() if self._terminal is not None else None
        if size is None:
            return
        for target in self._targets:
            self._resize(target, size)

    def _resize(self, target: Resizable, size: tuple[int, int]) -> None:
        job = asyncio.get_running_loop().create_task(_resize(target, size))
        self._resizing.add(job)
        job.add_done_callback(self._resizing.discard)


async def _resize(target: Resizable, size: tuple[int, int]) -> None:
    with contextlib.suppress(errdefs.ContainerdError):  # the process may just have exited
        await target.resize_pty(*size)


@contextlib.contextmanager
def attached(tty: bool) -> Iterator[tuple[Terminal | None, ResizeTargets]]:
    """With ``tty``: our terminal (stdin's, else stdout's) in raw mode while a process is
    attached, and window size changes forwarded to the processes added to the targets."""
    if not tty:  # the terminal helpers (termios, tty) are imported only for -t
        yield None, ResizeTargets(None)
        return
    from taskplane.terminal import Terminal

    terminal = Terminal.of_caller(0, 1)
    if terminal is None:
        yield None, ResizeTargets(None)
        return
    targets = ResizeTargets(terminal)
    with terminal.forwarding_resizes(targets.changed):
        with terminal.raw() if os.isatty(0) else contextlib.nullcontext():
            yield terminal, targets


class Output:
    """Writes a process's output to our stdout/stderr as it arrives.

    When the reader of our output goes away (``taskplane run ... | head``), later chunks are
    discarded, so the shim never blocks on a full FIFO, and the process is killed once, as a
    pipeline's writer dies of SIGPIPE; :attr:`broken` tells the command to exit 141.
    """

    def __init__(self, forwarder: SignalForwarder) -> None:
        self.forwarder = forwarder
        self.broken = False

    def to(self, stream: BinaryIO) -> Callable[[bytes], None]:
        """A callback writing chunks to the binary ``stream``."""

        def write(chunk: bytes) -> None:
            if self.broken:
                return
            try:
                stream.write(chunk)
                stream.flush()
            except BrokenPipeError:
                self.broken = True
                self.forwarder.send_now(signal.SIGKILL)

        return write
