"""A command touches the shim side only as far as it uses it (not timed).

``tasks ls`` on a state dir without tasks neither serves the shims' events address nor imports
the shim client, ttrpc or what handles bundles and their cleanup; ``tasks ls -n a`` recovers
namespace ``a`` and leaves ``b`` alone. An empty bundle is what recovery visibly acts on
without a shim: it removes it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .conftest import Taskplane
from .peer_checks import cgroup_pids, remains, shims_of
from .test_imports import imported

#: What only a process that talks to a shim, or looks at a bundle, needs. (The ttrpc client
#: and server are loaded with importlib, which ``-X importtime`` does not report: the codec
#: both import stands for them.)
SHIM_SIDE = {
    "runtime_v2.events_server",
    "runtime_v2.shim",
    "runtime_v2.shim_load",
    "runtime_v2.api.task_v3_pb2",
    "runtime_v2.ttrpc._codec",
    "runtime_v2.bundle",
    "runtime_v2.shim_cleanup",
    "runtime_v2.shim_log",
}

TASK_STATE = "io.containerd.runtime.v2.task"


def test_tasks_ls_without_tasks_serves_no_events_and_imports_no_shim_client(
    taskplane: Taskplane,
) -> None:
    names = imported(taskplane, "tasks", "ls")
    assert not SHIM_SIDE & names, sorted(SHIM_SIDE & names)
    # Nothing bound nor locked for the events address.
    assert not [p.name for p in taskplane.state.glob("*.ttrpc*")]


def test_tasks_ls_recovers_its_own_namespace_only(taskplane: Taskplane) -> None:
    mine = taskplane.state / TASK_STATE / taskplane.namespace / "stale"
    other = taskplane.state / TASK_STATE / taskplane.other_namespace / "stale"
    for bundle in (mine, other):
        bundle.mkdir(parents=True)
    assert taskplane("tasks", "ls").returncode == 0
    assert not mine.exists()
    assert other.is_dir()
    result = taskplane("--namespace", taskplane.other_namespace, "tasks", "ls")
    assert result.returncode == 0, result.stderr
    assert not other.exists()


def test_a_command_on_one_task_leaves_the_other_tasks_alone(taskplane: Taskplane) -> None:
    used = taskplane.state / TASK_STATE / taskplane.namespace / "used"
    neighbour: Path = used.with_name("neighbour")
    for bundle in (used, neighbour):
        bundle.mkdir(parents=True)
    result = taskplane("tasks", "kill", "used")
    assert result.returncode == 1  # recovery removed its empty bundle: no such task
    assert 'no task "used"' in result.stderr
    assert not used.exists()
    assert neighbour.is_dir()
    assert taskplane("tasks", "ls").returncode == 0  # the namespace's first listing
    assert not neighbour.exists()


@pytest.mark.integration
def test_reusing_the_id_of_a_task_whose_shim_died_unwatched_recovers_it_first(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """No process was connected when the shim died: the next command that uses the id reaps
    what the shim left (as recovery at boot did) before it decides whether the id is free."""
    started = runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "300")
    assert started.returncode == 0, started.stderr
    (shim,) = shims_of(runner.state, runner.namespace, task_id)
    os.kill(shim, signal.SIGKILL)
    bundle = runner.state / TASK_STATE / runner.namespace / task_id
    assert bundle.is_dir()
    again = runner("run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "true")
    assert again.returncode == 1
    # Only the container record is left to say the id is taken: the bundle was reaped.
    taken = f"(it has a container record; remove it with: taskplane tasks rm {task_id})"
    assert taken in again.stderr, again.stderr
    assert not bundle.exists()
    assert cgroup_pids(runner.namespace, task_id) == []  # the shim's delete killed the container
    removed = runner("tasks", "rm", task_id)
    assert removed.returncode == 0, removed.stderr
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []
