"""containerd's error classes (``github.com/containerd/errdefs``) as Python exceptions.

Pure classes with no I/O and no protobuf, so every layer can raise them. The mapping to and
from ttrpc status codes lives in :mod:`runtime_v2.errdefs`.

Each class carries the gRPC status ``code`` it maps to and containerd's ``text`` for the class
("not found", "already exists", ...). Raise them with a message that names the thing::

    raise NotFound(f'container "{cid}" in namespace "{ns}"')

:func:`wrap` adds context to an error and keeps its class, as Go's
``fmt.Errorf("creating task: %w", err)`` keeps ``errdefs.IsNotFound(err)`` true.
"""

from __future__ import annotations

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Canceled",
    "Conflict",
    "ContainerdError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "NotImplemented",
    "NotModified",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "kind",
    "wrap",
]


class ContainerdError(Exception):
    """Base class of every errdefs class; ``code`` is the gRPC status code it maps to."""

    code: int = 2
    text: str = "unknown"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.text)

    @property
    def message(self) -> str:
        """The message without the class text appended."""
        return str(self)


class Canceled(ContainerdError):
    """The operation was cancelled (context.Canceled)."""

    code, text = 1, "context canceled"


class Unknown(ContainerdError):
    """An error of no known class."""

    code, text = 2, "unknown"


class InvalidArgument(ContainerdError):
    """The request was malformed or named something invalid."""

    code, text = 3, "invalid argument"


class DeadlineExceeded(ContainerdError):
    """The deadline passed before the operation finished."""

    code, text = 4, "context deadline exceeded"


class NotFound(ContainerdError):
    """The object does not exist."""

    code, text = 5, "not found"


class AlreadyExists(ContainerdError):
    """The object exists already."""

    code, text = 6, "already exists"


class PermissionDenied(ContainerdError):
    """The caller may not do this."""

    code, text = 7, "permission denied"


class ResourceExhausted(ContainerdError):
    """A limit was reached (for ttrpc: the 4 MiB message size)."""

    code, text = 8, "resource exhausted"


class FailedPrecondition(ContainerdError):
    """The object is not in a state that allows the operation."""

    code, text = 9, "failed precondition"


class Conflict(FailedPrecondition):
    """The operation conflicts with the object's state (sent as FailedPrecondition)."""

    text = "conflict"


class NotModified(FailedPrecondition):
    """Nothing changed (sent as FailedPrecondition)."""

    text = "not modified"


class Aborted(ContainerdError):
    """The operation was aborted."""

    code, text = 10, "aborted"


class OutOfRange(ContainerdError):
    """A value was out of range."""

    code, text = 11, "out of range"


class NotImplemented(ContainerdError):
    """The operation is not implemented by this runtime or peer."""

    code, text = 12, "not implemented"


class Internal(ContainerdError):
    """An internal error of the peer."""

    code, text = 13, "internal"


class Unavailable(ContainerdError):
    """The peer cannot be reached."""

    code, text = 14, "unavailable"


class DataLoss(ContainerdError):
    """Data was lost or corrupted."""

    code, text = 15, "data loss"


class Unauthenticated(ContainerdError):
    """The caller is not authenticated."""

    code, text = 16, "unauthenticated"


def kind(exc: BaseException) -> type[ContainerdError]:
    """The errdefs class of ``exc``: the nearest base class defined here (Unknown for none).

    A subclass defined elsewhere (a shim command's error, a closed connection) is not a kind of
    its own: its constructor may take other arguments.
    """
    for cls in type(exc).__mro__:
        if cls.__module__ == __name__ and issubclass(cls, ContainerdError):
            return cls
    return Unknown


def wrap(exc: BaseException, prefix: str) -> ContainerdError:
    """``prefix: exc`` as an error of the same errdefs class (:func:`kind`), chained to ``exc``.

    >>> wrap(NotFound('task "web"'), "cannot signal")
    NotFound('cannot signal: task "web"')
    """
    wrapped = kind(exc)(f"{prefix}: {exc}")
    wrapped.__cause__ = exc
    return wrapped
