"""Call deadlines: a context variable the client sends as ``timeout_nano`` and the server sets.

A deadline is absolute :func:`time.monotonic` seconds. It is held in a context variable, so it
is inherited by tasks started inside a :func:`timeout` / :func:`deadline` block, and the server
sets it for each handler so that ttrpc calls the handler makes inherit the caller's deadline.
Nested deadlines keep the earlier one, as Go's ``context.WithTimeout`` does.

A plain ``asyncio.timeout()`` still cancels a call locally, but its deadline is *not* sent:
Python 3.11 has no public API to read it. (It can be dug out of private state: the loop's
``_scheduled`` heap holds a TimerHandle whose callback is the ``Timeout._on_timeout`` bound method
of the current task. That scan costs O(timers) per call, ~0.2 ms with 1,000 pending timers, only
works on the default loop, and misses tasks started inside the block, so it is not done.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Iterator

from runtime_v2.ttrpc._errors import DeadlineExceeded

__all__ = [
    "current_deadline",
    "deadline",
    "deadline_within",
    "loop_time",
    "set_deadline",
    "timeout",
]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "runtime_v2.ttrpc.deadline", default=None
)


def deadline_within(seconds: float | None) -> float | None:
    """The earlier of ``seconds`` from now (None: no limit) and the current deadline, if any."""
    when = _DEADLINE.get()
    if seconds is not None:
        mine = time.monotonic() + seconds
        if when is None or mine < when:
            when = mine
    return when


def loop_time(loop: asyncio.AbstractEventLoop, when: float) -> float:
    """``when`` (monotonic seconds) on ``loop``'s clock, for ``asyncio.timeout_at``.

    loop.time() is time.monotonic() on asyncio's loops; convert in case it is not.
    """
    return loop.time() + (when - time.monotonic())


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Give ttrpc calls made inside the block (and tasks started in it) ``seconds`` at most.

    Nested blocks keep the earlier deadline. Yields the absolute deadline in
    :func:`time.monotonic` seconds. The deadline is sent to servers as ``timeout_nano`` and
    enforced locally with :class:`DeadlineExceeded`.
    """
    when = deadline_within(seconds)
    assert when is not None
    token = _DEADLINE.set(when)
    try:
        yield when
    finally:
        _DEADLINE.reset(token)


@contextlib.asynccontextmanager
async def timeout(seconds: float | None) -> AsyncIterator[float | None]:
    """``asyncio.timeout(seconds)`` whose deadline is also sent with every ttrpc call inside.

    The block gets ``seconds`` at most, and no more than an enclosing :func:`timeout` or
    :func:`deadline` leaves (as Go's ``context.WithTimeout``). Calls made inside it (and in tasks
    started in it) send the remaining time as ``timeout_nano``; the local wait is cancelled at
    the same moment. When time runs out the block raises :class:`DeadlineExceeded` (a
    :class:`TimeoutError`),
    whether a call's own timer or the ``asyncio.timeout`` noticed first::

        async with ttrpc.timeout(5):
            await client.call("containerd.task.v2.Task", "Wait", req, WaitResponse)

    ``seconds=None`` sets no deadline of its own (an enclosing one still applies). Yields the
    absolute deadline in :func:`time.monotonic` seconds, or None.
    """
    when = deadline_within(seconds)
    if when is None:
        yield None
        return
    loop = asyncio.get_running_loop()
    token = _DEADLINE.set(when)
    try:
        # When a call's own timer and this timeout fire in the same loop turn, the task is
        # cancelled as it wakes up with DeadlineExceeded; the Timeout turns that into
        # TimeoutError, converted below, so the block raises DeadlineExceeded either way.
        async with asyncio.timeout_at(loop_time(loop, when)) as scope:
            yield when
    except TimeoutError as exc:
        if not scope.expired():
            raise  # an inner asyncio.timeout's, not ours
        raise DeadlineExceeded(f"ttrpc.timeout({seconds}) expired") from exc
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """The deadline (:func:`time.monotonic` seconds) calls made here would get, if any."""
    return _DEADLINE.get()


def set_deadline(when: float) -> None:
    """Set the deadline for the current context (the server does, for each handler)."""
    _DEADLINE.set(when)
