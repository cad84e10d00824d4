"""Sandboxed tasks (containerd's ``CreateOpts.SandboxID``): tasks created with a sandbox ID run
in the sandbox task's shim, and deleting one leaves that shim running. Against every shim x
runc combination, with two tasks on one sandbox shim."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from interop.shimlib import wait_process_exit

from plugins import errdefs
from runtime_v2 import CreateOpts, Status
from runtime_v2.shim import Shim

from .conftest import TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for
from .runtimes import Runtime


def _opts(
    dirs: Dirs, rootfs: Path, task_id: str, runtime: Runtime, sandbox: str = ""
) -> CreateOpts:
    spec = spec_for(rootfs, ["/bin/sleep", "600"], task_id=task_id, namespace=dirs.namespace)
    return CreateOpts(spec=spec, sandbox_id=sandbox, **runtime.create_kw())


async def _sandbox_and_member(
    tasks: Any, dirs: Dirs, rootfs: Path, runtime: Runtime, member: str
) -> tuple[Any, Any]:
    """Start the sandbox task ``sbx`` and the task ``member`` in it."""
    started = []
    for task_id, sandbox in (("sbx", ""), (member, "sbx")):
        opts = _opts(dirs, rootfs, task_id, runtime, sandbox)
        task = await tasks.create(task_id, opts, namespace=dirs.namespace)
        await task.start()
        started.append(task)
    return started[0], started[1]


async def _stop_and_delete(tasks: Any, task: Any, ns: str) -> None:
    await task.kill(signal.SIGKILL)
    await task.wait()
    await tasks.delete(task.id, namespace=ns)


async def test_two_sandboxed_tasks_share_the_sandbox_shim_which_outlives_their_delete(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = dirs.namespace
    called: list[tuple[str, str]] = []
    real_call = Shim.call

    async def spy(self: Shim, method: str, *args: Any, **kwargs: Any) -> Any:
        called.append((self.id, method))
        return await real_call(self, method, *args, **kwargs)

    monkeypatch.setattr(Shim, "call", spy)
    async with asyncio.timeout(TIMEOUT):
        sandbox = await task_manager.create(
            "sbx", _opts(dirs, busybox_rootfs, "sbx", runtime), namespace=ns
        )
        await sandbox.start()
        members = []
        for task_id in ("one", "two"):
            opts = _opts(dirs, busybox_rootfs, task_id, runtime, sandbox="sbx")
            task = await task_manager.create(task_id, opts, namespace=ns)
            await task.start()
            members.append(task)
        shim_pid = sandbox.shim.shim_pid
        for task in members:
            assert task.shim.shim_pid == shim_pid  # no shim of their own
            assert task.shim.address == sandbox.shim.address
            assert (dirs.bundles / task.id / "sandbox").read_text() == "sbx"
            assert (await task.state()).status is Status.RUNNING

        await _stop_and_delete(task_manager, members[0], ns)
        assert ("one", "Shutdown") not in called  # the sandbox's shim is not asked to go
        assert (await members[1].state()).status is Status.RUNNING
        await _stop_and_delete(task_manager, members[1], ns)
        assert ("two", "Shutdown") not in called
        assert (await sandbox.state()).status is Status.RUNNING
        os.kill(shim_pid, 0)  # still there

        await _stop_and_delete(task_manager, sandbox, ns)
        await wait_process_exit(shim_pid, TIMEOUT)
    assert await task_manager.tasks(namespace=ns) == []


async def test_a_sandboxed_task_outliving_its_sandbox_task_takes_the_shim_with_it(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    ns = dirs.namespace
    async with asyncio.timeout(TIMEOUT):
        sandbox, task = await _sandbox_and_member(
            task_manager, dirs, busybox_rootfs, runtime, "late"
        )
        shim_pid = sandbox.shim.shim_pid
        await _stop_and_delete(task_manager, sandbox, ns)
        os.kill(shim_pid, 0)  # it still serves "late"
        await _stop_and_delete(task_manager, task, ns)
        await wait_process_exit(shim_pid, TIMEOUT)  # no shim left running with no task


async def test_a_task_in_an_unknown_sandbox_is_refused_and_leaves_nothing(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(dirs, busybox_rootfs, "lost", runtime, sandbox="nosuch")
    with pytest.raises(
        errdefs.NotFound, match=r"^failed to start shim: can't find sandbox nosuch$"
    ):
        await task_manager.create("lost", opts, namespace=dirs.namespace)
    assert not (dirs.bundles / "lost").exists()


async def test_a_later_process_reattaches_a_sandboxed_task_as_sandboxed(
    dirs: Dirs, busybox_rootfs: Path, runtime: Runtime, leak_check: None
) -> None:
    ns = dirs.namespace
    first = await boot_host(dirs)
    try:
        tasks = first.get("io.containerd.runtime.v2", "task")
        async with asyncio.timeout(TIMEOUT):
            await _sandbox_and_member(tasks, dirs, busybox_rootfs, runtime, "one")
    finally:
        await first.aclose()  # the tasks outlive it
    second = await boot_host(dirs)
    try:
        tasks = second.get("io.containerd.runtime.v2", "task")
        member = await tasks.get("one", namespace=ns)
        sandbox = await tasks.get("sbx", namespace=ns)
        assert member.shim.sandbox_id == "sbx" and sandbox.shim.sandbox_id == ""
        assert member.shim.shim_pid == sandbox.shim.shim_pid
        async with asyncio.timeout(TIMEOUT):
            await _stop_and_delete(tasks, member, ns)
            assert (await sandbox.state()).status is Status.RUNNING
            await _stop_and_delete(tasks, sandbox, ns)
    finally:
        await cleanup_tasks(second.get("io.containerd.runtime.v2", "task"), ns)
        await second.aclose()
