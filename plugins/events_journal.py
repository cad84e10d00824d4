"""The event journal: one append-only file through which every process on a state dir sees
the events of all the others.

taskplane is daemonless, so the process a shim forwards its events to (the one serving the
events socket) is often not the one that wants them. Like podman's ``file`` events backend
(``libpod/events/logfile.go``), every process appends each event it receives or publishes to
``events.log`` in the exchange's state directory, and every process that subscribes follows that
file. :class:`~plugins.events.Exchange` does both; this module knows only the file.

The file
    JSON lines, one :class:`Record` per line: ``origin`` (which exchange appended it),
    ``timestamp`` (RFC 3339, UTC, microseconds), ``namespace``, ``topic``, ``type_url`` and
    ``value`` (the event's protobuf bytes, base64). Mode 0600 whatever the umask; a symbolic link
    or anything but a regular file at the journal's path is refused (:class:`JournalError`), never
    followed.

Appending (:meth:`EventJournal.append`)
    One ``write(2)`` per record on an ``O_APPEND`` descriptor, so records of concurrent appenders
    never interleave: Linux serialises ``O_APPEND`` writes to a regular file, and records longer
    than ``PIPE_BUF`` are written under an exclusive ``flock`` on ``events.log.lock`` for good
    measure. Ordinary appends hold that lock shared, so they do not wait for each other. The
    lock is held for microseconds; a holder that is stopped (SIGSTOP) cannot stall the others:
    after :data:`LOCK_WAIT` seconds an append goes ahead without it (a record may then land in a
    generation being rotated away; see below) and a rotation is skipped until next time.

Rotation
    An append that leaves the file larger than ``max_size`` (1 MiB by default, like podman's
    ``events_logfile_max_size = "1m"``) renames it to ``events.log.1`` (replacing the previous
    one) under the exclusive lock; the next append creates a new file. Because appends hold the
    lock shared, no record is written to a file after it was renamed. (podman instead rewrites
    the file keeping its second half; renaming lets a follower finish the old file undisturbed.)

Following (:meth:`EventJournal.follow`, :meth:`Follower.poll`)
    A follower starts at the end of the file and each :meth:`~Follower.poll` returns the records
    appended since the previous one, in file order. Polling, not inotify: the stdlib has no
    inotify, a ``stat`` and a ``read`` per poll cost next to nothing, and it works on every
    filesystem a state dir may live on; the price is latency (the exchange polls every 50 ms).
    When the file was rotated the follower first reads the old file to its end, then the new one
    from its start: no record is missed or repeated. If it rotated twice between two polls, the
    follower also reads the generation now at ``events.log.1`` and warns that events may be
    missing; they are after three rotations (2 MiB appended between two polls at the default
    size), since ``events.log.1`` is the only older generation kept.

Damage
    A line that is not a valid record (a partial write after a full disk, garbage written by
    hand) is skipped with one warning naming the file and offset; following goes on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import time
from typing import TYPE_CHECKING

from plugins import securefs
from plugins.errdefs import FailedPrecondition
from registry._lazy import export_lazily
from registry.log import get_logger

if TYPE_CHECKING:
    from plugins.events_record import Record

__all__ = [
    "DEFAULT_MAX_SIZE",
    "JOURNAL_FILENAME",
    "LOCK_WAIT",
    "EventJournal",
    "Follower",
    "JournalError",
    "Record",
]

log = get_logger(__name__)


# Record (plugins.events_record) is defined by the first event appended or read (PEP 562):
# every command boots the exchange, few publish or follow an event.
__getattr__ = export_lazily(__name__, {"Record": "plugins.events_record"})


#: The journal's file name in the exchange's state directory.
JOURNAL_FILENAME = "events.log"
#: The size past which the journal is rotated (podman's events_logfile_max_size is "1m").
DEFAULT_MAX_SIZE = 1024 * 1024

#: The longest an append or a rotation waits for the journal's lock.
LOCK_WAIT = 0.5

_READ_CHUNK = 64 * 1024
_FILE_MODE = 0o600
_DIR_MODE = 0o711


class JournalError(FailedPrecondition):
    """The journal file cannot be used (a symbolic link or not a regular file at its path)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"event journal {path} {problem}; refusing to use it")


