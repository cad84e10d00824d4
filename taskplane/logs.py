"""Every task's output, logged in docker's json-file format, size-capped, kept with the task.

One JSON object a line, as docker's ``json-file`` driver writes them (moby
``daemon/logger/jsonfilelog``)::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-30T10:04:41.123456789Z"}

``log`` is one line of output with its newline (a partial line is written when the stream ends
or the line grows past :data:`MAX_LINE`); bytes that are not UTF-8 survive the round trip
(surrogate escapes). The current file is ``log.json`` in the task's io dir; when it exceeds
``max_size`` it is renamed ``log.json.1`` (older ones shift up to ``.{max_files - 1}``, the
oldest is dropped), as docker's ``max-size``/``max-file`` do.

Who writes it: an attached ``run`` writes the log itself as it copies the FIFOs. A detached
task outlives the command, so its shim starts our logging binary (containerd's ``binary://``
stdio URI, ``pkg/process/io.go`` ``NewBinaryIO``: fds 3 and 4 are the stdout and stderr pipes,
closing fd 5 tells the shim we are ready, ``CONTAINER_ID``/``CONTAINER_NAMESPACE`` in the
environment). The shim keeps its ends of those pipes open until the task is deleted, so the
logger cannot see the task end; a reader following the log knows the last line is in once the
task exited, nothing is left in the logger's pipes (``logger.pid`` names it; the pipes are
looked at through ``/proc``) and nobody holds ``log.lock``, which a writer holds while it has
read output it has not written yet (see :func:`follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import selectors
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from typing import TYPE_CHECKING

import attrs

from plugins import securefs

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_SIZE",
    "LOG_NAME",
    "FollowStart",
    "LogWriter",
    "Record",
    "follow",
    "install_logger",
    "logger_exited",
    "logger_main",
    "read_for_follow",
    "read_records",
    "tail",
]

#: The current log file in a task's io dir.
LOG_NAME = "log.json"
#: The lock a writer holds while it may still append to the log.
LOCK_NAME = "log.lock"
#: The logging binary a detached task's shim starts (written into the io dir).
LOGGER_NAME = "logger"
#: The pid of the running logging binary.
LOGGER_PID_NAME = "logger.pid"
#: The logging binary's stdout and stderr pipes (containerd's ``binary://`` ABI).
LOGGER_FDS = {3: "stdout", 4: "stderr"}
#: Rotate once the current file is larger than this (docker's ``max-size``).
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
#: How many files to keep, the current one included (docker's ``max-file``).
DEFAULT_MAX_FILES = 3
#: A line longer than this is written in pieces (docker splits at 16 KiB too).
MAX_LINE = 16 * 1024
#: How often :func:`follow` looks for new lines while the task runs.
FOLLOW_INTERVAL = 0.1


@attrs.frozen
class Record:
    """One logged piece of output: which stream, when (RFC 3339, nanoseconds, UTC), the bytes."""

    stream: str
    time: str
    data: bytes

    def to_json(self) -> str:
        """The json-file line of this record (without the newline)."""
        text = self.data.decode("utf-8", "surrogateescape")
        return json.dumps(
            {"log": text, "stream": self.stream, "time": self.time}, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> Record:
        """Parse one json-file line; ValueError when it is not one."""
        value = json.loads(line)
        if not isinstance(value, dict) or not isinstance(value.get("log"), str):
            raise ValueError("not a json-file log line")
        return cls(
            stream=str(value.get("stream", "stdout")),
            time=str(value.get("time", "")),
            data=value["log"].encode("utf-8", "surrogateescape"),
        )


def timestamp(ns: int | None = None) -> str:
    """``ns`` (default: now) as docker writes it: ``2026-11-30T10:04:41.123456789Z``."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class LogWriter:
    """Appends records to ``<directory>/log.json``, a line at a time, rotating by size.

    Holds the directory's ``log.lock`` from construction until :meth:`close` unless
    ``hold_lock`` is false (then :meth:`busy` takes it around each piece of work); readers that
    follow the log wait for it. Files are opened through :mod:`plugins.securefs` (mode 0600,
    no symlink followed).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_files: int = DEFAULT_MAX_FILES,
        hold_lock: bool = True,
    ) -> None:
        if max_size < 1 or max_files < 1:
            raise ValueError("log max_size and max_files must be at least 1")
        # A string, not a Path: a run writes its log without importing pathlib.
        self.directory = os.fspath(directory)
        self.max_size = max_size
        self.max_files = max_files
        self._pending: dict[str, bytes] = {}
        self._lock = securefs.open_file(
            os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT
        )
        if hold_lock:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._fd = self._open()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold ``log.lock`` for the block (read output and write it inside it)."""
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _open(self) -> int:
        return securefs.open_file(
            os.path.join(self.directory, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )

    def write(self, stream: str, chunk: bytes) -> None:
        """Log ``chunk`` of ``stream`` (``stdout``/``stderr``): complete lines now, the rest
        when its line ends, the stream closes or it grows past :data:`MAX_LINE`."""
        data = self._pending.pop(stream, b"") + chunk
        now = timestamp()
        while True:
            end = data.find(b"\n")
            if end < 0 and len(data) < MAX_LINE:
                break
            cut = end + 1 if 0 <= end < MAX_LINE else MAX_LINE
            self._append(Record(stream, now, data[:cut]))
            data = data[cut:]
        if data:
            self._pending[stream] = data

    def flush(self, stream: str | None = None) -> None:
        """Write out the partial line of ``stream`` (every stream when None)."""
        for name in [stream] if stream else list(self._pending):
            data = self._pending.pop(name, b"")
            if data:
                self._append(Record(name, timestamp(), data))

    def _append(self, record: Record) -> None:
        line = (record.to_json() + "\n").encode()
        if os.fstat(self._fd).st_size + len(line) > self.max_size:
            self._rotate()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view) :]

    def _rotate(self) -> None:
        os.close(self._fd)
        current = os.path.join(self.directory, LOG_NAME)
        if self.max_files == 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(current)
        else:
            for n in range(self.max_files - 1, 0, -1):
                older = f"{current}.{n - 1}" if n > 1 else current
                if os.path.exists(older):
                    os.replace(older, f"{current}.{n}")
        self._fd = self._open()

    def close(self) -> None:
        """Write out partial lines, close the file and release ``log.lock``."""
        if self._fd < 0:
            return
        self.flush()
        os.close(self._fd)
        self._fd = -1
        os.close(self._lock)  # releases the flock

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The log files of ``directory``, oldest first (rotated ones, then the current one)."""
    from pathlib import Path

    directory = Path(directory)
    rotated = []
    for path in directory.glob(f"{LOG_NAME}.*"):
        suffix = path.name[len(LOG_NAME) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    return [p for _, p in sorted(rotated, reverse=True)] + [directory / LOG_NAME]


def _parse(lines: Iterable[bytes]) -> Iterator[Record]:
    for line in lines:
        with contextlib.suppress(ValueError):  # a torn last line of a killed writer
            yield Record.from_json(line)


def read_records(directory: str | os.PathLike[str]) -> list[Record]:
    """Every record in ``directory``'s log files, oldest first (none when there is no log)."""
    records: list[Record] = []
    for path in log_files(directory):
        with contextlib.suppress(FileNotFoundError):
            records.extend(_parse(path.read_bytes().splitlines()))
    return records


