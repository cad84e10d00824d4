"""Cleanup and recovery paths provoked with the real runc shim: a task that fails at start, a
shim that ignores Shutdown, a rootfs mount held busy, a failed undo, restart-recovery errors.

Every test is leak-checked (tests/leaks.py) before any fixture cleanup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from interop.shimlib import wait_process_exit

import runtime_v2.shim_cleanup as shim_cleanup_module
import runtime_v2.task_manager as task_manager_module
from plugins import errdefs
from runtime_v2 import CreateOpts, Status
from runtime_v2.api import events_pb2, mount_pb2, runc_options_pb2
from tests.faults import runc_whose_init_dies_before_start

from .conftest import TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for
from .test_restart_and_dead_shims import TASKS, start_sleeper


async def test_a_task_that_fails_at_start_says_why_and_deletes_cleanly(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    runc = runc_whose_init_dies_before_start(dirs.base)
    opts = CreateOpts(
        spec=spec_for(
            busybox_rootfs, ["sleep", "600"], task_id="nostart", namespace=dirs.namespace
        ),
        runtime_options=runc_options_pb2.Options(binary_name=str(runc)),
    )
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("nostart", opts, namespace=dirs.namespace)
        assert (await task.state()).status is Status.CREATED
        with pytest.raises(errdefs.ContainerdError) as caught:
            await task.start()
        assert "stopped" in str(caught.value), caught.value
        assert (await task.state()).status is Status.STOPPED
        await task_manager.delete("nostart", namespace=dirs.namespace)
    assert await task_manager.tasks(namespace=dirs.namespace) == []


async def test_a_failed_create_kills_a_shim_that_ignores_shutdown(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The create fails after the shim started, and the shim is stopped (SIGSTOP): it answers
    neither Delete nor Shutdown, so the undo runs the shim binary's delete and SIGKILLs it."""
    stopped: list[int] = []
    real_start = task_manager.shims.start

    async def start_then_stop_the_shim(*args: Any, **kw: Any) -> Any:
        task = await real_start(*args, **kw)
        os.kill(task.shim.shim_pid, signal.SIGSTOP)
        stopped.append(task.shim.shim_pid)

        async def create(**kw: Any) -> None:  # the Create RPC fails (it would hang)
            raise errdefs.FailedPrecondition("injected: the create failed")

        task.create = create
        return task

    monkeypatch.setattr(task_manager.shims, "start", start_then_stop_the_shim)
    spec = spec_for(busybox_rootfs, ["sleep", "600"], task_id="wedged", namespace=dirs.namespace)
    with caplog.at_level(logging.WARNING, logger="taskplane.runtime_v2.shim_manager"):
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(errdefs.FailedPrecondition, match="injected"):
                await task_manager.create("wedged", CreateOpts(spec=spec), namespace=dirs.namespace)
    assert "shim did not exit after Shutdown; killing it" in caplog.text
    assert stopped and not _running(stopped[0])
    assert await task_manager.tasks(namespace=dirs.namespace) == []


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed daemonized shim stays one: pid 1 here does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def test_a_delete_refused_for_a_busy_rootfs_changes_nothing_and_can_be_retried(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    """A process outside the container (cd'ed into it) holds the rootfs mount busy: the shim
    cannot unmount it (EBUSY), so the delete fails naming that and leaves the task as it was;
    once the holder is gone the same delete goes through."""
    spec = json.loads(
        spec_for(busybox_rootfs, ["sleep", "600"], task_id="busy", namespace=dirs.namespace)
    )
    spec["root"] = {"path": "rootfs", "readonly": True}  # the shim mounts it there
    rootfs = [mount_pb2.Mount(type="bind", source=str(busybox_rootfs), options=["rbind", "ro"])]
    opts = CreateOpts(spec=json.dumps(spec).encode(), rootfs=rootfs)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("busy", opts, namespace=dirs.namespace)
        await task.start()
        await task.kill(signal.SIGKILL)
        await task.wait()
        holder = subprocess.Popen(["sleep", "600"], cwd=dirs.bundles / "busy" / "rootfs")
        try:
            with pytest.raises(errdefs.ContainerdError) as caught:
                await task_manager.delete("busy", namespace=dirs.namespace)
        finally:
            holder.kill()
            holder.wait()
        assert "device or resource busy" in str(caught.value)
        assert str(dirs.bundles / "busy" / "rootfs") in str(caught.value)
        assert [t.id for t in await task_manager.tasks(namespace=dirs.namespace)] == ["busy"]
        assert (await task.state()).status is Status.STOPPED
        deleted = await task_manager.delete("busy", namespace=dirs.namespace)
    assert deleted.status == 137
    assert await task_manager.tasks(namespace=dirs.namespace) == []


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == str(path) for line in f)


