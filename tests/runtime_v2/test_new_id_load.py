"""A new id has nothing for restart recovery to look at: the task manager answers
``load_task`` for it without building its FirstUseLoader (runtime_v2.shim_load is not even
imported: ``run`` of a new id never needs it). Not timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runtime_v2.bundle import load_bundle

_PROBE = """
import asyncio, sys
from runtime_v2.task_manager import TaskManager

class Shims:  # no task of this process
    def has(self, namespace, task_id):
        return False

    def timeout(self, key, default):
        return default

tm = TaskManager(root=sys.argv[1], state=sys.argv[2], shims=Shims())
print(asyncio.run(tm.load_task("new", namespace="default")), "runtime_v2.shim_load" in sys.modules)
"""


def test_a_new_id_is_answered_without_the_loader(tmp_path: Path) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(root), str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["None", "False"]


def test_remains_are_a_bundle_or_a_work_dir_even_half_deleted(tmp_path: Path) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    bundle = load_bundle(str(state), "ns", "t")
    assert not bundle.has_remains(str(root))
    (state / "ns").mkdir(parents=True)
    (state / "ns" / "other").mkdir()
    assert not bundle.has_remains(str(root))
    for where in (state / "ns" / "t", root / "ns" / "t", root / "ns" / ".t"):
        where.mkdir(parents=True)
        assert bundle.has_remains(str(root)), where
        where.rmdir()
    (state / "ns" / "t").symlink_to(tmp_path / "gone")  # a dangling link is still something
    assert bundle.has_remains(str(root))
