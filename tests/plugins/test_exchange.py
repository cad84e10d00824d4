"""The event exchange: publish/subscribe filters, forward validation, bounded queues, closing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,
    wrappers_pb2,
)

from plugins.errdefs import FailedPrecondition, InvalidArgument, ResourceExhausted
from plugins.events import (
    DEFAULT_MAXSIZE,
    EventEnvelope,
    EventsDropped,
    Exchange,
    Subscription,
)

NS = "default"
T = 5.0  # seconds a test waits for something that should happen at once


def _event(text: str = "c1") -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=text)


def _any(message: Any) -> any_pb2.Any:
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


@attrs.frozen
class FakeEnvelope:
    """Duck-typed like the runtime's Envelope (an attrs value)."""

    timestamp: Any
    namespace: str
    topic: str
    event: Any


def _envelope_class() -> Any:
    """A protobuf class wire-identical to containerd.types.Envelope, built in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, any_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(fdp)
        pool.Add(fdp)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="test/envelope.proto",
        package="test.types",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/any.proto"],
        syntax="proto3",
    )
    msg = fdp.message_type.add(name="Envelope")
    f = descriptor_pb2.FieldDescriptorProto
    msg.field.add(
        name="timestamp", number=1, type=f.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"
    )
    msg.field.add(name="namespace", number=2, type=f.TYPE_STRING)
    msg.field.add(name="topic", number=3, type=f.TYPE_STRING)
    msg.field.add(name="event", number=4, type=f.TYPE_MESSAGE, type_name=".google.protobuf.Any")
    for field in msg.field:
        field.label = f.LABEL_OPTIONAL
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test.types.Envelope"))


async def _published_topics(sub: Subscription) -> list[str]:
    """Drain what is queued right now (publish delivers synchronously)."""
    topics = []
    while sub.pending():
        topics.append((await sub.get(timeout=T)).topic)
    return topics


# -- publish / subscribe ------------------------------------------------------------------


async def test_published_event_reaches_subscriber_with_utc_timestamp() -> None:
    exchange = Exchange()
    event = _event()
    before = datetime.now(UTC)
    async with exchange.subscribe() as sub:
        await exchange.publish("/tasks/oom", event, namespace=NS)
        envelope = await sub.get(timeout=T)
    assert envelope.topic == "/tasks/oom"
    assert envelope.namespace == NS
    assert envelope.event is event
    assert envelope.timestamp.tzinfo is not None
    assert before <= envelope.timestamp <= datetime.now(UTC)
    assert envelope.unpack(wrappers_pb2.StringValue).value == "c1"


async def test_publish_uses_the_exchange_clock() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    exchange = Exchange(clock=lambda: when)
    async with exchange.subscribe() as sub:
        await exchange.publish("/tasks/start", _event(), namespace=NS)
        assert (await sub.get(timeout=T)).timestamp == when


async def test_subscriber_receives_events_in_publication_order() -> None:
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        for i in range(50):
            await exchange.publish("/tasks/exit", _event(str(i)), namespace=NS)
        got = [(await sub.get(timeout=T)).unpack(wrappers_pb2.StringValue).value for _ in range(50)]
    assert got == [str(i) for i in range(50)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), ["/tasks/create", "/tasks/exit", "/tasks/exec-added", "/snapshot/remove"]),
        (("/*",), ["/tasks/create", "/tasks/exit", "/tasks/exec-added", "/snapshot/remove"]),
        (("/tasks/exit",), ["/tasks/exit"]),
        (("/tasks/*",), ["/tasks/create", "/tasks/exit", "/tasks/exec-added"]),
        (("/tasks/exit", "/snapshot/*"), ["/tasks/exit", "/snapshot/remove"]),
        (("/tasks",), []),
        (("/tasks/ex",), []),
    ],
)
async def test_topic_filters_select_exact_topics_and_prefixes(
    filters: tuple[str, ...], expected: list[str]
) -> None:
    exchange = Exchange()
    async with exchange.subscribe(*filters) as sub:
        for topic in ("/tasks/create", "/tasks/exit", "/tasks/exec-added", "/snapshot/remove"):
            await exchange.publish(topic, _event(), namespace=NS)
        assert await _published_topics(sub) == expected


async def test_prefix_filter_does_not_match_a_longer_component() -> None:
    exchange = Exchange()
    async with exchange.subscribe("/tasks/*") as sub:
        await exchange.publish("/tasksx/exit", _event(), namespace=NS)
        await exchange.publish("/tasks/a/b", _event(), namespace=NS)
        assert await _published_topics(sub) == ["/tasks/a/b"]


async def test_namespace_filter_selects_one_namespace() -> None:
    exchange = Exchange()
    async with exchange.subscribe(namespace="k8s.io") as only_k8s, exchange.subscribe() as every:
        await exchange.publish("/tasks/exit", _event("a"), namespace="default")
        await exchange.publish("/tasks/exit", _event("b"), namespace="k8s.io")
        assert [e.namespace for e in [await only_k8s.get(timeout=T)]] == ["k8s.io"]
        assert only_k8s.pending() == 0
        assert [(await every.get(timeout=T)).namespace for _ in range(2)] == [
            "default",
            "k8s.io",
        ]


async def test_every_matching_subscriber_gets_the_event() -> None:
    exchange = Exchange()
    subs = [exchange.subscribe("/tasks/*") for _ in range(3)]
    await exchange.publish("/tasks/start", _event(), namespace=NS)
    for sub in subs:
        assert (await sub.get(timeout=T)).topic == "/tasks/start"
        sub.close()


async def test_async_iteration_yields_envelopes_until_closed() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    received: list[str] = []

    async def consume() -> None:
        async for envelope in sub:
            received.append(envelope.topic)
            if len(received) == 2:
                sub.close()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # let the consumer block on the empty queue
    await exchange.publish("/tasks/create", _event(), namespace=NS)
    await exchange.publish("/tasks/start", _event(), namespace=NS)
    await asyncio.wait_for(consumer, T)
    assert received == ["/tasks/create", "/tasks/start"]


async def test_wait_for_skips_envelopes_until_the_predicate_holds() -> None:
    exchange = Exchange()
    async with exchange.subscribe("/tasks/*") as sub:
        for cid in ("a", "b", "c"):
            await exchange.publish("/tasks/exit", _event(cid), namespace=NS)
        envelope = await sub.wait_for(
            lambda e: e.unpack(wrappers_pb2.StringValue).value == "b", timeout=T
        )
        assert envelope.unpack(wrappers_pb2.StringValue).value == "b"
        assert sub.pending() == 1


async def test_get_times_out_when_nothing_is_published() -> None:
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        # A deadline already past: no time passes and nothing races it, so the outcome depends
        # only on the queue (the same call returns the event once one is published).
        with pytest.raises(TimeoutError):
            await sub.get(timeout=0)
        await exchange.publish("/tasks/exit", _event("a"), namespace=NS)
        envelope = await sub.get(timeout=0)
        assert envelope.unpack(wrappers_pb2.StringValue).value == "a"


async def test_subscription_only_sees_events_published_after_subscribing() -> None:
    exchange = Exchange()
    await exchange.publish("/tasks/create", _event(), namespace=NS)
    async with exchange.subscribe() as sub:
        assert sub.pending() == 0


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("", "event namespace must not be empty"),
        ("bad ns", 'event namespace "bad ns" is invalid'),
        ("-lead", 'event namespace "-lead" is invalid'),
        ("a..b", 'event namespace "a..b" is invalid'),
        ("x" * 77, "is 77 characters long; the maximum is 76"),
    ],
)
async def test_publish_rejects_an_invalid_namespace(namespace: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await Exchange().publish("/tasks/exit", _event(), namespace=namespace)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "event topic must not be empty"),
        ("tasks/exit", 'event topic "tasks/exit" is invalid: it must start with "/"'),
        ("/", 'event topic "/" is invalid: it must have at least one component'),
        ("/tasks//exit", 'component "" must match'),
        ("/tasks/exit/", 'component "" must match'),
        ("/tasks/ex it", 'component "ex it" must match'),
        ("/tasks/*", 'component "*" must match'),
    ],
)
async def test_publish_rejects_an_invalid_topic(topic: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await Exchange().publish(topic, _event(), namespace=NS)


async def test_publish_rejects_an_event_that_is_not_a_protobuf_message() -> None:
    with pytest.raises(InvalidArgument, match="must be a protobuf message, not dict"):
        not_a_message: Any = {"id": "c1"}
        await Exchange().publish("/tasks/exit", not_a_message, namespace=NS)


@pytest.mark.parametrize("bad", ["/", "/tasks/**", "/tasks/*/exit", "/ta sks/*", 7])
def test_subscribe_rejects_an_invalid_topic_filter(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="invalid topic filter"):
        Exchange().subscribe(bad)


def test_subscribe_rejects_an_invalid_namespace_or_maxsize() -> None:
    exchange = Exchange()
    with pytest.raises(InvalidArgument, match='subscription namespace "a b" is invalid'):
        exchange.subscribe(namespace="a b")
    for maxsize in (0, -1, True, 1.5):
        with pytest.raises(InvalidArgument, match="maxsize must be a positive integer"):
            exchange.subscribe(maxsize=maxsize)  # type: ignore[arg-type]
    assert exchange.subscriber_count == 0


# -- forward ------------------------------------------------------------------------------


async def test_forwarded_envelope_carries_the_decoded_event() -> None:
    exchange = Exchange()
    when = datetime(2026, 11, 28, 16, 0, 0, 123456, tzinfo=UTC)
    event = _any(_event("c9"))
    async with exchange.subscribe("/tasks/exit", namespace="ra") as sub:
        await exchange.forward(FakeEnvelope(_timestamp(when), "ra", "/tasks/exit", event))
        envelope = await sub.get(timeout=T)
    assert envelope.timestamp == when
    assert envelope.namespace == "ra"
    assert type(envelope.event) is wrappers_pb2.StringValue
    assert envelope.event.value == "c9"
    assert envelope.type_url == "google.protobuf.StringValue"
    assert envelope.is_(wrappers_pb2.StringValue)
    assert envelope.unpack(wrappers_pb2.StringValue).value == "c9"
    assert envelope.as_any() == event


async def _forward_one(event: any_pb2.Any) -> EventEnvelope:
    """Forward ``event`` through a new exchange; return what a subscriber got."""
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        await exchange.forward(FakeEnvelope(_timestamp(_NOW), NS, "/tasks/exit", event))
        return await sub.get(timeout=T)


async def test_forwarded_event_of_an_unknown_type_stays_an_any() -> None:
    event = any_pb2.Any(type_url="example.NotRegistered", value=b"\x0a\x01x")
    envelope = await _forward_one(event)
    assert isinstance(envelope.event, any_pb2.Any)
    assert envelope.event == event
    assert envelope.type_url == "example.NotRegistered"


async def test_forwarded_event_whose_bytes_do_not_decode_stays_an_any() -> None:
    broken = any_pb2.Any(type_url="google.protobuf.StringValue", value=b"\x0a\x05ab")
    envelope = await _forward_one(broken)
    assert envelope.event == broken
    with pytest.raises(InvalidArgument, match=r"does not decode as google\.protobuf\.StringValue"):
        envelope.unpack(wrappers_pb2.StringValue)


async def test_forward_accepts_a_protobuf_envelope() -> None:
    envelope_class = _envelope_class()
    when = datetime(2026, 11, 28, 16, 0, 1, tzinfo=UTC)
    # The class comes from a private descriptor pool, so its Any is not any_pb2.Any.
    wire = envelope_class(namespace="ra", topic="/tasks/create")
    wire.timestamp.FromDatetime(when)
    wire.event.type_url = "google.protobuf.StringValue"
    wire.event.value = _event("c1").SerializeToString()
    assert type(wire.event) is not any_pb2.Any
    # Round-trip through bytes, as the ttrpc service would receive it.
    received = envelope_class.FromString(wire.SerializeToString())
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        await exchange.forward(received)
        envelope = await sub.get(timeout=T)
    assert (envelope.timestamp, envelope.topic) == (when, "/tasks/create")
    assert envelope.unpack(wrappers_pb2.StringValue).value == "c1"


async def test_forward_accepts_an_aware_datetime_and_normalises_it_to_utc() -> None:
    exchange = Exchange()
    plus_two = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    async with exchange.subscribe() as sub:
        await exchange.forward(FakeEnvelope(plus_two, NS, "/tasks/exit", _any(_event())))
        envelope = await sub.get(timeout=T)
    assert envelope.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert envelope.timestamp.utcoffset() == timedelta(0)


async def test_forward_type_urls_with_a_host_prefix_still_unpack() -> None:
    exchange = Exchange()
    prefixed = any_pb2.Any()
    prefixed.Pack(_event("x"))  # type.googleapis.com/google.protobuf.StringValue
    async with exchange.subscribe() as sub:
        await exchange.forward(
            FakeEnvelope(_timestamp(datetime.now(UTC)), NS, "/tasks/exit", prefixed)
        )
        envelope = await sub.get(timeout=T)
    assert envelope.unpack(wrappers_pb2.StringValue).value == "x"


async def test_forward_copies_the_event_so_later_changes_do_not_leak() -> None:
    exchange = Exchange()
    event = _any(_event("before"))
    async with exchange.subscribe() as sub:
        await exchange.forward(FakeEnvelope(_timestamp(datetime.now(UTC)), NS, "/t", event))
        event.value = _event("after").SerializeToString()
        assert (await sub.get(timeout=T)).unpack(wrappers_pb2.StringValue).value == "before"


_NOW = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        (
            FakeEnvelope(_timestamp(_NOW), "", "/tasks/exit", _any(_event())),
            "forwarded event namespace must not be empty",
        ),
        (
            FakeEnvelope(_timestamp(_NOW), "n s", "/tasks/exit", _any(_event())),
            'forwarded event namespace "n s" is invalid',
        ),
        (
            FakeEnvelope(_timestamp(_NOW), NS, "tasks/exit", _any(_event())),
            'must start with "/"',
        ),
        (
            FakeEnvelope(_timestamp(_NOW), NS, "/", _any(_event())),
            "must have at least one component",
        ),
        (
            FakeEnvelope(_timestamp(_NOW), NS, "/tasks/Bad!", _any(_event())),
            'component "Bad!" must match',
        ),
        (
            FakeEnvelope(timestamp_pb2.Timestamp(), NS, "/tasks/exit", _any(_event())),
            'forwarded event on topic "/tasks/exit" has no timestamp',
        ),
        (
            FakeEnvelope(
                timestamp_pb2.Timestamp(seconds=-62135596800), NS, "/tasks/exit", _any(_event())
            ),
            "has no timestamp",  # Go's zero time.Time
        ),
        (FakeEnvelope(None, NS, "/tasks/exit", _any(_event())), "has no timestamp"),
        (
            FakeEnvelope(datetime(1970, 1, 1, tzinfo=UTC), NS, "/tasks/exit", _any(_event())),
            "has no timestamp",
        ),
        (
            FakeEnvelope(datetime(2026, 1, 1), NS, "/tasks/exit", _any(_event())),
            "has a naive timestamp",
        ),
        (
            FakeEnvelope("2026-01-01", NS, "/tasks/exit", _any(_event())),
            "timestamp of type str; expected a protobuf Timestamp",
        ),
        (
            FakeEnvelope(_timestamp(_NOW), NS, "/tasks/exit", _event()),
            "must be a protobuf Any, not StringValue",
        ),
    ],
    ids=[
        "empty-namespace",
        "bad-namespace",
        "topic-without-slash",
        "topic-without-component",
        "bad-topic-component",
        "unset-timestamp",
        "go-zero-timestamp",
        "no-timestamp",
        "epoch-datetime",
        "naive-datetime",
        "timestamp-of-wrong-type",
        "event-not-any",
    ],
)
async def test_forward_rejects_an_invalid_envelope(envelope: FakeEnvelope, message: str) -> None:
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            await exchange.forward(envelope)
        assert sub.pending() == 0


async def test_unpack_as_the_wrong_type_names_both_types() -> None:
    envelope = EventEnvelope(_NOW, NS, "/tasks/exit", _any(_event()))
    with pytest.raises(
        InvalidArgument,
        match=re.escape(
            'event on topic "/tasks/exit" is "google.protobuf.StringValue",'
            " not google.protobuf.Int64Value"
        ),
    ):
        envelope.unpack(wrappers_pb2.Int64Value)
    assert not envelope.is_(wrappers_pb2.Int64Value)


async def test_unpack_of_undecodable_bytes_is_invalid_argument() -> None:
    broken = any_pb2.Any(type_url="google.protobuf.StringValue", value=b"\x0a\x05ab")
    envelope = EventEnvelope(_NOW, NS, "/tasks/exit", broken)
    expected = re.escape("does not decode as google.protobuf.StringValue")
    with pytest.raises(InvalidArgument, match=expected):
        envelope.unpack(wrappers_pb2.StringValue)


def test_published_envelope_as_any_uses_the_bare_type_url() -> None:
    envelope = EventEnvelope(_NOW, NS, "/tasks/exit", _event("c1"))
    packed = envelope.as_any()
    assert packed.type_url == "google.protobuf.StringValue"
    assert envelope.unpack(any_pb2.Any) == packed
    assert wrappers_pb2.StringValue.FromString(packed.value).value == "c1"


def test_event_envelope_is_frozen() -> None:
    envelope = EventEnvelope(_NOW, NS, "/tasks/exit", _event())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        envelope.topic = "/x"  # type: ignore[misc]


# -- bounded queues -----------------------------------------------------------------------


async def test_slow_subscriber_gets_events_dropped_and_others_are_unaffected() -> None:
    exchange = Exchange()
    slow = exchange.subscribe(maxsize=3)
    fast = exchange.subscribe()
    for i in range(5):
        await exchange.publish("/tasks/exit", _event(str(i)), namespace=NS)
    assert slow.overflowed
    assert slow.pending() == 0  # queued envelopes were released at the overflow
    with pytest.raises(EventsDropped) as caught:
        await slow.get(timeout=T)
    assert caught.value.dropped == 5
    assert caught.value.maxsize == 3
    assert isinstance(caught.value, ResourceExhausted)
    assert "queue of 3 events was full and 5 events were dropped" in str(caught.value)
    # The error is sticky and the subscription no longer receives anything.
    assert exchange.subscriber_count == 1
    with pytest.raises(EventsDropped):
        await slow.get(timeout=T)
    values = [(await fast.get(timeout=T)).unpack(wrappers_pb2.StringValue).value for _ in range(5)]
    assert values == ["0", "1", "2", "3", "4"]


async def test_a_subscriber_below_its_bound_loses_nothing() -> None:
    exchange = Exchange()
    async with exchange.subscribe(maxsize=4) as sub:
        for _ in range(4):
            await exchange.publish("/tasks/exit", _event(), namespace=NS)
        assert not sub.overflowed
        assert len(await _published_topics(sub)) == 4


async def test_iterating_an_overflowed_subscription_raises_events_dropped() -> None:
    exchange = Exchange()
    sub = exchange.subscribe(maxsize=1)
    await exchange.publish("/a", _event(), namespace=NS)
    await exchange.publish("/b", _event(), namespace=NS)
    with pytest.raises(EventsDropped):
        async for _ in sub:
            pass


async def test_memory_stays_bounded_for_a_subscriber_that_never_reads() -> None:
    exchange = Exchange()
    sub = exchange.subscribe(maxsize=16)
    high_water = 0
    for _ in range(5000):
        await exchange.publish("/tasks/exit", _event(), namespace=NS)
        high_water = max(high_water, sub.pending())
    assert high_water <= 16
    assert sub.pending() == 0
    with pytest.raises(EventsDropped) as caught:
        await sub.get(timeout=T)
    assert caught.value.dropped == 5000


def test_default_queue_bound_is_1024() -> None:
    assert DEFAULT_MAXSIZE == 1024
    assert Exchange().subscribe().maxsize == 1024


async def test_overflow_wakes_a_blocked_reader() -> None:
    exchange = Exchange()
    sub = exchange.subscribe(maxsize=1)
    reader = asyncio.create_task(sub.wait_for(lambda e: False, timeout=T))
    await asyncio.sleep(0)
    # The reader consumes one envelope per wake-up; publish faster than it can read.
    for _ in range(3):
        await exchange.publish("/a", _event(), namespace=NS)
    with pytest.raises(EventsDropped):
        await reader


# -- closing ------------------------------------------------------------------------------


async def test_closing_a_subscription_ends_a_pending_read_and_detaches_it() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    assert exchange.subscriber_count == 1
    reader = asyncio.create_task(sub.get(timeout=T))
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(EOFError, match="event subscription is closed"):
        await reader
    assert exchange.subscriber_count == 0
    assert sub.closed
    await exchange.publish("/tasks/exit", _event(), namespace=NS)
    assert sub.pending() == 0
    sub.close()  # idempotent


async def test_closing_an_overflowed_subscription_ends_it_quietly() -> None:
    exchange = Exchange()
    sub = exchange.subscribe(maxsize=1)
    for _ in range(2):
        await exchange.publish("/a", _event(), namespace=NS)
    sub.close()
    assert exchange.subscriber_count == 0
    assert [e async for e in sub] == []


async def test_leaving_the_context_manager_closes_the_subscription() -> None:
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        assert exchange.subscriber_count == 1
    assert sub.closed
    assert exchange.subscriber_count == 0


async def test_closing_the_exchange_drains_queued_events_then_ends_iteration() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    await exchange.publish("/tasks/exit", _event(), namespace=NS)
    await exchange.aclose()
    assert exchange.closed
    assert [e.topic async for e in sub] == ["/tasks/exit"]
    with pytest.raises(FailedPrecondition, match="event exchange is closed"):
        await exchange.publish("/tasks/exit", _event(), namespace=NS)
    with pytest.raises(FailedPrecondition, match="event exchange is closed"):
        await exchange.forward(FakeEnvelope(_timestamp(_NOW), NS, "/t", _any(_event())))
    with pytest.raises(FailedPrecondition, match="event exchange is closed"):
        exchange.subscribe()
    exchange.close()  # idempotent


async def test_closing_the_exchange_wakes_a_blocked_iterator() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    consumer = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    exchange.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(consumer, T)
