"""A task's stdout and stderr: FIFOs the shim writes and we read, or a log file the shim appends to.

The shim opens the paths given in ``CreateTaskRequest.stdout``/``stderr``. A plain path is a
FIFO (containerd's ``cio``); ``file:///abs/path`` makes the shim append to that file itself,
which is what a detached task needs: a FIFO cannot outlive the process reading it.

A :class:`FifoPair` holds the read ends open before the task is created, plus a throw-away write
end on each, so reading never sees end-of-file before the shim has opened its side. Once the
shim holds its write ends (after Start returns: the runc shim opens an init process's FIFOs in
Create but an exec's only in Start), :meth:`FifoPair.release` drops ours; end-of-file then means
the shim has finished copying the process's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import IO, Any, TypeAlias

from plugins import securefs

__all__ = [
    "FifoPair",
    "StdinFifo",
    "StdinSource",
    "feed",
    "file_uri",
    "make_io_dir",
    "remove_io_dir",
]

_CHUNK = 65536

#: What a process's stdin can come from: bytes, an async iterator of bytes, or a binary file
#: (anything with ``fileno()``: a pipe, a terminal, a regular file).
StdinSource: TypeAlias = bytes | AsyncIterable[bytes] | IO[bytes]
#: A FIFO we just made is opened without following a symlink put in its place meanwhile.
_FIFO_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW


def file_uri(path: str | os.PathLike[str]) -> str:
    """Return the ``file://`` stdio URI of an absolute ``path`` (the shim appends to it)."""
    return "file://" + os.path.abspath(os.fspath(path))


def make_io_dir(path: str | os.PathLike[str]) -> str:
    """Create a task's io directory (0700) and its shared parents (0711), whatever the umask;
    return its path.

    Every existing component is checked by :mod:`plugins.securefs`: a parent another user could
    write to, or a symlink someone else planted in the io directory's place, is refused before
    anything is written through it (the shim appends a detached task's log as root).
    """
    directory = os.fspath(path).rstrip("/") or "/"
    securefs.make_dirs(os.path.dirname(directory), 0o711)
    return securefs.make_dirs(directory, 0o700)


