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

The exchange is split by job: this module is the exchange itself (publish, forward,
subscribe, the journal); :mod:`plugins.events_envelope` is what an event is and how it is
matched; :mod:`plugins.events_subscription` is a subscriber's queue. Their public names are
re-exported here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from plugins import identifiers
from plugins.errdefs import FailedPrecondition, InvalidArgument
from plugins.events_journal import EventJournal, Follower, JournalError
from plugins.identifiers import quote
from registry._lazy import export_lazily
from registry.log import get_logger

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from plugins.events_envelope import (
        EventEnvelope,
        ForwardedEnvelope,
        decode_event,
        envelope_field,
        is_topic_filter,
        validate_filter,
        validate_topic,
        validate_topic_filter,
    )
    from plugins.events_record import Record
    from plugins.events_subscription import EventsDropped, Subscription

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

log = get_logger(__name__)

#: Re-exported names -> the module that defines them, imported when first read (PEP 562): an
#: event (its envelope class and protobuf) or a subscription is what needs them, not the boot
#: of the exchange every command does.
__getattr__ = export_lazily(
    __name__,
    {
        "EventEnvelope": "plugins.events_envelope",
        "ForwardedEnvelope": "plugins.events_envelope",
        "decode_event": "plugins.events_envelope",
        "envelope_field": "plugins.events_envelope",
        "is_topic_filter": "plugins.events_envelope",
        "validate_filter": "plugins.events_envelope",
        "validate_topic": "plugins.events_envelope",
        "validate_topic_filter": "plugins.events_envelope",
        "EventsDropped": "plugins.events_subscription",
        "Subscription": "plugins.events_subscription",
    },
)


#: The default queue bound of a subscription.
DEFAULT_MAXSIZE = 1024
#: How often (seconds) a subscribed exchange reads the journal for other processes' events.
DEFAULT_POLL_INTERVAL = 0.05

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Go's zero time.Time, which a Go shim sends when it leaves the timestamp unset.
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


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
        self.origin: str = f"{os.getpid()}-{os.urandom(6).hex()}"
        """This exchange's name in the journal; its own records are not delivered twice."""
        self.poll_interval = poll_interval
        self._follower: Follower | None = None
        self._following: asyncio.Task[None] | None = None
        self._append_failing = False
        self._poll_failing = False
        # Records not yet in the journal because its lock was held by another process, in
        # publication order, and the task appending them from a worker thread.
        self._unwritten: collections.deque[Record] = collections.deque()
        self._appender: asyncio.Task[None] | None = None

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
        from google.protobuf.message import Message

        from plugins.events_envelope import EventEnvelope, validate_topic

        identifiers.validate(namespace, what="event namespace")
        validate_topic(topic)
        if not isinstance(event, Message):
            raise InvalidArgument(
                f"event on topic {quote(topic)} must be a protobuf message,"
                f" not {type(event).__name__}"
            )
        self._publish(EventEnvelope(self._clock(), namespace, topic, event))

    async def forward(self, envelope: ForwardedEnvelope) -> None:
        """Deliver an envelope received from a shim, after containerd's validation.

        ``envelope`` is a protobuf ``containerd.types.Envelope`` or any object with
        ``timestamp`` (protobuf Timestamp or aware datetime), ``namespace``, ``topic`` and
        ``event`` (a protobuf ``Any``). Raises InvalidArgument when the namespace is not an
        identifier, the topic is invalid, the timestamp is zero (unset, the Unix epoch, or Go's
        zero time 0001-01-01T00:00:00Z) or
        the event is not an ``Any``; FailedPrecondition after :meth:`close`.
        """
        from google.protobuf.message import Message

        from plugins.events_envelope import EventEnvelope, decode_event, validate_topic

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
        self._publish(EventEnvelope(timestamp, namespace, topic, decoded))

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
        from plugins.events_envelope import validate_filter
        from plugins.events_subscription import Subscription

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
        """Close the exchange: subscriptions end after their queued envelopes. Idempotent.

        Events still waiting for the journal's lock are not shared (a warning says how many);
        :meth:`aclose` waits for them."""
        self._closed = True
        if self._following is not None:
            self._following.cancel()
            self._following = None
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._appender is not None:
            self._appender.cancel()
            self._appender = None
        if self._unwritten:
            log.warning(
                "%d events not shared with other processes: the exchange closed while the"
                " event journal was locked",
                len(self._unwritten),
            )
            self._unwritten.clear()
        if self.journal is not None:
            self.journal.close()
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            subscription._end()

    async def aclose(self) -> None:
        """Close the exchange once the events waiting for the journal's lock are in it."""
        if self._appender is not None:
            await self._appender
        following = self._following
        self.close()
        if following is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await following

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.pop(id(subscription), None)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("event exchange is closed")

    def _publish(self, envelope: EventEnvelope) -> None:
        """Deliver ``envelope`` to this process's subscribers, then share it through the
        journal: at once when its lock is free (the common case, microseconds), else from a
        worker thread -- another process may hold the lock for up to
        :data:`~plugins.events_journal.LOCK_WAIT`, which must not freeze this event loop.
        Either way publish and forward return without waiting, and the journal gets the
        events in publication order.

        What other processes appended before it is delivered first (the journal is read up
        to now, without waiting for the follower's next read): a subscriber gets events in
        the order they happened, across processes too."""
        self._pump()
        self._dispatch(envelope)
        journal = self.journal
        if journal is None:
            return
        event = envelope.as_any()
        from plugins.events_record import Record  # the first event appended builds the class

        record = Record(
            origin=self.origin,
            timestamp=envelope.timestamp,
            namespace=envelope.namespace,
            topic=envelope.topic,
            type_url=event.type_url,
            value=event.value,
        )
        if not self._unwritten and self._append(journal, record, wait=False):
            return
        self._unwritten.append(record)
        if self._appender is None:
            self._appender = asyncio.get_running_loop().create_task(
                self._append_unwritten(journal), name="event journal appender"
            )

    async def _append_unwritten(self, journal: EventJournal) -> None:
        """Append the waiting records in order, each from a worker thread."""
        try:
            while self._unwritten:
                await asyncio.to_thread(self._append, journal, self._unwritten[0], wait=True)
                self._unwritten.popleft()
        finally:
            self._appender = None

    def _append(self, journal: EventJournal, record: Record, *, wait: bool) -> bool:
        """Append ``record``; False only when ``wait`` is False and the lock is held. A
        failure is logged (the event stays local) and counts as done."""
        try:
            appended = journal.append(record, wait=wait)
        except (OSError, JournalError) as exc:
            # Local subscribers have the event; other processes will not. Say so once per
            # failing stretch rather than for every event.
            if not self._append_failing:
                log.warning(
                    "event %s in %s not shared with other processes: %s",
                    record.topic,
                    record.namespace,
                    _os_error_text(exc),
                )
            self._append_failing = True
            return True
        self._append_failing = False
        return appended

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
        if not records:
            return
        from plugins.events_envelope import EventEnvelope, decode_event, validate_topic

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
