"""ttrpc's errors: gRPC status codes, the status error, and the one place OS errors map to them.

As in containerd/ttrpc (``errors.go``, ``services.go``), every error this package raises carries
a gRPC status code (:class:`Code`): a status a server answered with arrives as a
:class:`StatusError`, and local failures are :class:`StatusError` subclasses with the code Go's
ttrpc gives them (:class:`Closed` is Unavailable, :class:`OversizedMessage` ResourceExhausted).
The package knows nothing of what the codes mean to its users: containerd maps them onto its
``errdefs`` classes (``errgrpc.ToNative`` / ``ToGRPC``) outside ttrpc, and so does taskplane
(:mod:`runtime_v2.errdefs`).

Low-level errors (``OSError``, ``ConnectionResetError``, ``asyncio.IncompleteReadError``, ...)
are translated here, by :func:`connect_errors`, :func:`listen_errors`, :func:`closed_error` and
:func:`status_of`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf import any_pb2

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Closed",
    "Code",
    "ConnectionRefused",
    "DeadlineExceeded",
    "OversizedMessage",
    "RemoteProtocolError",
    "SocketNotFound",
    "StatusError",
    "closed_error",
    "connect_errors",
    "listen_errors",
    "status_of",
]

MAX_MESSAGE_SIZE = 4 << 20  # 4 MiB: the data length limit of one frame


class Code(enum.IntEnum):
    """The gRPC status codes (``google.golang.org/grpc/codes``), which ttrpc sends as is."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def _code(value: int) -> int:
    """``value`` as a :class:`Code` member when it is one (peers may send any int32)."""
    try:
        return Code(value)
    except ValueError:
        return value


class StatusError(Exception):
    """An error with a gRPC status: ``code``, ``message`` and ``details`` (``google.rpc.Status``).

    A client raises it for a status a server answered with; a handler raises it to answer with
    exactly that status (any other exception is answered as :func:`status_of` says).
    ``str(err)`` is the message. ``code`` is a :class:`Code` member, or the bare int a peer
    sent when it is none.
    """

    def __init__(self, code: int, message: str = "", details: Sequence[any_pb2.Any] = ()) -> None:
        super().__init__(message)
        self.code = _code(code)
        self.details = tuple(details)

    @property
    def message(self) -> str:
        """The status message."""
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        name = self.code.name if isinstance(self.code, Code) else str(self.code)
        return f"{type(self).__name__}({name}, {self.message!r})"


class Closed(StatusError):
    """The connection is gone; every pending and later call fails with this ("ttrpc: closed").

    Go's ttrpc has ``ErrClosed`` for it, which containerd checks for explicitly.
    """

    def __init__(self, message: str = "ttrpc: closed") -> None:
        super().__init__(Code.UNAVAILABLE, message)


class OversizedMessage(StatusError):
    """A message exceeded the 4 MiB frame limit; ``length`` is its size in bytes."""

    def __init__(self, length: int) -> None:
        super().__init__(
            Code.RESOURCE_EXHAUSTED,
            f"message length {length} exceed maximum message size of {MAX_MESSAGE_SIZE}",
        )
        self.length = length


