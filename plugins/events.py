"""The event exchange: containerd's ``io.containerd.event.v1.exchange`` plugin.

The runtime publishes task events (``/tasks/create``, ``/tasks/exit``, ...) and shims forward
theirs through the ttrpc ``Events.Forward`` service; both reach every matching subscriber as an
:class:`EventEnvelope` whose ``event`` is the decoded message (``envelope.event.container_id``)
whenever its type is known to protobuf's default descriptor pool (importing
``runtime_v2.api.events_pb2`` registers containerd's event types), else the ``Any``.

Across processes: taskplane is daemonless, and shims forward their events to whichever process
serves the events socket. An exchange given an :class:`~plugins.events_journal.EventJournal`
(the built-in plugin's is ``<state>/io.containerd.event.v1.exchange/events.log``) appends every
event it publishes or receives from a shim to that journal, and from its first
:meth:`~Exchange.subscribe` on follows the journal, delivering the events other processes
appended. So every subscriber on a state dir sees the events of every task in it, each once:
an exchange's own events are delivered when published and skipped when read back from the
journal. Events from other processes arrive in journal order, within a poll interval (50 ms);
relative to an exchange's own events they may arrive later than their journal position.
An exchange that never subscribes never reads the journal.

Example::

    exchange = Exchange()
    async with exchange.subscribe("/tasks/*", namespace="default") as sub:
        await exchange.publish("/tasks/oom", TaskOOM(container_id="c1"), namespace="default")
        envelope = await sub.get(timeout=5)
        oom = envelope.unpack(TaskOOM)

Delivery is in publication order per subscriber. Every subscriber has a bounded queue
(``maxsize``, default 1024); see :class:`Subscription` for what happens when a subscriber
falls behind. The exchange is used from one event loop; publish and forward never block.

Subscriptions take containerd's filters (``topic~="/tasks/"``, ``namespace==default``,
``event.container_id==web``; :mod:`plugins.filters`) as well as taskplane's topic forms
(``/tasks/exit``, ``/tasks/*``). Differences from containerd's exchange, on purpose: an event's
integer and boolean fields can be matched too (``event.exit_status==0``; containerd's
generated adaptors expose only strings and labels), and a bad filter -- a malformed regular
expression included -- is refused when subscribing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any as _Any
from typing import Protocol, TypeVar, cast

import attrs
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from plugins import filters, identifiers
from plugins.errdefs import FailedPrecondition, InvalidArgument, ResourceExhausted
from plugins.events_journal import EventJournal, Follower, JournalError, Record
from plugins.identifiers import quote
from registry.log import get_logger

__all__ = [
    "DEFAULT_MAXSIZE",
    "DEFAULT_POLL_INTERVAL",
    "EventEnvelope",
    "EventsDropped",
    "Exchange",
    "ForwardedEnvelope",
    "Subscription",
    "decode_event",
    "envelope_field",
    "is_topic_filter",
    "validate_filter",
    "validate_topic",
    "validate_topic_filter",
]

M = TypeVar("M", bound=Message)

log = get_logger(__name__)

#: The default queue bound of a subscription.
DEFAULT_MAXSIZE = 1024
#: How often (seconds) a subscribed exchange reads the journal for other processes' events.
DEFAULT_POLL_INTERVAL = 0.05

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Go's zero time.Time, which a Go shim sends when it leaves the timestamp unset.
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class EventsDropped(ResourceExhausted):
    """A subscription fell behind, so events were dropped and the subscription ended.

    Raised by the first read after the overflow (and by every read after that). The consumer
    should resynchronise its view (list tasks, ...) and subscribe again.

    Attributes: ``dropped`` is how many matching events were not delivered up to the read that
    raised (the queued ones, which were discarded, plus the ones published after the overflow);
    ``maxsize`` is the queue bound that was exceeded.
    """

    def __init__(self, dropped: int, maxsize: int) -> None:
        self.dropped = dropped
        self.maxsize = maxsize
        super().__init__(
            f"event subscription fell behind: its queue of {maxsize} events was full and"
            f" {dropped} events were dropped; subscribe again and resynchronise"
        )


class ForwardedEnvelope(Protocol):
    """What :meth:`Exchange.forward` accepts: a protobuf ``containerd.types.Envelope`` or alike.

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


