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
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from plugins import securefs

__all__ = ["FifoPair", "file_uri", "make_io_dir", "remove_io_dir"]

_CHUNK = 65536
#: A FIFO we just made is opened without following a symlink put in its place meanwhile.
_FIFO_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW


def file_uri(path: str | os.PathLike[str]) -> str:
    """Return the ``file://`` stdio URI of an absolute ``path`` (the shim appends to it)."""
    return "file://" + os.path.abspath(os.fspath(path))


def make_io_dir(path: str | os.PathLike[str]) -> Path:
    """Create a task's io directory (0700) and its shared parents (0711), whatever the umask.

    Every existing component is checked by :mod:`plugins.securefs`: a parent another user could
    write to, or a symlink someone else planted in the io directory's place, is refused before
    anything is written through it (the shim appends a detached task's log as root).
    """
    directory = Path(path)
    securefs.make_dirs(directory.parent, 0o711)
    return Path(securefs.make_dirs(directory, 0o700))


def remove_io_dir(path: str | os.PathLike[str]) -> None:
    """Remove a task's io directory and everything in it; a missing directory is fine."""
    shutil.rmtree(path, ignore_errors=True)


class FifoPair:
    """The stdout and stderr FIFOs of one process, created in ``directory``.

    ``prefix`` distinguishes an exec's FIFOs from the init process's (``exec-<id>-stdout``).
    Use :meth:`copy_to` to stream both into callbacks until the shim closes them.
    """

    def __init__(self, directory: str | os.PathLike[str], prefix: str = "") -> None:
        self.directory = Path(directory)
        self.stdout = str(self.directory / f"{prefix}stdout")
        self.stderr = str(self.directory / f"{prefix}stderr")
        self._readers: list[int] = []
        self._keepalive: list[int] = []

    def open(self) -> FifoPair:
        """Create both FIFOs (mode 0600) and open their read ends; returns self."""
        make_io_dir(self.directory)
        try:
            for path in (self.stdout, self.stderr):
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
        if len(self._readers) != 2:
            raise RuntimeError("FifoPair.copy_to() needs open() first")
        await asyncio.gather(
            _drain(self._readers[0], on_stdout), _drain(self._readers[1], on_stderr)
        )

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
        for path in (self.stdout, self.stderr):
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
    finally:
        loop.remove_reader(fd)
