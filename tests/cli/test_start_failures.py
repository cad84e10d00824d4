"""A task that fails at start (not at create) through the CLI: one clear line, nothing left."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import runc_whose_init_dies_before_start

from .conftest import Taskplane, single_error_line


@pytest.mark.parametrize("mode", [["--rm"], [], ["-d"]], ids=["rm", "attached", "detached"])
def test_run_of_a_task_that_cannot_start_leaves_nothing(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path, mode: list[str]
) -> None:
    runc = runc_whose_init_dies_before_start(tmp_path)
    result = runner(
        "run", *mode, "--runc-binary", str(runc), "--rootfs", str(busybox_rootfs), task_id,
        "--", "sleep", "600",
    )  # fmt: skip
    line = single_error_line(result)
    assert "start failed" in line and "stopped" in line, line
    assert line.startswith(f'taskplane: failed to start task "{task_id}": '), line
    assert runner("tasks", "ls").stdout.strip().count("\n") == 0  # only the header
