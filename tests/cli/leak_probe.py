"""A probe, not collected by default (its name does not match ``test_*.py``): a detached task
started through the CLI and never removed. Run by ``tests/integration/test_leak_checker.py``,
which asserts the leak checker fails it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import Taskplane


def test_probe_runs_a_detached_task_and_never_removes_it(
    runner: Taskplane, busybox_rootfs: Path
) -> None:
    result = runner("run", "-d", "--rootfs", str(busybox_rootfs), "probe", "--", "sleep", "600")
    assert result.returncode == 0, result.stderr
    _, pid, _ = runner("tasks", "ls").stdout.splitlines()[1].split()  # TASK PID STATUS
    Path(os.environ["PROBE_RECORD"]).write_text(
        json.dumps(
            {"namespace": runner.namespace, "base": str(runner.state.parent), "pid": int(pid)}
        )
    )
