"""``taskplane events`` and events across processes on one state dir.

The unit tests publish from this process (a registry with the built-in exchange only) and read
``taskplane events`` in a subprocess. The integration tests run real tasks with ``taskplane run``
in another process and check that an embedder and ``taskplane events`` both see the real shim's
events, whichever process serves the shims' events socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
from google.protobuf import any_pb2

from runtime_v2.api import events_pb2

from .conftest import Taskplane, run_example

T = 30.0  # seconds to wait for a line that should come at once (stops a hung test only)
READY = "following events in"


class Lines:
    """The lines a subprocess writes to one pipe, read by a thread (no select on buffered
    pipes), handed out with a timeout that only stops a hung test."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next(self) -> str:
        try:
            line = self._queue.get(timeout=T)
        except queue.Empty:
            pytest.fail(f"no line within {T}s")
        if line is None:
            pytest.fail("the stream ended")
        return line

    def until(self, text: str) -> list[str]:
        """Lines up to and including the first one containing ``text``."""
        seen = []
        while True:
            seen.append(self.next())
            if text in seen[-1]:
                return seen

    def join(self) -> None:
        """Wait for the end of the stream (call after the process exited)."""
        self._thread.join(T)

    def rest(self) -> list[str]:
        """Every remaining line (call after the process exited)."""
        self.join()
        out = []
        while (line := self._queue.get_nowait()) is not None:
            out.append(line)
        return out


