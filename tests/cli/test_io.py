"""Interactive I/O of ``taskplane run`` and ``tasks exec``: ``-i`` (stdin), ``-t`` (a
pseudo-terminal through the runc shim's console support), raw mode and window sizes.

Terminal tests drive ``taskplane`` under a real pseudo-terminal the test opens (``os.openpty``):
the test types into the master side and reads what the task's terminal echoes and prints.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Taskplane, single_error_line

pytestmark = pytest.mark.integration

#: Stops a hung test; never part of what a test asserts.
HANG = 60.0
#: An interactive busybox shell reading plain lines: with echo off its line editor stays out
#: of the way (busybox ``lineedit.c`` falls back to fgets), so what the test types is not
#: mixed with the editor's cursor-position queries (ESC [6n), which a test is no terminal for.
SH = ("sh", "-c", "stty -echo; exec sh -i")


class PtySession:
    """``taskplane ARGS`` with a pseudo-terminal as its stdin, stdout and stderr."""

    def __init__(self, runner: Taskplane, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        self.set_size(rows, cols)
        self.modes_before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(
            runner.argv(*args),
            cwd=runner.cwd,
            env=runner.env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
        )
        self.output = b""

    def set_size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, needle: str) -> str:
        """Read until ``needle`` appears in the output; return everything read so far."""
        deadline = time.monotonic() + HANG
        while needle.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{needle!r} did not appear; output so far: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
        assert needle.encode() in self.output, self.output
        return self.output.decode(errors="replace")

    def wait(self) -> int:
        code = self.proc.wait(timeout=HANG)
        # Whatever is still buffered on the terminal belongs to the output too.
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return code

    def modes_now(self) -> list[object]:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=HANG)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty_session(runner: Taskplane) -> Iterator[type[PtySession]]:
    sessions: list[PtySession] = []

    def start(*args: str, **kw: int) -> PtySession:
        session = PtySession(runner, *args, **kw)
        sessions.append(session)
        return session

    yield start  # type: ignore[misc]
    for session in sessions:
        session.close()


def run_bytes(runner: Taskplane, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        runner.argv(*args),
        cwd=runner.cwd,
        env=runner.env,
        input=data,
        capture_output=True,
        timeout=HANG,
    )


# ------------------------------------------------------------------------------------ stdin


def test_piped_stdin_reaches_cat_with_i(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    result = run_bytes(
        runner, "run", "--rm", "-i", "--rootfs", str(busybox_rootfs), task_id, "--", "cat",
        data=b"hi\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hi\n"


def test_without_i_stdin_stays_closed(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    result = run_bytes(
        runner, "run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "cat",
        data=b"hi\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""


def test_ten_megabytes_of_stdin_arrive_byte_exact(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    data = os.urandom(10 * 1024 * 1024)
    result = run_bytes(
        runner, "run", "--rm", "-i", "--rootfs", str(busybox_rootfs), task_id, "--", "cat",
        data=data,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(data)
    assert result.stdout == data


def test_stdin_end_is_seen_by_the_task(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """EOF on our stdin closes the task's: ``wc -l`` only prints once its input ends."""
    result = run_bytes(
        runner, "run", "--rm", "-i", "--rootfs", str(busybox_rootfs), task_id, "--",
        "wc", "-l", data=b"a\nb\nc\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"3"]


def test_detach_with_i_or_t_is_one_clear_error(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    for flag in ("-i", "-t"):
        result = runner("run", "-d", flag, "--rootfs", str(busybox_rootfs), task_id, "--", "cat")
        assert "--detach cannot be used with" in single_error_line(result)
    assert runner("tasks", "ls").stdout.splitlines()[1:] == []


# -------------------------------------------------------------------------------------- tty


def test_t_runs_the_task_on_a_pseudo_terminal(
    pty_session: type[PtySession], busybox_rootfs: Path, task_id: str
) -> None:
    session = pty_session(
        "run", "--rm", "-t", "--rootfs", str(busybox_rootfs), task_id, "--", "tty"
    )
    assert session.wait() == 0, session.output
    assert b"/dev/pts/" in session.output
    assert session.modes_now() == session.modes_before


def test_t_gives_the_task_our_window_size(
    pty_session: type[PtySession], busybox_rootfs: Path, task_id: str
) -> None:
    session = pty_session(
        "run", "--rm", "-t", "--rootfs", str(busybox_rootfs), task_id, "--", "stty", "size",
        rows=33, cols=101,
    )  # fmt: skip
    assert session.wait() == 0, session.output
    assert b"33 101" in session.output


def test_it_shell_answers_typed_commands_and_restores_the_terminal(
    pty_session: type[PtySession], busybox_rootfs: Path, task_id: str
) -> None:
    session = pty_session("run", "--rm", "-it", "--rootfs", str(busybox_rootfs), task_id, "--", *SH)
    session.expect("# ")
    # While attached our terminal is raw: no echo, no line editing of our own.
    raw = session.modes_now()
    assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON  # type: ignore[operator]
    session.type("echo $((6 * 7))\r")
    session.expect("42")
    session.type("exit 5\r")
    assert session.wait() == 5
    assert session.modes_now() == session.modes_before


def test_window_size_changes_reach_the_task(
    pty_session: type[PtySession], busybox_rootfs: Path, task_id: str
) -> None:
    session = pty_session("run", "--rm", "-it", "--rootfs", str(busybox_rootfs), task_id, "--", *SH)
    session.expect("# ")
    session.set_size(40, 120)
    os.kill(session.proc.pid, signal.SIGWINCH)  # what the kernel sends a foreground group
    # The resize is an RPC of its own: ask until the shell sees it (the deadline stops a hang).
    deadline = time.monotonic() + HANG
    marker = 0
    while b"40 120" not in session.output:
        assert time.monotonic() < deadline, session.output
        marker += 1
        session.type(f"stty size; echo done{marker}\r")
        session.expect(f"done{marker}\r\n")
    session.type("exit\r")
    assert session.wait() == 0
    assert session.modes_now() == session.modes_before


def test_terminal_restored_after_sigkill_of_the_task(
    runner: Taskplane,
    pty_session: type[PtySession],
    busybox_rootfs: Path,
    task_id: str,
) -> None:
    session = pty_session("run", "--rm", "-it", "--rootfs", str(busybox_rootfs), task_id, "--", *SH)
    session.expect("# ")
    assert session.modes_now() != session.modes_before
    killed = runner("tasks", "kill", "--signal", "KILL", task_id)
    assert killed.returncode == 0, killed.stderr
    assert session.wait() == 128 + signal.SIGKILL
    assert session.modes_now() == session.modes_before


# ------------------------------------------------------------------------------------- exec


def test_exec_it_and_exec_i(
    runner: Taskplane,
    pty_session: type[PtySession],
    busybox_rootfs: Path,
    task_id: str,
) -> None:
    started = runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "600")
    assert started.returncode == 0, started.stderr
    try:
        session = pty_session(
            "tasks", "exec", "-it", "--exec-id", "sh1", task_id, "--", *SH, rows=21, cols=77
        )
        session.expect("# ")
        session.type("tty; stty size\r")
        session.expect("21 77")
        assert "/dev/pts/" in session.output.decode()
        session.type("exit 3\r")
        assert session.wait() == 3
        assert session.modes_now() == session.modes_before

        piped = run_bytes(
            runner, "tasks", "exec", "-i", "--exec-id", "cat1", task_id, "--", "cat",
            data=b"through exec\n",
        )  # fmt: skip
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout == b"through exec\n"
    finally:
        runner("tasks", "rm", "--force", task_id)
