"""Embed taskplane: boot the plugin registry from Python and run container tasks.

Run it as root on Linux with runc and containerd-shim-runc-v2 installed::

    python examples/embed.py            # builds a busybox rootfs in a temporary directory
    python examples/embed.py ROOTFS     # or uses yours

Everything lives under a private directory that is removed at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile

import taskplane
from taskplane import oci
from taskplane.containers import Client
from taskplane.rootfs import build_busybox_rootfs


async def main(rootfs: str, work: str, namespace: str = "embed") -> int:
    # Boot the registry: built-in plugins plus any installed third-party ones.
    async with await taskplane.boot_async(root=f"{work}/root", state=f"{work}/state") as host:
        for status in host.statuses:
            print(f"{status.uri:40} {status.status}")
        client = Client(host, namespace=namespace)

        # 1. Run a container to completion and collect its output.
        spec = oci.default_spec(
            "hello",
            rootfs=rootfs,
            namespace=namespace,
            args=["/bin/sh", "-c", "echo hello from $(hostname)"],
        )
        result = await client.run("hello", spec)
        print(result.stdout.decode(), end="")

        # 2. Drive a task step by step through the runtime v2 task API.
        spec = oci.default_spec(
            "sleeper", rootfs=rootfs, namespace=namespace, args=["/bin/sleep", "60"]
        )
        task = await client.create_task("sleeper", spec)
        try:
            pid = await task.start()
            state = await task.state()
            print(f"sleeper: pid {pid}, {state.status.value}")
            await task.kill(signal.SIGKILL)
            exit_ = await task.wait()
            print(f"sleeper: exit status {exit_.status}")
        finally:
            await client.delete("sleeper", force=True)
        return result.exit_status


if __name__ == "__main__":
    work = tempfile.mkdtemp(prefix="tp-embed-", dir="/tmp")
    try:
        rootfs = sys.argv[1] if len(sys.argv) > 1 else str(build_busybox_rootfs(f"{work}/rootfs"))
        sys.exit(asyncio.run(main(rootfs, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
