"""What ``tasks ls`` spares itself, pinned without timing it (the figures are bench/cli.py's)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import Taskplane
from .test_imports import imported

#: Runs ``tasks ls`` through ``taskplane.cli.main`` (as an embedder does: it returns) and prints
#: whether the cycle collector ran while the listing listed and whether it runs afterwards.
_PROBE = """
import gc, sys
from taskplane.containers import Client
during = []

async def entries(self):
    during.append(gc.isenabled())
    return []

Client.entries = entries
from taskplane.cli import main
code = main(sys.argv[1:])
print(code, during, gc.isenabled())
"""


def test_a_listing_lists_without_the_cycle_collector_and_gives_it_back(
    taskplane: Taskplane,
) -> None:
    argv = taskplane.argv("tasks", "ls")[3:]  # the global options and the command
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=taskplane.cwd,
        env=taskplane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "0 [False] True", result.stdout


def test_a_listing_imports_no_log_module(taskplane: Taskplane) -> None:
    """A task's log is neither written nor read by ``tasks ls``: the client imports the log
    module when it is (its rotation size, a log's path)."""
    assert "taskplane.logs" not in imported(taskplane, "tasks", "ls")