#: Where :func:`follow` goes on from: the (inode, offset) read up to and an unfinished line.
FollowStart = tuple[tuple[int, int], bytes]


def read_for_follow(directory: str | os.PathLike[str]) -> tuple[list[Record], FollowStart]:
    """Every complete record of ``directory``'s log, oldest first, and where :func:`follow`
    goes on from (so the log is read once, and a rotation in between loses nothing)."""
    from pathlib import Path

    data, position = _read_new(Path(directory), None)
    *lines, pending = data.split(b"\n")
    return list(_parse(lines)), (position, pending)


def tail(records: list[Record], count: int | None) -> list[Record]:
    """The last ``count`` records (all of them when ``count`` is None)."""
    if count is None:
        return records
    return records[-count:] if count > 0 else []


def writer_active(directory: str | os.PathLike[str]) -> bool:
    """Whether output may still be on its way into ``directory``'s log: the logging binary's
    pipes hold unread bytes, or a writer holds ``log.lock`` (checked in that order: a logger
    that took bytes out of its pipes holds the lock until they are written)."""
    from pathlib import Path

    return _logger_pending(Path(directory)) or _lock_held(Path(directory))


def _logger_pending(directory: Path) -> bool:
    try:
        pid = int((directory / LOGGER_PID_NAME).read_text())
    except (OSError, ValueError):
        return False
    for fd in LOGGER_FDS:
        try:
            pipe = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # the logger is gone (or is not ours any more)
            return False
        try:
            if os.fstat(pipe).st_mode & 0o170000 != 0o010000:  # not a pipe: a reused pid
                return False
            if _unread(pipe):
                return True
        finally:
            os.close(pipe)
    return False


