"""Every task's log: ``tasks logs`` (stdout and stderr apart, ``--tail``, ``--timestamps``,
``--follow``) for attached and detached tasks, removed with the task; the json-file writer's
format and rotation; stdin fed chunk by chunk as it arrives."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from taskplane import logs
from taskplane.stdio import feed

from .conftest import Taskplane, single_error_line

integration = pytest.mark.integration
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
SCRIPT = "echo out1; echo err1 >&2; echo out2; echo err2 >&2"


def io_dir(runner: Taskplane, task_id: str) -> Path:
    return runner.state / "taskplane.io" / runner.namespace / task_id


@integration
def test_detached_task_logs_keep_stdout_and_stderr_apart(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    started = runner(
        "run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sh", "-c", SCRIPT
    )
    assert started.returncode == 0, started.stderr
    try:
        # --follow ends when the task exits (the mutation "never ends" hangs this call).
        followed = runner("tasks", "logs", "--follow", task_id)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout == "out1\nout2\n"
        assert followed.stderr == "err1\nerr2\n"
        again = runner("tasks", "logs", task_id)
        assert (again.stdout, again.stderr) == ("out1\nout2\n", "err1\nerr2\n")
        stamped = runner("tasks", "logs", "--timestamps", task_id)
        assert all(TIME.match(line) for line in stamped.stdout.splitlines()), stamped.stdout
        assert [TIME.sub("", line) for line in stamped.stdout.splitlines()] == ["out1", "out2"]
        log_text = (io_dir(runner, task_id) / "log.json").read_text()
        records = [json.loads(line) for line in log_text.splitlines()]
        # Two pipes: each stream is in order, their interleaving is the logger's reads'.
        for stream, expected in (
            ("stdout", ["out1\n", "out2\n"]),
            ("stderr", ["err1\n", "err2\n"]),
        ):
            assert [r["log"] for r in records if r["stream"] == stream] == expected
        last = runner("tasks", "logs", "--tail", "1", task_id)
        final = records[-1]
        shown = {"stdout": last.stdout, "stderr": last.stderr}
        assert shown == {"stdout": "", "stderr": "", final["stream"]: final["log"]}
    finally:
        removed = runner("tasks", "rm", "--force", task_id)
    assert removed.returncode == 0, removed.stderr
    assert not io_dir(runner, task_id).exists()  # the log went with the task


@integration
def test_follow_prints_lines_written_after_it_started(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """The task waits for a line on stdin... it has none: it waits for a file that ``tasks
    exec`` creates after ``logs -f`` printed the first line."""
    script = "echo first; while [ ! -e /tmp/go ]; do usleep 10000; done; echo second"
    started = runner(
        "run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sh", "-c", script
    )
    assert started.returncode == 0, started.stderr
    follower = runner.popen("tasks", "logs", "-f", task_id)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        touched = runner("tasks", "exec", "--exec-id", "go", task_id, "--", "touch", "/tmp/go")
        assert touched.returncode == 0, touched.stderr
        rest, _ = follower.communicate(timeout=60)
        assert rest == "second\n"
        assert follower.returncode == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        runner("tasks", "rm", "--force", task_id)


@integration
def test_attached_run_logs_stdout_and_stderr_apart(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    ran = runner("run", "--rootfs", str(busybox_rootfs), task_id, "--", "sh", "-c", SCRIPT)
    assert ran.returncode == 0, ran.stderr
    try:
        shown = runner("tasks", "logs", task_id)
        assert (shown.stdout, shown.stderr) == ("out1\nout2\n", "err1\nerr2\n")
        followed = runner("tasks", "logs", "-f", task_id)  # exited already: ends at once
        assert (followed.stdout, followed.stderr) == ("out1\nout2\n", "err1\nerr2\n")
    finally:
        removed = runner("tasks", "rm", task_id)
    assert removed.returncode == 0, removed.stderr
    assert not io_dir(runner, task_id).exists()


@integration
def test_logs_bad_input_is_one_clear_error(runner: Taskplane, task_id: str) -> None:
    assert f'"{task_id}"' in single_error_line(runner("tasks", "logs", task_id))
    bad = runner("tasks", "logs", "--tail", "many", task_id)
    assert bad.returncode != 0
    assert "invalid line count 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------ units


def test_records_round_trip_bytes_that_are_not_utf8() -> None:
    record = logs.Record("stderr", logs.timestamp(0), b"\xff\xfe half\n")
    assert logs.Record.from_json(record.to_json()) == record
    assert logs.timestamp(1_500_000_000) == "1970-01-01T00:00:01.500000000Z"


def test_writer_splits_lines_and_keeps_partial_ones_until_flushed(tmp_path: Path) -> None:
    with logs.LogWriter(tmp_path) as writer:
        writer.write("stdout", b"a\nb")
        writer.write("stderr", b"x\n")
        writer.write("stdout", b"c\nd")
        assert [r.data for r in logs.read_records(tmp_path)] == [b"a\n", b"x\n", b"bc\n"]
    assert [(r.stream, r.data) for r in logs.read_records(tmp_path)][-1] == ("stdout", b"d")
    assert oct(os.stat(tmp_path / logs.LOG_NAME).st_mode & 0o777) == "0o600"


def test_writer_rotates_by_size_and_keeps_max_files(tmp_path: Path) -> None:
    with logs.LogWriter(tmp_path, max_size=200, max_files=3) as writer:
        for n in range(40):
            writer.write("stdout", f"line {n}\n".encode())
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(logs.LOG_NAME))
    assert files == ["log.json", "log.json.1", "log.json.2"]
    assert all(p.stat().st_size <= 200 for p in tmp_path.glob("log.json*"))
    kept = [r.data for r in logs.read_records(tmp_path)]
    assert kept[-1] == b"line 39\n"
    assert kept == [f"line {n}\n".encode() for n in range(40 - len(kept), 40)]  # in order


def test_tail() -> None:
    records = [logs.Record("stdout", "", str(n).encode()) for n in range(5)]
    assert logs.tail(records, 2) == records[3:]
    assert logs.tail(records, 0) == []
    assert logs.tail(records, None) == records


def test_feed_passes_each_chunk_as_it_arrives() -> None:
    """A chunk reaches the task before the next one is typed (an interactive shell)."""

    async def main() -> None:
        read_end, write_end = os.pipe()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def write(chunk: bytes) -> None:
            await got.put(chunk)

        with open(read_end, "rb", buffering=0) as source:
            feeding = asyncio.ensure_future(feed(source, write))
            for chunk in (b"a", b"b", b"c"):
                os.write(write_end, chunk)
                assert await asyncio.wait_for(got.get(), 30) == chunk
            os.close(write_end)
            await asyncio.wait_for(feeding, 30)

    asyncio.run(main())


async def test_a_delete_waits_for_the_logging_binary_to_exit(tmp_path: Path) -> None:
    # A stand-in logging binary at <io dir>/logger, run as the shim runs it (an interpreter
    # script), that ends when its pipe's writer goes, as the real one does.
    script = tmp_path / logs.LOGGER_NAME
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.buffer.read()\n")
    script.chmod(0o700)
    logger = await asyncio.create_subprocess_exec(str(script), stdin=asyncio.subprocess.PIPE)
    assert logger.stdin is not None
    try:
        (tmp_path / logs.LOGGER_PID_NAME).write_text(str(logger.pid))
        assert not await logs.logger_exited(tmp_path, 0.01)  # its writer is still there
        logger.stdin.close()  # the task and its shim go
        async with asyncio.timeout(60):  # only to stop a hang
            assert await logs.logger_exited(tmp_path, 60)
            await logger.wait()
    finally:
        if logger.returncode is None:
            logger.kill()
            await logger.wait()


async def test_a_logger_pid_naming_another_process_is_not_waited_for(tmp_path: Path) -> None:
    # Answered at once, not after the timeout: this process does not end while we wait.
    (tmp_path / logs.LOGGER_PID_NAME).write_text(str(os.getpid()))  # a reused pid
    assert await logs.logger_exited(tmp_path, 0.01)
    (tmp_path / logs.LOGGER_PID_NAME).write_text("not a pid")
    assert await logs.logger_exited(tmp_path, 0.01)
