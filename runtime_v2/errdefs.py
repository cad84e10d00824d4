"""containerd's error classes and their mapping to ttrpc/gRPC status codes.

The classes themselves live in :mod:`plugins.errdefs` (pure, no protobuf) and are re-exported
here so that runtime code has one import::

    from runtime_v2 import errdefs

    raise errdefs.NotFound(f'task "{task_id}"')

:func:`to_status` is containerd's ``errgrpc.ToGRPC`` plus ttrpc's ``convertCode`` for errors that
are not errdefs classes; :func:`from_status` is ``errgrpc.ToNative``. The two are inverse for
errdefs classes::

    >>> to_status(NotFound("container not created"))
    (5, 'container not created: not found')
    >>> from_status(5, "container not created: not found")
    NotFound('container not created')
"""

from __future__ import annotations

import asyncio

from plugins.errdefs import (
    Aborted,
    AlreadyExists,
    Canceled,
    Conflict,
    ContainerdError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    NotImplemented,
    NotModified,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unknown,
)

__all__ = [
    "CODE_NAMES",
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
    "from_status",
    "to_status",
]

#: gRPC status code number -> its canonical name (for messages and logs).
CODE_NAMES: dict[int, str] = {
    0: "OK",
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}

# Code -> class used by from_status; FailedPrecondition is refined by message (Conflict etc.).
_CLASS_BY_CODE: dict[int, type[ContainerdError]] = {
    cls.code: cls
    for cls in (
        Canceled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        NotImplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def _with_class_text(message: str, text: str) -> str:
    """Go's ``fmt.Errorf("%s: %w", msg, ErrX).Error()``: append the class text once."""
    if message == text or message.endswith(": " + text):
        return message
    return f"{message}: {text}"


def to_status(exc: BaseException) -> tuple[int, str]:
    """Return the ``(code, message)`` a server sends for ``exc``.

    errdefs classes keep their code and get ": <class text>" appended once, as Go's wrapped
    errors read ("container not created: not found"). Other exceptions follow ttrpc's
    ``convertCode``: file-not-found -> NotFound, file-exists -> AlreadyExists, permission ->
    PermissionDenied, :class:`asyncio.CancelledError` -> Canceled, :class:`TimeoutError` ->
    DeadlineExceeded, :class:`EOFError` -> OutOfRange (io.EOF), truncated reads
    (:class:`asyncio.IncompleteReadError`) -> FailedPrecondition (io.ErrUnexpectedEOF), and
    everything else Unknown. The message is ``str(exc)`` (or the class text when that is empty).
    """
    if isinstance(exc, ContainerdError):
        return exc.code, _with_class_text(str(exc), exc.text)
    cls = _convert_class(exc)
    return cls.code, str(exc) or cls.text


def _convert_class(exc: BaseException) -> type[ContainerdError]:
    # Order matters: TimeoutError and the file errors are OSError subclasses, and
    # IncompleteReadError is an EOFError.
    if isinstance(exc, asyncio.CancelledError):
        return Canceled
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded
    if isinstance(exc, FileNotFoundError):
        return NotFound
    if isinstance(exc, FileExistsError):
        return AlreadyExists
    if isinstance(exc, PermissionError):
        return PermissionDenied
    if isinstance(exc, asyncio.IncompleteReadError):
        return FailedPrecondition
    if isinstance(exc, EOFError):
        return OutOfRange
    return Unknown


def from_status(code: int, message: str) -> ContainerdError:
    """Return the errdefs exception for a status received from a peer (``errgrpc.ToNative``).

    FailedPrecondition becomes :class:`Conflict` when the message is "conflict" or ends with
    ": conflict", and :class:`NotModified` likewise for "not modified". A trailing
    ": <class text>" is dropped from the message because the class carries it. Unknown codes
    (including 0, which is not an error) give :class:`Unknown` with the code in the message.
    """
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        return Unknown(f"{message} (status code {code})" if message else f"status code {code}")
    if cls is FailedPrecondition:
        for refined in (Conflict, NotModified):
            if message == refined.text or message.endswith(": " + refined.text):
                cls = refined
                break
    if message == cls.text:
        return cls()
    suffix = ": " + cls.text
    if message.endswith(suffix):
        message = message[: -len(suffix)]
    return cls(message)