async def logger_exited(directory: str | os.PathLike[str], timeout: float) -> bool:
    """Wait until the logging binary of ``directory`` has exited (its pipes' writers are gone:
    the task and its shim); whether it has (True also when there is none, or ``logger.pid``
    names another process now). Waited on a pidfd, at most ``timeout`` seconds."""
    script = os.fsencode(os.path.join(directory, LOGGER_NAME))
    try:
        with open(os.path.join(directory, LOGGER_PID_NAME), encoding="utf-8") as pid_file:
            pid = int(pid_file.read())
        pidfd = os.pidfd_open(pid)
    except (OSError, ValueError):
        return True
    try:
        try:  # read after the pidfd is open: a reused pid cannot pass for the logger
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if script not in f.read().split(b"\0"):
                    return True
        except OSError:
            return True
        loop = asyncio.get_running_loop()
        exited = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            await asyncio.wait_for(exited, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(pidfd)
        return True
    finally:
        os.close(pidfd)


def _unread(fd: int) -> int:
    """How many bytes wait in the pipe ``fd``."""
    import array  # only a detached task's log needs them, never a run's
    import termios

    pending = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, pending)
    return pending[0]


def _lock_held(directory: Path) -> bool:
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def follow(
    directory: str | os.PathLike[str],
    exited: Awaitable[object],
    *,
    start: FollowStart | None = None,
) -> AsyncIterator[Record]:
    """Yield the records of ``directory``'s log as they are written, from ``start`` (what
    :func:`read_for_follow` returned; the beginning when None), until ``exited`` is done and no
    writer holds the log any more.

    The current file is read from where we were; a rotation (a new file in its place) first
    finishes the renamed one.
    """
    from pathlib import Path

    done = asyncio.ensure_future(exited)
    # (inode, offset) in the file we are reading, and the unfinished line read so far
    position, pending = start if start is not None else (None, b"")
    try:
        while True:
            finished = done.done() and not writer_active(directory)
            chunk, position = _read_new(Path(directory), position)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for record in _parse(lines):
                yield record
            if finished:
                return
            await asyncio.wait({done}, timeout=FOLLOW_INTERVAL)
    finally:
        if not done.done():
            done.cancel()


def _read_new(directory: Path, position: tuple[int, int] | None) -> tuple[bytes, tuple[int, int]]:
    """What was appended to the log since ``position``; the new position."""
    current = directory / LOG_NAME
    try:
        st = current.stat()
    except FileNotFoundError:
        return b"", position or (0, 0)
    data = b""
    if position is None:  # the start: everything rotated before, then the current file
        for path in log_files(directory)[:-1]:
            with contextlib.suppress(FileNotFoundError):
                data += path.read_bytes()
        position = (st.st_ino, 0)
    inode, offset = position
    if inode != st.st_ino:  # rotated: the rest of the renamed file first
        renamed = directory / f"{LOG_NAME}.1"
        with contextlib.suppress(FileNotFoundError):
            if renamed.stat().st_ino == inode:
                data += renamed.read_bytes()[offset:]
        inode, offset = st.st_ino, 0
    with open(current, "rb") as f:
        f.seek(offset)
        new = f.read()
    return data + new, (inode, offset + len(new))


# ------------------------------------------------------------------------- the logging binary


def install_logger(directory: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE) -> str:
    """Write the logging binary into ``directory`` (mode 0700) and return its ``binary://`` URI.

    The shim runs it with an empty environment, so it names this interpreter and the directory
    this package is imported from. The directory (and the size cap) are in the script rather
    than in the URI's query: the shim passes query parameters in Go's map order, which is random.
    """
    script = os.path.join(directory, LOGGER_NAME)
    package_root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    text = (
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"sys.path.insert(0, {package_root!r})\n"
        "from taskplane.logs import logger_main\n"
        # Every line is written and the log closed when logger_main returns: the process ends
        # there, without the interpreter's teardown (a task's delete waits for it).
        f"os._exit(logger_main({os.path.normpath(directory)!r}, {max_size!r}))\n"
    )
    fd = securefs.open_file(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return "binary://" + script


def logger_main(directory: str, max_size: int = DEFAULT_MAX_SIZE) -> int:
    """The logging binary: copy fds 3 (stdout) and 4 (stderr) into the log until both end.

    SIGTERM (the shim's Close) is ignored: the shim closes the pipes first, so end-of-file
    follows and every line is written before we exit.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    writer = LogWriter(directory, max_size=max_size, hold_lock=False)
    pid_file = securefs.open_file(
        os.path.join(directory, LOGGER_PID_NAME), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    )
    os.write(pid_file, str(os.getpid()).encode())
    os.close(pid_file)
    os.close(5)  # ready: the shim waits for this before it starts the process
    streams = dict(LOGGER_FDS)
    with selectors.DefaultSelector() as selector, writer:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while streams:
            ready = selector.select()
            with writer.busy():
                for key, _ in ready:
                    chunk = os.read(key.fd, 65536)
                    name = streams[key.fd]
                    if chunk:
                        writer.write(name, chunk)
                        if not _unread(key.fd):  # a pause mid-line: log what we have
                            writer.flush(name)
                    else:
                        writer.flush(name)
                        selector.unregister(key.fd)
                        del streams[key.fd]
    return 0
