"""taskplane's interactive I/O and task logs through the upstream containerd 2.4 runc shim.

Debian's 1.6.20 shim is what tests/cli/test_io.py and test_logs.py drive; these run the same
command-line paths with ``--runtime ../shared/upstream/bin/containerd-shim-runc-v2`` (task API
v3, BootstrapParams), under both runcs: ``run -i`` (stdin through the FIFO, then CloseIO),
``run -t`` (the console runc hands the shim, copied to the stdout FIFO; the window size set
before start) and ``run -d`` (the shim starts taskplane's logging binary from the ``binary://``
stdout URI, containerd's ``pkg/process/io.go`` ``NewBinaryIO``, and the log keeps being written
after ``taskplane`` exited). Each test needs ``../shared/upstream``: it skips without it and
fails under TASKPLANE_REQUIRE_INTEGRATION=1. The leak check of ``dirs`` covers every test.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cli.conftest import Taskplane, base_env
from cli.test_io import PtySession

from .conftest import Dirs
from .runtimes import MATRIX, UPSTREAM_SHIM, Runtime

#: Stops a hung command only.
HANG = 60.0
UPSTREAM = [r for r in MATRIX if r.shim == str(UPSTREAM_SHIM)]


@pytest.fixture(params=UPSTREAM, ids=[r.label for r in UPSTREAM])
def shim(request: pytest.FixtureRequest, upstream: None) -> Runtime:
    """The upstream shim with each runc (Debian's 1.1.5, upstream 1.5)."""
    chosen: Runtime = request.param
    return chosen


@pytest.fixture
def cli(dirs: Dirs, tmp_path: Path) -> Taskplane:
    """``python -m taskplane`` on the test's root, state and namespace (leak-checked by dirs)."""
    env = {**base_env(), "TASKPLANE_NAMESPACE": dirs.namespace}
    return Taskplane(root=dirs.root, state=dirs.state, cwd=tmp_path, env=env)


def _run_args(shim: Runtime, rootfs: Path, *flags: str) -> list[str]:
    assert shim.runc is not None
    task_id = f"up-{uuid.uuid4().hex[:8]}"
    return ["run", *flags, "--runtime", shim.shim, "--runc-binary", shim.runc,
            "--rootfs", str(rootfs), task_id]  # fmt: skip


def test_i_copies_stdin_byte_exact_and_closes_it(
    cli: Taskplane, shim: Runtime, busybox_rootfs: Path
) -> None:
    """``run -i``: every byte reaches the task, and the end of our stdin ends the task's (cat
    exits: the shim's CloseIO closed the FIFO's write end)."""
    data = os.urandom(1 << 20)
    ran = subprocess.run(
        cli.argv(*_run_args(shim, busybox_rootfs, "--rm", "-i"), "--", "cat"),
        cwd=cli.cwd,
        env=cli.env,
        input=data,
        capture_output=True,
        timeout=HANG,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == data


def test_t_runs_the_task_on_the_shims_console_with_our_window_size(
    cli: Taskplane, shim: Runtime, busybox_rootfs: Path
) -> None:
    """``run -t``: the task's stdio is a pseudo-terminal of the shim's, the size it starts
    with is ours, and our terminal's modes are restored afterwards."""
    args = _run_args(shim, busybox_rootfs, "--rm", "-t")
    session = PtySession(cli, *args, "--", "sh", "-c", "tty; stty size", rows=33, cols=111)
    try:
        assert session.wait() == 0, session.output
        assert b"/dev/pts/" in session.output
        assert b"33 111" in session.output
        assert session.modes_now() == session.modes_before
    finally:
        session.close()


def test_d_output_is_written_by_the_shims_logging_binary(
    cli: Taskplane, shim: Runtime, busybox_rootfs: Path
) -> None:
    """``run -d``: output the task prints after ``taskplane`` exited lands in the log, stdout
    and stderr apart -- only the logging binary the shim started can have written it."""
    args = _run_args(shim, busybox_rootfs, "-d")
    task_id = args[-1]
    script = "trap 'echo out; echo err >&2; exit 0' USR1; sleep 600 & wait"
    started = cli(*args, "--", "sh", "-c", script, timeout=HANG)
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"{task_id}\n"
    try:
        log = cli.state / "taskplane.io" / cli.env["TASKPLANE_NAMESPACE"] / task_id / "log.json"
        assert not log.exists() or log.read_text() == ""  # nothing printed yet
        signalled = cli("tasks", "kill", "--signal", "USR1", task_id, timeout=HANG)
        assert signalled.returncode == 0, signalled.stderr
        followed = cli("tasks", "logs", "--follow", task_id, timeout=HANG)
        assert (followed.returncode, followed.stdout, followed.stderr) == (0, "out\n", "err\n")
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert sorted((r["stream"], r["log"]) for r in records) == [
            ("stderr", "err\n"),
            ("stdout", "out\n"),
        ]
    finally:
        removed = cli("tasks", "rm", "--force", task_id, timeout=HANG)
    assert removed.returncode == 0, removed.stderr
    assert not log.parent.exists()  # the log went with the task
