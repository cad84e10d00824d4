"""containerd's error classes and their mapping to and from ttrpc status codes.

The classes (and :func:`wrap`) live in :mod:`plugins.errdefs` (pure, no protobuf) and are
re-exported here so that runtime code has one import::

    from runtime_v2 import errdefs

    raise errdefs.NotFound(f'task "{task_id}"')

ttrpc knows status codes only (:class:`runtime_v2.ttrpc.StatusError`); this module is where the
runtime maps them, as containerd does with ``errgrpc`` (``github.com/containerd/errdefs/pkg/
errgrpc``): :func:`to_status` / :func:`to_grpc` are ``errgrpc.ToGRPC`` (a handler's errdefs
error -> the status on the wire), :func:`from_status` / :func:`from_grpc` are
``errgrpc.ToNative`` (a status received -> the errdefs class). The two are inverse for errdefs
classes::

    >>> to_status(NotFound("container not created"))
    (5, 'container not created: not found')
    >>> from_status(5, "container not created: not found")
    NotFound('container not created')

:func:`grpc_handler` applies ``to_grpc`` to a ttrpc handler. Nothing here imports ttrpc at
module level: errdefs is on every command's path, ttrpc only on those that talk to a shim.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from plugins import errdefs as _classes
from plugins.errdefs import *  # noqa: F403  (the classes, re-exported as this module's own)

if TYPE_CHECKING:
    from runtime_v2.ttrpc import StatusError

__all__ = [
    *_classes.__all__,
    "from_grpc",
    "from_status",
    "grpc_handler",
    "to_grpc",
    "to_status",
]

_ContainerdError = _classes.ContainerdError
_FailedPrecondition = _classes.FailedPrecondition
_Unknown = _classes.Unknown

# Code -> class used by from_status; FailedPrecondition is refined by message (Conflict etc.).
_CLASS_BY_CODE: dict[int, type[_classes.ContainerdError]] = {
    cls.code: cls
    for cls in (getattr(_classes, name) for name in _classes.__all__)
    if isinstance(cls, type)
    and issubclass(cls, _ContainerdError)
    and cls is not _ContainerdError
    and not issubclass(cls, _FailedPrecondition)
}
_CLASS_BY_CODE[_FailedPrecondition.code] = _FailedPrecondition
_REFINED = (_classes.Conflict, _classes.NotModified)


def _with_class_text(message: str, text: str) -> str:
    """Go's ``fmt.Errorf("%s: %w", msg, ErrX).Error()``: append the class text once."""
    if message == text or message.endswith(": " + text):
        return message
    return f"{message}: {text}"


def to_status(exc: BaseException) -> tuple[int, str]:
    """Return the ``(code, message)`` a server sends for ``exc``.

    errdefs classes keep their code and get ": <class text>" appended once, as Go's wrapped
    errors read ("container not created: not found"). Other exceptions get the code ttrpc gives
    them (:func:`runtime_v2.ttrpc.status_of`, ttrpc's ``convertCode``); an empty message
    becomes the class text of that code.
    """
    if isinstance(exc, _ContainerdError):
        return exc.code, _with_class_text(str(exc), exc.text)
    from runtime_v2.ttrpc import status_of  # serving: ttrpc is loaded already

    code, message = status_of(exc)
    return code, message or _CLASS_BY_CODE.get(code, _Unknown).text


def to_grpc(exc: BaseException) -> StatusError:
    """``exc`` as the :class:`~runtime_v2.ttrpc.StatusError` a ttrpc handler raises to answer
    with its status (:func:`to_status`); raise it ``from exc``."""
    from runtime_v2.ttrpc import StatusError

    return StatusError(*to_status(exc))


def from_status(code: int, message: str) -> _classes.ContainerdError:
    """Return the errdefs exception for a status received from a peer (``errgrpc.ToNative``).

    FailedPrecondition becomes :class:`Conflict` when the message is "conflict" or ends with
    ": conflict", and :class:`NotModified` likewise for "not modified". A trailing
    ": <class text>" is dropped from the message because the class carries it. Unknown codes
    (including 0, which is not an error) give :class:`Unknown` with the code in the message.
    """
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        return _Unknown(f"{message} (status code {code})" if message else f"status code {code}")
    if cls is _FailedPrecondition:
        for refined in _REFINED:
            if message == refined.text or message.endswith(": " + refined.text):
                cls = refined
                break
    if message == cls.text:
        return cls()
    suffix = ": " + cls.text
    if message.endswith(suffix):
        message = message[: -len(suffix)]
    return cls(message)


def from_grpc(exc: StatusError) -> _classes.ContainerdError:
    """The errdefs exception for a ttrpc status error (:func:`from_status`), chained to it."""
    native = from_status(exc.code, exc.message)
    native.__cause__ = exc
    return native


_Request = TypeVar("_Request")
_Context = TypeVar("_Context")
_Response = TypeVar("_Response")


def grpc_handler(
    handler: Callable[[_Request, _Context], Awaitable[_Response]],
) -> Callable[[_Request, _Context], Awaitable[_Response]]:
    """Wrap a ttrpc handler so that the errdefs errors it raises are answered with their
    status (:func:`to_grpc`), as containerd's services return ``errgrpc.ToGRPC(err)``::

        server.register(service, {"Forward": errdefs.grpc_handler(forward)})
    """

    @functools.wraps(handler)
    async def serve(request: _Request, ctx: _Context) -> _Response:
        try:
            return await handler(request, ctx)
        except _ContainerdError as exc:
            raise to_grpc(exc) from exc

    return serve
