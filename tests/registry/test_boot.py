"""boot / boot_async: statuses, properties, config, readiness, required plugins, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from registry import (
    PROPERTY_GRPC_ADDRESS,
    PROPERTY_ROOT,
    PROPERTY_STATE,
    PROPERTY_TTRPC_ADDRESS,
    BootError,
    ConfigError,
    Host,
    InitContext,
    PluginCircularDependency,
    PluginNotFound,
    Registration,
    Registry,
    SkipPlugin,
    boot,
    boot_async,
    platforms,
)


def need_one_loaded(ic: InitContext, type: str) -> None:
    """Raise unless a plugin of ``type`` loaded: PluginNotFound when none was initialised,
    else the init error of the first one (what a plugin that needs the type would do)."""
    found = ic.get_by_type(type)
    if not any(p.loaded for p in found.values()):
        next(iter(found.values())).instance  # noqa: B018 -- raises its init error


class Recorder:
    """Records init and close calls across plugins, in order."""

    def __init__(self) -> None:
        self.inits: list[str] = []
        self.closes: list[str] = []


def simple(
    rec: Recorder,
    uri: str,
    *requires: str,
    init: Callable[[InitContext], Any] | None = None,
    config: type | None = None,
) -> Registration:
    type, _, id = uri.rpartition(".")

    def default_init(ic: InitContext) -> Any:
        rec.inits.append(ic.registration.uri)
        if init is not None:
            return init(ic)
        for required in requires:  # a plugin that cannot work without what it requires
            if required != "*":
                need_one_loaded(ic, required)
        return Closable(rec, ic.registration.uri)

    return Registration(type, id, init=default_init, requires=requires, config=config)


class Closable:
    def __init__(self, rec: Recorder, uri: str) -> None:
        self.rec, self.uri = rec, uri

    def close(self) -> None:
        self.rec.closes.append(self.uri)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Any]:
    return {"version": 3, "root": str(tmp_path / "root"), "state": str(tmp_path / "state")}


def statuses(host: Host) -> dict[str, tuple[str, str | None]]:
    return {s.uri: (s.status, s.reason) for s in host.statuses}


async def test_plugins_are_initialised_in_graph_order_and_loaded(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry(
        [
            simple(rec, "runtime.task", "shim"),
            simple(rec, "shim.manager", "event"),
            simple(rec, "event.exchange"),
        ]
    )
    async with await boot_async(dirs, registry=registry) as host:
        assert rec.inits == ["event.exchange", "shim.manager", "runtime.task"]
        assert [s.uri for s in host.statuses] == rec.inits
        assert all(s.status == "loaded" and s.reason is None for s in host.statuses)
        assert isinstance(host.get("shim", "manager"), Closable)
        assert [p.registration.uri for p in host.plugins] == rec.inits


async def test_properties_name_root_state_and_daemon_addresses(
    rec: Recorder, dirs: dict[str, Any], tmp_path: Path
) -> None:
    seen: dict[str, str] = {}
    registry = Registry(
        [simple(rec, "io.example.v1.a", init=lambda ic: seen.update(ic.properties))]
    )
    async with await boot_async(dirs, registry=registry):
        pass
    state = str(tmp_path / "state")
    assert seen == {
        PROPERTY_ROOT: str(tmp_path / "root" / "io.example.v1.a"),
        PROPERTY_STATE: os.path.join(state, "io.example.v1.a"),
        PROPERTY_GRPC_ADDRESS: os.path.join(state, "taskplane.sock"),
        PROPERTY_TTRPC_ADDRESS: os.path.join(state, "taskplane.sock") + ".ttrpc",
    }
    # Directories are the plugin's business, not boot's.
    assert not (tmp_path / "root").exists()
    assert not (tmp_path / "state").exists()


async def test_root_and_state_arguments_override_the_config(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    seen: list[tuple[str, str]] = []
    registry = Registry([simple(rec, "t.a", init=lambda ic: seen.append((ic.root, ic.state)))])
    async with await boot_async(dirs, registry=registry, root="/r", state="/s") as host:
        assert (host.root, host.state) == ("/r", "/s")
    assert seen == [("/r/t.a", "/s/t.a")]


@attrs.define
class GreeterConfig:
    greeting: str = "hello"
    times: int = 1


async def test_init_receives_the_decoded_plugin_config(rec: Recorder, dirs: dict[str, Any]) -> None:
    seen: list[Any] = []
    registry = Registry(
        [
            simple(
                rec, "t.configured", init=lambda ic: seen.append(ic.config), config=GreeterConfig
            ),
            simple(
                rec, "t.defaulted", init=lambda ic: seen.append(ic.config), config=GreeterConfig
            ),
            simple(rec, "t.none", init=lambda ic: seen.append(ic.config)),
        ]
    )
    config = dict(dirs, plugins={"t.configured": {"greeting": "hi", "times": 3}})
    async with await boot_async(config, registry=registry):
        pass
    assert seen == [GreeterConfig("hi", 3), GreeterConfig(), None]


async def test_bad_plugin_config_is_a_config_error_before_any_init(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry([simple(rec, "t.a", config=GreeterConfig)])
    config = dict(dirs, plugins={"t.a": {"greting": "hi", "times": "3"}})
    with pytest.raises(ConfigError) as info:
        await boot_async(config, registry=registry)
    assert len(info.value.issues) >= 2
    assert rec.inits == []


async def test_config_migration_runs_for_an_older_version(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def migrate(plugins: Any, from_version: int) -> dict[str, Any]:
        new = {k: dict(v) for k, v in plugins.items()}
        old = new.pop("t.old", None)
        if old is not None:
            new["t.a"] = {"greeting": old["greet"]}
        return new

    seen: list[Any] = []
    reg = Registration(
        "t",
        "a",
        init=lambda ic: seen.append(ic.config),
        config=GreeterConfig,
        config_migration=migrate,
    )
    config = dict(dirs, version=2, plugins={"t.old": {"greet": "migrated"}})
    async with await boot_async(config, registry=Registry([reg])) as host:
        assert host.config.version == 3
    assert seen == [GreeterConfig("migrated")]


async def test_async_init_is_awaited(dirs: dict[str, Any]) -> None:
    async def init(ic: InitContext) -> str:
        await asyncio.sleep(0)
        return "async instance"

    async with await boot_async(
        dirs, registry=Registry([Registration("t", "a", init=init)])
    ) as host:
        assert host.get("t", "a") == "async instance"


def test_sync_boot_owns_a_loop_that_runs_async_init_and_coroutines(dirs: dict[str, Any]) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def init(ic: InitContext) -> str:
        loops.append(asyncio.get_running_loop())
        return "ok"

    async def on_host_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    host = boot(dirs, registry=Registry([Registration("t", "a", init=init)]))
    with host:
        assert host.get("t", "a") == "ok"
        assert host.run(on_host_loop()) is loops[0]
    assert loops[0].is_closed()
    host.close()  # twice is fine


async def test_sync_boot_inside_an_event_loop_is_refused(dirs: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="use await boot_async"):
        boot(dirs, registry=Registry())


async def test_async_host_has_no_loop_to_run(dirs: dict[str, Any]) -> None:
    host = await boot_async(dirs, registry=Registry())
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="no event loop of its own"):
        host.run(coro)
    coro.close()
    await host.aclose()


async def test_skipped_plugin_is_in_the_set_with_its_skip_error(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def skip(ic: InitContext) -> None:
        raise SkipPlugin("runc is not installed")

    registry = Registry([simple(rec, "t.skipper", init=skip), simple(rec, "t.other")])
    async with await boot_async(dirs, registry=registry) as host:
        assert statuses(host)["t.skipper"] == ("skipped", "runc is not installed")
        # containerd's Set holds every init result: GetByID gives the skip error, GetAll lists it
        skipped = host.plugins.get("t", "skipper")
        assert skipped is not None and not skipped.loaded
        assert isinstance(skipped.error, SkipPlugin)
        assert [p.registration.uri for p in host.plugins] == ["t.skipper", "t.other"]
        with pytest.raises(PluginNotFound, match=r"t\.skipper is not loaded \(skipped: runc"):
            host.get("t", "skipper")


async def test_capabilities_declared_in_init_are_on_the_status(dirs: dict[str, Any]) -> None:
    def init(ic: InitContext) -> object:
        ic.meta.capabilities.extend(["remap-ids", "only-remap-ids"])
        return object()

    async with await boot_async(
        dirs, registry=Registry([Registration("io.containerd.snapshotter.v1", "x", init=init)])
    ) as host:
        (status,) = host.statuses
        assert status.capabilities == ("remap-ids", "only-remap-ids")


async def test_a_later_plugin_gets_a_skipped_plugins_skip_error_by_id(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def skip(ic: InitContext) -> None:
        raise SkipPlugin("not here")

    seen: list[BaseException] = []

    def later(ic: InitContext) -> object:
        try:
            ic.get_by_id("t", "skipper")
        except SkipPlugin as exc:
            seen.append(exc)
        return [p.registration.uri for p in ic.get_all()]

    registry = Registry([simple(rec, "t.skipper", init=skip), simple(rec, "u.later", init=later)])
    async with await boot_async(dirs, registry=registry) as host:
        assert [str(e) for e in seen] == ["not here"]
        assert host.get("u", "later") == ["t.skipper"]


async def test_failed_init_is_failed_with_its_error(rec: Recorder, dirs: dict[str, Any]) -> None:
    boom = ValueError("bad socket dir")

    def fail(ic: InitContext) -> None:
        raise boom

    async with await boot_async(dirs, registry=Registry([simple(rec, "t.a", init=fail)])) as host:
        (status,) = host.statuses
        assert (status.status, status.reason, status.error) == ("failed", "bad socket dir", boom)
        with pytest.raises(PluginNotFound) as info:
            host.get("t", "a")
        assert info.value.__cause__ is boom


async def test_dependent_of_a_failed_plugin_runs_init_and_is_blocked_by_the_root_cause(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("<err>")

    registry = Registry(
        [
            simple(rec, "io.containerd.runtime.v2.task", "io.containerd.shim.v1"),
            simple(rec, "io.containerd.shim.v1.manager", init=fail),
        ]
    )
    async with await boot_async(dirs, registry=registry) as host:
        assert rec.inits == ["io.containerd.shim.v1.manager", "io.containerd.runtime.v2.task"]
        status = host.status("io.containerd.runtime.v2.task")
        assert status is not None
        assert status.status == "blocked"
        assert status.reason == (
            "requires io.containerd.shim.v1; io.containerd.shim.v1.manager failed: <err>"
        )
        assert status.dependency == "io.containerd.shim.v1.manager"
        # what its own init raised stays on the status: the dependency's error, re-raised
        assert isinstance(status.error, RuntimeError) and str(status.error) == "<err>"


async def test_requires_only_orders_a_plugin_with_an_optional_dependency_loads(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    # containerd's task manager requires the mount manager but works without it
    def optional(ic: InitContext) -> str:
        try:
            ic.get_single("io.containerd.mount-manager.v1")
        except PluginNotFound:
            return "without mounts"
        return "with mounts"

    registry = Registry(
        [
            simple(
                rec,
                "io.containerd.runtime.v2.task",
                "io.containerd.mount-manager.v1",
                init=optional,
            )
        ]
    )
    async with await boot_async(dirs, registry=registry) as host:
        assert statuses(host)["io.containerd.runtime.v2.task"] == ("loaded", None)
        assert host.get("io.containerd.runtime.v2", "task") == "without mounts"


async def test_dependent_runs_when_another_provider_of_the_type_loaded(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("nope")

    registry = Registry(
        [
            simple(rec, "user.u", "snap", init=lambda ic: sorted(ic.get_by_type("snap"))),
            simple(rec, "snap.bad", init=fail),
            simple(rec, "snap.good"),
        ]
    )
    async with await boot_async(dirs, registry=registry) as host:
        assert statuses(host)["user.u"] == ("loaded", None)
        assert host.get("user", "u") == ["bad", "good"]


async def test_dependent_of_a_skipped_only_provider_is_blocked(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def skip(ic: InitContext) -> None:
        raise SkipPlugin("not on this platform")

    registry = Registry([simple(rec, "user.u", "snap"), simple(rec, "snap.only", init=skip)])
    async with await boot_async(dirs, registry=registry) as host:
        assert statuses(host)["user.u"] == (
            "blocked",
            "requires snap; snap.only was skipped: not on this platform",
        )


async def test_disabled_and_blocked_statuses(rec: Recorder, dirs: dict[str, Any]) -> None:
    registry = Registry(
        [
            simple(rec, "io.containerd.runtime.v2.task", "io.containerd.shim.v1"),
            simple(rec, "io.containerd.shim.v1.manager"),
            simple(rec, "io.containerd.grpc.v1.tasks", "io.containerd.runtime.v2"),
            simple(rec, "io.containerd.event.v1.exchange"),
        ]
    )
    config = dict(dirs, disabled_plugins=["io.containerd.shim.v1.manager"])
    async with await boot_async(config, registry=registry) as host:
        assert rec.inits == [
            "io.containerd.runtime.v2.task",
            "io.containerd.grpc.v1.tasks",
            "io.containerd.event.v1.exchange",
        ]
        assert statuses(host) == {
            "io.containerd.runtime.v2.task": (
                "blocked",
                "requires io.containerd.shim.v1, which no plugin provides "
                "(io.containerd.shim.v1.manager is disabled)",
            ),
            "io.containerd.grpc.v1.tasks": (
                "blocked",
                "requires io.containerd.runtime.v2; io.containerd.runtime.v2.task "
                "is blocked: requires io.containerd.shim.v1, which no plugin provides "
                "(io.containerd.shim.v1.manager is disabled)",
            ),
            "io.containerd.event.v1.exchange": ("loaded", None),
            "io.containerd.shim.v1.manager": (
                "disabled",
                "disabled by config; blocks io.containerd.runtime.v2.task, "
                "io.containerd.grpc.v1.tasks",
            ),
        }
        blocked = host.status("io.containerd.runtime.v2.task")
        assert blocked is not None and blocked.dependency == "io.containerd.shim.v1"


async def test_a_disabled_plugin_lists_what_it_blocks(rec: Recorder, dirs: dict[str, Any]) -> None:
    registry = Registry(
        [
            simple(rec, "io.containerd.runtime.v2.task", "io.containerd.shim.v1", "snap"),
            simple(rec, "io.containerd.shim.v1.manager"),
            simple(rec, "snap.native"),
            simple(rec, "snap.overlay"),
            simple(rec, "io.containerd.event.v1.exchange"),
            simple(rec, "unused.x"),
        ]
    )
    config = dict(
        dirs, disabled_plugins=["io.containerd.shim.v1.manager", "snap.native", "unused.x"]
    )
    async with await boot_async(config, registry=registry) as host:
        got = statuses(host)
        assert got["io.containerd.shim.v1.manager"] == (
            "disabled",
            "disabled by config; blocks io.containerd.runtime.v2.task",
        )
        # snap.overlay still provides snap: disabling snap.native blocks nothing.
        assert got["snap.native"] == ("disabled", "disabled by config")
        assert got["unused.x"] == ("disabled", "disabled by config")
        # Disabled plugins come last, in registration order.
        assert [s.uri for s in host.statuses][-3:] == [
            "io.containerd.shim.v1.manager",
            "snap.native",
            "unused.x",
        ]


async def test_every_disabled_provider_of_a_missing_type_lists_the_blocked_plugin(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry(
        [
            simple(rec, "top.t", "user"),
            simple(rec, "user.u", "snap", "event"),
            simple(rec, "snap.a"),
            simple(rec, "snap.b"),
            simple(rec, "event.e"),
        ]
    )
    config = dict(dirs, disabled_plugins=["snap.a", "snap.b", "event.e"])
    async with await boot_async(config, registry=registry) as host:
        got = statuses(host)
        # transitively: top.t is blocked through user.u
        for uri in ("snap.a", "snap.b", "event.e"):
            assert got[uri] == ("disabled", "disabled by config; blocks user.u, top.t"), uri
        assert got["user.u"][0] == "blocked"
        assert got["top.t"][0] == "blocked"


async def test_a_plugin_blocked_by_a_failure_is_not_credited_to_a_disabled_plugin(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("broken")

    registry = Registry(
        [simple(rec, "user.u", "snap"), simple(rec, "snap.a", init=fail), simple(rec, "off.x")]
    )
    config = dict(dirs, disabled_plugins=["off.x"])
    async with await boot_async(config, registry=registry) as host:
        assert statuses(host)["off.x"] == ("disabled", "disabled by config")
        assert statuses(host)["user.u"][0] == "blocked"


async def test_required_blocked_plugin_abort_lists_what_the_disabled_plugin_blocks(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry([simple(rec, "user.u", "snap"), simple(rec, "snap.a")])
    config = dict(dirs, disabled_plugins=["snap.a"], required_plugins=["user.u"])
    with pytest.raises(BootError, match=r"required plugin user\.u cannot load: blocked") as info:
        await boot_async(config, registry=registry)
    assert rec.inits == ["user.u"]
    by_uri = {s.uri: s for s in info.value.statuses}
    assert by_uri["snap.a"].reason == "disabled by config; blocks user.u"


async def test_every_plugin_ends_in_exactly_one_status(rec: Recorder, dirs: dict[str, Any]) -> None:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("x")

    def skip(ic: InitContext) -> None:
        raise SkipPlugin("y")

    registry = Registry(
        [
            simple(rec, "a.loaded"),
            simple(rec, "b.failed", init=fail),
            simple(rec, "c.skipped", init=skip),
            simple(rec, "d.disabled"),
            simple(rec, "e.blocked", "b"),
            simple(rec, "f.blocked", "zzz"),
        ]
    )
    config = dict(dirs, disabled_plugins=["d.disabled"])
    async with await boot_async(config, registry=registry) as host:
        assert sorted(s.uri for s in host.statuses) == sorted(r.uri for r in registry)
        assert {s.uri: s.status for s in host.statuses} == {
            "a.loaded": "loaded",
            "b.failed": "failed",
            "c.skipped": "skipped",
            "d.disabled": "disabled",
            "e.blocked": "blocked",
            "f.blocked": "blocked",
        }


async def test_status_carries_init_time_platforms_and_exports(dirs: dict[str, Any]) -> None:
    async def init(ic: InitContext) -> str:
        ic.meta.platforms.append(platforms.parse("linux/amd64"))
        ic.meta.exports["address"] = "/run/x.sock"
        ic.meta.capabilities.append("cap")
        await asyncio.sleep(0.01)
        return "x"

    async with await boot_async(
        dirs, registry=Registry([Registration("t", "a", init=init)])
    ) as host:
        (status,) = host.statuses
        assert status.init_time >= 0.01
        assert status.platforms == ("linux/amd64",)
        assert status.exports == {"address": "/run/x.sock"}
        plugin = host.plugins.get("t", "a")
        assert plugin is not None and plugin.meta.capabilities == ["cap"]


async def test_circular_dependency_aborts_boot(rec: Recorder, dirs: dict[str, Any]) -> None:
    registry = Registry([simple(rec, "x.a", "y"), simple(rec, "y.b", "x")])
    with pytest.raises(PluginCircularDependency, match=r"x\.a -> y\.b -> x\.a"):
        await boot_async(dirs, registry=registry)
    assert rec.inits == []


async def test_required_plugin_that_fails_aborts_boot_with_the_chain(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    boom = OSError("no such file")

    def fail(ic: InitContext) -> None:
        raise boom

    registry = Registry(
        [
            simple(rec, "event.exchange"),
            simple(rec, "shim.manager", "event", init=fail),
            simple(rec, "runtime.task", "shim"),
        ]
    )
    config = dict(dirs, required_plugins=["runtime.task"])
    with pytest.raises(BootError) as info:
        await boot_async(config, registry=registry)
    assert str(info.value) == (
        "required plugin runtime.task cannot load: blocked: requires shim; "
        "shim.manager failed: no such file"
    )
    assert rec.closes == ["event.exchange"]  # what loaded was closed again
    assert [s.status for s in info.value.statuses] == ["loaded", "failed", "blocked"]


async def test_required_plugin_whose_own_init_fails_aborts_boot(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    boom = RuntimeError("kaput")

    def fail(ic: InitContext) -> None:
        raise boom

    registry = Registry(
        [simple(rec, "a.first"), simple(rec, "b.req", init=fail), simple(rec, "c.after")]
    )
    with pytest.raises(
        BootError, match=r"^required plugin b\.req did not load: failed: kaput$"
    ) as info:
        await boot_async(dict(dirs, required_plugins=["b.req"]), registry=registry)
    assert info.value.__cause__ is boom
    assert rec.inits == ["a.first", "b.req"]
    assert rec.closes == ["a.first"]


async def test_required_plugin_with_an_unmet_requirement_aborts_when_its_init_fails(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry([simple(rec, "a.first"), simple(rec, "runtime.task", "shim.v1")])
    with pytest.raises(
        BootError,
        match=r"required plugin runtime\.task cannot load: blocked: "
        r"requires shim\.v1, which no plugin provides",
    ):
        await boot_async(dict(dirs, required_plugins=["runtime.task"]), registry=registry)
    assert rec.inits == ["a.first", "runtime.task"]
    assert rec.closes == ["a.first"]


async def test_required_plugin_that_is_disabled_aborts_boot(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry([simple(rec, "a.first")])
    config = dict(dirs, required_plugins=["a.first"], disabled_plugins=["a.first"])
    with pytest.raises((BootError, ConfigError), match=r"a\.first"):
        await boot_async(config, registry=registry)
    assert rec.inits == []


async def test_skipped_required_plugin_aborts_boot(rec: Recorder, dirs: dict[str, Any]) -> None:
    def skip(ic: InitContext) -> None:
        raise SkipPlugin("not here")

    registry = Registry([simple(rec, "a.req", init=skip)])
    with pytest.raises(BootError, match=r"required plugin a\.req did not load: skipped: not here"):
        await boot_async(dict(dirs, required_plugins=["a.req"]), registry=registry)


async def test_host_is_ready_once_every_readiness_is_signalled(dirs: dict[str, Any]) -> None:
    signals: list[Callable[[], None]] = []

    def init(ic: InitContext) -> str:
        signals.append(ic.register_readiness())
        return "x"

    registry = Registry([Registration("t", "a", init=init), Registration("t", "b", init=init)])
    async with await boot_async(dirs, registry=registry) as host:
        assert not host.ready
        signals[0]()
        signals[0]()  # signalling twice counts once
        assert not host.ready
        # A deadline already past: no time passes and nothing races it, so the outcome depends
        # only on readiness (the same call returns at once below, once everything signalled).
        with pytest.raises(TimeoutError):
            await host.wait_ready(timeout=0)
        signals[1]()
        await host.wait_ready(timeout=0)
        assert host.ready


async def test_readiness_signalled_from_another_thread(dirs: dict[str, Any]) -> None:
    signals: list[Callable[[], None]] = []

    def init(ic: InitContext) -> str:
        signals.append(ic.register_readiness())
        return "x"

    async with await boot_async(
        dirs, registry=Registry([Registration("t", "a", init=init)])
    ) as host:
        await asyncio.to_thread(signals[0])
        await host.wait_ready(timeout=5)


async def test_host_without_readiness_is_ready(dirs: dict[str, Any]) -> None:
    async with await boot_async(dirs, registry=Registry()) as host:
        assert host.ready
        await host.wait_ready(timeout=1)


async def test_plugin_that_registered_readiness_then_failed_aborts_boot(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def init(ic: InitContext) -> None:
        ic.register_readiness()
        raise RuntimeError("listener failed")

    registry = Registry(
        [simple(rec, "a.first"), simple(rec, "b.ready", init=init), simple(rec, "c.after")]
    )
    with pytest.raises(
        BootError,
        match=r"plugin b\.ready registered readiness and then failed: "
        r"listener failed",
    ):
        await boot_async(dirs, registry=registry)
    assert rec.inits == ["a.first", "b.ready"]
    assert rec.closes == ["a.first"]


async def test_a_skip_after_registering_readiness_aborts_boot(dirs: dict[str, Any]) -> None:
    # containerd: "plugin failed after registering readiness" -- a skip included
    def init(ic: InitContext) -> None:
        ic.register_readiness()
        raise SkipPlugin("later")

    with pytest.raises(
        BootError, match=r"^plugin t\.a registered readiness and then was skipped: later$"
    ):
        await boot_async(dirs, registry=Registry([Registration("t", "a", init=init)]))


class AsyncClosable:
    def __init__(self, rec: Recorder, uri: str) -> None:
        self.rec, self.uri = rec, uri

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.rec.closes.append(self.uri)

    def close(self) -> None:  # pragma: no cover - aclose wins
        raise AssertionError("close() must not be called when aclose() exists")


class AsyncCloseMethod:
    def __init__(self, rec: Recorder, uri: str) -> None:
        self.rec, self.uri = rec, uri

    async def close(self) -> None:
        self.rec.closes.append(self.uri)


async def test_shutdown_closes_loaded_instances_in_reverse_init_order(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("x")

    registry = Registry(
        [
            simple(rec, "c.third", "b"),
            simple(rec, "b.second", "a", init=lambda ic: AsyncClosable(rec, "b.second")),
            simple(rec, "a.first", init=lambda ic: AsyncCloseMethod(rec, "a.first")),
            simple(rec, "d.failed", init=fail),
            simple(rec, "e.plain", init=lambda ic: "no close method"),
        ]
    )
    host = await boot_async(dirs, registry=registry)
    assert rec.closes == []
    await host.aclose()
    assert rec.closes == ["c.third", "b.second", "a.first"]
    await host.aclose()  # idempotent
    assert rec.closes == ["c.third", "b.second", "a.first"]


class Exploding:
    def __init__(self, message: str) -> None:
        self.message = message

    def close(self) -> None:
        raise RuntimeError(self.message)


async def test_one_failing_close_does_not_stop_the_others(
    rec: Recorder, dirs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(
        [
            simple(rec, "a.first"),
            simple(rec, "b.bad", init=lambda ic: Exploding("b broke")),
            simple(rec, "c.third"),
            simple(rec, "d.bad", init=lambda ic: Exploding("d broke")),
        ]
    )
    host = await boot_async(dirs, registry=registry)
    with pytest.raises(ExceptionGroup) as info:
        await host.aclose()
    assert rec.closes == ["c.third", "a.first"]
    messages = [str(e) for e in info.value.exceptions]
    assert messages == ["d broke", "b broke"]
    assert info.value.exceptions[0].__notes__ == ["while closing plugin d.bad"]
    assert "closing plugin d.bad failed" in caplog.text


def _failing_plugin_records(
    caplog: pytest.LogCaptureFixture, rec: Recorder, dirs: dict[str, Any]
) -> list[logging.LogRecord]:
    def fail(ic: InitContext) -> None:
        raise RuntimeError("disk on fire")

    registry = Registry([simple(rec, "snap.bad", init=fail)])
    with boot(dirs, registry=registry) as host:
        assert statuses(host)["snap.bad"] == ("failed", "disk on fire")
    return [r for r in caplog.records if r.name == "registry" and "snap.bad" in r.getMessage()]


def test_a_failing_plugin_logs_one_line_without_traceback_at_warning(
    rec: Recorder, dirs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="registry")
    records = _failing_plugin_records(caplog, rec, dirs)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "plugin snap.bad failed to load: disk on fire"
    assert record.exc_info is None
    assert "Traceback" not in caplog.text


def test_a_failing_plugin_logs_its_traceback_at_debug(
    rec: Recorder, dirs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="registry")
    (record,) = _failing_plugin_records(caplog, rec, dirs)
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text


@pytest.mark.parametrize(("level", "traceback"), [(logging.WARNING, False), (logging.DEBUG, True)])
async def test_a_failing_close_logs_its_traceback_only_at_debug(
    rec: Recorder,
    dirs: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    level: int,
    traceback: bool,
) -> None:
    caplog.set_level(level, logger="registry")
    registry = Registry([simple(rec, "b.bad", init=lambda ic: Exploding("b broke"))])
    host = await boot_async(dirs, registry=registry)
    with pytest.raises(ExceptionGroup):
        await host.aclose()
    (record,) = [r for r in caplog.records if "closing plugin b.bad" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "closing plugin b.bad failed: b broke"
    assert (record.exc_info is not None) is traceback


def test_sync_close_raises_close_errors_after_closing_the_loop(
    rec: Recorder, dirs: dict[str, Any]
) -> None:
    registry = Registry(
        [simple(rec, "a.first"), simple(rec, "b.bad", init=lambda ic: Exploding("b broke"))]
    )
    host = boot(dirs, registry=registry)
    with pytest.raises(ExceptionGroup):
        host.close()
    assert rec.closes == ["a.first"]
    host.close()


def test_sync_close_cancels_tasks_plugins_left_on_the_loop(dirs: dict[str, Any]) -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    def init(ic: InitContext) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(forever())

    async def let_it_start() -> None:
        await asyncio.sleep(0)

    host = boot(dirs, registry=Registry([Registration("t", "a", init=init)]))
    host.run(let_it_start())
    host.close()
    assert cancelled == [True]


async def test_cancelled_boot_closes_what_loaded(rec: Recorder, dirs: dict[str, Any]) -> None:
    started = asyncio.Event()

    async def hang(ic: InitContext) -> None:
        started.set()
        await asyncio.Event().wait()

    registry = Registry([simple(rec, "a.first"), Registration("b", "hang", init=hang)])
    task = asyncio.create_task(boot_async(dirs, registry=registry))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.closes == ["a.first"]


async def test_host_get_of_an_unregistered_plugin(dirs: dict[str, Any]) -> None:
    async with await boot_async(dirs, registry=Registry()) as host:
        with pytest.raises(PluginNotFound, match=r"plugin t\.a is not registered"):
            host.get("t", "a")
        assert host.status("t.a") is None


async def test_default_config_uses_default_root_and_state() -> None:
    async with await boot_async(None, registry=Registry()) as host:
        assert (host.root, host.state) == ("/var/lib/taskplane", "/run/taskplane")
        assert host.config.version == 3


async def test_config_file_path_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'version = 3\nroot = "{tmp_path}/r"\nstate = "{tmp_path}/s"\ndisabled_plugins = ["t.a"]\n'
    )
    registry = Registry([Registration("t", "a", init=lambda ic: "x")])
    async with await boot_async(path, registry=registry) as host:
        assert host.root == f"{tmp_path}/r"
        assert [s.status for s in host.statuses] == ["disabled"]


def test_failed_sync_boot_cancels_what_plugins_started_and_closes_its_loop(
    dirs: dict[str, Any],
) -> None:
    tasks: list[asyncio.Task[None]] = []

    async def forever() -> None:
        await asyncio.Event().wait()

    def starts_a_task(ic: InitContext) -> asyncio.Task[None]:
        tasks.append(asyncio.get_running_loop().create_task(forever()))
        return tasks[-1]

    def fail(ic: InitContext) -> None:
        raise RuntimeError("required and broken")

    registry = Registry(
        [Registration("t", "a", init=starts_a_task), Registration("t", "b", init=fail)]
    )
    with pytest.raises(BootError):
        boot(dict(dirs, required_plugins=["t.b"]), registry=registry)
    assert tasks[0].cancelled()
    assert tasks[0].get_loop().is_closed()
