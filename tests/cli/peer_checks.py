"""What the peer and crash tests check after the fact: everything of one task, anywhere.

:func:`remains` lists every trace of task ``task_id`` of a state dir that the leak checker of
``conftest.py`` does not look at by itself: the shim (by argv), its socket, the bundle (and a
``.<id>`` being removed), the work dir, the io dir, the lifecycle step, the container record,
runc state in the state dir's runc root, the cgroup and mounts.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from runtime_v2.locks import lock_path, read_step
from runtime_v2.teardown import shim_pids

TASKS = "io.containerd.runtime.v2.task"
SOCKET_DIR = Path("/run/containerd/s")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def grpc_address(state: Path) -> str:
    """The daemon identity a state dir's shims carry in ``-address`` (registry's)."""
    return str(state / "taskplane.sock")


def shims_of(state: Path, namespace: str, task_id: str) -> list[int]:
    """Pids of the shim processes of the task."""
    return shim_pids(namespace, task_id, grpc_address(state))


def cgroups_of(namespace: str, task_id: str) -> list[Path]:
    """The task's cgroup directories (``taskplane@<ns>@<id>@<hash>``) in every hierarchy."""
    return sorted(CGROUP_ROOT.glob(f"*/taskplane@{namespace}@{task_id}@*"))


def record_exists(root: Path, namespace: str, task_id: str) -> bool:
    """Whether the metadata store holds a record of the task (read with sqlite3 itself)."""
    db = root / "io.containerd.metadata.v1.sqlite" / "meta.db"
    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute(
                "SELECT 1 FROM containers WHERE namespace = ? AND id = ?", (namespace, task_id)
            ).fetchall()
        except sqlite3.OperationalError:
            return False
    return bool(rows)


def remains(root: Path, state: Path, namespace: str, task_id: str) -> list[str]:
    """Every trace of the task left on this machine (empty when nothing is left)."""
    found = [f"shim process {pid}" for pid in shims_of(state, namespace, task_id)]
    key = os.path.join(grpc_address(state), namespace, task_id)
    socket = SOCKET_DIR / hashlib.sha256(key.encode()).hexdigest()
    bundles = state / TASKS / namespace
    paths = {
        "shim socket": socket,
        "bundle": bundles / task_id,
        "bundle being removed": bundles / f".{task_id}",
        "work dir": root / TASKS / namespace / task_id,
        "work dir being removed": root / TASKS / namespace / f".{task_id}",
        "io dir": state / "taskplane.io" / namespace / task_id,
        "runc state": state / TASKS / ".runc" / namespace / task_id,
    }
    found += [f"{kind} {path}" for kind, path in paths.items() if os.path.lexists(path)]
    step = read_step(lock_path(str(bundles / task_id)))
    if step:
        found.append(f"lifecycle step {step!r}")
    if record_exists(root, namespace, task_id):
        found.append("container record")
    found += [f"cgroup {path}" for path in cgroups_of(namespace, task_id)]
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    found += [f"mount {p}" for p in points if p.startswith(str(state)) and task_id in p]
    return found


def cgroup_pids(namespace: str, task_id: str) -> list[int]:
    """Processes in the task's cgroup (pids hierarchy)."""
    pids: list[int] = []
    for path in CGROUP_ROOT.glob(f"pids/taskplane@{namespace}@{task_id}@*/cgroup.procs"):
        pids += [int(line) for line in path.read_text().split()]
    return pids
