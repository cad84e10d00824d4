"""Restart recovery and the events server wait for first use (no shim process needed here).

A boot loads no bundle; a namespace's bundles load at its first listing, a task's at its first
use; a process booted under ``events_on_demand`` serves the events address only once it starts
or reattaches a shim (the shim-side tests are in tests/integration/test_first_use.py). An empty
bundle is what recovery visibly acts on without a shim: it removes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_task_manager import TASK_URI, boot

from plugins import errdefs
from runtime_v2 import CreateOpts
from runtime_v2.shim_config import events_on_demand, events_served_on_demand

TASKS = ("io.containerd.runtime.v2", "task")
SHIMS = ("io.containerd.shim.v1", "manager")


def empty_bundle(base: Path, namespace: str, task_id: str) -> Path:
    """An empty bundle dir: restart recovery removes it ("empty bundle")."""
    path = base / "s" / TASK_URI / namespace / task_id
    path.mkdir(parents=True)
    return path


async def test_boot_recovers_nothing(base: Path) -> None:
    stale = empty_bundle(base, "a", "stale")
    host = await boot(base)
    try:
        assert host.get(*TASKS).load_outcomes == []
        assert stale.is_dir()
    finally:
        await host.aclose()
    assert stale.is_dir()


async def test_listing_a_namespace_recovers_that_namespace_only_and_once(base: Path) -> None:
    mine, other = empty_bundle(base, "a", "stale"), empty_bundle(base, "b", "stale")
    host = await boot(base)
    try:
        tasks = host.get(*TASKS)
        assert await tasks.tasks(namespace="a") == []
        assert [(o.namespace, o.id, o.outcome) for o in tasks.load_outcomes] == [
            ("a", "stale", "removed")
        ]
        assert not mine.exists()
        assert other.is_dir()  # namespace b was not touched
        again = empty_bundle(base, "a", "later")
        assert await tasks.states(namespace="a", timeout=1) == {}
        assert again.is_dir()  # a namespace loads once per process
        assert await tasks.tasks(all=True) == []
        assert not other.exists()  # every namespace, at the first listing of all of them
    finally:
        await host.aclose()


async def test_a_task_is_recovered_at_its_first_use_and_its_neighbours_are_not(
    base: Path,
) -> None:
    used, neighbour = empty_bundle(base, "a", "used"), empty_bundle(base, "a", "neighbour")
    host = await boot(base)
    try:
        tasks = host.get(*TASKS)
        with pytest.raises(errdefs.NotFound):
            await tasks.get("used", namespace="a")
        assert [(o.id, o.outcome) for o in tasks.load_outcomes] == [("used", "removed")]
        assert not used.exists()
        assert neighbour.is_dir()
    finally:
        await host.aclose()


async def test_creating_a_new_id_touches_no_other_task(base: Path) -> None:
    neighbour = empty_bundle(base, "a", "neighbour")
    host = await boot(base)
    try:
        tasks = host.get(*TASKS)
        with pytest.raises(errdefs.NotFound, match="runtime"):  # no such runtime: no shim
            await tasks.create(
                "new", CreateOpts(spec=b"{}", runtime="io.containerd.nosuch.v1"), namespace="a"
            )
        assert tasks.load_outcomes == []
        assert neighbour.is_dir()
    finally:
        await host.aclose()


async def test_creating_over_a_dead_tasks_bundle_recovers_it_first(base: Path) -> None:
    """What recovery at boot did before an id was reused, its first use does now."""
    empty_bundle(base, "a", "reused")
    host = await boot(base)
    try:
        tasks = host.get(*TASKS)
        with pytest.raises(errdefs.NotFound, match="runtime"):  # past the in-use check
            await tasks.create(
                "reused", CreateOpts(spec=b"{}", runtime="io.containerd.nosuch.v1"), namespace="a"
            )
        assert [(o.id, o.outcome) for o in tasks.load_outcomes] == [("reused", "removed")]
    finally:
        await host.aclose()


def test_events_on_demand_is_scoped_to_its_block() -> None:
    assert not events_served_on_demand()
    with events_on_demand():
        assert events_served_on_demand()
    assert not events_served_on_demand()


async def test_a_process_booted_on_demand_serves_no_events_until_it_has_a_shim(
    base: Path,
) -> None:
    with events_on_demand():
        host = await boot(base)
    try:
        shims = host.get(*SHIMS)
        assert not shims.events_started and not shims.serves_events
        assert not Path(shims.ttrpc_address).exists()  # nothing bound
        await host.get(*TASKS).tasks(namespace="a")  # nothing to reattach: still nothing
        assert not shims.events_started
        await shims.start_events_server()  # what starting or reattaching a shim calls
        assert shims.serves_events and Path(shims.ttrpc_address).exists()
        await shims.start_events_server()  # idempotent
        assert shims.serves_events
    finally:
        await host.aclose()


async def test_an_embedder_serves_events_from_boot(base: Path) -> None:
    host = await boot(base)
    try:
        shims = host.get(*SHIMS)
        assert shims.events_started and shims.serves_events
    finally:
        await host.aclose()


async def test_a_new_id_does_not_wait_behind_another_tasks_load(base: Path) -> None:
    host = await boot(base)
    try:
        tasks = host.get(*TASKS)
        loader = tasks._first_use()
        async with loader._loading:  # another task's load in progress (a wedged shim holds it)
            async with asyncio.timeout(5):  # only stops a hung test
                assert await loader.task("a", "fresh") is None
    finally:
        await host.aclose()
