"""``tasks ls`` with running tasks reattaches their shims and serves no events (not timed).

A listing asks each shim for its ``State`` and causes no event, so it neither serves the
shims' events address nor watches the peer that does: it imports no events server and no
ttrpc server (``ShimManager.start_events_server`` says why that is safe), nor what only acting
on a task needs. That a process
which lists and then acts still receives the events it causes is pinned with real shims in
tests/integration/test_first_use.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Taskplane
from .test_imports import imported

pytestmark = pytest.mark.integration

#: What a listing needs none of although it talks to shims: serving (or watching) the shims'
#: events address (the events server and its service; the ttrpc server is loaded with
#: importlib, which ``-X importtime`` does not report, by the events server), packing an Any
#: for an exec, an update or a checkpoint (typeurl) and reading a connection's peer
#: credentials (asked only of a shim that will not exit).
NOT_FOR_A_LISTING = {
    "runtime_v2.events_server",
    "runtime_v2.api.events_service_pb2",
    "runtime_v2.typeurl",
    "runtime_v2.ttrpc._peer",
}
#: What shows that the listing did reattach the shims and ask them.
ASKED_THE_SHIMS = {"runtime_v2.shim_load", "runtime_v2.shim", "runtime_v2.api.task_v3_pb2"}


def test_tasks_ls_with_running_tasks_serves_no_events(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    ids = [f"{task_id}-{i}" for i in range(2)]
    try:
        for each in ids:
            started = runner(
                "run", "-d", "--rootfs", str(busybox_rootfs), each, "--", "sleep", "600"
            )
            assert started.returncode == 0, started.stderr
        # What the runs left for the events address (nobody serves it now): not made again.
        for left in runner.state.glob("*.ttrpc*"):
            left.unlink()
        names = imported(runner, "tasks", "ls")
        assert not [p.name for p in runner.state.glob("*.ttrpc*")]  # nothing bound nor locked
        assert ASKED_THE_SHIMS <= names, sorted(ASKED_THE_SHIMS - names)
        assert not NOT_FOR_A_LISTING & names, sorted(NOT_FOR_A_LISTING & names)
        listed = runner("tasks", "ls", "--quiet")
        assert listed.stdout.split() == sorted(ids), listed.stderr
    finally:
        removed = runner("tasks", "rm", "--force", *ids)
        assert removed.returncode == 0, removed.stderr
