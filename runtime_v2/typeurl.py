"""Pack and unpack ``google.protobuf.Any`` values the way containerd's ``typeurl`` does.

containerd puts two kinds of values into an Any (``github.com/containerd/typeurl`` and the
OCI kinds containerd registers in ``pkg/protobuf/types``):

* **protobuf messages**, whose type URL is the *bare* full message name with no host prefix,
  e.g. ``containerd.runc.v1.Options`` or ``containerd.events.TaskExit``. containerd 1.6 only
  understands the bare form, so :func:`pack` always writes it. On the way in, :func:`unpack`
  also accepts ``type.googleapis.com/<name>``, ``types.containerd.io/<name>`` or any other
  ``<prefix>/<name>`` (containerd main resolves by the text after the last ``/``).
* **OCI runtime-spec documents**, stored as JSON bytes under
  ``types.containerd.io/opencontainers/runtime-spec/1/<kind>`` for the kinds in
  :data:`JSON_KINDS`. They are packed with :func:`pack_json` and unpacked into a frozen
  :class:`JSONValue` (kind + decoded JSON), because Python has no Go struct to decode into.

Example::

    from runtime_v2 import typeurl
    from runtime_v2.api import runc_options_pb2

    any_ = typeurl.pack(runc_options_pb2.Options(binary_name="/usr/sbin/runc"))
    assert any_.type_url == "containerd.runc.v1.Options"
    assert typeurl.unpack(any_) == runc_options_pb2.Options(binary_name="/usr/sbin/runc")

    spec = typeurl.pack_json("Spec", {"ociVersion": "1.0.2"})
    assert typeurl.unpack(spec) == typeurl.JSONValue("Spec", {"ociVersion": "1.0.2"})

Protobuf types are looked up in the default descriptor pool. The first :func:`unpack` of a
URL imports every containerd message module of :mod:`runtime_v2.api` so their types resolve;
packing and checking types need none of them, so importing this module loads none.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping, Sequence
from typing import Any as _AnyValue
from typing import Final, TypeVar

import attrs
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from runtime_v2 import errdefs

__all__ = [
    "JSON_KINDS",
    "JSON_TYPE_PREFIX",
    "JSONValue",
    "UnknownTypeError",
    "is_",
    "pack",
    "pack_json",
    "type_url_of",
    "unpack",
    "unpack_as",
]

M = TypeVar("M", bound=Message)

JSON_TYPE_PREFIX: Final = "types.containerd.io/opencontainers/runtime-spec/1/"
"""Type URL prefix of the OCI runtime-spec JSON types containerd registers."""

JSON_KINDS: Final = frozenset(
    {"Spec", "Process", "LinuxResources", "WindowsResources", "features/Features"}
)
"""The OCI runtime-spec kinds containerd registers (the URL is the prefix + the kind)."""


class UnknownTypeError(errdefs.NotFound):
    """No protobuf message or OCI JSON kind is known for an Any's type URL.

    ``str(err)`` is containerd's text, e.g. ``type with url "x.Y": not found``; ``err.url`` is
    the URL.
    """

    def __init__(self, url: str) -> None:
        super().__init__(f'type with url "{url}": not found')
        self.url = url


@attrs.frozen
class JSONValue:
    """An OCI runtime-spec document decoded from (or to be packed into) an Any.

    ``kind`` is one of :data:`JSON_KINDS`; ``value`` is the decoded JSON (usually a dict).
    """

    kind: str
    value: _AnyValue

    @property
    def type_url(self) -> str:
        """The type URL containerd uses for this kind."""
        return JSON_TYPE_PREFIX + self.kind


def type_url_of(message: type[Message] | Message) -> str:
    """Return the type URL containerd uses for a protobuf message class or instance.

    It is the bare full name: ``type_url_of(runc_options_pb2.Options)`` is
    ``"containerd.runc.v1.Options"``.
    """
    descriptor = getattr(message, "DESCRIPTOR", None)
    full_name = getattr(descriptor, "full_name", None)
    if not isinstance(full_name, str):
        raise errdefs.InvalidArgument(f"{message!r} is not a protobuf message or message class")
    return full_name


def pack(obj: Message | JSONValue) -> any_pb2.Any:
    """Wrap a protobuf message (or a :class:`JSONValue`) in an Any with containerd's type URL.

    An Any is returned unchanged, never wrapped twice (containerd's ``MarshalAny`` does the
    same), so options that already arrive as an Any keep their type URL.
    """
    if isinstance(obj, any_pb2.Any):
        return obj
    if isinstance(obj, JSONValue):
        return pack_json(obj.kind, obj.value)
    if not isinstance(obj, Message):
        raise errdefs.InvalidArgument(
            f"cannot pack {type(obj).__name__}: not a protobuf message "
            "(use pack_json for OCI runtime-spec documents)"
        )
    return any_pb2.Any(type_url=type_url_of(obj), value=obj.SerializeToString())


def pack_json(
    kind: str, value: Mapping[str, _AnyValue] | Sequence[_AnyValue] | bytes | str
) -> any_pb2.Any:
    """Pack an OCI runtime-spec document as a JSON Any.

    ``kind`` is one of :data:`JSON_KINDS` (``"Spec"``, ``"Process"``, ``"LinuxResources"``,
    ``"WindowsResources"``, ``"features/Features"``). ``value`` is either the decoded document,
    which is encoded compactly, or JSON text/bytes, which are kept byte for byte after checking
    that they parse.
    """
    if kind not in JSON_KINDS:
        raise errdefs.InvalidArgument(
            f'unknown OCI JSON kind "{kind}" (expected one of {", ".join(sorted(JSON_KINDS))})'
        )
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            json.loads(data)
        except ValueError as exc:
            raise errdefs.InvalidArgument(
                f'value for OCI JSON kind "{kind}" is not JSON: {exc}'
            ) from None
    else:
        try:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise errdefs.InvalidArgument(
                f'value for OCI JSON kind "{kind}" cannot be encoded as JSON: {exc}'
            ) from None
    return any_pb2.Any(type_url=JSON_TYPE_PREFIX + kind, value=data)


#: The modules of :mod:`runtime_v2.api` whose types :func:`unpack` resolves by URL.
_API_MODULES = (
    "bootstrap_pb2",
    "cgroups_v1_metrics_pb2",
    "cgroups_v2_metrics_pb2",
    "event_pb2",
    "events_pb2",
    "events_service_pb2",
    "introspection_pb2",
    "mount_pb2",
    "runc_options_pb2",
    "task_types_pb2",
    "task_v2_pb2",
    "task_v3_pb2",
)


@functools.cache
def _register_containerd_types() -> None:
    """Import the API modules once, for their side effect: their types enter the pool."""
    for name in _API_MODULES:
        importlib.import_module(f"runtime_v2.api.{name}")


def _message_class(url: str) -> type[Message]:
    """Resolve a protobuf type URL (bare or prefixed) to its generated class."""
    name = url.rsplit("/", 1)[-1]
    if not name:
        raise UnknownTypeError(url)
    _register_containerd_types()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        raise UnknownTypeError(url) from None
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def unpack(any_: any_pb2.Any) -> Message | JSONValue:
    """Decode an Any into a protobuf message instance or a :class:`JSONValue`.

    Raises :class:`UnknownTypeError` (an ``errdefs.NotFound``) for a URL naming no known type
    and ``errdefs.InvalidArgument`` when the value does not decode as that type.
    """
    url: str = any_.type_url
    if url.startswith(JSON_TYPE_PREFIX):
        kind = url[len(JSON_TYPE_PREFIX) :]
        if kind not in JSON_KINDS:
            raise UnknownTypeError(url)
        try:
            return JSONValue(kind, json.loads(any_.value))
        except ValueError as exc:
            raise errdefs.InvalidArgument(f'value of Any "{url}" is not JSON: {exc}') from None
    return _decode(any_, _message_class(url))


def unpack_as(any_: any_pb2.Any, message_class: type[M]) -> M:
    """Decode an Any that must hold ``message_class`` (any accepted URL form).

    Raises ``errdefs.InvalidArgument`` naming both types when the Any holds something else.
    """
    if not is_(any_, message_class):
        raise errdefs.InvalidArgument(
            f'Any of type "{any_.type_url}" is not a {type_url_of(message_class)}'
        )
    return _decode(any_, message_class)


def _decode(any_: any_pb2.Any, message_class: type[M]) -> M:
    """Parse the Any's value as ``message_class``; InvalidArgument when it does not decode."""
    message = message_class()
    try:
        message.ParseFromString(any_.value)
    except DecodeError as exc:
        raise errdefs.InvalidArgument(
            f'value of Any "{any_.type_url}" does not decode: {exc}'
        ) from None
    return message


def is_(any_: any_pb2.Any, kind: type[Message] | str) -> bool:
    """Tell whether an Any holds ``kind``: a protobuf message class or an OCI JSON kind.

    For a message class the bare name and every ``<prefix>/<name>`` form match, as in
    :func:`unpack`; for a JSON kind (``"Spec"``, ...) the URL must be exactly containerd's.
    """
    url: str = any_.type_url
    if isinstance(kind, str):
        return url == JSON_TYPE_PREFIX + kind
    if url.startswith(JSON_TYPE_PREFIX):
        return False
    return url.rsplit("/", 1)[-1] == type_url_of(kind)
