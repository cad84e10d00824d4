"""Cleanup and recovery paths provoked with the real runc shim: a task that fails at start, a
shim that ignores Shutdown, a rootfs mount held busy, a failed undo, restart-recovery errors.

Every test is leak-checked (tests/leaks.py) before any fixture cleanup.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

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
