"""The runtime's config from containerd's files: ``[timeouts]`` reach the deadlines the shim
manager and restart recovery use, and a version 2 ``sched_core`` moves to the shim env."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _fake_shim import FakeShim

import plugins.builtin
import runtime_v2.builtin
from plugins.containerd_config import (
    CATALOGUE,
    TIMEOUT_SHIM_CLEANUP,
    TIMEOUT_SHIM_LOAD,
    TIMEOUT_SHIM_SHUTDOWN,
)
from plugins.events import Exchange
from registry import boot_async
from registry.config import check_config
from runtime_v2 import TaskManager, ttrpc
from runtime_v2.bundle import new_bundle
from runtime_v2.shim import SHUTDOWN_TIMEOUT, Shim, ShimTask
from runtime_v2.shim_cleanup import CLEANUP_TIMEOUT
from runtime_v2.shim_config import ShimConfig, migrate_sched_core
from runtime_v2.shim_manager import ShimManager

TASK_URI = "io.containerd.runtime.v2.task"
SHIM_URI = "io.containerd.shim.v1.manager"


def registrations() -> list[Any]:
    from registry.discovery import discover

    registry, _ = discover([plugins.builtin, runtime_v2.builtin], autoload=False)
    return list(registry.registrations())


async def test_timeouts_from_the_config_reach_the_shim_manager(base: Path) -> None:
    config = {
        "version": 3,
        "timeouts": {TIMEOUT_SHIM_CLEANUP: "7s", TIMEOUT_SHIM_LOAD: "1m"},
    }
    host = await boot_async(
        config,
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(base / "r"),
        state=str(base / "s"),
        known=CATALOGUE,
    )
    try:
        shims: ShimManager = host.get("io.containerd.shim.v1", "manager")
        assert shims.cleanup_timeout == 7.0
        assert shims.timeout(TIMEOUT_SHIM_LOAD, 5.0) == 60.0
    finally:
        await host.aclose()


async def test_without_timeouts_the_defaults_stay() -> None:
    manager = ShimManager(exchange=Exchange(), grpc_address="/x.sock", ttrpc_address="/x.ttrpc")
    assert manager.cleanup_timeout == CLEANUP_TIMEOUT


@pytest.fixture
async def wedged(base: Path) -> AsyncIterator[FakeShim]:
    fake = await FakeShim(str(base / "wedged.sock"), versions=(2, 3)).start()
    fake.hang.add("Connect")
    yield fake
    await fake.stop()


async def test_the_load_timeout_bounds_restart_recovery(base: Path, wedged: FakeShim) -> None:
    runtime = base / "containerd-shim-fake-v2"
    runtime.write_text("#!/bin/sh\nexit 1\n")
    runtime.chmod(runtime.stat().st_mode | stat.S_IXUSR)
    bundle = new_bundle(str(base / "root"), str(base / "state"), "cfgns", "wedged", b"{}")
    (Path(bundle.path) / "shim-binary-path").write_text(str(runtime))
    (Path(bundle.path) / "bootstrap.json").write_text(
        json.dumps({"version": 2, "address": wedged.address, "protocol": "ttrpc"})
    )
    shims = ShimManager(
        exchange=Exchange(),
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
        timeouts={TIMEOUT_SHIM_LOAD: 0.25},
    )
    try:
        tasks = TaskManager(root=str(base / "root"), state=str(base / "state"), shims=shims)
        [outcome] = await tasks.load_existing_shims()
        assert (outcome.outcome, outcome.reason) == (
            "skipped",
            "shim did not answer within 0.25 s; left in place",
        )
    finally:
        await shims.aclose()


# -- sched_core: containerd 1.x's task plugin switch, the shim env from version 3 on ---------


def test_a_version_2_sched_core_becomes_the_shim_env() -> None:
    checked = check_config(
        {"version": 2, "plugins": {TASK_URI: {"sched_core": True, "platforms": ["linux/amd64"]}}},
        registrations(),
        CATALOGUE,
    )
    assert checked.decoded[SHIM_URI] == ShimConfig(env=["SCHED_CORE=1"])
    assert checked.warnings == ()


def test_a_version_2_sched_core_keeps_the_env_the_file_sets() -> None:
    plugins = {TASK_URI: {"sched_core": True}, SHIM_URI: {"env": ["A=1"]}}
    migrated = migrate_sched_core(plugins, 2)
    assert migrated == {TASK_URI: {}, SHIM_URI: {"env": ["A=1", "SCHED_CORE=1"]}}
    assert plugins == {TASK_URI: {"sched_core": True}, SHIM_URI: {"env": ["A=1"]}}  # pure


def test_a_false_sched_core_is_dropped_and_adds_nothing() -> None:
    assert migrate_sched_core({TASK_URI: {"sched_core": False}}, 2) == {TASK_URI: {}}


def test_a_version_3_sched_core_is_a_warning_not_migrated() -> None:
    checked = check_config(
        {"version": 3, "plugins": {TASK_URI: {"sched_core": True}}}, registrations(), CATALOGUE
    )
    assert checked.decoded[SHIM_URI] == ShimConfig()
    assert [w.path for w in checked.warnings] == [f'plugins."{TASK_URI}".sched_core']
    plugins = {TASK_URI: {"sched_core": True}}
    assert migrate_sched_core(plugins, 3) == plugins


class DeadlineShim(FakeShim):
    """A fake shim that records how long each call's deadline had left when it arrived."""

    def __init__(self, path: str) -> None:
        super().__init__(path, versions=(2, 3))
        self.remaining: dict[str, float | None] = {}

    def _handler(self, name: str) -> Any:
        inner = super()._handler(name)

        async def handle(request: Any, ctx: Any) -> Any:
            self.remaining[name] = None if ctx.deadline is None else ctx.deadline - time.monotonic()
            return await inner(request, ctx)

        return handle


async def test_the_shutdown_timeout_is_the_deadline_of_the_shutdown_call(base: Path) -> None:
    fake = await DeadlineShim(str(base / "d.sock")).start()
    shims = ShimManager(
        exchange=Exchange(),
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
        timeouts={TIMEOUT_SHIM_SHUTDOWN: 0.5},
    )
    client = await ttrpc.Client.connect(fake.address)
    try:
        bundle = new_bundle(str(base / "root"), str(base / "state"), "cfgns", "t1", b"{}")
        shim = Shim(bundle, client, address=fake.address, version=3)
        shims.watch(shim, None)
        await ShimTask(shim).shutdown()
        remaining = fake.remaining["Shutdown"]
        # The deadline sent is the configured 0.5 s (less the time on the way), not the 3 s default.
        assert remaining is not None and remaining <= 0.5 < SHUTDOWN_TIMEOUT
    finally:
        await client.close()
        await shims.aclose()
        await fake.stop()
