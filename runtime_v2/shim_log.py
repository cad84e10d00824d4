"""Relaying a shim's log: the ``log`` FIFO in its bundle (containerd's ``openShimLog`` in
``core/runtime/v2/shim_unix.go``, and ``binary.go``'s copy of it into containerd's log).

A :class:`ShimLog` keeps the FIFO open and drained from before ``start`` (an unread FIFO blocks
the shim) into :data:`SHIM_LOGGER`, each line at the level its logrus ``level=`` field names,
and keeps the last lines so that start and delete errors can show them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
import stat

from registry.log import get_logger
from runtime_v2 import errdefs

__all__ = ["LOG_TAIL_BYTES", "SHIM_LOGGER", "ShimLog", "logrus_level"]

log = get_logger(__name__)
#: Where the shims' own log lines go (its level decides how much a shim is asked to log).
SHIM_LOGGER = log.getChild("shim")

#: How much of the shim's recent log output is kept for error messages.
LOG_TAIL_BYTES = 8192

_LOGRUS_LEVEL = re.compile(r'(?:^|\s)level=("?)(\w+)\1')
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def logrus_level(line: str) -> int | None:
    """The logging level of a logrus line's ``level=`` field; None when it names none we know."""
    match = _LOGRUS_LEVEL.search(line)
    return _LEVELS.get(match.group(2).lower()) if match else None


class ShimLog:
    """Drains a shim's ``log`` FIFO into :data:`SHIM_LOGGER`, keeping the last lines.

    :meth:`open` creates the FIFO (mode 0700) if needed and opens it O_RDWR|O_NONBLOCK, so the
    shim daemon's blocking open for writing succeeds at once and our reads never see EOF;
    lines are read by an event-loop reader callback. Each line is logged at the level its logrus
    ``level=`` field names (INFO otherwise) with ``extra={"namespace", "task_id"}``.
    """

    def __init__(self, path: str, *, namespace: str, task_id: str) -> None:
        self.path = path
        self.namespace = namespace
        self.task_id = task_id
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._partial = b""
        self._tail: collections.deque[str] = collections.deque()
        self._tail_bytes = 0

    @property
    def closed(self) -> bool:
        """True when the FIFO is not (or no longer) being read."""
        return self._fd is None

    def open(self) -> None:
        """Create and open the FIFO and start draining it on the running event loop."""
        if self._fd is not None:
            return
        try:
            os.mkfifo(self.path, 0o700)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(self.path).st_mode):
                raise errdefs.AlreadyExists(
                    f"shim log {self.path} exists and is not a FIFO"
                ) from None
        else:
            os.chmod(self.path, 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        loop = asyncio.get_running_loop()
        try:
            loop.add_reader(fd, self._drain)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._loop = fd, loop

    def _drain(self) -> None:
        fd = self._fd
        if fd is None:
            return
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning(
                    "shim %s/%s: reading %s failed: %s",
                    self.namespace,
                    self.task_id,
                    self.path,
                    exc,
                )
                self._close_fd()
                return
            if not chunk:
                return
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            for line in lines:
                self._emit(line)
            if len(self._partial) > LOG_TAIL_BYTES:  # a very long line without newline
                self._emit(self._partial)
                self._partial = b""

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not line:
            return
        self._tail.append(line)
        self._tail_bytes += len(line) + 1
        while self._tail_bytes > LOG_TAIL_BYTES and len(self._tail) > 1:
            self._tail_bytes -= len(self._tail.popleft()) + 1
        level = logrus_level(line)
        SHIM_LOGGER.log(
            logging.INFO if level is None else level,
            "shim %s/%s: %s",
            self.namespace,
            self.task_id,
            line,
            extra={"namespace": self.namespace, "task_id": self.task_id},
        )

    def tail(self) -> str:
        """The last lines the shim logged (at most about :data:`LOG_TAIL_BYTES`), newest last."""
        self._drain()
        lines = list(self._tail)
        if self._partial:
            lines.append(self._partial.decode("utf-8", errors="replace"))
        return "\n".join(lines)

    def problems(self) -> str:
        """The warning and error lines of :meth:`tail` (info, debug and trace lines dropped;
        lines without a logrus level kept)."""
        return "\n".join(
            line
            for line in self.tail().splitlines()
            if line.strip() and ((level := logrus_level(line)) is None or level >= logging.WARNING)
        )

    def close(self) -> None:
        """Stop draining and close the FIFO (what is buffered is read and logged first)."""
        if self._fd is None:
            return
        self._drain()
        if self._partial:
            self._emit(self._partial)
            self._partial = b""
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        os.close(fd)
