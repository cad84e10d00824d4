"""A probe, not collected by default (its name does not match ``test_*.py``): a task started and
never deleted. Run by ``test_leak_checker.py``, which asserts the leak checker fails it.

PROBE_RECORD names a file where the probe writes its namespace and base dir, so the caller can
check that the safety net cleaned up after the failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from runtime_v2 import CreateOpts

from .conftest import TIMEOUT, Dirs, spec_for


async def test_probe_starts_a_task_and_never_deletes_it(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    spec = spec_for(busybox_rootfs, ["sleep", "600"], task_id="probe", namespace=dirs.namespace)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("probe", CreateOpts(spec=spec), namespace=dirs.namespace)
        pid = await task.start()
    Path(os.environ["PROBE_RECORD"]).write_text(
        json.dumps({"namespace": dirs.namespace, "base": str(dirs.base), "pid": pid})
    )
