"""Shims outlive the process that started them; dead shims are reaped, now or by the next
process, at the first use of their namespace (restart recovery no longer runs at boot)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from interop.shimlib import wait_process_exit

import plugins.builtin
import runtime_v2.builtin
from plugins import errdefs
from plugins.containerd_config import CATALOGUE, TIMEOUT_SHIM_LOAD
from registry import boot_async
from runtime_v2 import CreateOpts, Status
from runtime_v2.api import events_pb2

from .conftest import TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for

TASKS = ("io.containerd.runtime.v2", "task")


def process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def first_listing(tasks: Any, namespace: str) -> list[Any]:
    """What restart recovery did at ``namespace``'s first listing, after checking that the
    boot itself recovered nothing (recovery is deferred to first use)."""
    assert tasks.load_outcomes == []
    await tasks.tasks(namespace=namespace)
    return list(tasks.load_outcomes)


async def start_sleeper(tasks: Any, dirs: Dirs, rootfs: Path, task_id: str) -> Any:
    spec = spec_for(rootfs, ["/bin/sleep", "600"], task_id=task_id, namespace=dirs.namespace)
    task = await tasks.create(task_id, CreateOpts(spec=spec), namespace=dirs.namespace)
    await task.start()
    return task


async def test_a_second_process_lists_kills_and_deletes_tasks_of_the_first(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    first = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = first.get(*TASKS)
            for task_id in ("one", "two"):
                await start_sleeper(tasks, dirs, busybox_rootfs, task_id)
            spec = spec_for(
                busybox_rootfs,
                ["/bin/sh", "-c", "exit 5"],
                task_id="done",
                namespace=dirs.namespace,
            )
            done = await tasks.create("done", CreateOpts(spec=spec), namespace=dirs.namespace)
            await done.start()
            assert (await done.wait()).status == 5
            shim_pids = {t.id: t.shim.shim_pid for t in await tasks.tasks(namespace=dirs.namespace)}
    finally:
        await first.aclose()  # closes connections only: the shims keep running
    assert all(alive(pid) for pid in shim_pids.values())

    second = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = second.get(*TASKS)
            outcomes = {(o.id, o.outcome) for o in await first_listing(tasks, dirs.namespace)}
            assert outcomes == {
                ("one", "reattached"),
                ("two", "reattached"),
                ("done", "reattached"),
            }
            listed = await tasks.tasks(namespace=dirs.namespace)
            assert sorted(t.id for t in listed) == ["done", "one", "two"]
            for task_id in ("one", "two"):
                task = await tasks.get(task_id, namespace=dirs.namespace)
                assert (await task.state()).status is Status.RUNNING
                await task.kill(signal.SIGKILL)
                assert (await task.wait()).status == 137
                await tasks.delete(task_id, namespace=dirs.namespace)
            done = await tasks.get("done", namespace=dirs.namespace)
            assert (await done.wait()).status == 5
            assert (await tasks.delete("done", namespace=dirs.namespace)).status == 5
            assert await tasks.tasks(namespace=dirs.namespace) == []
    finally:
        await cleanup_tasks(second.get(*TASKS), dirs.namespace)
        await second.aclose()
    for pid in shim_pids.values():
        await wait_process_exit(pid)


async def test_a_shim_killed_while_no_manager_runs_is_reaped_at_the_next_boot(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    first = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = first.get(*TASKS)
            task = await start_sleeper(tasks, dirs, busybox_rootfs, "victim")
            survivor = await start_sleeper(tasks, dirs, busybox_rootfs, "survivor")
            shim_pid = task.shim.shim_pid
            container_pid = await task.pid()
            del survivor
    finally:
        await first.aclose()
    os.kill(shim_pid, signal.SIGKILL)
    await wait_process_exit(shim_pid)
    assert alive(container_pid)  # the container outlives its shim...

    second = await boot_host(dirs)
    try:
        tasks = second.get(*TASKS)
        outcomes = {o.id: o for o in await first_listing(tasks, dirs.namespace)}
        assert outcomes["victim"].outcome == "reaped", outcomes["victim"]
        assert outcomes["survivor"].outcome == "reattached"
        assert not (dirs.bundles / "victim").exists()
        assert not (dirs.work_dirs / "victim").exists()
        await wait_process_exit(container_pid)  # ...until the shim's delete command kills it
        assert [t.id for t in await tasks.tasks(namespace=dirs.namespace)] == ["survivor"]
    finally:
        await cleanup_tasks(second.get(*TASKS), dirs.namespace)
        await second.aclose()


async def test_a_shim_killed_while_the_manager_runs_publishes_exit_and_delete(
    dirs: Dirs, busybox_rootfs: Path, host: Any
) -> None:
    tasks = host.get(*TASKS)
    exchange = host.get("io.containerd.event.v1", "exchange")
    async with asyncio.timeout(TIMEOUT):
        async with exchange.subscribe("/tasks/*", namespace=dirs.namespace) as events:
            task = await start_sleeper(tasks, dirs, busybox_rootfs, "doomed")
            container_pid = await task.pid()
            os.kill(task.shim.shim_pid, signal.SIGKILL)
            # Everything up to /tasks/delete, the last event of a dead shim: a renamed exit
            # topic shows at once in the list instead of as a wait that never ends.
            received = [await events.get()]
            while received[-1].topic != "/tasks/delete":
                received.append(await events.get())
        assert [e.topic for e in received] == [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete",
        ]
        exit_event, delete_event = received[-2:]
        exit = exit_event.unpack(events_pb2.TaskExit)
        assert (exit.container_id, exit.id) == ("doomed", "doomed")
        assert exit.pid == container_pid
        assert exit.exit_status == 137
        deleted = delete_event.unpack(events_pb2.TaskDelete)
        assert deleted.container_id == "doomed"
        assert await tasks.tasks(namespace=dirs.namespace) == []
        with pytest.raises(errdefs.NotFound):
            await tasks.get("doomed", namespace=dirs.namespace)
        await wait_process_exit(container_pid)
    assert not (dirs.bundles / "doomed").exists()
    assert not (dirs.work_dirs / "doomed").exists()


async def test_events_from_the_shim_reach_subscribers_in_order(
    dirs: Dirs, busybox_rootfs: Path, host: Any
) -> None:
    tasks = host.get(*TASKS)
    exchange = host.get("io.containerd.event.v1", "exchange")
    spec = spec_for(busybox_rootfs, ["/bin/true"], task_id="evt", namespace=dirs.namespace)
    async with asyncio.timeout(TIMEOUT):
        async with exchange.subscribe("/tasks/*", namespace=dirs.namespace) as events:
            task = await tasks.create("evt", CreateOpts(spec=spec), namespace=dirs.namespace)
            await task.start()
            await task.wait()
            await tasks.delete("evt", namespace=dirs.namespace)
            topics = []
            while len(topics) < 4:
                topics.append((await events.get()).topic)
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]


async def test_restart_removes_empty_and_orphaned_bundles_and_stray_work_dirs(
    dirs: Dirs, leak_check: None
) -> None:
    empty = dirs.bundles / "empty"
    orphan = dirs.bundles / "orphan"
    hidden = dirs.bundles / ".hidden"
    for d in (empty, orphan, hidden):
        d.mkdir(parents=True)
    (orphan / "config.json").write_text("{}")
    (dirs.bundles / "plain-file").write_text("x")
    stray = dirs.work_dirs / "stray"
    stray.mkdir(parents=True)
    host = await boot_host(dirs)
    try:
        loaded = await first_listing(host.get(*TASKS), dirs.namespace)
        outcomes = {o.id: (o.outcome, o.reason) for o in loaded}
    finally:
        await host.aclose()
    assert outcomes["empty"] == ("removed", "empty bundle")
    assert outcomes["orphan"][0] == "removed"
    assert "no shim-binary-path" in outcomes["orphan"][1]
    assert set(outcomes) == {"empty", "orphan"}
    assert not empty.exists() and not orphan.exists() and not stray.exists()
    assert hidden.exists() and (dirs.bundles / "plain-file").exists()
    hidden.rmdir()
    (dirs.bundles / "plain-file").unlink()


async def test_two_processes_on_one_state_dir_share_tasks_without_stepping_on_each_other(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    first = await boot_host(dirs)
    second = None
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks_a = first.get(*TASKS)
            await start_sleeper(tasks_a, dirs, busybox_rootfs, "shared")
            second = await boot_host(dirs)
            assert first.get("io.containerd.shim.v1", "manager").serves_events
            assert not second.get("io.containerd.shim.v1", "manager").serves_events
            tasks_b = second.get(*TASKS)
            loaded = await first_listing(tasks_b, dirs.namespace)
            assert [(o.id, o.outcome) for o in loaded] == [("shared", "reattached")]
            exchange_b = second.get("io.containerd.event.v1", "exchange")
            shim_b = (await tasks_b.get("shared", namespace=dirs.namespace)).shim
            async with exchange_b.subscribe("/tasks/*", namespace=dirs.namespace) as events:
                task = await tasks_a.get("shared", namespace=dirs.namespace)
                await task.kill(signal.SIGKILL)
                await task.wait()
                await tasks_a.delete("shared", namespace=dirs.namespace)
                # The second process sees the connection drop and forgets the task quietly.
                await shim_b.client.wait_closed()  # its on-close callbacks have returned
                assert await tasks_b.tasks(namespace=dirs.namespace) == []
                # The second process publishes nothing for the task (no dead-shim exit 255):
                # it receives the shim's own events, shared by the first through the journal.
                received = []
                while not received or received[-1].topic != "/tasks/delete":
                    received.append(await events.get(timeout=TIMEOUT))
                # The barrier: published now, it comes after anything the second published
                # (its on-close callbacks have returned), so nothing of it is missed.
                await exchange_b.publish(
                    "/tasks/oom",
                    events_pb2.TaskOOM(container_id="barrier"),
                    namespace=dirs.namespace,
                )
                while received[-1].topic != "/tasks/oom":
                    received.append(await events.get(timeout=TIMEOUT))
                statuses = [
                    e.event.exit_status
                    for e in received[:-1]
                    if e.topic not in ("/tasks/start", "/tasks/oom")
                ]
                assert statuses and set(statuses) == {128 + signal.SIGKILL}, received
    finally:
        if second is not None:
            await second.aclose()
        await cleanup_tasks(first.get(*TASKS), dirs.namespace)
        await first.aclose()


async def test_a_stopped_shim_is_skipped_at_boot_without_waiting_and_reattached_once_resumed(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    """A SIGSTOPped runc shim still accepts connections but cannot answer: the next boot
    judges it by its process (left in place, untouched) instead of waiting out the load
    deadline, and once it runs again the boot after reattaches it."""
    first = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            task = await start_sleeper(first.get(*TASKS), dirs, busybox_rootfs, "frozen")
            shim_pid = task.shim.shim_pid
    finally:
        await first.aclose()
    os.kill(shim_pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(TIMEOUT):
            # A stop takes effect when the shim is next scheduled; it is not our child, so
            # its state is the only way to know.
            while process_state(shim_pid) != "T":
                await asyncio.sleep(0)
        # The load deadline is far beyond the hang-stopper: only the process check ends it.
        async with asyncio.timeout(TIMEOUT):
            second = await boot_async(
                {"version": 3, "timeouts": {TIMEOUT_SHIM_LOAD: "1h"}},
                builtins=[plugins.builtin, runtime_v2.builtin],
                autoload=False,
                root=str(dirs.root),
                state=str(dirs.state),
                known=CATALOGUE,
            )
        try:
            async with asyncio.timeout(TIMEOUT):
                loaded = await first_listing(second.get(*TASKS), dirs.namespace)
            outcomes = {o.id: (o.outcome, o.reason) for o in loaded}
        finally:
            await second.aclose()
        assert outcomes == {
            "frozen": ("skipped", f"shim process {shim_pid} is stopped; left in place")
        }
    finally:
        os.kill(shim_pid, signal.SIGCONT)
    third = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = third.get(*TASKS)
            loaded = await first_listing(tasks, dirs.namespace)
            assert [(o.id, o.outcome) for o in loaded] == [("frozen", "reattached")]
            await cleanup_tasks(tasks, dirs.namespace)
    finally:
        await third.aclose()
