"""Cleanup and recovery paths provoked with the real runc shim: a task that fails at start, a
shim that ignores Shutdown, a rootfs mount held busy, a failed undo, restart-recovery errors.

Every test is leak-checked (tests/leaks.py) before any fixture cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import runtime_v2.task_manager as task_manager_module
from plugins import errdefs
from runtime_v2 import CreateOpts, Status
from runtime_v2.api import runc_options_pb2
from tests.faults import runc_whose_init_dies_before_start

from .conftest import TIMEOUT, Dirs, spec_for


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

    async def stop_the_shim_then_fail(shims: Any, runtime: str, spec: Any, options: Any) -> None:
        shim = shims.shims.get(dirs.namespace, "wedged")
        os.kill(shim.shim_pid, signal.SIGSTOP)
        stopped.append(shim.shim_pid)
        raise errdefs.FailedPrecondition("injected: the runtime lacks a feature")

    monkeypatch.setattr(task_manager_module, "validate_runtime_features", stop_the_shim_then_fail)
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