def _type_name(type_url: str) -> str:
    # typeurl v2 resolves protobuf type URLs by the text after the last "/".
    return type_url.rsplit("/", 1)[-1]


def decode_event(type_url: str, value: bytes) -> Message:
    """Return the event ``value`` as its message class, found by ``type_url`` in protobuf's
    default descriptor pool; the ``Any`` itself when the type is unknown or the bytes do not
    decode (so :meth:`EventEnvelope.unpack` can still say what is wrong)."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(_type_name(type_url))
    except KeyError:
        return any_pb2.Any(type_url=type_url, value=value)
    message: Message = message_factory.GetMessageClass(descriptor)()
    try:
        message.ParseFromString(value)
    except DecodeError:
        return any_pb2.Any(type_url=type_url, value=value)
    return message


@attrs.frozen
class EventEnvelope:
    """One event as delivered to subscribers.

    ``event`` is the published protobuf message for :meth:`Exchange.publish`; for an event
    forwarded by a shim or read from the journal it is the message decoded by
    :func:`decode_event`, or the protobuf ``Any`` when its type is not in the default descriptor
    pool. :meth:`unpack` returns a given message class either way.
    ``timestamp`` is timezone-aware (UTC), with microsecond precision.
    """

    timestamp: datetime
    namespace: str
    topic: str
    event: Message

    @property
    def type_url(self) -> str:
        """The event's type URL: the ``Any``'s URL, or the bare full name of a message."""
        if isinstance(self.event, any_pb2.Any):
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
        if message_class is any_pb2.Any:
            return cast(M, self.as_any())
        if not self.is_(message_class):
            raise InvalidArgument(
                f"event on topic {quote(self.topic)} is {quote(self.type_url)},"
                f" not {message_class.DESCRIPTOR.full_name}"
            )
        event: Message = self.event
        if isinstance(event, message_class):
            return event
        if isinstance(event, any_pb2.Any):
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
        if isinstance(self.event, any_pb2.Any):
            return self.event
        return any_pb2.Any(
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
                f" match ^{identifiers.IDENTIFIER_PATTERN}$"
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
    if head == "event" and rest and not isinstance(envelope.event, any_pb2.Any):
        return _message_field(envelope.event, rest)
    return "", False


def _matcher(texts: tuple[str, ...]) -> Callable[[EventEnvelope], bool]:
    """One predicate for a subscription's filters: any topic form or containerd filter."""
    if not texts:
        return lambda envelope: True
    topics = _topic_matcher(tuple(t for t in texts if is_topic_filter(t)))
    parsed = [filters.parse(t) for t in texts if not is_topic_filter(t)]

    def match(envelope: EventEnvelope) -> bool:
        if topics(envelope.topic):
            return True
        field = functools.partial(envelope_field, envelope)
        return any(f.match(field) for f in parsed)

    return match


