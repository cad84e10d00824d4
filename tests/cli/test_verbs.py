"""``taskplane tasks ps|pause|resume|metrics``, ``tasks ls -q/--json`` and multi-id ``rm``/``kill``
against real containers (runc + its shim); the ``runner`` fixture checks nothing leaked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Taskplane, lines, single_error_line

pytestmark = pytest.mark.integration


def start(runner: Taskplane, rootfs: Path, task_id: str, *args: str) -> None:
    result = runner("run", "-d", "--rootfs", str(rootfs), *args, task_id, "--", "sleep", "600")
    assert result.returncode == 0, result.stderr


def statuses(runner: Taskplane) -> dict[str, str]:
    return {e["id"]: e["status"] for e in json.loads(runner("tasks", "ls", "--json").stdout)}


def test_pause_then_resume_shows_paused_then_running(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    start(runner, busybox_rootfs, task_id)
    try:
        assert runner("tasks", "pause", task_id).returncode == 0
        assert statuses(runner) == {task_id: "PAUSED"}
        table = lines(runner("tasks", "ls").stdout)
        assert table[1].split()[::2] == [task_id, "PAUSED"]
        assert runner("tasks", "resume", task_id).returncode == 0
        assert statuses(runner) == {task_id: "RUNNING"}
    finally:
        assert runner("tasks", "rm", "-f", task_id).returncode == 0


def test_ps_lists_the_tasks_processes(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    start(runner, busybox_rootfs, task_id)
    try:
        pid = json.loads(runner("tasks", "ls", "--json").stdout)[0]["pid"]
        assert pid > 0
        assert lines(runner("tasks", "ps", task_id).stdout) == ["PID", str(pid)]
    finally:
        assert runner("tasks", "rm", "-f", task_id).returncode == 0


def test_metrics_decodes_memory_cpu_and_pids(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    start(runner, busybox_rootfs, task_id, "--pids-limit", "33", "--memory-limit", "32m")
    try:
        result = runner("tasks", "metrics", task_id, "--json")
        assert result.returncode == 0, result.stderr
        metrics = json.loads(result.stdout)
        assert metrics["id"] == task_id
        assert metrics["cgroup"] in ("v1", "v2")
        assert metrics["memory"]["usage"] > 0
        assert metrics["memory"]["limit"] == 32 << 20
        assert metrics["cpu"]["usage_ns"] > 0
        assert metrics["pids"] == {"current": 1, "limit": 33}
        assert set(metrics["io"]) == {"read_bytes", "write_bytes"}
        table = dict(line.split() for line in lines(runner("tasks", "metrics", task_id).stdout))
        assert table["METRIC"] == "VALUE"
        assert table["pids.limit"] == "33"
        assert int(table["memory.usage"]) > 0
    finally:
        assert runner("tasks", "rm", "-f", task_id).returncode == 0


def test_ls_quiet_and_json_and_rm_kill_of_several_ids(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    ids = [f"{task_id}-{n}" for n in range(3)]
    for each in ids:
        start(runner, busybox_rootfs, each)
    try:
        assert runner("tasks", "ls", "-q").stdout.split() == ids
        assert statuses(runner) == dict.fromkeys(ids, "RUNNING")
        killed = runner("tasks", "kill", "-s", "KILL", ids[0], ids[1])
        assert killed.returncode == 0, killed.stderr
        for each in ids[:2]:
            assert runner("tasks", "wait", each).stdout == "137\n"
        # One unknown id among several: the others are still removed, the unknown one named.
        removed = runner("tasks", "rm", ids[0], "nosuch", ids[1])
        assert removed.returncode == 1
        assert lines(removed.stderr) == [
            f'taskplane: no container or task "nosuch" in namespace "{runner.namespace}"'
        ]
        assert runner("tasks", "ls", "-q").stdout.split() == ids[2:]
    finally:
        runner("tasks", "rm", "-f", *ids)
    assert runner("tasks", "ls", "-q").stdout == ""


def test_verbs_on_a_missing_task_name_it(runner: Taskplane) -> None:
    for verb in ("pause", "resume", "ps", "metrics"):
        line = single_error_line(runner("tasks", verb, "nosuch"))
        assert '"nosuch"' in line, line
