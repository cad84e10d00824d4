"""The event journal: concurrent appenders, followers, rotation, damage, refusal of symlinks;
and exchanges sharing events through it."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from plugins.events import Exchange
from plugins.events_journal import (
    JOURNAL_FILENAME,
    EventJournal,
    JournalError,
    Record,
)

T = 5.0  # seconds a test waits for something that should happen at once
NS = "default"
REPO = Path(__file__).resolve().parents[2]


def _record(origin: str = "o1", n: int = 0, size: int = 8) -> Record:
    return Record(
        origin=origin,
        timestamp=datetime(2026, 11, 30, 9, 0, 0, n % 1_000_000, tzinfo=UTC),
        namespace=NS,
        topic="/tasks/exit",
        type_url="google.protobuf.StringValue",
        value=wrappers_pb2.StringValue(value=f"{n}:" + "x" * size).SerializeToString(),
    )


def _number(record: Record) -> int:
    return int(wrappers_pb2.StringValue.FromString(record.value).value.split(":")[0])


# -- the record format --------------------------------------------------------------------


def test_record_round_trips_through_one_json_line() -> None:
    record = _record(n=7)
    line = record.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Record.from_line(line.rstrip(b"\n")) == record


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"garbage", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"origin": "o"}', "field 'timestamp' is missing"),
        (_record().to_line().replace(b'"value":"', b'"value":"!!'), "field 'value' is not base64"),
        (
            _record().to_line().replace(b"2026-11-30T", b"yesterday"),
            "field 'timestamp' is not a UTC time",
        ),
    ],
)
def test_a_malformed_line_is_a_value_error(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Record.from_line(line)


# -- appending and following ----------------------------------------------------------------


def test_follower_sees_records_appended_after_it_started_each_once(tmp_path: Path) -> None:
    journal = EventJournal(str(tmp_path))
    journal.append(_record(n=0))
    follower = journal.follow()
    assert follower.poll() == []  # what was there before is not replayed
    for n in (1, 2, 3):
        journal.append(_record(n=n))
    assert [_number(r) for r in follower.poll()] == [1, 2, 3]
    assert follower.poll() == []
    journal.append(_record(n=4))
    assert [_number(r) for r in follower.poll()] == [4]
    follower.close()


def test_follower_started_before_the_journal_exists_reads_it_from_the_start(
    tmp_path: Path,
) -> None:
    journal = EventJournal(str(tmp_path / "events"))
    follower = journal.follow()
    assert follower.poll() == []
    journal.append(_record(n=1))
    journal.append(_record(n=2))
    assert [_number(r) for r in follower.poll()] == [1, 2]


def test_a_partly_written_line_waits_for_the_rest(tmp_path: Path) -> None:
    journal = EventJournal(str(tmp_path))
    follower = journal.follow()
    line = _record(n=5).to_line()
    with open(journal.path, "ab") as f:
        f.write(line[:10])
    assert follower.poll() == []
    with open(journal.path, "ab") as f:
        f.write(line[10:])
    assert [_number(r) for r in follower.poll()] == [5]


def test_the_journal_is_created_with_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    journal = EventJournal(str(tmp_path))
    old = os.umask(0o277)  # would make a 0600 file 0400
    try:
        journal.append(_record())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(journal.path + ".lock").st_mode) == 0o600


def test_a_symlink_at_the_journal_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    directory = tmp_path / "events"
    directory.mkdir()
    (directory / JOURNAL_FILENAME).symlink_to(target)
    journal = EventJournal(str(directory))
    with pytest.raises(JournalError, match=r"events\.log is a symbolic link; refusing to use it"):
        journal.append(_record())
    with pytest.raises(JournalError, match="is a symbolic link"):
        journal.follow()
    assert target.read_bytes() == b""


def test_a_fifo_at_the_journal_path_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / JOURNAL_FILENAME)
    journal = EventJournal(str(tmp_path))
    with pytest.raises(JournalError, match="is not a regular file"):
        journal.append(_record())
    with pytest.raises(JournalError, match="is not a regular file"):
        journal.follow()


def test_a_garbage_line_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = EventJournal(str(tmp_path))
    follower = journal.follow()
    journal.append(_record(n=1))
    with open(journal.path, "ab") as f:
        f.write(b'{"origin": "half a rec\n')
    journal.append(_record(n=2))
    with caplog.at_level(logging.WARNING, logger="taskplane.plugins.events_journal"):
        assert [_number(r) for r in follower.poll()] == [1, 2]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "skipping a malformed record in event journal" in warnings[0]
    assert journal.path in warnings[0]


def test_a_truncated_last_line_of_a_rotated_file_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = EventJournal(str(tmp_path), max_size=10_000)
    journal.append(_record(n=0))
    follower = journal.follow()  # holds the file open
    journal.append(_record(n=1))
    with open(journal.path, "ab") as f:
        f.write(_record(n=99).to_line()[:30])  # a write cut short; the file then rotates
    assert [_number(r) for r in follower.poll()] == [1]  # the partial line waits
    os.replace(journal.path, journal.rotated_path)
    journal.append(_record(n=2))
    with caplog.at_level(logging.WARNING, logger="taskplane.plugins.events_journal"):
        assert [_number(r) for r in follower.poll()] == [2]
    assert len(caplog.records) == 1
    assert "skipping a malformed record" in caplog.records[0].getMessage()


def test_a_stopped_lock_holder_does_not_stall_appends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = EventJournal(str(tmp_path), max_size=10)
    journal.append(_record(n=0))  # creates the lock file (and rotates: the file is > 10 bytes)
    holder = os.open(journal.path + ".lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a process stopped between lock and unlock would
    try:
        appender = threading.Thread(target=journal.append, args=(_record(n=1),))
        with caplog.at_level(logging.WARNING, logger="taskplane.plugins.events_journal"):
            appender.start()
            appender.join(timeout=T)  # bounds a hung test only
            stalled = appender.is_alive()
    finally:
        os.close(holder)  # lets a stalled appender finish
        appender.join()
    assert not stalled
    assert [
        _number(Record.from_line(line)) for line in Path(journal.path).read_bytes().splitlines()
    ] == [1]
    assert "its lock is held too long; appending without it" in caplog.text


# -- rotation -------------------------------------------------------------------------------


def test_rotation_keeps_one_old_generation_and_the_follower_misses_nothing(
    tmp_path: Path,
) -> None:
    journal = EventJournal(str(tmp_path), max_size=2_000)
    follower = journal.follow()
    seen: list[int] = []
    for n in range(200):
        journal.append(_record(n=n, size=50))
        if n % 7 == 0:  # the follower reads now and then, across several rotations
            seen += [_number(r) for r in follower.poll()]
    seen += [_number(r) for r in follower.poll()]
    assert seen == list(range(200))
    assert sorted(os.listdir(tmp_path)) == ["events.log", "events.log.1", "events.log.lock"]
    assert os.path.getsize(journal.path) <= 2_000 + 200
    assert os.path.getsize(journal.rotated_path) <= 2_000 + 200


def test_two_rotations_between_polls_read_the_previous_generation_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = EventJournal(str(tmp_path), max_size=1_000)
    journal.append(_record(n=1000, size=50))
    follower = journal.follow()  # holds the first file open
    line = len(_record(size=50).to_line())
    per_file = 1_000 // line + 1  # the append that crosses the cap rotates
    for n in range(2 * per_file + 3):  # the first file, a whole generation, then the new one
        journal.append(_record(n=n, size=50))
    with caplog.at_level(logging.WARNING, logger="taskplane.plugins.events_journal"):
        numbers = [_number(r) for r in follower.poll()]
    assert numbers == list(range(2 * per_file + 3))
    assert "rotated more than once between two reads" in caplog.text


_APPENDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from google.protobuf import wrappers_pb2
    from plugins.events_journal import EventJournal, Record

    directory, origin = sys.argv[1], sys.argv[2]
    count, max_size = int(sys.argv[3]), int(sys.argv[4])
    journal = EventJournal(directory, max_size=max_size)
    print("ready", flush=True)
    sys.stdin.read()  # all appenders start together, when the test closes our stdin
    for n in range(count):
        # Every 10th record is longer than PIPE_BUF.
        size = 6000 if n % 10 == 0 else 40 + n % 50
        value = wrappers_pb2.StringValue(value=f"{n}:" + "y" * size).SerializeToString()
        url = "google.protobuf.StringValue"
        journal.append(Record(origin, datetime.now(UTC), "default", "/t/e", url, value))
    """
)