class RemoteProtocolError(StatusError):
    """The peer broke the ttrpc protocol on a stream (e.g. Data frames on a unary call)."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.INTERNAL, message)


class DeadlineExceeded(StatusError, TimeoutError):
    """A call's deadline passed here, before its answer came (Go: ``context.DeadlineExceeded``).

    It is a :class:`TimeoutError` too, as what :func:`asyncio.timeout` raises is.
    """

    def __init__(self, message: str) -> None:
        super().__init__(Code.DEADLINE_EXCEEDED, message)


class ConnectionRefused(StatusError):
    """Nothing listens on the socket (ECONNREFUSED); ``address`` is the address dialled."""

    def __init__(self, address: str) -> None:
        super().__init__(
            Code.UNAVAILABLE, f"cannot connect to ttrpc address {address!r}: connection refused"
        )
        self.address = address


class SocketNotFound(StatusError):
    """The socket file does not exist (ENOENT); ``address`` is the address dialled."""

    def __init__(self, address: str) -> None:
        super().__init__(
            Code.NOT_FOUND, f"cannot connect to ttrpc address {address!r}: no such socket"
        )
        self.address = address


@contextlib.contextmanager
def connect_errors(address: str, timeout: float) -> Iterator[None]:
    """Translate errors of dialling ``address`` into status errors (fail fast, no retry)."""
    try:
        yield
    except TimeoutError as exc:
        raise DeadlineExceeded(
            f"cannot connect to ttrpc address {address!r}: timed out after {timeout:g} s"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ConnectionRefused(address) from exc
    except FileNotFoundError as exc:
        raise SocketNotFound(address) from exc
    except PermissionError as exc:
        raise StatusError(
            Code.PERMISSION_DENIED,
            f"cannot connect to ttrpc address {address!r}: permission denied",
        ) from exc
    except OSError as exc:
        raise StatusError(
            Code.UNAVAILABLE,
            f"cannot connect to ttrpc address {address!r}: {exc.strerror or exc}",
        ) from exc


@contextlib.contextmanager
def listen_errors(address: str) -> Iterator[None]:
    """Translate errors of binding/listening on ``address`` into status errors."""
    try:
        yield
    except OSError as exc:
        message = f"cannot listen on ttrpc address {address!r}: {exc.strerror or exc}"
        code = Code.UNAVAILABLE
        if exc.errno == errno.EADDRINUSE:
            code = Code.ALREADY_EXISTS
        elif isinstance(exc, PermissionError):
            code = Code.PERMISSION_DENIED
        elif isinstance(exc, FileNotFoundError):
            code = Code.NOT_FOUND
        raise StatusError(code, message) from exc


def closed_error(cause: BaseException | None = None) -> Closed:
    """The :class:`Closed` for a lost connection, chained to the OS error that ended it.

    EOF, EPIPE, ECONNRESET, a truncated frame or a local close all end up here.
    """
    err = Closed()
    err.__cause__ = cause
    return err


def status_of(exc: BaseException) -> tuple[int, str]:
    """The ``(code, message)`` a server answers a handler's ``exc`` with.

    A :class:`StatusError` keeps its own. Anything else follows ttrpc's ``convertCode``
    (``services.go``): :class:`asyncio.CancelledError` -> Cancelled, :class:`TimeoutError` ->
    DeadlineExceeded, file-not-found -> NotFound, file-exists -> AlreadyExists, permission ->
    PermissionDenied, truncated reads (:class:`asyncio.IncompleteReadError`, Go's
    ``io.ErrUnexpectedEOF``) -> FailedPrecondition, :class:`EOFError` (``io.EOF``) ->
    OutOfRange, and everything else Unknown; the message is ``str(exc)``, or Go's text for a
    cancelled or timed-out context when that is empty.
    """
    if isinstance(exc, StatusError):
        return exc.code, exc.message
    code = _convert_code(exc)
    return code, str(exc) or _CONTEXT_TEXT.get(code, "")


#: What Go's ``context.Canceled`` and ``context.DeadlineExceeded`` say.
_CONTEXT_TEXT = {
    Code.CANCELLED: "context canceled",
    Code.DEADLINE_EXCEEDED: "context deadline exceeded",
}


def _convert_code(exc: BaseException) -> Code:
    # Order matters: TimeoutError and the file errors are OSError subclasses, and
    # IncompleteReadError is an EOFError.
    if isinstance(exc, asyncio.CancelledError):
        return Code.CANCELLED
    if isinstance(exc, TimeoutError):
        return Code.DEADLINE_EXCEEDED
    if isinstance(exc, FileNotFoundError):
        return Code.NOT_FOUND
    if isinstance(exc, FileExistsError):
        return Code.ALREADY_EXISTS
    if isinstance(exc, PermissionError):
        return Code.PERMISSION_DENIED
    if isinstance(exc, asyncio.IncompleteReadError):
        return Code.FAILED_PRECONDITION
    if isinstance(exc, EOFError):
        return Code.OUT_OF_RANGE
    return Code.UNKNOWN
