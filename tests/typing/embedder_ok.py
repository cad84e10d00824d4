"""An embedder that uses taskplane's API as documented: ``mypy --strict`` must accept it
(checked by tests/test_embedder_types.py; this file is never run)."""

from __future__ import annotations

import taskplane
from taskplane.containers import Client, RunResult


async def use() -> int:
    async with await taskplane.boot_async(root="/var/lib/x", state="/run/x") as host:
        client = Client(host, "default", cleanup_on_close=True)
        result: RunResult = await client.run("web", {"process": {"args": ["true"]}})
        task = await client.create_task("sleeper", {"process": {"args": ["sleep", "1"]}})
        await task.start()
        state = await task.state()
        print(state.status.value, state.pid, result.stdout.decode())
        exit_ = await task.wait()
        deleted = await client.delete("sleeper")
        rows = [f"{e.id} {e.pid} {e.status}" for e in await client.entries()]
        print(rows, deleted.status if deleted is not None else None)
        return exit_.status