def remove_io_dir(path: str | os.PathLike[str]) -> None:
    """Remove a task's io directory and everything in it; a missing directory is fine."""
    # Imported here, not by every run before its task starts: a run imports it on a worker
    # thread while its shim starts (runtime_v2.binary.AFTER_START).
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class FifoPair:
    """The stdout and stderr FIFOs of one process, created in ``directory``.

    ``prefix`` distinguishes an exec's FIFOs from the init process's (``exec-<id>-stdout``).
    Use :meth:`copy_to` to stream both into callbacks until the shim closes them.
    """

    def __init__(
        self, directory: str | os.PathLike[str], prefix: str = "", *, stderr: bool = True
    ) -> None:
        self.directory = os.fspath(directory)
        self.stdout = os.path.join(self.directory, f"{prefix}stdout")
        # A process on a terminal has one output stream: the shim copies the console to stdout.
        self.stderr = os.path.join(self.directory, f"{prefix}stderr") if stderr else ""
        self._readers: list[int] = []
        self._keepalive: list[int] = []

    def open(self) -> FifoPair:
        """Create both FIFOs (mode 0600) and open their read ends; returns self."""
        make_io_dir(self.directory)
        try:
            for path in self._paths():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                os.mkfifo(path, 0o600)
                self._readers.append(os.open(path, os.O_RDONLY | _FIFO_FLAGS))
                self._keepalive.append(os.open(path, os.O_WRONLY | _FIFO_FLAGS))
        except BaseException:
            self.close()
            raise
        return self

    def release(self) -> None:
        """Drop our write ends: from now on end-of-file means the shim closed its side."""
        for fd in self._keepalive:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._keepalive.clear()

    async def copy_to(
        self,
        on_stdout: Callable[[bytes], object],
        on_stderr: Callable[[bytes], object],
    ) -> None:
        """Read both FIFOs until end-of-file, passing each chunk to its callback."""
        if len(self._readers) != len(self._paths()):
            raise RuntimeError("FifoPair.copy_to() needs open() first")
        sinks = (on_stdout, on_stderr)
        await asyncio.gather(*(_drain(fd, sinks[i]) for i, fd in enumerate(self._readers)))

    def _paths(self) -> list[str]:
        return [p for p in (self.stdout, self.stderr) if p]

    @contextlib.asynccontextmanager
    async def copying(
        self,
        on_stdout: Callable[[bytes], object],
        on_stderr: Callable[[bytes], object],
        drain_timeout: float,
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Run :meth:`copy_to` in the background for the block; the block gets ``drain()``,
        which waits up to ``drain_timeout`` seconds for the shim to finish copying (call it
        after the process exited). Copying still going on at the end of the block is cancelled.
        """
        copy = asyncio.ensure_future(self.copy_to(on_stdout, on_stderr))

        async def drain() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(copy), drain_timeout)

        try:
            yield drain
        finally:
            copy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await copy

    def close(self) -> None:
        """Close every descriptor and remove both FIFOs (the directory stays)."""
        self.release()
        for fd in self._readers:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._readers.clear()
        for path in self._paths():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def __enter__(self) -> FifoPair:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _drain(fd: int, sink: Callable[[bytes], object]) -> None:
    """Copy from the non-blocking ``fd`` to ``sink`` until end-of-file, using the loop's reader."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                readable.clear()
                await readable.wait()
                continue
            if not chunk:
                return
            sink(chunk)
            # A writer faster than the sink (``yes``, logged line by line) keeps the FIFO
            # full: let the loop run between chunks (a kill, the other stream) all the same.
            await asyncio.sleep(0)
    finally:
        loop.remove_reader(fd)


class StdinFifo:
    """The stdin FIFO of one process (``<prefix>stdin`` in ``directory``), written by us.

    We hold it open read-write from before the shim sees it, so the shim's opens (of either
    end: the runc shim keeps a write end itself, ``pkg/process`` ``openStdin``) never wait and
    nothing written is lost. End of input is :meth:`close` followed by the shim's CloseIO, which
    closes the shim's own write end (the task then reads end-of-file).
    """

    def __init__(self, directory: str | os.PathLike[str], prefix: str = "") -> None:
        self.path = os.path.join(directory, f"{prefix}stdin")
        self._fd = -1

    def open(self) -> StdinFifo:
        """Create the FIFO (mode 0600) and open it; returns self."""
        make_io_dir(os.path.dirname(self.path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.mkfifo(self.path, 0o600)
        try:
            self._fd = os.open(self.path, os.O_RDWR | _FIFO_FLAGS)
        except BaseException:
            os.unlink(self.path)
            raise
        return self

    async def write_all(self, source: StdinSource) -> None:
        """Copy ``source`` into the FIFO until it ends (does not close the FIFO)."""
        await feed(source, self._write)

    async def _write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                writable = asyncio.Event()
                loop.add_writer(self._fd, writable.set)
                try:
                    await writable.wait()
                finally:
                    loop.remove_writer(self._fd)

    async def feed(self, process: Any, source: StdinSource) -> None:
        """Copy ``source`` in, then close our end and ``process``'s stdin (its CloseIO)."""
        from plugins import errdefs

        try:
            await self.write_all(source)
        finally:
            self.close()
        with contextlib.suppress(errdefs.ContainerdError):
            await process.close_io()  # the shim's own write end: the process then reads EOF

    def close(self) -> None:
        """Close our end and remove the FIFO (the shim keeps what it opened)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def feed(source: StdinSource, write: Callable[[bytes], Awaitable[None]]) -> None:
    """Pass everything ``source`` yields to ``write``, chunk by chunk, until it ends.

    A file is read as it becomes readable (a terminal or pipe never blocks the loop; its
    blocking mode is left alone); a regular file is simply read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        await write(bytes(source))
        return
    if hasattr(source, "__aiter__"):
        async for chunk in source:
            if chunk:
                await write(bytes(chunk))
        return
    fd = source.fileno()
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    try:
        loop.add_reader(fd, readable.set)
    except PermissionError:  # a regular file: epoll refuses it, and reading it never blocks
        while chunk := os.read(fd, _CHUNK):
            await write(chunk)
        return
    try:
        while True:
            await readable.wait()
            readable.clear()
            # The loop may report a readiness we already consumed (the selector ran before our
            # last read): look again, the descriptor is blocking and must stay so.
            if not select.select([fd], [], [], 0)[0]:
                continue
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the terminal went away
                return
            if not chunk:
                return
            await write(chunk)
    finally:
        loop.remove_reader(fd)
