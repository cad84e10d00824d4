"""Embedders as peers (issue 8): the Client's namespace owns its cgroups, and
``cleanup_on_close`` deletes what a Client created when the host closes, also on an exception.
Real runc, real shims, busybox."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from cli.peer_checks import cgroup_pids, cgroups_of, remains

from runtime_v2.runtime import Status
from taskplane.containers import Client
from taskplane.oci import default_spec

from .conftest import TIMEOUT, Dirs, boot_host, spec_for


def _spec(rootfs: Path, task_id: str) -> dict[str, object]:
    # As an embedder writes it: default_spec's namespace is "default", whatever the Client's.
    return default_spec(task_id, rootfs=str(rootfs), args=["sleep", "300"])


async def test_the_same_id_in_two_namespaces_shares_nothing(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    """Case 9: each Client's namespace is its task's cgroup; deleting one leaves the other."""
    ns_a, ns_b = f"{dirs.namespace}a", f"{dirs.namespace}b"
    host = await boot_host(dirs)
    try:
        a = Client(host, ns_a, cleanup_on_close=True)
        b = Client(host, ns_b, cleanup_on_close=True)
        async with asyncio.timeout(TIMEOUT):
            task_a = await a.start_detached("same", _spec(busybox_rootfs, "same"))
            task_b = await b.start_detached("same", _spec(busybox_rootfs, "same"))
            pids_a = {p.pid for p in await task_a.pids()}
            pids_b = {p.pid for p in await task_b.pids()}
            assert pids_a and pids_b and pids_a.isdisjoint(pids_b)
            assert set(cgroup_pids(ns_a, "same")) == pids_a
            assert set(cgroup_pids(ns_b, "same")) == pids_b
            await a.delete("same", force=True)
            assert (await task_b.state()).status is Status.RUNNING
            assert cgroups_of(ns_a, "same") == []
            await b.delete("same", force=True)
    finally:
        await host.aclose()
    for ns in (ns_a, ns_b):
        assert remains(dirs.root, dirs.state, ns, "same") == []


async def test_cleanup_on_close_deletes_the_clients_tasks_also_on_an_exception(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    with pytest.raises(RuntimeError, match="the harness failed"):
        async with await boot_host(dirs) as host:
            client = Client(host, dirs.namespace, cleanup_on_close=True)
            async with asyncio.timeout(TIMEOUT):
                await client.start_detached("mine", _spec(busybox_rootfs, "mine"))
            raise RuntimeError("the harness failed")
    assert remains(dirs.root, dirs.state, dirs.namespace, "mine") == []


async def test_by_default_a_clients_tasks_outlive_the_host(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    async with await boot_host(dirs) as host:
        client = Client(host, dirs.namespace)
        async with asyncio.timeout(TIMEOUT):
            await client.start_detached("kept", _spec(busybox_rootfs, "kept"))
    async with await boot_host(dirs) as host:
        client = Client(host, dirs.namespace)
        async with asyncio.timeout(TIMEOUT):
            assert [t.id for t in await client.tasks()] == ["kept"]
            await client.delete("kept", force=True)
    assert remains(dirs.root, dirs.state, dirs.namespace, "kept") == []


async def test_an_async_with_client_cleans_up_on_leaving_the_block(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    async with await boot_host(dirs) as host:
        async with Client(host, dirs.namespace, cleanup_on_close=True) as client:
            async with asyncio.timeout(TIMEOUT):
                await client.start_detached("scoped", _spec(busybox_rootfs, "scoped"))
        assert remains(dirs.root, dirs.state, dirs.namespace, "scoped") == []


async def test_remove_while_the_dead_shim_cleanup_waits_for_the_lock(
    dirs: Dirs, task_manager: Any, busybox_rootfs: Path
) -> None:
    """``remove`` holding the task's lock when the shim dies must not wait for the dead-shim
    cleanup (which waits for that lock): it finishes, and the cleanup then finds nothing."""
    from runtime_v2 import CreateOpts, ttrpc

    spec = spec_for(busybox_rootfs, ["sleep", "300"], task_id="gone")
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("gone", CreateOpts(spec=spec), namespace=dirs.namespace)
        await task.start()
        waiter = asyncio.ensure_future(task.wait())
        async with task_manager.lock("gone", namespace=dirs.namespace):
            os.kill(task.shim.shim_pid, signal.SIGKILL)
            with pytest.raises(ttrpc.Closed):
                await waiter  # the connection is lost: the cleanup now waits for our lock
            await task_manager.remove("gone", namespace=dirs.namespace)
    assert not (dirs.bundles / "gone").exists()
    assert not (
        dirs.state / "io.containerd.runtime.v2.task" / ".runc" / dirs.namespace / "gone"
    ).exists()
