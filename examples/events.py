"""Watch a task's events: the decoded messages the runc shim sends, as an embedder sees them.

Run it as root on Linux with runc and containerd-shim-runc-v2 installed::

    python examples/events.py            # builds a busybox rootfs in a temporary directory
    python examples/events.py ROOTFS     # or uses yours

Every process on the state dir sees these events, whichever one the shim forwards them to
(``taskplane events`` in another terminal prints them too).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile

import taskplane
from runtime_v2.api import events_pb2
from taskplane import oci
from taskplane.containers import Client
from taskplane.rootfs import build_busybox_rootfs


async def main(rootfs: str, work: str, namespace: str = "demo") -> None:
    async with await taskplane.boot_async(root=f"{work}/root", state=f"{work}/state") as host:
        exchange = host.get("io.containerd.event.v1", "exchange")
        client = Client(host, namespace=namespace)
        async with exchange.subscribe("/tasks/*", namespace=namespace) as events:
            spec = oci.default_spec(
                "web", rootfs=rootfs, namespace=namespace, args=["/bin/sh", "-c", "exit 3"]
            )
            await client.run("web", spec)
            async for envelope in events:
                event = envelope.event  # the decoded message, e.g. an events_pb2.TaskExit
                if isinstance(event, events_pb2.TaskExit):
                    print(f"{envelope.topic}: {event.id} exited with status {event.exit_status}")
                else:
                    print(f"{envelope.topic}: {event.container_id}")
                if envelope.topic == "/tasks/delete":
                    break


if __name__ == "__main__":
    work = tempfile.mkdtemp(prefix="tp-events-", dir="/tmp")
    try:
        rootfs = sys.argv[1] if len(sys.argv) > 1 else str(build_busybox_rootfs(f"{work}/rootfs"))
        asyncio.run(main(rootfs, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
