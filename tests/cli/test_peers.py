"""Several ``taskplane`` processes on one state dir, and a crash of one of them (issue 8).

Each test is one case of the issue, driven as a user would: real ``python -m taskplane``
processes, the real runc shim, runc and a busybox rootfs. Besides the ``runner`` fixture's leak
check (shims, bundles, runc state under the state dir), each test checks with
:func:`peer_checks.remains` that nothing of its tasks is left anywhere (socket, work dir, io dir,
lifecycle step, record, cgroup, mount).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from pathlib import Path

import attrs
import pytest

from .conftest import Taskplane, single_error_line, wait_for_line
from .peer_checks import TASKS, cgroup_pids, cgroups_of, remains, shims_of

pytestmark = pytest.mark.integration


def _run(tp: Taskplane, rootfs: Path, task_id: str, *cmd: str, detach: bool = False) -> list[str]:
    return ["run", "-d" if detach else "--rm", "--rootfs", str(rootfs), task_id, "--", *cmd]


def test_a_refused_duplicate_run_leaves_the_live_tasks_log_alone(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 1: the duplicate is refused before it touches the io dir of the live task."""
    first = runner(*_run(runner, busybox_rootfs, task_id, "sh", "-c", "sleep 300", detach=True))
    assert first.returncode == 0, first.stderr
    log = runner.state / "taskplane.io" / runner.namespace / task_id / "log.json"
    before = log.stat().st_ino
    dup = runner(*_run(runner, busybox_rootfs, task_id, "true", detach=True))
    line = single_error_line(dup)
    assert f'"{task_id}" is already in use' in line
    assert log.stat().st_ino == before  # the same log file, still there
    logs = runner("tasks", "logs", task_id)
    assert logs.returncode == 0, logs.stderr
    assert runner("tasks", "rm", "--force", task_id).returncode == 0
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_two_runs_of_one_id_at_once_have_exactly_one_winner(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 2: one wins with its own status and output, the other fails naming the id, and
    nothing is left (no runc container in "created", no FIFO of the winner deleted)."""
    for r in range(3):  # main failed every round; one round could be lucky
        tid = f"{task_id}-{r}"
        # The winner's process outlives the race (3 s), so the loser always finds the id taken.
        cmd = _run(runner, busybox_rootfs, tid, "sh", "-c", "echo won; sleep 3; exit 3")
        procs = [runner.popen(*cmd) for _ in range(2)]
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
        codes = sorted(code for code, _, _ in results)
        assert codes == [1, 3], results
        (_, out, _) = next(res for res in results if res[0] == 3)
        (_, _, err) = next(res for res in results if res[0] == 1)
        assert out == "won\n"
        assert f'"{tid}" is already in use' in err and "Traceback" not in err
        assert remains(runner.root, runner.state, runner.namespace, tid) == []
    again = runner(*_run(runner, busybox_rootfs, task_id, "sh", "-c", "exit 4"))
    assert again.returncode == 4, again.stderr


def test_concurrent_runs_on_one_state_dir_all_succeed(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 3 (small): concurrent ``run --rm`` with distinct ids, each with its own status."""
    procs = {
        i: runner.popen(*_run(runner, busybox_rootfs, f"{task_id}-{i}", "sh", "-c", f"exit {i}"))
        for i in range(8)
    }
    for i, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == i, err
    for i in procs:
        assert remains(runner.root, runner.state, runner.namespace, f"{task_id}-{i}") == []


def test_recovery_leaves_the_work_dir_of_a_task_a_peer_is_working_on(
    runner: Taskplane, task_id: str
) -> None:
    """Case 3: a peer's ``tasks ls`` (restart recovery) must not sweep the work dir of a task
    another process is creating (its lock is held; the bundle is not there yet)."""
    work = runner.root / TASKS / runner.namespace / task_id
    work.mkdir(parents=True)
    lock = runner.state / TASKS / runner.namespace / f".{task_id}.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the peer creating the task
        assert runner("tasks", "ls").returncode == 0
        assert work.is_dir()
    finally:
        os.close(fd)
    lock.unlink()
    assert runner("tasks", "ls").returncode == 0  # now it is a stray: removed
    assert not work.exists()


def test_a_leftover_hidden_bundle_does_not_poison_the_id(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 4: a ``.<id>`` left by a crashed delete is finished, not a poison."""
    hidden = runner.state / TASKS / runner.namespace / f".{task_id}"
    hidden.mkdir(parents=True)
    (hidden / "f").write_text("left by a crash")
    result = runner(*_run(runner, busybox_rootfs, task_id, "sh", "-c", "echo out; exit 7"))
    assert result.returncode == 7, result.stderr
    assert result.stdout == "out\n"
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_a_killed_shim_under_an_attached_run_leaves_nothing_running(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 5: the container dies with its shim's cleanup; the id is usable again."""
    proc = runner.popen(*_run(runner, busybox_rootfs, task_id, "sh", "-c", "echo up; sleep 300"))
    assert wait_for_line(proc.stdout) == "up\n"  # type: ignore[arg-type]
    (shim,) = shims_of(runner.state, runner.namespace, task_id)
    os.kill(shim, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    expected = f'the shim of task "{task_id}" died while the task ran; its exit status is lost'
    assert err == f"taskplane: {expected}\n"

    assert cgroup_pids(runner.namespace, task_id) == []
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []
    listed = runner("tasks", "ls")
    assert task_id not in listed.stdout
    again = runner(*_run(runner, busybox_rootfs, task_id, "sh", "-c", "exit 6"))
    assert again.returncode == 6, again.stderr


def test_recovery_in_one_state_dir_never_touches_another_state_dirs_container(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 6: B's stale bundle of the same id is reaped without killing A's container."""
    # the same namespace and id in a second state dir
    b = attrs.evolve(runner, root=runner.root.parent / "rb", state=runner.state.parent / "sb")
    try:
        assert b(*_run(b, busybox_rootfs, task_id, "sleep", "300", detach=True)).returncode == 0
        (shim,) = shims_of(b.state, runner.namespace, task_id)
        os.kill(shim, signal.SIGKILL)
        runc_root = b.state / TASKS / ".runc" / runner.namespace
        subprocess.run(["runc", "--root", str(runc_root), "delete", "-f", task_id], check=True)
        a = runner(*_run(runner, busybox_rootfs, task_id, "sleep", "300", detach=True))
        assert a.returncode == 0, a.stderr
        assert b("tasks", "ls").returncode == 0  # recovery reaps B's stale bundle
        listed = runner("tasks", "ls")
        assert f"{task_id} " in listed.stdout and "RUNNING" in listed.stdout, listed.stdout
        assert len(cgroups_of(runner.namespace, task_id)) > 0 and cgroup_pids(
            runner.namespace, task_id
        )
        assert b("tasks", "rm", "--force", task_id).returncode == 0  # only B's leftovers
        assert "RUNNING" in runner("tasks", "ls").stdout
        assert runner("tasks", "rm", "--force", task_id).returncode == 0
    finally:
        b("tasks", "rm", "--force", task_id)
        runner("tasks", "rm", "--force", task_id)
    assert remains(b.root, b.state, runner.namespace, task_id) == []
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_rm_force_kills_a_container_whose_bundle_was_removed(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 7a: the task stays visible (ORPHAN) and ``rm --force`` kills it through runc."""
    assert (
        runner(*_run(runner, busybox_rootfs, task_id, "sleep", "300", detach=True)).returncode == 0
    )
    pids = cgroup_pids(runner.namespace, task_id)
    assert pids
    subprocess.run(
        ["rm", "-rf", str(runner.state / TASKS / runner.namespace / task_id)], check=True
    )
    listed = runner("tasks", "ls")
    assert [task_id, "-", "ORPHAN"] in [line.split() for line in listed.stdout.splitlines()]
    removed = runner("tasks", "rm", "--force", task_id)
    assert removed.returncode == 0, removed.stderr
    assert not any(os.path.exists(f"/proc/{pid}/cmdline") and _alive(pid) for pid in pids)
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_a_stopped_shim_shows_unknown_and_rm_force_leaves_nothing_running(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 7b: a shim that does not answer (SIGSTOP) is UNKNOWN, never hidden; ``rm --force``
    kills the container through runc and the shim."""
    assert (
        runner(*_run(runner, busybox_rootfs, task_id, "sleep", "300", detach=True)).returncode == 0
    )
    (shim,) = shims_of(runner.state, runner.namespace, task_id)
    os.kill(shim, signal.SIGSTOP)
    try:
        listed = runner("tasks", "ls")
        assert [task_id, "-", "UNKNOWN"] in [line.split() for line in listed.stdout.splitlines()]
        plain = runner("tasks", "rm", task_id)
        assert "tasks rm --force" in single_error_line(plain)
        removed = runner("tasks", "rm", "--force", task_id)
        assert removed.returncode == 0, removed.stderr
    finally:
        if _alive(shim):
            os.kill(shim, signal.SIGCONT)
    assert cgroup_pids(runner.namespace, task_id) == []
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def test_a_truncated_metadata_db_leaves_running_tasks_manageable(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    """Case 8b: exec, ls and rm work on a running task whose record was lost."""
    assert (
        runner(*_run(runner, busybox_rootfs, task_id, "sleep", "300", detach=True)).returncode == 0
    )
    db = runner.root / "io.containerd.metadata.v1.sqlite" / "meta.db"
    for path in db.parent.glob("meta.db*"):
        if path != db:
            path.unlink()
    os.truncate(db, 0)
    listed = runner("tasks", "ls")
    assert "RUNNING" in listed.stdout, listed.stdout + listed.stderr
    ran = runner("tasks", "exec", "--exec-id", "e1", task_id, "--", "sh", "-c", "echo in; exit 2")
    assert (ran.returncode, ran.stdout) == (2, "in\n"), ran.stderr
    assert runner("tasks", "rm", "--force", task_id).returncode == 0
    assert remains(runner.root, runner.state, runner.namespace, task_id) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
