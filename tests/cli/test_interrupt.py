"""Ctrl-C: taskplane itself interrupted exits 130 (128 + SIGINT) with one line; an attached
``run`` forwards it to the task, whose death by SIGINT is the exit status 130 too."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from taskplane import oci

from .conftest import Taskplane, wait_for_line

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_ctrl_c_interrupts_tasks_wait_with_130_and_leaves_the_task(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    started = runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "600")
    assert started.returncode == 0, started.stderr
    try:
        proc = runner.popen("--log-level", "info", "tasks", "wait", task_id)
        assert proc.stderr is not None
        # The barrier: restart recovery has reattached the task's shim, so taskplane is past
        # its boot and waiting on the task when the signal comes.
        while "reattached" not in (line := wait_for_line(proc.stderr)):
            assert line, "tasks wait ended before reattaching the shim"
        proc.send_signal(signal.SIGINT)
        out, err = _stop(proc)
        assert proc.returncode == EXIT_INTERRUPTED, err
        assert out == ""
        assert err.splitlines()[-1] == "taskplane: interrupted"
        assert "Traceback" not in err
        listed = runner("tasks", "ls").stdout
        assert task_id in listed and "RUNNING" in listed.upper()
    finally:
        assert runner("tasks", "rm", "-f", task_id).returncode == 0


def test_ctrl_c_to_an_attached_run_kills_the_task_by_sigint_and_exits_130(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    # Without its own pid namespace the process is not an init, which ignores SIGINT.
    spec = oci.default_spec(
        task_id, rootfs=busybox_rootfs, args=["sh", "-c", "echo ready; exec sleep 600"]
    )
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    spec["linux"]["cgroupsPath"] = f"/{runner.namespace}/{task_id}"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    proc = runner.popen("run", "--rm", "--spec", str(spec_file), task_id)
    assert proc.stdout is not None
    assert wait_for_line(proc.stdout) == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = _stop(proc)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert out == ""
    assert runner("tasks", "ls").stdout.strip().count("\n") == 0  # --rm: only the header
