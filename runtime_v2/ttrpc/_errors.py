"""ttrpc's exception tree and the one place that maps OS/socket errors onto it.

Everything raised to callers is an errdefs class, so callers need no ttrpc-specific handling
beyond :class:`Closed` (containerd checks ``ttrpc.ErrClosed`` explicitly too). Low-level errors
(``OSError``, ``ConnectionResetError``, ``asyncio.IncompleteReadError``, ...) are translated
here, by :func:`connect_errors`, :func:`listen_errors` and :func:`closed_error`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from runtime_v2 import errdefs

__all__ = [
    "Closed",
    "ConnectionRefused",
    "OversizedMessage",
    "RemoteProtocolError",
    "SocketNotFound",
    "closed_error",
    "connect_errors",
    "listen_errors",
]

MAX_MESSAGE_SIZE = 4 << 20  # 4 MiB: the data length limit of one frame


class Closed(errdefs.Unavailable):
    """The connection is gone; every pending and later call fails with this ("ttrpc: closed")."""

    text = "ttrpc: closed"


class OversizedMessage(errdefs.ResourceExhausted):
    """A message exceeded the 4 MiB frame limit; ``length`` is its size in bytes."""

    def __init__(self, length: int) -> None:
        super().__init__(
            f"message length {length} exceed maximum message size of {MAX_MESSAGE_SIZE}"
        )
        self.length = length


class RemoteProtocolError(errdefs.Internal):
    """The peer broke the ttrpc protocol on a stream (e.g. Data frames on a unary call)."""


class ConnectionRefused(errdefs.Unavailable):
    """Nothing listens on the socket (ECONNREFUSED); ``address`` is the address dialled."""

    def __init__(self, address: str) -> None:
        super().__init__(f"cannot connect to ttrpc address {address!r}: connection refused")
        self.address = address


class SocketNotFound(errdefs.NotFound):
    """The socket file does not exist (ENOENT); ``address`` is the address dialled."""

    def __init__(self, address: str) -> None:
        super().__init__(f"cannot connect to ttrpc address {address!r}: no such socket")
        self.address = address


@contextlib.contextmanager
def connect_errors(address: str, timeout: float) -> Iterator[None]:
    """Translate errors of dialling ``address`` into errdefs classes (fail fast, no retry)."""
    try:
        yield
    except TimeoutError as exc:
        raise errdefs.DeadlineExceeded(
            f"cannot connect to ttrpc address {address!r}: timed out after {timeout:g} s"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ConnectionRefused(address) from exc
    except FileNotFoundError as exc:
        raise SocketNotFound(address) from exc
    except PermissionError as exc:
        raise errdefs.PermissionDenied(
            f"cannot connect to ttrpc address {address!r}: permission denied"
        ) from exc
    except OSError as exc:
        raise errdefs.Unavailable(
            f"cannot connect to ttrpc address {address!r}: {exc.strerror or exc}"
        ) from exc


@contextlib.contextmanager
def listen_errors(address: str) -> Iterator[None]:
    """Translate errors of binding/listening on ``address`` into errdefs classes."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot listen on ttrpc address {address!r}: {reason}"
        if exc.errno == errno.EADDRINUSE:
            raise errdefs.AlreadyExists(message) from exc
        if isinstance(exc, PermissionError):
            raise errdefs.PermissionDenied(message) from exc
        if isinstance(exc, FileNotFoundError):
            raise errdefs.NotFound(message) from exc
        raise errdefs.Unavailable(message) from exc


def closed_error(cause: BaseException | None = None) -> Closed:
    """The :class:`Closed` for a lost connection, chained to the OS error that ended it.

    EOF, EPIPE, ECONNRESET, a truncated frame or a local close all end up here.
    """
    err = Closed()
    err.__cause__ = cause
    return err
