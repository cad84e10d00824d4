"""A subscriber's view of the event exchange: :class:`Subscription`, its bounded queue and
its overflow policy (:class:`EventsDropped`).

Part of the event exchange (:mod:`plugins.events`, which re-exports these names).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Protocol

from plugins.errdefs import ResourceExhausted
from plugins.events_envelope import EventEnvelope, matcher

__all__ = ["EventsDropped", "Subscription"]


class _Exchange(Protocol):
    """What a subscription needs of its exchange."""

    def _unsubscribe(self, subscription: Subscription) -> None: ...
    def _start_following(self) -> None: ...


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


class Subscription:
    """A subscriber's view of the exchange: an async iterator of :class:`EventEnvelope`.

    Create one with :meth:`plugins.events.Exchange.subscribe`. Use it as an async context
    manager (it is closed on exit) and iterate it, or call :meth:`get` / :meth:`wait_for` with a
    timeout.

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
        exchange: _Exchange,
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
        self._matches_filters = matcher(topics)
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
