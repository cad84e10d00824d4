"""A shim that dies under several connected processes: its exit is published exactly once.

Every process on a state dir that holds a connection to a shim notices when it dies and runs
containerd's dead-shim cleanup. With the shared event journal every subscriber would see one
``/tasks/exit`` and one ``/tasks/delete`` per process; the cleanup runs under the task's lock,
so only the process that reaps publishes and the others find it done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_v2.api import events_pb2

from .conftest import Taskplane
from .peer_checks import cgroup_pids, remains, shims_of
from .test_events import Lines, T

pytestmark = pytest.mark.integration

#: A peer: boots on the state dir (restart recovery connects it to every live shim), says so,
#: then waits until its connection to the task's shim is gone and its cleanup has returned.
_PEER = """
import asyncio, sys
import taskplane

async def main(root, state, namespace, task_id):
    host = await taskplane.boot_async(root=root, state=state)
    try:
        tasks = host.get("io.containerd.runtime.v2", "task")
        task = await tasks.get(task_id, namespace=namespace)
        print("connected", flush=True)
        await task.shim.client.wait_closed()
        print("done", flush=True)
    finally:
        await host.aclose()

asyncio.run(main(*sys.argv[1:]))
"""


def _peer(tp: Taskplane, task_id: str) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PEER, str(tp.root), str(tp.state), tp.namespace, task_id],
        cwd=tp.cwd,
        env=tp.env,
        text=True,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    out = Lines(proc.stdout)
    assert out.next() == "connected"
    return proc, out


async def test_a_dead_shim_is_reported_once_however_many_processes_were_connected(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    import plugins.builtin
    import registry

    ns = runner.namespace
    started = runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "300")
    assert started.returncode == 0, started.stderr
    peers = [_peer(runner, task_id) for _ in range(2)]
    # The third process: this one, with the event exchange only (not connected to the shim).
    async with await registry.boot_async(
        builtins=[plugins.builtin], autoload=False, root=str(runner.root), state=str(runner.state)
    ) as host:
        exchange = host.get("io.containerd.event.v1", "exchange")
        async with exchange.subscribe(namespace=ns) as subscription:
            try:
                (shim,) = shims_of(runner.state, ns, task_id)
                os.kill(shim, signal.SIGKILL)
                for proc, out in peers:
                    assert await asyncio.to_thread(out.next) == "done"
                    assert await asyncio.to_thread(proc.wait, 30) == 0
            finally:
                for proc, _ in peers:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    assert proc.stdout is not None
                    proc.stdout.close()
            # Every cleanup has returned: an event published after them ends what we count.
            marker = events_pb2.TaskOOM(container_id="end-marker")
            await exchange.publish("/tasks/oom", marker, namespace=ns)
            envelopes = []
            while (envelope := await subscription.get(timeout=T)).event != marker:
                envelopes.append(envelope)
    mine = [e for e in envelopes if getattr(e.event, "container_id", None) == task_id]
    assert [e.topic for e in mine] == ["/tasks/exit", "/tasks/delete"]
    assert mine[0].event.exit_status == 128 + signal.SIGKILL  # the shim binary's delete killed it
    assert cgroup_pids(ns, task_id) == []
    # The container record and io dir are the CLI's: `tasks rm` removes them.
    assert runner("tasks", "rm", task_id).returncode == 0
    assert remains(runner.root, runner.state, ns, task_id) == []
