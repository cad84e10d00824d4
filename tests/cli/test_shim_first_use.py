"""A command touches the shim side only as far as it uses it (not timed).

``tasks ls`` on a state dir without tasks neither serves the shims' events address nor imports
the shim client or ttrpc; ``tasks ls -n a`` recovers namespace ``a`` and leaves ``b`` alone. An
empty bundle is what recovery visibly acts on without a shim: it removes it.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import Taskplane
from .test_imports import imported

#: What only a process that talks to a shim needs.
SHIM_SIDE = {
    "runtime_v2.events_server",
    "runtime_v2.shim",
    "runtime_v2.shim_load",
    "runtime_v2.api.task_v3_pb2",
    "runtime_v2.ttrpc._client",
    "runtime_v2.ttrpc._server",
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
