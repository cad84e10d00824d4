"""What an event is and how subscribers select it: :class:`EventEnvelope`, decoding a
forwarded ``Any`` into its message, topic validation, and matching an envelope against
taskplane's topic forms (``/tasks/exit``, ``/tasks/*``) and containerd's filters
(:mod:`plugins.filters`, over the fields containerd's ``Envelope.Field`` in ``core/events``
exposes).

Part of the event exchange (:mod:`plugins.events`, which re-exports these names).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, cast
from typing import Any as _Any

import attrs
from google.protobuf.message import DecodeError, Message

from plugins import identifiers
from plugins.errdefs import InvalidArgument
from plugins.identifiers import quote

if TYPE_CHECKING:
    from google.protobuf import any_pb2

__all__ = [
    "EventEnvelope",
    "ForwardedEnvelope",
    "decode_event",
    "envelope_field",
    "is_topic_filter",
    "matcher",
    "validate_filter",
    "validate_topic",
    "validate_topic_filter",
]

M = TypeVar("M", bound=Message)


class ForwardedEnvelope(Protocol):
    """What :meth:`plugins.events.Exchange.forward` accepts: a protobuf
    ``containerd.types.Envelope`` or alike.

    ``timestamp`` is a protobuf ``Timestamp`` or an aware :class:`~datetime.datetime`;
    ``event`` is a protobuf ``Any``.
    """

    @property
    def timestamp(self) -> _Any:
        """When the event happened."""

    @property
    def namespace(self) -> str:
        """The containerd namespace of the event."""

    @property
    def topic(self) -> str:
        """The topic, e.g. ``/tasks/exit``."""

    @property
    def event(self) -> _Any:
        """The event as a protobuf ``Any``."""


def _any() -> type[any_pb2.Any]:
    # The generated Any (and with it protobuf's descriptor pool) is imported on the first
    # event, not by every process that boots the exchange.
    from google.protobuf import any_pb2

    return any_pb2.Any


def _type_name(type_url: str) -> str:
    # typeurl v2 resolves protobuf type URLs by the text after the last "/".
    return type_url.rsplit("/", 1)[-1]


def decode_event(type_url: str, value: bytes) -> Message:
    """Return the event ``value`` as its message class, found by ``type_url`` in protobuf's
    default descriptor pool; the ``Any`` itself when the type is unknown or the bytes do not
    decode (so :meth:`EventEnvelope.unpack` can still say what is wrong)."""
    from google.protobuf import descriptor_pool, message_factory

    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(_type_name(type_url))
    except KeyError:
        return _any()(type_url=type_url, value=value)
    message: Message = message_factory.GetMessageClass(descriptor)()
    try:
        message.ParseFromString(value)
    except DecodeError:
        return _any()(type_url=type_url, value=value)
    return message


@attrs.frozen
class EventEnvelope:
    """One event as delivered to subscribers.

    ``event`` is the published protobuf message for
    :meth:`plugins.events.Exchange.publish`; for an event forwarded by a shim or read from the
    journal it is the message decoded by :func:`decode_event`, or the protobuf ``Any`` when
    its type is not in the default descriptor pool. :meth:`unpack` returns a given message
    class either way. ``timestamp`` is timezone-aware (UTC), with microsecond precision.
    """

    timestamp: datetime
    namespace: str
    topic: str
    event: Message

    @property
    def type_url(self) -> str:
        """The event's type URL: the ``Any``'s URL, or the bare full name of a message."""
        if isinstance(self.event, _any()):
            return str(self.event.type_url)
        return str(self.event.DESCRIPTOR.full_name)

    def is_(self, message_class: type[Message]) -> bool:
        """Return whether the event is a ``message_class`` (by full protobuf name)."""
        return bool(_type_name(self.type_url) == message_class.DESCRIPTOR.full_name)

    def unpack(self, message_class: type[M]) -> M:
        """Return the event as a ``message_class`` instance.

        Raises :class:`~plugins.errdefs.InvalidArgument` when the event is another type or
        its bytes do not decode. ``unpack(any_pb2.Any)`` returns :meth:`as_any`.
        """
        if message_class is _any():
            return cast(M, self.as_any())
        if not self.is_(message_class):
            raise InvalidArgument(
                f"event on topic {quote(self.topic)} is {quote(self.type_url)},"
                f" not {message_class.DESCRIPTOR.full_name}"
            )
        event: Message = self.event
        if isinstance(event, message_class):
            return event
        if isinstance(event, _any()):
            message: M = message_class()
            try:
                message.ParseFromString(event.value)
            except DecodeError as exc:
                raise InvalidArgument(
                    f"event on topic {quote(self.topic)} does not decode as"
                    f" {message_class.DESCRIPTOR.full_name}: {exc}"
                ) from exc
            return message
        # Same full name but another class (e.g. two generated modules): go through bytes.
        message = message_class()
        message.ParseFromString(event.SerializeToString())
        return message

    def as_any(self) -> any_pb2.Any:
        """Return the event as a protobuf ``Any`` with containerd's bare type URL.

        containerd 1.6 only resolves the bare full name (``containerd.events.TaskExit``),
        so published messages are packed without a host prefix.
        """
        if isinstance(self.event, _any()):
            return self.event
        return _any()(
            type_url=self.event.DESCRIPTOR.full_name, value=self.event.SerializeToString()
        )


def validate_topic(topic: object) -> None:
    """Raise InvalidArgument unless ``topic`` is ``/`` followed by ``/``-separated identifiers."""
    if not isinstance(topic, str):
        raise InvalidArgument(f"event topic must be a string, not {type(topic).__name__}")
    if not topic:
        raise InvalidArgument("event topic must not be empty")
    if not topic.startswith("/"):
        raise InvalidArgument(f'event topic {quote(topic)} is invalid: it must start with "/"')
    if topic == "/":
        raise InvalidArgument('event topic "/" is invalid: it must have at least one component')
    for component in topic[1:].split("/"):
        if not identifiers.is_valid(component):
            raise InvalidArgument(
                f"event topic {quote(topic)} is invalid: component {quote(component)} must"
                f" match {identifiers.PATTERN}"
            )


def validate_topic_filter(topic_filter: object) -> None:
    """Raise InvalidArgument unless ``topic_filter`` is a topic, a prefix ``/a/*``, or ``/*``."""
    if isinstance(topic_filter, str) and topic_filter.endswith("/*"):
        if topic_filter == "/*":
            return
        topic_filter = topic_filter[:-2]
    try:
        validate_topic(topic_filter)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid topic filter: {exc}") from None


def _topic_matcher(filters: tuple[str, ...]) -> Callable[[str], bool]:
    exact = frozenset(f for f in filters if not f.endswith("/*"))
    prefixes = tuple(f[:-1] for f in filters if f.endswith("/*"))  # keep the trailing "/"
    return lambda topic: topic in exact or topic.startswith(prefixes)


def is_topic_filter(text: str) -> bool:
    """Whether ``text`` is taskplane's topic form (``/tasks/exit``, ``/tasks/*``) rather than a
    filter of containerd's language (which starts with a field name or a quote)."""
    return text.startswith("/")


def validate_filter(text: object) -> None:
    """Raise InvalidArgument unless ``text`` is a topic filter (:func:`validate_topic_filter`)
    or a filter in containerd's language (:mod:`plugins.filters`)."""
    if isinstance(text, str) and not is_topic_filter(text):
        from plugins import filters  # containerd's filter language: only when one is used

        filters.parse(text)
        return
    validate_topic_filter(text)


def _message_field(message: Message, path: Sequence[str]) -> tuple[str, bool]:
    """containerd's generated ``Field`` of an event: a field by its protobuf name, a map entry
    by key, a nested message by a longer path; strings are present when not empty."""
    value: object = message
    for name in path:
        if isinstance(value, Message):
            field = value.DESCRIPTOR.fields_by_name.get(name)
            if field is None:
                return "", False
            value = getattr(value, name)
        elif hasattr(value, "keys") and not isinstance(value, str):  # a protobuf map
            if name not in value:  # type: ignore[operator]
                return "", False
            value = value[name]  # type: ignore[index]
        else:
            return "", False
    if isinstance(value, str):
        return value, value != ""
    if isinstance(value, bool):
        return ("true" if value else "false"), True
    if isinstance(value, int | float):
        return str(value), True
    return "", False


def envelope_field(envelope: EventEnvelope, path: Sequence[str]) -> tuple[str, bool]:
    """containerd's envelope adaptor: ``namespace``, ``topic``, and ``event.<field path>``
    (an event still an ``Any`` -- a type this process does not know -- has no fields)."""
    if not path:
        return "", False
    head, rest = path[0], path[1:]
    if head == "namespace" and not rest:
        return envelope.namespace, envelope.namespace != ""
    if head == "topic" and not rest:
        return envelope.topic, envelope.topic != ""
    if head == "event" and rest and not isinstance(envelope.event, _any()):
        return _message_field(envelope.event, rest)
    return "", False


def matcher(texts: tuple[str, ...]) -> Callable[[EventEnvelope], bool]:
    """One predicate for a subscription's filters: any topic form or containerd filter."""
    if not texts:
        return lambda envelope: True
    topics = _topic_matcher(tuple(t for t in texts if is_topic_filter(t)))
    others = [t for t in texts if not is_topic_filter(t)]
    if not others:
        return lambda envelope: topics(envelope.topic)
    from plugins import filters

    contained = filters.parse_all(others)
    return lambda envelope: (
        topics(envelope.topic) or contained(functools.partial(envelope_field, envelope))
    )
