"""A command's events address is served while its first shim's ``start`` command runs
(``ShimManager.start``), not before it is spawned, and still before the shim publishes
anything: each shim of the matrix delivers its task's whole life to the command's own server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime_v2 import binary
from runtime_v2.events_server import EventsServer
from runtime_v2.runtime import CreateOpts
from runtime_v2.shim_config import events_on_demand

from .conftest import TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for
from .runtimes import Runtime

pytestmark = pytest.mark.integration

TASKS = ("io.containerd.runtime.v2", "task")
SHIMS = ("io.containerd.shim.v1", "manager")
EXCHANGE = ("io.containerd.event.v1", "exchange")


async def test_the_events_server_starts_after_the_shim_start_is_spawned_and_gets_every_event(
    dirs: Dirs, busybox_rootfs: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    run, start = binary._run, EventsServer.start

    async def spawning(argv: Any, **kwargs: Any) -> Any:
        order.append(f"spawn {argv[-1]}")
        return await run(argv, **kwargs)

    async def serving(self: EventsServer) -> None:
        order.append("events server")
        await start(self)

    monkeypatch.setattr(binary, "_run", spawning)
    monkeypatch.setattr(EventsServer, "start", serving)
    with events_on_demand():  # as every command boots
        host = await boot_host(dirs)
    try:
        tasks = host.get(*TASKS)
        async with asyncio.timeout(TIMEOUT):
            async with host.get(*EXCHANGE).subscribe("/tasks/*", namespace=dirs.namespace) as got:
                opts = CreateOpts(
                    spec=spec_for(busybox_rootfs, ["true"], task_id="quick"), **runtime.create_kw()
                )
                task = await tasks.create("quick", opts, namespace=dirs.namespace)
                await task.start()
                assert (await task.wait()).status == 0
                await tasks.delete("quick", namespace=dirs.namespace)
                assert host.get(*SHIMS).serves_events
                # The shim's every event reached this process's own server.
                topics = [(await got.get()).topic for _ in range(4)]
        assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
        # A 2.4 shim that refuses the legacy protocol is started twice: the server starts
        # after the first spawn either way.
        assert order[:2] == ["spawn start", "events server"], order
    finally:
        await cleanup_tasks(host.get(*TASKS), dirs.namespace)
        await host.aclose()


@pytest.mark.parametrize("when", ["at once", "after the start"])
async def test_an_events_server_that_fails_while_the_shim_starts_leaves_nothing(
    dirs: Dirs, busybox_rootfs: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from runtime_v2 import errdefs

    spawned, started = asyncio.Event(), asyncio.Event()
    run = binary._run

    async def spawning(argv: Any, **kwargs: Any) -> Any:
        spawned.set()
        try:
            return await run(argv, **kwargs)
        finally:
            started.set()

    async def failing(self: EventsServer) -> None:
        if when == "after the start":  # the shim daemon runs by then
            await started.wait()
        raise errdefs.Unavailable("cannot serve the events address (the test's failure)")

    monkeypatch.setattr(binary, "_run", spawning)
    monkeypatch.setattr(EventsServer, "start", failing)
    with events_on_demand():
        host = await boot_host(dirs)
    try:
        tasks = host.get(*TASKS)
        opts = CreateOpts(spec=spec_for(busybox_rootfs, ["true"], task_id="quick"))
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(errdefs.Unavailable, match="the test's failure"):
                await tasks.create("quick", opts, namespace=dirs.namespace)
        assert spawned.is_set()
        assert not await tasks.tasks(namespace=dirs.namespace)
        assert not (dirs.state / dirs.namespace / "quick").exists()  # no bundle
    finally:
        await host.aclose()  # the dirs fixture checks that no shim, runc state or socket is left
