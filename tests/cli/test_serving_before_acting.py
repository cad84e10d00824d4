"""A command that acts on a task it did not start serves the shims' events address before it
acts, outside the deadlines of its steps (``TaskManager.load_task``): a peer that holds the
address but does not answer (stopped: its socket accepts and nothing replies) costs the command
the wait for its answer, not the orderly kill and delete of a healthy shim."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import Taskplane

pytestmark = pytest.mark.integration

#: Deadlines of a shim's cleanup steps and of the wait for the serving peer's answer alike.
CONFIG = 'version = 3\n[timeouts]\n"io.containerd.timeout.shim.cleanup" = "2s"\n'


def test_a_stopped_events_peer_does_not_cost_a_force_remove_the_orderly_kill(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    started = runner(
        "--config", str(config), "run", "-d", "--rootfs", str(busybox_rootfs), task_id,
        "--", "sleep", "600",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    address = runner.state / "taskplane.sock.ttrpc"
    address.unlink(missing_ok=True)  # left by the run, which served it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stopped:
        stopped.bind(str(address))
        stopped.listen()
        removed = runner(
            "--config", str(config), "--log-level", "warning", "tasks", "rm", "--force", task_id
        )
    address.unlink()
    assert removed.returncode == 0, removed.stderr
    assert "does not answer" in removed.stderr  # it met the stopped peer...
    assert "did not remove it" not in removed.stderr, removed.stderr  # ...then killed in order