class EventsProcess:
    """``taskplane events ARGS`` running, its stdout and stderr read line by line."""

    def __init__(self, taskplane: Taskplane, *args: str, log_level: str = "info") -> None:
        self.proc = subprocess.Popen(
            taskplane.argv("--log-level", log_level, "events", *args),
            cwd=taskplane.cwd,
            env=taskplane.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = Lines(self.proc.stdout)
        self.stderr = Lines(self.proc.stderr)
        self.stderr.until(READY)  # subscribed: what is appended from now on is printed

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, list[str]]:
        """Signal it; return its exit status and the rest of its stderr."""
        self.proc.send_signal(signum)
        status = self.proc.wait(timeout=T)
        return status, self.stderr.rest()

    def kill(self) -> None:
        """Kill it if still running; close its pipes once their readers are done."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=T)
        for lines, stream in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            lines.join()
            assert stream is not None
            stream.close()


@pytest.fixture
def events_process(taskplane: Taskplane) -> Iterator[Any]:
    """Starts ``taskplane events``; kills what is still running at the end."""
    started: list[EventsProcess] = []

    def start(*args: str) -> EventsProcess:
        started.append(EventsProcess(taskplane, *args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


async def _publish(
    taskplane: Taskplane, events: Sequence[tuple[str, Any, str]], *, forward: bool = False
) -> None:
    """Publish (topic, message, namespace) triples from a registry booted in this process."""
    import plugins.builtin
    import registry

    async with await registry.boot_async(
        builtins=[plugins.builtin],
        autoload=False,
        root=str(taskplane.root),
        state=str(taskplane.state),
    ) as host:
        exchange = host.get("io.containerd.event.v1", "exchange")
        for topic, message, namespace in events:
            if forward:
                await exchange.forward(_Envelope(topic, message, namespace))
            else:
                await exchange.publish(topic, message, namespace=namespace)


class _Envelope:
    """A forwarded envelope as a shim sends it (the event as an Any)."""

    def __init__(self, topic: str, event: Any, namespace: str) -> None:
        self.timestamp = datetime(2026, 11, 30, 9, 0, 0, 250000, tzinfo=UTC)
        self.topic, self.event, self.namespace = topic, event, namespace


def publish(taskplane: Taskplane, *events: tuple[str, Any, str], forward: bool = False) -> None:
    asyncio.run(_publish(taskplane, events, forward=forward))


def _exit(container_id: str, status: int) -> events_pb2.TaskExit:
    event = events_pb2.TaskExit(container_id=container_id, id=container_id, pid=42)
    event.exit_status = status
    event.exited_at.FromDatetime(datetime(2026, 11, 30, 9, 0, 1, tzinfo=UTC))
    return event


# -- taskplane events ---------------------------------------------------------------------


def test_events_prints_another_process_events_with_their_fields_by_name(
    taskplane: Taskplane, events_process: Any
) -> None:
    watcher = events_process()
    publish(
        taskplane,
        ("/tasks/oom", events_pb2.TaskOOM(container_id="web"), taskplane.namespace),
        ("/tasks/exit", _exit("web", 0), taskplane.namespace),
    )
    oom, exit_ = watcher.stdout.next(), watcher.stdout.next()
    assert oom.endswith(f" {taskplane.namespace} /tasks/oom container_id=web")
    assert oom.startswith("2026-") and oom.split(" ")[0].endswith("Z")
    assert exit_.split(" ")[1:] == [
        taskplane.namespace,
        "/tasks/exit",
        "container_id=web",
        "id=web",
        "pid=42",
        "exit_status=0",  # zero values are printed too
        "exited_at=2026-11-30T09:00:01Z",
    ]


def test_events_json_prints_one_object_per_event(taskplane: Taskplane, events_process: Any) -> None:
    watcher = events_process("--json")
    publish(taskplane, ("/tasks/exit", _exit("db", 7), taskplane.namespace), forward=False)
    record = json.loads(watcher.stdout.next())
    assert record["namespace"] == taskplane.namespace
    assert record["topic"] == "/tasks/exit"
    assert record["type"] == "containerd.events.TaskExit"
    assert record["event"]["container_id"] == "db"
    assert record["event"]["exit_status"] == 7
    assert record["timestamp"].endswith("Z")


def test_events_shows_forwarded_events_decoded_and_unknown_types_raw(
    taskplane: Taskplane, events_process: Any
) -> None:
    watcher = events_process("--json")
    known = any_pb2.Any(
        type_url="containerd.events.TaskOOM",
        value=events_pb2.TaskOOM(container_id="fw").SerializeToString(),
    )
    unknown = any_pb2.Any(type_url="example.Unknown", value=b"\x01\x02")
    publish(
        taskplane,
        ("/tasks/oom", known, taskplane.namespace),
        ("/x/y", unknown, taskplane.namespace),
        forward=True,
    )
    first, second = json.loads(watcher.stdout.next()), json.loads(watcher.stdout.next())
    assert first["event"] == {"container_id": "fw"}
    assert first["timestamp"] == "2026-11-30T09:00:00.250000Z"
    assert (second["type"], second["event"], second["value"]) == ("example.Unknown", None, "AQI=")


def test_events_filters_by_topic_and_namespace(taskplane: Taskplane, events_process: Any) -> None:
    watcher = events_process(
        "--namespace", taskplane.other_namespace, "--topic", "/tasks/exit", "--json"
    )
    every = events_process("-A", "--topic", "/tasks/*")
    publish(
        taskplane,
        (
            "/tasks/oom",
            events_pb2.TaskOOM(container_id="a"),
            taskplane.other_namespace,
        ),  # wrong topic
        ("/tasks/exit", _exit("b", 1), taskplane.namespace),  # wrong namespace
        ("/snapshot/x", events_pb2.TaskOOM(container_id="c"), taskplane.other_namespace),
        ("/tasks/exit", _exit("d", 2), taskplane.other_namespace),  # the one that matches
    )
    # The first line printed is the last event: the others were filtered out.
    assert json.loads(watcher.stdout.next())["event"]["container_id"] == "d"
    assert [line.split(" ")[1:4] for line in (every.stdout.next() for _ in range(3))] == [
        [taskplane.other_namespace, "/tasks/oom", "container_id=a"],
        [taskplane.namespace, "/tasks/exit", "container_id=b"],
        [taskplane.other_namespace, "/tasks/exit", "container_id=d"],
    ]


def test_events_says_on_stderr_when_it_skips_a_damaged_record(
    taskplane: Taskplane, events_process: Any
) -> None:
    watcher = events_process()
    with open(taskplane.state / "io.containerd.event.v1.exchange" / "events.log", "ab") as f:
        f.write(b"not a record\n")
    publish(
        taskplane, ("/tasks/oom", events_pb2.TaskOOM(container_id="after"), taskplane.namespace)
    )
    assert watcher.stdout.next().endswith("/tasks/oom container_id=after")
    status, stderr = watcher.stop()
    assert status == 130
    assert [line for line in stderr if "WARNING" in line] == [
        "taskplane: WARNING taskplane.plugins.events_journal: skipping a malformed record in"
        f" event journal {taskplane.state}/io.containerd.event.v1.exchange/events.log at"
        " byte 0: not JSON (Expecting value: line 1 column 1 (char 0))"
    ]


def test_events_that_falls_behind_says_so_and_goes_on(
    taskplane: Taskplane, events_process: Any
) -> None:
    watcher = events_process()
    # Stopped, it reads nothing while 5,000 events pile up in the journal: more than its
    # subscription's queue (1,024) takes in one read.
    watcher.proc.send_signal(signal.SIGSTOP)
    try:
        publish(
            taskplane,
            *[
                ("/tasks/oom", events_pb2.TaskOOM(container_id=f"c{i}"), taskplane.namespace)
                for i in range(5000)
            ],
        )
    finally:
        watcher.proc.send_signal(signal.SIGCONT)
    dropped = watcher.stderr.until("fell behind")[-1]
    assert dropped == (
        "taskplane: event subscription fell behind: its queue of 1024 events was full and"
        " 5000 events were dropped; subscribe again and resynchronise"
    )
    # It goes on with a new subscription.
    publish(taskplane, ("/tasks/oom", events_pb2.TaskOOM(container_id="last"), taskplane.namespace))
    printed = watcher.stdout.next()
    assert printed.endswith(f" {taskplane.namespace} /tasks/oom container_id=last")
    status, _ = watcher.stop()
    assert status == 130


def test_journal_warnings_are_shown_whatever_the_log_level(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskplane.cli_events import show_journal_warnings

    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.ERROR)  # taskplane's default --log-level
    for name in ("taskplane.plugins.events", "taskplane.plugins.events_journal"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    show_journal_warnings()
    logging.getLogger("taskplane.plugins.events_journal").warning("skipped one")
    logging.getLogger("taskplane.plugins.events").warning("not shared")
    logging.getLogger("taskplane.plugins.events").info("not shown")
    assert [r.getMessage() for r in caplog.records] == ["skipped one", "not shared"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_events_ends_quietly_on_ctrl_c_and_sigterm(
    events_process: Any, signum: int, status: int
) -> None:
    watcher = events_process()
    code, stderr = watcher.stop(signum)
    assert code == status
    assert stderr == []
    assert watcher.stdout.rest() == []


def test_events_rejects_an_invalid_topic_filter(taskplane: Taskplane) -> None:
    result = taskplane("events", "--topic", "tasks/exit")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'taskplane: invalid topic filter: event topic "tasks/exit" is invalid:'
        ' it must start with "/"'
    ]


def test_events_refuses_a_symlinked_journal(taskplane: Taskplane, tmp_path: Path) -> None:
    journal_dir = taskplane.state / "io.containerd.event.v1.exchange"
    journal_dir.mkdir(parents=True)
    (journal_dir / "events.log").symlink_to(tmp_path / "elsewhere")
    result = taskplane("events")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"taskplane: event journal {journal_dir}/events.log is a symbolic link; refusing to use it"
    ]
    assert not (tmp_path / "elsewhere").exists()


# -- real shims: events reach every process on the state dir ----------------------------------


async def _collect_task_events(subscription: Any, task_id: str) -> list[Any]:
    """The envelopes of ``task_id`` up to its /tasks/delete."""
    got = []
    while True:
        envelope = await subscription.get(timeout=T)
        if getattr(envelope.event, "container_id", None) != task_id:
            continue
        got.append(envelope)
        if envelope.topic == "/tasks/delete":
            return got


#: What the runc shim sends for a `run --rm` of a command that exits: each once, in this order.
LIFECYCLE = ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]


def _check_lifecycle(envelopes: list[Any], task_id: str, status: int) -> None:
    assert [e.topic for e in envelopes] == LIFECYCLE
    for envelope in envelopes:  # decoded messages, not Anys
        assert not isinstance(envelope.event, any_pb2.Any)
    exit_ = next(e.event for e in envelopes if e.topic == "/tasks/exit")
    assert type(exit_) is events_pb2.TaskExit
    assert (exit_.container_id, exit_.exit_status) == (task_id, status)
    assert exit_.pid > 0


def _not_logs(stderr: list[str]) -> list[str]:
    # `taskplane events` runs with --log-level info (for its ready line): keep the rest.
    return [line for line in stderr if not line.startswith("taskplane: INFO ")]


def _check_printed(lines: list[str], task_id: str, status: int) -> None:
    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r["event"] and r["event"].get("container_id") == task_id]
    assert [r["topic"] for r in mine] == LIFECYCLE
    exit_ = next(r for r in mine if r["topic"] == "/tasks/exit")
    assert exit_["type"] == "containerd.events.TaskExit"
    assert exit_["event"]["exit_status"] == status


@pytest.mark.integration
async def test_an_embedder_receives_a_real_shim_events_served_by_another_process(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, events_process: Any
) -> None:
    import taskplane

    # `taskplane events` boots first, so it serves the shims' events socket.
    watcher = events_process("--json")
    host = await taskplane.boot_async(root=str(runner.root), state=str(runner.state))
    try:
        assert not host.get("io.containerd.shim.v1", "manager").serves_events
        exchange = host.get("io.containerd.event.v1", "exchange")
        async with exchange.subscribe("/tasks/*", namespace=runner.namespace) as subscription:
            result = await asyncio.to_thread(
                runner, "run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--",
                "sh", "-c", "exit 3",
            )  # fmt: skip
            assert result.returncode == 3, result.stderr
            envelopes = await _collect_task_events(subscription, task_id)
    finally:
        await host.aclose()
    _check_lifecycle(envelopes, task_id, 3)
    _check_printed(watcher.stdout.until('"topic":"/tasks/delete"'), task_id, 3)
    status, stderr = watcher.stop()
    assert (status, _not_logs(stderr)) == (130, [])


@pytest.mark.integration
async def test_taskplane_events_prints_a_real_shim_events_served_by_another_process(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, events_process: Any
) -> None:
    import taskplane

    # This process boots first and serves the socket; `taskplane events` follows the journal.
    host = await taskplane.boot_async(root=str(runner.root), state=str(runner.state))
    try:
        assert host.get("io.containerd.shim.v1", "manager").serves_events
        watcher = events_process("--json", "--topic", "/tasks/*")
        result = await asyncio.to_thread(
            runner, "run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--",
            "sh", "-c", "exit 5",
        )  # fmt: skip
        assert result.returncode == 5, result.stderr
        printed = await asyncio.to_thread(watcher.stdout.until, '"topic":"/tasks/delete"')
    finally:
        await host.aclose()
    _check_printed(printed, task_id, 5)
    status, stderr = watcher.stop()
    assert (status, _not_logs(stderr)) == (130, [])


@pytest.mark.integration
def test_events_example_runs(
    runner: Taskplane, busybox_rootfs: Path, request: pytest.FixtureRequest
) -> None:
    result = run_example(runner, request.node, "events", runner.namespace, busybox_rootfs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/tasks/create: web",
        "/tasks/start: web",
        "/tasks/exit: web exited with status 3",
        "/tasks/delete: web",
    ]
