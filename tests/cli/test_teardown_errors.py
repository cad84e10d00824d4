"""A teardown that cannot remove a file of the task is one line naming the task and the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Taskplane, single_error_line

integration = pytest.mark.integration


@integration
def test_a_layer_that_cannot_be_removed_names_the_task_and_the_file(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    started = runner(
        "run", "-d", "--overlay", "--rootfs", str(busybox_rootfs), task_id, "/bin/sleep", "600"
    )
    assert started.returncode == 0, started.stderr
    snapshots = runner.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
    busy = snapshots / runner.namespace / task_id / "fs" / "busy"
    busy.mkdir()
    # A mount inside the writable layer: removing the layer fails with EBUSY, as it would
    # under a process that kept a mount there.
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(busy)], check=True)
    try:
        line = single_error_line(runner("tasks", "rm", "--force", task_id))
        assert line.startswith(f'taskplane: cannot delete task "{task_id}": '), line
        assert line.endswith("busy: Device or resource busy"), line
    finally:
        mounted = [
            entry.split()[1]
            for entry in Path("/proc/self/mounts").read_text().splitlines()
            if entry.split()[1].startswith(str(snapshots))
        ]
        for path in sorted(mounted, reverse=True):
            subprocess.run(["umount", path], check=True)
    # The snapshotter renamed the layer aside before removing it (plugins/overlay.py) and left
    # the renamed directory when that failed; the task and its record are gone.
    assert runner("tasks", "ls").stdout.strip().count("\n") == 0  # only the header
    for leftover in (snapshots / runner.namespace).glob(f".{task_id}.removing"):
        shutil.rmtree(leftover)
