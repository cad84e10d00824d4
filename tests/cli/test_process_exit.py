"""A ``taskplane`` process ends as soon as its command is done: output flushed, the command's
exit code, no interpreter teardown (see :mod:`taskplane.__main__`)."""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

from .conftest import Taskplane

#: Runs ``taskplane`` through its console-script entry point, with an exit hook that reports
#: whether the interpreter's teardown ran.
SCRIPT = (
    "import atexit, sys; atexit.register(lambda: print('torn down', file=sys.stderr));"
    "from taskplane.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def buffered(taskplane: Taskplane) -> dict[str, str]:
    """The runner's environment with stdout block-buffered into a pipe, as a user's is."""
    return {k: v for k, v in taskplane.env.items() if k != "PYTHONUNBUFFERED"}


def run_script(taskplane: Taskplane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *taskplane.argv(*args)[3:]],
        cwd=taskplane.cwd,
        env=buffered(taskplane),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_command_exits_with_its_output_flushed_and_without_the_interpreter_teardown(
    taskplane: Taskplane,
) -> None:
    result = run_script(taskplane, "tasks", "ls")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["TASK", "PID", "STATUS"]  # block-buffered into a pipe
    assert "torn down" not in result.stderr


def test_a_failing_command_exits_with_its_code_and_its_message(taskplane: Taskplane) -> None:
    result = run_script(taskplane, "tasks", "kill", "no-such-task")
    assert result.returncode != 0
    assert "no-such-task" in result.stderr
    assert "torn down" not in result.stderr


def test_a_reader_gone_before_the_last_output_is_a_quiet_broken_pipe(taskplane: Taskplane) -> None:
    process = subprocess.Popen(
        taskplane.argv("plugins", "ls"),
        cwd=taskplane.cwd,
        env=buffered(taskplane),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader goes away before anything is written
    with process.stderr:
        stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == b""


def test_a_profiled_command_exits_as_usual_so_the_profile_is_written(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    profile = tmp_path / "tasks-ls.prof"
    argv = taskplane.argv("tasks", "ls")
    result = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), *argv[1:]],
        cwd=taskplane.cwd,
        env=buffered(taskplane),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["TASK", "PID", "STATUS"]
    assert pstats.Stats(str(profile)).total_calls > 0
