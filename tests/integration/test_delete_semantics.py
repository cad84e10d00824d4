"""Delete as containerd's ``shimTask.delete`` does it, against every shim x runc combination:
a Delete the shim answers NotFound still publishes the exit and delete (the task stays
registered through the shutdown), and a bundle that cannot be removed once the shim deleted the
task is logged while the Exit is returned."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plugins import errdefs
from runtime_v2 import CreateOpts
from runtime_v2.api import task_v3_pb2

from .conftest import TIMEOUT, Dirs, spec_for
from .runtimes import Runtime


async def _exited(tasks: Any, dirs: Dirs, rootfs: Path, task_id: str, runtime: Runtime) -> Any:
    """Task ``task_id`` created, run (``true``) and exited, not deleted."""
    spec = spec_for(rootfs, ["true"], task_id=task_id, namespace=dirs.namespace)
    opts = CreateOpts(spec=spec, **runtime.create_kw())
    task = await tasks.create(task_id, opts, namespace=dirs.namespace)
    await task.start()
    await task.wait()
    return task


async def test_a_delete_answered_not_found_still_publishes_exit_and_delete(
    dirs: Dirs, busybox_rootfs: Path, host: Any, task_manager: Any, runtime: Runtime
) -> None:
    exchange = host.get("io.containerd.event.v1", "exchange")
    ns = dirs.namespace
    async with asyncio.timeout(TIMEOUT):
        task = await _exited(task_manager, dirs, busybox_rootfs, "twice", runtime)
        # An earlier delete reached the shim and was cut off before its teardown.
        await task.shim.call(
            "Delete", task_v3_pb2.DeleteRequest(id="twice"), task_v3_pb2.DeleteResponse
        )
        async with exchange.subscribe("/tasks/exit", "/tasks/delete", namespace=ns) as sub:
            with pytest.raises(errdefs.NotFound, match=r"^failed to delete task: "):
                await task_manager.delete("twice", namespace=ns)
            # What containerd's dead-shim cleanup publishes (the shim's own, forwarded
            # late, carry the real pid: skipped).
            ours = []
            while len(ours) < 2:
                envelope = await sub.get(timeout=TIMEOUT)
                if envelope.event.pid == 0:
                    ours.append(envelope)
    assert [(e.topic, e.event.container_id, e.event.exit_status) for e in ours] == [
        ("/tasks/exit", "twice", 255),
        ("/tasks/delete", "twice", 255),
    ]
    assert await task_manager.tasks(namespace=ns) == []
    assert not (dirs.bundles / "twice").exists()
    assert task_manager.step("twice", namespace=ns) == ""


@contextlib.contextmanager
def _busy_mount(path: str) -> Any:
    """A tmpfs at ``path`` kept busy by an open file while the block runs."""
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
    fd = os.open(os.path.join(path, "held"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield
    finally:
        os.close(fd)


async def test_a_bundle_that_cannot_be_removed_is_logged_and_the_exit_returned(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ns = dirs.namespace
    async with asyncio.timeout(TIMEOUT):
        task = await _exited(task_manager, dirs, busybox_rootfs, "stuck", runtime)
        with _busy_mount(task.shim.bundle.rootfs), caplog.at_level(logging.WARNING):
            exit_ = await task_manager.delete("stuck", namespace=ns)
        assert exit_.status == 0 and exit_.pid > 0
        assert [r.getMessage() for r in caplog.records if "bundle" in r.getMessage()] == [
            f"task {ns}/stuck: failed to remove the bundle: [Errno 16] unmount rootfs"
            f" {dirs.bundles}/stuck/rootfs: failed to unmount target {dirs.bundles}/stuck/rootfs:"
            " device or resource busy"
        ]
        # The task is gone from the shim and from taskplane; what is left is removable (remove
        # first: the namespace's first listing would recover the remains itself).
        assert not task_manager.shims.connected(ns)
        assert (dirs.bundles / "stuck").is_dir()
        assert await task_manager.remove("stuck", namespace=ns) is None
        assert await task_manager.tasks(namespace=ns) == []
    assert not (dirs.bundles / "stuck").exists()
