"""Real shims, touched only when used: one State per shim at a namespace's first listing, and
the events address served from the first shim a command starts or acts on (a listing serves
none; acting on a listed task does, before the act, so its events arrive)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from runtime_v2 import Status
from runtime_v2.shim import Shim
from runtime_v2.shim_config import events_on_demand
from taskplane.containers import Client

from .conftest import TIMEOUT, Dirs, boot_host, cleanup_tasks
from .test_restart_and_dead_shims import start_sleeper

pytestmark = pytest.mark.integration

TASKS = ("io.containerd.runtime.v2", "task")
SHIMS = ("io.containerd.shim.v1", "manager")


async def test_a_namespaces_first_listing_asks_each_shim_one_state(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tasks ls`` in a new process: connect and one State RPC per shim, nothing else (the
    shim pid was recorded at start; the reattach's State is the listing's)."""
    ids = ["one", "two", "three"]
    first = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            for task_id in ids:
                await start_sleeper(first.get(*TASKS), dirs, busybox_rootfs, task_id)
    finally:
        await first.aclose()  # the shims keep running

    calls: list[tuple[str, str]] = []
    call = Shim.call

    async def counted(self: Shim, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((self.id, method))
        return await call(self, method, *args, **kwargs)

    with events_on_demand():
        second = await boot_host(dirs)
    try:
        tasks = second.get(*TASKS)
        async with asyncio.timeout(TIMEOUT):
            monkeypatch.setattr(Shim, "call", counted)
            states = await tasks.states(namespace=dirs.namespace, timeout=TIMEOUT)
            monkeypatch.undo()
        assert {i: s.status if s else None for i, s in states.items()} == dict.fromkeys(
            ids, Status.RUNNING
        )
        assert sorted(calls) == sorted((i, "State") for i in ids)
        shims = second.get(*SHIMS)
        assert not shims.events_started  # a listing causes no event: it serves none
        exchange = second.get("io.containerd.event.v1", "exchange")
        async with asyncio.timeout(TIMEOUT):  # the reattached shims work as any
            async with exchange.subscribe("/tasks/exit", namespace=dirs.namespace) as events:
                task = await tasks.get("one", namespace=dirs.namespace)
                await task.kill(signal.SIGKILL)
                assert shims.serves_events  # served before the kill: its exit arrives
                assert (await task.wait()).status == 128 + signal.SIGKILL
                exit_event = (await events.get()).event
        assert (exit_event.id, exit_event.exit_status) == ("one", 128 + signal.SIGKILL)
    finally:
        await cleanup_tasks(second.get(*TASKS), dirs.namespace)
        await second.aclose()


async def test_a_command_serves_the_events_address_from_its_first_shim(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    with events_on_demand():
        host = await boot_host(dirs)
    try:
        shims = host.get(*SHIMS)
        assert not shims.events_started
        exchange = host.get("io.containerd.event.v1", "exchange")
        async with asyncio.timeout(TIMEOUT):
            async with exchange.subscribe("/tasks/*", namespace=dirs.namespace) as events:
                await start_sleeper(host.get(*TASKS), dirs, busybox_rootfs, "first")
                assert shims.serves_events
                # The shim's own first events reached this process's server.
                assert [(await events.get()).topic for _ in range(2)] == [
                    "/tasks/create",
                    "/tasks/start",
                ]
    finally:
        await cleanup_tasks(host.get(*TASKS), dirs.namespace)
        await host.aclose()


async def test_an_embedder_that_lists_then_kills_receives_the_exit_it_causes(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    """``Client.entries()`` reattaches without serving; the kill that follows serves the
    events address first, so the shim's ``/tasks/exit`` reaches this process's subscriber (a
    process booted like a command, under ``events_on_demand``)."""
    first = await boot_host(dirs)
    try:
        async with asyncio.timeout(TIMEOUT):
            await start_sleeper(first.get(*TASKS), dirs, busybox_rootfs, "listed")
    finally:
        await first.aclose()  # the shim keeps running

    with events_on_demand():
        second = await boot_host(dirs)
    try:
        client = Client(second, dirs.namespace)
        shims = second.get(*SHIMS)
        exchange = second.get("io.containerd.event.v1", "exchange")
        async with asyncio.timeout(TIMEOUT):
            async with exchange.subscribe("/tasks/exit", namespace=dirs.namespace) as events:
                assert [(e.id, e.status) for e in await client.entries()] == [("listed", "RUNNING")]
                assert not shims.events_started
                await (await client.task("listed")).kill(signal.SIGKILL)
                exit_event = (await events.get()).event
        assert (exit_event.id, exit_event.exit_status) == ("listed", 128 + signal.SIGKILL)
        assert shims.serves_events
    finally:
        await cleanup_tasks(second.get(*TASKS), dirs.namespace)
        await second.aclose()
