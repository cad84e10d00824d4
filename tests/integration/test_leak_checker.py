"""The leak checker sees what a test leaves, before any fixture cleanup can hide it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.leaks import Scope, find_leaks

from .conftest import Dirs

HERE = Path(__file__).parent
REPO = HERE.parents[1]
#: Probes that start a task and never delete it: through the TaskManager, through the CLI.
PROBES = {
    "integration": (HERE / "leak_probe.py", "test_probe_starts_a_task_and_never_deletes_it"),
    "cli": (
        REPO / "tests/cli/leak_probe.py",
        "test_probe_runs_a_detached_task_and_never_removes_it",
    ),
}


@pytest.mark.parametrize("probe_name", sorted(PROBES))
def test_a_task_never_deleted_fails_the_suite(dirs: Dirs, tmp_path: Path, probe_name: str) -> None:
    path, test_name = PROBES[probe_name]
    record = tmp_path / "probe.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(path),
        ],
        cwd=REPO,
        env={**os.environ, "PROBE_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "1 passed, 1 error" in result.stdout, result.stdout
    probe = json.loads(record.read_text())
    namespace, pid = probe["namespace"], probe["pid"]
    assert f"ERROR at teardown of {test_name}" in result.stdout
    assert "the test leaked (found before any fixture cleanup)" in result.stdout
    # The shim, the container's process (by its cgroup), its runc state and its bundle.
    assert f"-namespace {namespace}" in result.stdout
    assert f"process {pid} (in a cgroup of the namespace)" in result.stdout
    # runc's root is the state dir's own (runtime_v2.task_manager: per-state-dir runc root)
    runc_root = f"{probe['base']}/s/io.containerd.runtime.v2.task/.runc"
    assert f"runc state {runc_root}/{namespace}/probe" in result.stdout
    assert f"bundle {probe['base']}/s/io.containerd.runtime.v2.task/{namespace}/probe" in (
        result.stdout
    )
    assert "shim socket /run/containerd/s/" in result.stdout
    # taskplane's cgroup per (state dir, namespace, id): /taskplane@<ns>@<id>[@<state hash>]
    assert re.search(
        rf"cgroup /sys/fs/cgroup/[^/\s]+/taskplane@{namespace}@probe(@[0-9a-f]+)?\n", result.stdout
    ), result.stdout
    # The safety net cleaned up after reporting.
    left = find_leaks(Scope(namespace=namespace, base=Path(probe["base"])))
    assert left == [], left
