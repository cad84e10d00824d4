"""A ``taskplane`` process SIGKILLed at each step of create, start and delete (issue 8).

The process kills itself at the named step (``TASKPLANE_TEST_CRASH_AT``, read by
:func:`runtime_v2.crashpoint.crashpoint`): deterministic, no sleeps. Afterwards what it left is
visible in ``tasks ls`` (never hidden), one ``tasks rm --force ID`` leaves nothing at all (shim,
socket, bundle, work dir, io dir, record, lifecycle step, runc state, cgroup, mount), and
``run ID`` works again.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import Taskplane
from .peer_checks import remains

pytestmark = pytest.mark.integration


#: (step, how the crashing command runs): ``-d`` for create/start steps, ``--rm`` for delete.
STEPS = [
    ("create:reserved", "-d"),
    ("create:bundle", "-d"),
    ("create:shim", "-d"),
    ("create:created", "-d"),
    ("start:started", "-d"),
    ("delete:deleted", "--rm"),
    ("delete:bundle-removal", "--rm"),
]


@pytest.mark.parametrize(("step", "mode"), STEPS, ids=[s for s, _ in STEPS])
def test_a_crash_at_each_step_is_undone_by_one_rm_force(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, step: str, mode: str
) -> None:
    cmd = ["run", mode, "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "300"]
    if mode == "--rm":
        cmd[-2:] = ["true"]
    crashed = runner(*cmd, env={"TASKPLANE_TEST_CRASH_AT": step})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert remains(runner.root, runner.state, runner.namespace, task_id) != []

    listed = runner("tasks", "ls")
    assert listed.returncode == 0, listed.stderr
    assert task_id in listed.stdout  # never hidden

    removed = runner("tasks", "rm", "--force", task_id)
    assert removed.returncode == 0, removed.stderr
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []
    assert task_id not in runner("tasks", "ls").stdout

    again = runner(
        "run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "sh", "-c", "exit 5"
    )
    assert again.returncode == 5, again.stderr
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_the_crash_hook_does_nothing_for_another_step(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    cmd = ["run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "sh", "-c", "exit 3"]
    result = runner(*cmd, env={"TASKPLANE_TEST_CRASH_AT": "no-such-step"})
    assert result.returncode == 3, result.stderr


def test_the_orphan_of_a_crashed_create_is_removed_by_plain_rm(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 8: the record and io dir of a crashed ``run`` show as ORPHAN; ``tasks rm`` (no
    --force: nothing of it runs) removes them, and the id is free again."""
    cmd = ["run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "300"]
    crashed = runner(*cmd, env={"TASKPLANE_TEST_CRASH_AT": "create:reserved"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    listed = runner("tasks", "ls")
    assert [task_id, "-", "ORPHAN"] in [line.split() for line in listed.stdout.splitlines()]
    refused = runner(*cmd)
    assert f'"{task_id}" is already in use' in refused.stderr
    assert f"taskplane tasks rm {task_id}" in refused.stderr
    removed = runner("tasks", "rm", task_id)
    assert removed.returncode == 0, removed.stderr
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []
