"""What ``tasks ls`` spares itself, pinned without timing it (the figures are bench/cli.py's;
that every command boots without the cycle collector and runs its body with it is pinned in
tests/cli/test_collector.py)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import Taskplane
from .test_imports import imported


def run_probe(taskplane: Taskplane, probe: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the Python code ``probe`` with ``taskplane``'s global options and ``args`` as its
    arguments, in its environment (the probe calls ``taskplane.cli.main`` with them)."""
    return subprocess.run(
        [sys.executable, "-c", probe, *taskplane.argv(*args)[3:]],
        cwd=taskplane.cwd,
        env=taskplane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


#: Runs ``tasks ls`` through ``taskplane.cli.main`` (as an embedder does: it returns) and prints
#: its exit code, whether the cycle collector was on while the listing listed, how many
#: collections ran from then until ``main`` returned and its first allocations after, and
#: whether the collector is on at the end.
_PROBE = """
import gc, sys
from taskplane.containers import Client
during, collections = [], []

async def entries(self):
    during.append(gc.isenabled())
    gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
    return []

Client.entries = entries
from taskplane.cli import main
code = main(sys.argv[1:])
after = [object() for _ in range(100)]  # allocations that would trigger a pending collection
print(code, during, len(collections), gc.isenabled())
"""


def test_a_listing_lists_without_the_cycle_collector_and_gives_it_back_unloaded(
    taskplane: Taskplane,
) -> None:
    """Off while the listing boots and lists, on again afterwards for an embedder, and no
    collection of what the listing allocated on the way out (a command exits right after)."""
    result = run_probe(taskplane, _PROBE, "tasks", "ls")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "0 [False] 0 True", result.stdout


def test_a_listing_imports_no_log_module(taskplane: Taskplane) -> None:
    """A task's log is neither written nor read by ``tasks ls``: the client imports the log
    module when it is (its rotation size, a log's path)."""
    assert "taskplane.logs" not in imported(taskplane, "tasks", "ls")