def _flock(fd: int, operation: int, patience: float = LOCK_WAIT) -> bool:
    """Take a flock, waiting at most ``patience`` seconds (0: one try); return whether it was
    taken."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)  # the holder needs microseconds (the exchange waits off its loop)


def _open_regular(path: str, flags: int) -> int:
    """Open ``path`` without following a symbolic link; refuse anything but a regular file."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not block the open.
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, _FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise JournalError(path, "is a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader
            raise JournalError(path, "is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(path, "is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_or_create(path: str, flags: int) -> int:
    """:func:`_open_regular`, creating the file with mode 0600 whatever the umask."""
    try:
        return _open_regular(path, flags)
    except FileNotFoundError:
        pass
    try:
        fd = _open_regular(path, flags | os.O_CREAT | os.O_EXCL)
    except FileExistsError:  # another process created it first
        return _open_regular(path, flags)
    os.fchmod(fd, _FILE_MODE)
    return fd


class EventJournal:
    """The journal of one state directory. Nothing is touched before the first use.

    ``directory`` is created (mode 0711) on the first append or follow.
    """

    def __init__(self, directory: str, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 1:
            raise ValueError(f"event journal max_size must be positive, not {max_size}")
        self.directory = directory
        self.path = os.path.join(directory, JOURNAL_FILENAME)
        #: Where the previous generation goes on rotation.
        self.rotated_path = self.path + ".1"
        self.max_size = max_size
        self._lock_fd: int | None = None

    def _lock(self) -> int:
        if self._lock_fd is None:
            securefs.make_dirs(self.directory, _DIR_MODE)
            self._lock_fd = _open_or_create(self.path + ".lock", os.O_RDWR)
        return self._lock_fd

    def append(self, record: Record, *, wait: bool = True) -> bool:
        """Append ``record`` in one write; rotate when the file has grown past the cap.

        With ``wait`` (the default) the lock is waited for at most :data:`LOCK_WAIT` seconds,
        then the record is appended without it; returns True. Without ``wait`` nothing is
        written and False is returned when the lock is held (so an event loop can retry in a
        thread), and a rotation whose lock is held is left to a later append.
        Raises :class:`JournalError` for a symbolic link or non-regular file at the path and
        OSError when the file cannot be written.
        """
        line = record.to_line()
        lock = self._lock()
        # Shared: appenders do not wait for each other; exclusive for long records (see module
        # docstring) and for rotation, which must not rename a file under a writer.
        mode = fcntl.LOCK_EX if len(line) > select.PIPE_BUF else fcntl.LOCK_SH
        locked = _flock(lock, mode, LOCK_WAIT if wait else 0)
        if not locked:
            if not wait:
                return False
            log.warning(
                "event journal %s: its lock is held too long; appending without it", self.path
            )
        try:
            fd = _open_or_create(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                written = os.write(fd, line)
                while written < len(line):  # only after a short write (a full disk)
                    written += os.write(fd, line[written:])
                size = os.lseek(fd, 0, os.SEEK_CUR)
            finally:
                os.close(fd)
        finally:
            if locked:
                fcntl.flock(lock, fcntl.LOCK_UN)
        if size > self.max_size:
            self._rotate(LOCK_WAIT if wait else 0)
        return True

    def _rotate(self, patience: float) -> None:
        lock = self._lock()
        if not _flock(lock, fcntl.LOCK_EX, patience):
            return  # a later append rotates
        try:
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                return
            if stat.S_ISREG(st.st_mode) and st.st_size > self.max_size:  # not rotated meanwhile
                os.replace(self.path, self.rotated_path)
                log.debug("rotated event journal %s (%d bytes)", self.path, st.st_size)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def follow(self) -> Follower:
        """Return a :class:`Follower` positioned at the current end of the journal.

        Raises :class:`JournalError` when the path holds a symbolic link or a non-regular file.
        """
        securefs.make_dirs(self.directory, _DIR_MODE)
        return Follower(self)

    def close(self) -> None:
        """Release the lock file descriptor. Idempotent; the journal reopens it when used."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)


class Follower:
    """Reads the records appended to a journal since it was created. Not thread-safe."""

    def __init__(self, journal: EventJournal) -> None:
        self.journal = journal
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._buffer = b""
        self._offset = 0  # file offset of the start of _buffer
        # The generation at events.log.1 that was read already or predates this follower.
        self._seen_rotated = self._path_inode(journal.rotated_path)
        try:
            self._open(journal.path)
        except FileNotFoundError:
            return  # the first append creates it; the follower reads it from its start
        assert self._fd is not None
        self._offset = os.lseek(self._fd, 0, os.SEEK_END)

    def _open(self, path: str) -> None:
        fd = _open_regular(path, os.O_RDONLY)
        st = os.fstat(fd)
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        self._buffer, self._offset = b"", 0

    @staticmethod
    def _path_inode(path: str) -> tuple[int, int] | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def poll(self) -> list[Record]:
        """Return the records appended since the last poll, in file order.

        Raises :class:`JournalError` when the path now holds a symbolic link or a non-regular
        file, and OSError when it cannot be read.
        """
        records: list[Record] = []
        path = self.journal.path
        if self._fd is not None:
            # Check for a rotation before reading: once the path names another file, nothing
            # more is written to ours (appenders hold the lock shared, rotation exclusively).
            current = self._path_inode(path)
            self._read_to_end(records)
            if current == self._inode:
                return records
            self._finish_file(records)
            old, self._inode = self._inode, None
            self._close_fd()
            if self._path_inode(self.journal.rotated_path) == old:
                self._seen_rotated = old  # the usual case: ours is now events.log.1
            else:
                log.warning(
                    "event journal %s rotated more than once between two reads;"
                    " events older than %s may have been missed",
                    path,
                    self.journal.rotated_path,
                )
        # Between files. A generation at events.log.1 not read yet was created and rotated
        # while this follower was not looking: it comes before the current file.
        self._read_unseen_rotated(records)
        try:
            self._open(path)
        except FileNotFoundError:
            return records
        # A rotation between the look at events.log.1 and the open moved a generation we have
        # not read there (unless it is the one we just opened).
        if self._path_inode(self.journal.rotated_path) != self._inode:
            self._read_unseen_rotated(records)
        self._read_to_end(records)
        return records

    def _read_unseen_rotated(self, records: list[Record]) -> None:
        path = self.journal.rotated_path
        try:
            fd = _open_regular(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == self._seen_rotated:
                return
            self._seen_rotated = (st.st_dev, st.st_ino)
            data = b""
            while chunk := os.read(fd, _READ_CHUNK):
                data += chunk
        finally:
            os.close(fd)
        offset = 0
        for line in data.split(b"\n"):
            self._parse(line, records, path, offset)
            offset += len(line) + 1

    def _read_to_end(self, records: list[Record]) -> None:
        assert self._fd is not None
        while chunk := os.read(self._fd, _READ_CHUNK):
            self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()  # an incomplete last line waits for the rest of its write
        for line in lines:
            self._parse(line, records, self.journal.path, self._offset)
            self._offset += len(line) + 1

    def _finish_file(self, records: list[Record]) -> None:
        # The file will never grow again: an incomplete last line is a truncated record.
        if self._buffer:
            self._parse(self._buffer, records, self.journal.path, self._offset)
            self._offset += len(self._buffer)
            self._buffer = b""

    @staticmethod
    def _parse(line: bytes, records: list[Record], path: str, offset: int) -> None:
        if not line.strip():
            return
        try:
            from plugins.events_record import Record

            records.append(Record.from_line(line))
        except ValueError as exc:
            log.warning(
                "skipping a malformed record in event journal %s at byte %d: %s",
                path,
                offset,
                exc,
            )

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def close(self) -> None:
        """Stop following: close the file. Idempotent."""
        self._close_fd()
