"""An embedder that misuses taskplane's API: ``mypy --strict`` must flag every line marked
``# error: <code>`` here, and nothing else (checked by tests/test_embedder_types.py; this file
is never run and is outside the normal mypy run)."""

from __future__ import annotations

import taskplane
from taskplane.containers import Client


async def misuse() -> None:
    host = await taskplane.boot_async()
    client = Client(host, "default")
    task = await client.task("web")
    await task.strat()  # error: attr-defined
    exit_ = await task.wait()
    print(exit_.stauts)  # error: attr-defined
    await client.delete(42)  # error: arg-type
    result = await client.run("web", {"process": {"args": ["true"]}})
    print(result.exit_status + "1")  # error: operator
    Client("not a host")  # error: arg-type
    await client.task_manager.tasks(namespace=3)  # error: arg-type
    state = await task.state()
    print(state.status.upper())  # error: attr-defined
    for entry in await client.entries():
        print(entry.pid.strip())  # error: attr-defined