class Subscription:
    """A subscriber's view of the exchange: an async iterator of :class:`EventEnvelope`.

    Create one with :meth:`Exchange.subscribe`. Use it as an async context manager (it is
    closed on exit) and iterate it, or call :meth:`get` / :meth:`wait_for` with a timeout.

    Overflow policy: the queue holds at most ``maxsize`` envelopes. When an event arrives
    and the queue is full, the subscription is marked overflowed and its queued envelopes are
    discarded at once (so memory stays bounded by ``maxsize``). The next read -- and every read
    after it -- raises :class:`EventsDropped` carrying how many events were missed; the
    subscription is detached from the exchange at that read. A consumer therefore never
    mistakes a stream with a gap for a complete one: it learns that it missed events, and
    resynchronises and subscribes again.

    Iteration ends (``StopAsyncIteration``, or :class:`EOFError` from :meth:`get`) after
    :meth:`close`, or after the exchange closed and the queued envelopes were read.
    """

    def __init__(
        self,
        exchange: Exchange,
        topics: tuple[str, ...],
        namespace: str | None,
        maxsize: int,
    ) -> None:
        self._exchange = exchange
        self.topics: tuple[str, ...] = topics
        """The filters: topics, prefixes, containerd filters (empty: every event)."""
        self.namespace: str | None = namespace
        """The namespace filter (None: every namespace)."""
        self.maxsize: int = maxsize
        """The queue bound."""
        self._matches_filters = _matcher(topics)
        self._queue: collections.deque[EventEnvelope] = collections.deque()
        self._wakeup = asyncio.Event()
        self._dropped = 0
        self._closed = False  # no more envelopes will be queued
        self._error: EventsDropped | None = None

    # -- exchange side -------------------------------------------------------------------

    def _matches(self, envelope: EventEnvelope) -> bool:
        if self.namespace is not None and envelope.namespace != self.namespace:
            return False
        return self._matches_filters(envelope)

    def _deliver(self, envelope: EventEnvelope) -> None:
        if self._closed:
            return
        if self._dropped:
            self._dropped += 1
            return
        if len(self._queue) >= self.maxsize:
            self._dropped = len(self._queue) + 1
            self._queue.clear()
        else:
            self._queue.append(envelope)
        self._wakeup.set()

    def _end(self) -> None:
        # The exchange closed: queued envelopes can still be read.
        self._closed = True
        self._wakeup.set()

    # -- consumer side -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether no more envelopes will be queued (closed, exchange closed, or overflowed)."""
        return self._closed or self._dropped > 0

    @property
    def overflowed(self) -> bool:
        """Whether the subscription fell behind and its reads raise :class:`EventsDropped`."""
        return self._dropped > 0 or self._error is not None

    def pending(self) -> int:
        """Return how many envelopes are queued and not yet read."""
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving events, discard queued ones and end pending reads. Idempotent."""
        self._closed = True
        self._queue.clear()
        if self._error is None:
            self._dropped = 0  # the consumer is done; its reads end instead of raising
        self._exchange._unsubscribe(self)
        self._wakeup.set()

    async def get(self, *, timeout: float | None = None) -> EventEnvelope:
        """Return the next envelope, waiting at most ``timeout`` seconds (None: forever).

        Raises :class:`TimeoutError` on timeout, :class:`EventsDropped` after an overflow and
        :class:`EOFError` once the subscription has ended.
        """
        self._exchange._start_following()
        async with asyncio.timeout(timeout):
            while True:
                if self._error is not None:
                    # A fresh exception each time, so tracebacks do not pile up on one object.
                    raise EventsDropped(self._error.dropped, self._error.maxsize)
                if self._dropped:
                    self._error = EventsDropped(self._dropped, self.maxsize)
                    self._closed = True
                    self._exchange._unsubscribe(self)
                    raise self._error
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    raise EOFError("event subscription is closed")
                self._wakeup.clear()
                await self._wakeup.wait()

    async def wait_for(
        self, predicate: Callable[[EventEnvelope], bool], *, timeout: float | None = None
    ) -> EventEnvelope:
        """Return the first envelope for which ``predicate`` is true, skipping others.

        Waits at most ``timeout`` seconds in total; same errors as :meth:`get`.
        """
        async with asyncio.timeout(timeout):
            while True:
                envelope = await self.get()
                if predicate(envelope):
                    return envelope

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EventEnvelope:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Subscription topics={list(self.topics)!r} namespace={self.namespace!r}"
            f" pending={len(self._queue)} closed={self.closed}>"
        )


class Exchange:
    """containerd's event exchange: publish, forward and subscribe.

    ``clock`` returns the timestamp given to published events (default: now, UTC).
    ``journal`` shares events with the other processes on the state dir (see the module
    docstring); without one the exchange is private to this process. ``poll_interval`` is how
    often a subscribed exchange reads the journal.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        journal: EventJournal | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._subscriptions: dict[int, Subscription] = {}
        self._closed = False
        self.journal: EventJournal | None = journal
        """Where events are shared with other processes (None: not shared)."""
        self.origin: str = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        """This exchange's name in the journal; its own records are not delivered twice."""
        self.poll_interval = poll_interval
        self._follower: Follower | None = None
        self._following: asyncio.Task[None] | None = None
        self._append_failing = False
        self._poll_failing = False
        # Journal appends run in a worker thread (the journal's flock may wait for another
        # process); this lock keeps them in publication order. FIFO, as asyncio locks are.
        self._appending = asyncio.Lock()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions currently receive events."""
        return len(self._subscriptions)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def following(self) -> bool:
        """Whether this exchange reads the journal (from its first subscription on)."""
        return self._follower is not None

    async def publish(self, topic: str, event: Message, *, namespace: str) -> None:
        """Publish ``event`` (a protobuf message) on ``topic`` in ``namespace``.

        Raises InvalidArgument for an invalid namespace, topic or event, and
        FailedPrecondition after :meth:`close`.
        """
        identifiers.validate(namespace, what="event namespace")
        validate_topic(topic)
        if not isinstance(event, Message):
            raise InvalidArgument(
                f"event on topic {quote(topic)} must be a protobuf message,"
                f" not {type(event).__name__}"
            )
        await self._publish(EventEnvelope(self._clock(), namespace, topic, event))

    async def forward(self, envelope: ForwardedEnvelope) -> None:
        """Deliver an envelope received from a shim, after containerd's validation.

        ``envelope`` is a protobuf ``containerd.types.Envelope`` or any object with
        ``timestamp`` (protobuf Timestamp or aware datetime), ``namespace``, ``topic`` and
        ``event`` (a protobuf ``Any``). Raises InvalidArgument when the namespace is not an
        identifier, the topic is invalid, the timestamp is zero (unset, the Unix epoch, or Go's
        zero time 0001-01-01T00:00:00Z) or
        the event is not an ``Any``; FailedPrecondition after :meth:`close`.
        """
        namespace = envelope.namespace
        topic = envelope.topic
        identifiers.validate(namespace, what="forwarded event namespace")
        validate_topic(topic)
        timestamp = _to_datetime(envelope.timestamp, topic)
        event = envelope.event
        if not isinstance(event, Message) or event.DESCRIPTOR.full_name != "google.protobuf.Any":
            raise InvalidArgument(
                f"forwarded event on topic {quote(topic)} must be a protobuf Any,"
                f" not {type(event).__name__}"
            )
        # A new message (the caller's stays the caller's), of the default pool's classes
        # whichever pool the envelope's class came from.
        decoded = decode_event(
            getattr(event, "type_url"),  # noqa: B009 - Message has no typed fields
            getattr(event, "value"),  # noqa: B009
        )
        await self._publish(EventEnvelope(timestamp, namespace, topic, decoded))

    def subscribe(
        self,
        *topics: str,
        namespace: str | None = None,
        maxsize: int = DEFAULT_MAXSIZE,
    ) -> Subscription:
        """Return a :class:`Subscription` to events published from now on.

        ``topics`` are exact topics (``/tasks/exit``), prefixes (``/tasks/*``; ``/*`` is
        everything) or filters in containerd's language (:mod:`plugins.filters`) over the
        fields ``namespace``, ``topic`` and ``event.<field>`` (``topic~="/tasks/"``,
        ``namespace==default,event.container_id==web``); an event matches if any filter
        matches, and no filter matches every event.
        ``namespace`` limits events to one namespace. ``maxsize`` bounds the queue (see
        :class:`Subscription` for the overflow policy). Invalid filters raise InvalidArgument;
        subscribing after :meth:`close` raises FailedPrecondition, and a journal that cannot be
        followed (a symbolic link at its path, ...) raises
        :class:`~plugins.events_journal.JournalError`.

        With a journal, events other processes appended after this call are delivered too;
        the first subscription starts following the journal.
        """
        for text in topics:
            validate_filter(text)
        if namespace is not None:
            identifiers.validate(namespace, what="subscription namespace")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise InvalidArgument(
                f"subscription maxsize must be a positive integer, not {maxsize!r}"
            )
        self._check_open()
        if self.journal is not None:
            if self._follower is None:
                self._follower = self.journal.follow()  # at the journal's end: from now on
            else:
                # Hand what was appended before this call to the earlier subscribers only.
                self._pump()
            self._start_following()
        subscription = Subscription(self, tuple(topics), namespace, maxsize)
        self._subscriptions[id(subscription)] = subscription
        return subscription

    def close(self) -> None:
        """Close the exchange: subscriptions end after their queued envelopes. Idempotent."""
        self._closed = True
        if self._following is not None:
            self._following.cancel()
            self._following = None
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self.journal is not None:
            self.journal.close()
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            subscription._end()

    async def aclose(self) -> None:
        """Async alias of :meth:`close`, for hosts that await closing."""
        following = self._following
        async with self._appending:  # no append in flight uses the journal's lock file
            self.close()
        if following is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await following

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.pop(id(subscription), None)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("event exchange is closed")

    async def _publish(self, envelope: EventEnvelope) -> None:
        """Deliver ``envelope`` to this process's subscribers at once, then share it through
        the journal in a worker thread: its lock may be held by another process for up to
        :data:`~plugins.events_journal.LOCK_WAIT`, which must not freeze this event loop."""
        self._dispatch(envelope)
        journal = self.journal
        if journal is not None:
            async with self._appending:
                await asyncio.to_thread(self._append, journal, envelope)

    def _append(self, journal: EventJournal, envelope: EventEnvelope) -> None:
        event = envelope.as_any()
        record = Record(
            origin=self.origin,
            timestamp=envelope.timestamp,
            namespace=envelope.namespace,
            topic=envelope.topic,
            type_url=event.type_url,
            value=event.value,
        )
        try:
            journal.append(record)
        except (OSError, JournalError) as exc:
            # Local subscribers have the event; other processes will not. Say so once per
            # failing stretch rather than for every event.
            if not self._append_failing:
                log.warning(
                    "event %s in %s not shared with other processes: %s",
                    envelope.topic,
                    envelope.namespace,
                    _os_error_text(exc),
                )
            self._append_failing = True
        else:
            self._append_failing = False

    def _dispatch(self, envelope: EventEnvelope) -> None:
        self._check_open()
        for subscription in list(self._subscriptions.values()):
            if subscription._matches(envelope):
                subscription._deliver(envelope)

    # -- following the journal ----------------------------------------------------------------

    def _start_following(self) -> None:
        if self._following is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # subscribed outside a loop: the first read starts following
        self._following = loop.create_task(self._follow(), name="event journal follower")

    async def _follow(self) -> None:
        while not self._closed:
            try:
                self._pump()
            except Exception as exc:  # keep following: one bad record must not end it
                log.warning("event journal follower: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.poll_interval)

    def _pump(self) -> None:
        """Deliver the records other exchanges appended since the last read."""
        if self._follower is None or self._closed:
            return
        try:
            records = self._follower.poll()
        except (OSError, JournalError) as exc:
            if not self._poll_failing:
                log.warning("cannot read other processes' events: %s", _os_error_text(exc))
            self._poll_failing = True
            return
        self._poll_failing = False
        for record in records:
            if record.origin == self.origin:
                continue  # delivered when this exchange published it
            try:
                identifiers.validate(record.namespace, what="journal event namespace")
                validate_topic(record.topic)
            except InvalidArgument as exc:
                log.warning("skipping an event in the journal: %s", exc)
                continue
            event = decode_event(record.type_url, record.value)
            self._dispatch(EventEnvelope(record.timestamp, record.namespace, record.topic, event))


def _os_error_text(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _to_datetime(timestamp: object, topic: str) -> datetime:
    zero = InvalidArgument(
        f"forwarded event on topic {quote(topic)} has no timestamp; the sender must set one"
    )
    if timestamp is None:
        raise zero
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise InvalidArgument(
                f"forwarded event on topic {quote(topic)} has a naive timestamp; use UTC"
            )
        value = timestamp.astimezone(UTC)
    else:
        seconds = getattr(timestamp, "seconds", None)
        nanos = getattr(timestamp, "nanos", None)
        if not isinstance(seconds, int) or not isinstance(nanos, int):
            raise InvalidArgument(
                f"forwarded event on topic {quote(topic)} has a timestamp of type"
                f" {type(timestamp).__name__}; expected a protobuf Timestamp or a datetime"
            )
        if seconds == 0 and nanos == 0:
            raise zero
        try:
            value = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
        except OverflowError:
            raise InvalidArgument(
                f"forwarded event on topic {quote(topic)} has an out-of-range timestamp"
            ) from None
    if value in (_EPOCH, _GO_ZERO_TIME):
        raise zero
    return value