async def test_after_a_dead_shim_a_busy_rootfs_mount_is_kept_and_reported(
    dirs: Dirs, busybox_rootfs: Path, host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The shim dies (SIGKILL) while a process outside the container holds the rootfs mount
    busy: the dead-shim cleanup's unmount gets EBUSY 50 times 50 ms apart and fails, as
    containerd's does (no lazy detach reporting success with the mount still busy); the
    failure is logged, the events are published, and once the holder is gone ``remove``
    takes the rest."""
    tasks = host.get("io.containerd.runtime.v2", "task")
    exchange = host.get("io.containerd.event.v1", "exchange")
    spec = json.loads(
        spec_for(busybox_rootfs, ["sleep", "600"], task_id="held", namespace=dirs.namespace)
    )
    spec["root"] = {"path": "rootfs", "readonly": True}
    rootfs = [mount_pb2.Mount(type="bind", source=str(busybox_rootfs), options=["rbind", "ro"])]
    opts = CreateOpts(spec=json.dumps(spec).encode(), rootfs=rootfs)
    mountpoint = dirs.bundles / "held" / "rootfs"
    async with asyncio.timeout(TIMEOUT):
        async with exchange.subscribe("/tasks/delete", namespace=dirs.namespace) as events:
            task = await tasks.create("held", opts, namespace=dirs.namespace)
            await task.start()
            assert _mounted(mountpoint)
            holder = subprocess.Popen(["sleep", "600"], cwd=mountpoint)
            try:
                with caplog.at_level(logging.WARNING):
                    os.kill(task.shim.shim_pid, signal.SIGKILL)
                    await events.get()  # the dead-shim cleanup is done
                assert _mounted(mountpoint)  # still busy, and said so
                assert (dirs.bundles / "held").is_dir()
                assert any(
                    "failed to remove the bundle" in r.getMessage()
                    and f"failed to unmount target {mountpoint}" in r.getMessage()
                    for r in caplog.records
                ), caplog.text
            finally:
                holder.kill()
                holder.wait()
        # remove first: the namespace's first listing would recover the remains itself.
        await tasks.remove("held", namespace=dirs.namespace)
        assert await tasks.tasks(namespace=dirs.namespace) == []
    assert not _mounted(mountpoint)
    assert not (dirs.bundles / "held").exists()


async def test_an_undo_that_fails_is_logged_and_left_to_restart_recovery(
    dirs: Dirs,
    busybox_rootfs: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A create fails (at feature validation), and the undo cannot remove the bundle either: a
    file sits in its rootfs dir, which Bundle.delete never removes recursively (it may be a
    mount's content). The caller gets the create's error; the undo's failure is logged. The
    next boot's restart recovery fails on the bundle too, says so and goes on with the others;
    once the file is gone a boot removes the bundle."""
    stray = dirs.bundles / "stuck" / "rootfs" / "stray"

    async def leave_a_file_then_fail(shims: Any, runtime: str, spec: Any, options: Any) -> None:
        stray.write_text("not ours to remove")
        raise errdefs.FailedPrecondition("injected: the runtime lacks a feature")

    first = await boot_host(dirs)
    try:
        tasks = first.get(*TASKS)
        async with asyncio.timeout(TIMEOUT):
            survivor = await start_sleeper(tasks, dirs, busybox_rootfs, "survivor")
            monkeypatch.setattr(
                task_manager_module, "validate_runtime_features", leave_a_file_then_fail
            )
            spec = spec_for(busybox_rootfs, ["true"], task_id="stuck", namespace=dirs.namespace)
            with caplog.at_level(logging.WARNING, logger="taskplane.runtime_v2.task_manager"):
                with pytest.raises(errdefs.FailedPrecondition, match="injected"):
                    await tasks.create("stuck", CreateOpts(spec=spec), namespace=dirs.namespace)
            monkeypatch.undo()
    finally:
        await first.aclose()
    assert "failed to remove the bundle after a failed create" in caplog.text
    assert stray.exists()

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        second = await boot_host(dirs)  # restart recovery cannot remove it either...
    try:
        await second.get(*TASKS).tasks(namespace=dirs.namespace)  # recovery: at first listing
        outcomes = {o.id: o.outcome for o in second.get(*TASKS).load_outcomes}
        assert outcomes["survivor"] == "reattached"  # ...and goes on with the others
        stuck = [
            r.getMessage() for r in caplog.records if f"{dirs.namespace}/stuck" in r.getMessage()
        ]
        assert stuck, caplog.text
        assert "Directory not empty" in caplog.text
        assert stray.exists()
    finally:
        await second.aclose()

    stray.unlink()
    third = await boot_host(dirs)
    try:
        await third.get(*TASKS).tasks(namespace=dirs.namespace)
        outcomes = {o.id: o.outcome for o in third.get(*TASKS).load_outcomes}
        assert outcomes["survivor"] == "reattached"
        assert outcomes["stuck"] in ("reaped", "removed")  # no shim ever ran for it
        assert not (dirs.bundles / "stuck").exists()
        assert not (dirs.work_dirs / "stuck").exists()
    finally:
        await cleanup_tasks(third.get(*TASKS), dirs.namespace)
        await third.aclose()
    del survivor


PEER = """
import asyncio, sys
import plugins.builtin, runtime_v2.builtin
from registry import boot_async

async def main() -> None:
    host = await boot_async({}, builtins=[plugins.builtin, runtime_v2.builtin], autoload=False,
                            root=sys.argv[1], state=sys.argv[2])
    print(host.get("io.containerd.shim.v1", "manager").serves_events, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_events_address_is_taken_over_from_a_killed_process(
    dirs: Dirs, busybox_rootfs: Path
) -> None:
    """Another taskplane process serves the events address and is SIGKILLed: this one takes
    the address over, and a real shim's events (its TaskExit) reach it."""
    peer = subprocess.Popen(
        [sys.executable, "-c", PEER, str(dirs.root), str(dirs.state)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        assert peer.stdout.readline() == "True\n"  # the peer serves the events address
        host = await boot_host(dirs)
        try:
            manager = host.get("io.containerd.shim.v1", "manager")
            assert not manager.serves_events
            peer.kill()
            peer.communicate()
            async with asyncio.timeout(TIMEOUT):  # only to stop a hang
                await manager.events_served.wait()
                tasks = host.get(*TASKS)
                exchange = host.get("io.containerd.event.v1", "exchange")
                spec = spec_for(busybox_rootfs, ["true"], task_id="heard", namespace=dirs.namespace)
                async with exchange.subscribe("/tasks/exit", namespace=dirs.namespace) as events:
                    task = await tasks.create(
                        "heard", CreateOpts(spec=spec), namespace=dirs.namespace
                    )
                    pid = await task.start()
                    exit = (await events.get()).unpack(events_pb2.TaskExit)  # via the shim
                assert (exit.container_id, exit.pid) == ("heard", pid)
                await tasks.delete("heard", namespace=dirs.namespace)
        finally:
            await host.aclose()
    finally:
        if peer.returncode is None:
            peer.kill()
            peer.communicate()


async def test_a_delete_on_the_closed_connection_of_a_dead_shim(
    dirs: Dirs, busybox_rootfs: Path, host: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shim is SIGKILLed and, while the dead-shim cleanup is still running its binary's
    delete, a delete of the task comes in: the Delete RPC meets the closed connection. The
    delete says so; between the two nothing is left (the container is killed, its runc state,
    bundle and socket go)."""
    tasks = host.get(*TASKS)
    real_run_delete = shim_cleanup_module.run_delete
    in_cleanup, go_on = asyncio.Event(), asyncio.Event()

    async def held_run_delete(binary: Any, bundle: Any) -> Any:
        in_cleanup.set()
        await go_on.wait()
        return await real_run_delete(binary, bundle)

    monkeypatch.setattr(shim_cleanup_module, "run_delete", held_run_delete)
    async with asyncio.timeout(TIMEOUT):
        task = await start_sleeper(tasks, dirs, busybox_rootfs, "gone")
        container_pid = await task.pid()
        shim = task.shim
        os.kill(shim.shim_pid, signal.SIGKILL)
        await in_cleanup.wait()  # the connection is closed, the cleanup has begun
        deleting = asyncio.ensure_future(tasks.delete("gone", namespace=dirs.namespace))
        go_on.set()
        # The dead-shim cleanup holds the task's lock (runtime_v2/locks.py): the delete waits
        # for it and then finds the task gone. Without the lock it would meet the closed
        # connection (Unavailable) and race the cleanup for the bundle.
        with pytest.raises(errdefs.NotFound, match='task "gone"'):
            await deleting
        await wait_process_exit(container_pid)
    assert await tasks.tasks(namespace=dirs.namespace) == []


async def test_a_bundle_that_cannot_be_removed_after_the_delete_is_logged_and_no_shim_is_left(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The shim deletes the task and exits, but the bundle cannot be removed (a file sits in
    its rootfs dir, which is never removed recursively): as containerd does, the failure is
    logged naming the bundle and the Exit returned; the task is gone from the manager and its
    shim from the system; a boot removes the rest once it can."""
    async with asyncio.timeout(TIMEOUT):
        task = await start_sleeper(task_manager, dirs, busybox_rootfs, "sticky")
        shim_pid = task.shim.shim_pid
        await task.kill(signal.SIGKILL)
        await task.wait()
        stray = dirs.bundles / "sticky" / "rootfs" / "stray"
        stray.write_text("not ours to remove")
        rootfs = dirs.bundles / "sticky" / "rootfs"
        with caplog.at_level(logging.WARNING):
            exit_ = await task_manager.delete("sticky", namespace=dirs.namespace)
        assert exit_.status == 128 + signal.SIGKILL
        assert f"failed to remove bundle rootfs {rootfs}: Directory not empty" in caplog.text
        await wait_process_exit(shim_pid)  # the shim went all the same
    assert await task_manager.tasks(namespace=dirs.namespace) == []
    assert stray.exists()
    stray.unlink()
    host = await boot_host(dirs)
    try:
        await host.get(*TASKS).tasks(namespace=dirs.namespace)  # recovery: at first listing
        assert [(o.id, o.outcome) for o in host.get(*TASKS).load_outcomes] == [("sticky", "reaped")]
        assert not (dirs.bundles / "sticky").exists()
    finally:
        await host.aclose()