def _appenders(
    directory: Path, count: int, processes: int, max_size: int
) -> list[subprocess.Popen[bytes]]:
    """Start ``processes`` appenders of ``count`` records each, released at the same moment."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(directory), f"p{i}", str(count), str(max_size)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for i in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.stdout.close()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    return procs


def _check_per_origin_order(records: list[Record], count: int, processes: int) -> None:
    by_origin: dict[str, list[int]] = {}
    for record in records:
        by_origin.setdefault(record.origin, []).append(_number(record))
    assert sorted(by_origin) == [f"p{i}" for i in range(processes)]
    for numbers in by_origin.values():
        assert numbers == list(range(count))  # none lost, none twice, in order


def test_concurrent_appenders_in_several_processes_never_interleave_or_lose_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    count, processes = 3000, 4
    procs = _appenders(tmp_path, count, processes, max_size=1 << 30)
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    lines = Path(tmp_path / JOURNAL_FILENAME).read_bytes().split(b"\n")
    assert lines.pop() == b""
    records = [Record.from_line(line) for line in lines]  # any interleaving fails to parse
    _check_per_origin_order(records, count, processes)


def test_a_follower_sees_every_record_of_concurrent_appenders_once_across_a_rotation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    count, processes = 200, 3
    # ~650 kB in all: exactly one rotation, whenever the follower happens to read. (The
    # guarantee holds while a follower reads at least once per generation; with one rotation
    # that holds however slow the follower is, so the outcome does not depend on the machine's
    # load. A follower that misses a whole generation is warned: the test below that.)
    max_size = 400_000
    journal = EventJournal(str(tmp_path), max_size=max_size)
    follower = journal.follow()
    procs = _appenders(tmp_path, count, processes, max_size=max_size)
    records: list[Record] = []
    while any(proc.poll() is None for proc in procs):
        records += follower.poll()
    records += follower.poll()
    assert [proc.returncode for proc in procs] == [0] * processes
    assert os.path.exists(journal.rotated_path)  # it did rotate
    _check_per_origin_order(records, count, processes)
    # Rotated once: the two files hold every record (a second rotation would have dropped one).
    on_disk = os.path.getsize(journal.rotated_path) + os.path.getsize(journal.path)
    assert on_disk == sum(len(record.to_line()) for record in records)
    assert "malformed" not in caplog.text


# -- exchanges sharing a journal ------------------------------------------------------------


def _exchange(directory: Path) -> Exchange:
    return Exchange(journal=EventJournal(str(directory)), poll_interval=0.005)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Exchange, Exchange]]:
    """Two exchanges sharing the journal in ``tmp_path``, as two processes would."""
    a, b = _exchange(tmp_path), _exchange(tmp_path)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_an_event_published_by_one_exchange_reaches_another_decoded(
    pair: tuple[Exchange, Exchange],
) -> None:
    a, b = pair
    async with b.subscribe("/tasks/*", namespace=NS) as sub:
        for text in ("one", "two", "three"):
            await a.publish("/tasks/exit", wrappers_pb2.StringValue(value=text), namespace=NS)
        await a.publish("/tasks/exit", wrappers_pb2.StringValue(value="x"), namespace="other")
        received = [await sub.get(timeout=T) for _ in range(3)]
    assert [type(e.event) for e in received] == [wrappers_pb2.StringValue] * 3
    assert [e.unpack(wrappers_pb2.StringValue).value for e in received] == [
        "one",
        "two",
        "three",
    ]
    assert {e.topic for e in received} == {"/tasks/exit"}


async def test_an_exchange_delivers_its_own_events_once(pair: tuple[Exchange, Exchange]) -> None:
    a, b = pair
    async with a.subscribe() as sub:
        await a.publish("/tasks/start", wrappers_pb2.StringValue(value="mine"), namespace=NS)
        # b's event lands in the journal after a's; when a has read it, a has read past its
        # own record too.
        await b.publish("/tasks/start", wrappers_pb2.StringValue(value="theirs"), namespace=NS)
        first = await sub.get(timeout=T)
        second = await sub.get(timeout=T)
        assert [first.unpack(wrappers_pb2.StringValue).value, second.event.value] == [  # type: ignore[attr-defined]
            "mine",
            "theirs",
        ]
        assert sub.pending() == 0


async def test_an_event_published_here_comes_after_what_others_appended_before_it(
    pair: tuple[Exchange, Exchange],
) -> None:
    """No await between the two publishes: b's follower has not read the journal when b
    publishes, and b reads it up to then first."""
    a, b = pair
    async with b.subscribe() as sub:
        await a.publish("/tasks/exit", wrappers_pb2.StringValue(value="theirs"), namespace=NS)
        await b.publish("/tasks/oom", wrappers_pb2.StringValue(value="mine"), namespace=NS)
        first, second = [await sub.get(timeout=T) for _ in range(2)]
    assert [first.topic, second.topic] == ["/tasks/exit", "/tasks/oom"]


async def test_a_forwarded_event_reaches_other_exchanges(pair: tuple[Exchange, Exchange]) -> None:
    from tests.plugins.test_exchange import FakeEnvelope, _timestamp

    a, b = pair
    async with b.subscribe() as sub:
        event = any_pb2.Any(
            type_url="google.protobuf.StringValue",
            value=wrappers_pb2.StringValue(value="shim").SerializeToString(),
        )
        when = datetime(2026, 11, 30, 9, 1, 2, 345678, tzinfo=UTC)
        await a.forward(FakeEnvelope(_timestamp(when), NS, "/tasks/oom", event))
        envelope = await sub.get(timeout=T)
    assert envelope.timestamp == when
    assert envelope.event == wrappers_pb2.StringValue(value="shim")


async def test_a_new_subscription_does_not_get_events_appended_before_it(
    pair: tuple[Exchange, Exchange],
) -> None:
    a, b = pair
    async with b.subscribe() as first:
        await a.publish("/tasks/start", wrappers_pb2.StringValue(value="1"), namespace=NS)
        async with b.subscribe() as second:  # b has not read the journal since
            await a.publish("/tasks/start", wrappers_pb2.StringValue(value="2"), namespace=NS)
            assert (await second.get(timeout=T)).event.value == "2"  # type: ignore[attr-defined]
        assert [(await first.get(timeout=T)).event.value for _ in range(2)] == ["1", "2"]  # type: ignore[attr-defined]


async def test_an_exchange_that_never_subscribes_does_not_follow_the_journal(
    pair: tuple[Exchange, Exchange], tmp_path: Path
) -> None:
    a, b = pair
    await a.publish("/tasks/start", wrappers_pb2.StringValue(value="x"), namespace=NS)
    assert not a.following and not b.following
    assert os.path.getsize(tmp_path / JOURNAL_FILENAME) > 0
    async with b.subscribe() as sub:
        assert b.following
        assert sub.pending() == 0  # earlier events are not replayed


async def test_a_symlinked_journal_keeps_events_local_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"")
    directory = tmp_path / "events"
    directory.mkdir()
    (directory / JOURNAL_FILENAME).symlink_to(target)
    exchange = _exchange(directory)
    try:
        with pytest.raises(JournalError, match="is a symbolic link"):
            exchange.subscribe()
        local = Exchange()
        exchange_sub = local.subscribe()  # a private exchange still works
        exchange_sub.close()
        with caplog.at_level(logging.WARNING, logger="taskplane.plugins.events"):
            for _ in range(3):
                await exchange.publish("/tasks/start", wrappers_pb2.StringValue(), namespace=NS)
        assert len(caplog.records) == 1
        assert "not shared with other processes" in caplog.records[0].getMessage()
        assert "is a symbolic link" in caplog.records[0].getMessage()
        assert target.read_bytes() == b""
    finally:
        await exchange.aclose()


def test_a_subscription_made_outside_a_loop_follows_from_its_first_read(tmp_path: Path) -> None:
    a, b = _exchange(tmp_path), _exchange(tmp_path)
    sub = b.subscribe()  # as sync code does (registry.boot + host.run)

    async def publish_and_read() -> Any:
        await a.publish("/tasks/start", wrappers_pb2.StringValue(value="x"), namespace=NS)
        return (await sub.get(timeout=T)).event

    assert asyncio.run(publish_and_read()) == wrappers_pb2.StringValue(value="x")
    b.close()  # after its loop closed: nothing left running, no error
    a.close()


def _journal_topics(directory: Path) -> list[str]:
    lines = (directory / JOURNAL_FILENAME).read_bytes().splitlines()
    return [Record.from_line(line).topic for line in lines]


async def test_an_event_is_in_the_journal_when_publish_returns_if_the_lock_is_free(
    tmp_path: Path,
) -> None:
    exchange = Exchange(journal=EventJournal(str(tmp_path)))
    event = wrappers_pb2.StringValue(value="c1")
    await exchange.publish("/tasks/create", event, namespace="ns")
    assert _journal_topics(tmp_path) == ["/tasks/create"]
    await exchange.aclose()


async def test_publishing_while_another_process_holds_the_journal_lock_leaves_the_loop_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process holds the journal's lock exclusively (as during a rotation) and lets go
    # from a callback on this loop. Waiting for it on the loop would wait out LOCK_WAIT with
    # the loop frozen, then append without the lock and say so.
    caplog.set_level(logging.WARNING, logger="taskplane.plugins")
    exchange = Exchange(journal=EventJournal(str(tmp_path)))
    other = os.open(tmp_path / (JOURNAL_FILENAME + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        for topic in ("/tasks/create", "/tasks/start", "/tasks/exit"):
            event = wrappers_pb2.StringValue(value=topic)
            await exchange.publish(topic, event, namespace="ns")  # returns at once
        assert not (tmp_path / JOURNAL_FILENAME).exists()
        asyncio.get_running_loop().call_soon(fcntl.flock, other, fcntl.LOCK_UN)
        await exchange.aclose()  # waits for the three
    finally:
        os.close(other)
    assert "held too long" not in caplog.text
    assert _journal_topics(tmp_path) == ["/tasks/create", "/tasks/start", "/tasks/exit"]


async def test_an_event_published_after_the_lock_frees_waits_behind_the_ones_before_it(
    tmp_path: Path,
) -> None:
    exchange = Exchange(journal=EventJournal(str(tmp_path)))
    other = os.open(tmp_path / (JOURNAL_FILENAME + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        await exchange.publish("/tasks/create", wrappers_pb2.StringValue(), namespace="ns")
        fcntl.flock(other, fcntl.LOCK_UN)  # free before the waiting event was appended
        await exchange.publish("/tasks/start", wrappers_pb2.StringValue(), namespace="ns")
        await exchange.aclose()
    finally:
        os.close(other)
    assert _journal_topics(tmp_path) == ["/tasks/create", "/tasks/start"]
