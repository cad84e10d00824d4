"""Shim grouping as containerd's CRI uses it: tasks whose specs carry the same
``io.kubernetes.cri.sandbox-id`` (or ``io.containerd.runc.v2.group``) annotation share one shim.

The runc shim decides in ``start`` (it finds the group's socket live and answers with its
address); taskplane must not shut the shared shim down or remove its socket when one task is
deleted, must reattach every task of it at restart, and must clean every task up when it dies.
Each test runs against every shim x runc combination.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from interop.shimlib import wait_process_exit

from plugins import errdefs
from runtime_v2 import CreateOpts, Status
from runtime_v2.api.events_pb2 import TaskDelete

from .conftest import SOCKET_DIR, TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for
from .runtimes import Runtime

SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
GROUP = "io.containerd.runc.v2.group"


def _opts(
    dirs: Dirs, rootfs: Path, task_id: str, runtime: Runtime, annotations: dict[str, str]
) -> CreateOpts:
    spec = json.loads(
        spec_for(rootfs, ["/bin/sleep", "600"], task_id=task_id, namespace=dirs.namespace)
    )
    spec["annotations"] = {**spec.get("annotations", {}), **annotations}
    return CreateOpts(spec=json.dumps(spec).encode(), **runtime.create_kw())


async def _create_group(
    tasks: Any, dirs: Dirs, rootfs: Path, runtime: Runtime, ids: list[str], annotation: str
) -> list[Any]:
    """Create and start ``ids`` in one group named after the first id (so the leak checker
    knows the group's socket name)."""
    created = []
    for task_id in ids:
        opts = _opts(dirs, rootfs, task_id, runtime, {annotation: ids[0]})
        task = await tasks.create(task_id, opts, namespace=dirs.namespace)
        await task.start()
        created.append(task)
    return created


def _socket(task: Any) -> Path:
    address = task.shim.address
    assert address.startswith("unix://")
    return Path(address[len("unix://") :])


@pytest.mark.parametrize("annotation", [SANDBOX_ID, GROUP])
async def test_grouped_tasks_share_one_shim_until_the_last_delete(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime, annotation: str
) -> None:
    async with asyncio.timeout(TIMEOUT):
        first, second, third = await _create_group(
            task_manager, dirs, busybox_rootfs, runtime, ["pod", "app", "side"], annotation
        )
        shim_pid = first.shim.shim_pid
        assert shim_pid > 0
        assert {t.shim.shim_pid for t in (first, second, third)} == {shim_pid}
        assert {t.shim.address for t in (first, second, third)} == {first.shim.address}
        socket = _socket(first)
        assert socket.parent == SOCKET_DIR

        # Deleting one task (here the one that started the shim) leaves the shim, its socket
        # and the other tasks running.
        await first.kill(signal.SIGKILL)
        await first.wait()
        await task_manager.delete("pod", namespace=dirs.namespace)
        os.kill(shim_pid, 0)  # still alive
        assert socket.exists()
        assert (await second.state()).status is Status.RUNNING
        assert (await third.state()).status is Status.RUNNING
        assert [t.id for t in await task_manager.tasks(namespace=dirs.namespace)] == [
            "app",
            "side",
        ]
        await second.kill(signal.SIGKILL)
        await second.wait()
        await task_manager.delete("app", namespace=dirs.namespace)
        os.kill(shim_pid, 0)
        assert (await third.state()).status is Status.RUNNING

        # The last delete shuts it down.
        await third.kill(signal.SIGKILL)
        await third.wait()
        await task_manager.delete("side", namespace=dirs.namespace)
        await wait_process_exit(shim_pid)
    assert not socket.exists()


async def test_restart_recovery_reattaches_every_task_of_a_shared_shim(
    dirs: Dirs, busybox_rootfs: Path, runtime: Runtime, leak_check: None
) -> None:
    host = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            tasks = host.get("io.containerd.runtime.v2", "task")
            created = await _create_group(
                tasks, dirs, busybox_rootfs, runtime, ["pod", "app"], SANDBOX_ID
            )
            shim_pid = created[0].shim.shim_pid
    finally:
        await host.aclose()  # the shim keeps running

    host = await boot_host(dirs)
    try:
        tasks = host.get("io.containerd.runtime.v2", "task")
        await tasks.tasks(namespace=dirs.namespace)  # recovery runs at the first listing
        outcomes = sorted((o.id, o.outcome) for o in tasks.load_outcomes)
        assert outcomes == [("app", "reattached"), ("pod", "reattached")]
        async with asyncio.timeout(TIMEOUT):
            pod = await tasks.get("pod", namespace=dirs.namespace)
            app = await tasks.get("app", namespace=dirs.namespace)
            assert pod.shim.shim_pid == app.shim.shim_pid == shim_pid
            await app.kill(signal.SIGKILL)
            assert (await app.wait()).status == 128 + signal.SIGKILL
            await tasks.delete("app", namespace=dirs.namespace)
            assert (await pod.state()).status is Status.RUNNING
            await pod.kill(signal.SIGKILL)
            await pod.wait()
            await tasks.delete("pod", namespace=dirs.namespace)
            await wait_process_exit(shim_pid)
    finally:
        await cleanup_tasks(host.get("io.containerd.runtime.v2", "task"), dirs.namespace)
        await host.aclose()


async def test_when_the_shared_shim_dies_every_task_of_it_is_cleaned_up(
    dirs: Dirs, busybox_rootfs: Path, host: Any, runtime: Runtime
) -> None:
    tasks = host.get("io.containerd.runtime.v2", "task")
    exchange = host.get("io.containerd.event.v1", "exchange")
    async with asyncio.timeout(TIMEOUT):
        created = await _create_group(
            tasks, dirs, busybox_rootfs, runtime, ["pod", "app"], SANDBOX_ID
        )
        socket = _socket(created[0])
        async with exchange.subscribe("/tasks/delete", namespace=dirs.namespace) as events:
            os.kill(created[0].shim.shim_pid, signal.SIGKILL)
            deleted = {(await events.get()).unpack(TaskDelete).container_id for _ in range(2)}
    assert deleted == {"pod", "app"}
    assert await tasks.tasks(namespace=dirs.namespace) == []
    for task_id in ("pod", "app"):
        with pytest.raises(errdefs.NotFound):
            await tasks.get(task_id, namespace=dirs.namespace)
        assert not (dirs.bundles / task_id).exists()
    assert not socket.exists()


async def test_a_failed_create_in_a_group_leaves_the_shared_shim_and_its_tasks_running(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        [pod] = await _create_group(task_manager, dirs, busybox_rootfs, runtime, ["pod"], GROUP)
        spec = json.loads(
            spec_for(busybox_rootfs, ["/no/such/binary"], task_id="bad", namespace=dirs.namespace)
        )
        spec["annotations"] = {GROUP: "pod"}
        opts = CreateOpts(spec=json.dumps(spec).encode(), **runtime.create_kw())
        with pytest.raises(errdefs.ContainerdError, match="failed to create shim task"):
            await task_manager.create("bad", opts, namespace=dirs.namespace)
        assert not (dirs.bundles / "bad").exists()
        # The shim staying after Shutdown is expected here, not a shim to kill.
        assert "did not exit after Shutdown" not in caplog.text
        os.kill(pod.shim.shim_pid, 0)  # the shared shim is alive
        assert (await pod.state()).status is Status.RUNNING
        assert _socket(pod).exists()
        await pod.kill(signal.SIGKILL)
        await pod.wait()
        await task_manager.delete("pod", namespace=dirs.namespace)
