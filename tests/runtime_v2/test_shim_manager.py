"""The shim plugin: config checks, the events service, dead-shim cleanup, -info caching."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _fake_shim import FakeShim
from google.protobuf import empty_pb2

import plugins.builtin
import runtime_v2.builtin
from plugins import errdefs
from plugins.events import Exchange
from registry import boot_async
from runtime_v2 import ttrpc, typeurl
from runtime_v2.api import (
    event_pb2,
    events_pb2,
    events_service_pb2,
    introspection_pb2,
    runc_options_pb2,
)
from runtime_v2.bundle import new_bundle
from runtime_v2.shim import Exit, Shim
from runtime_v2.shim_manager import (
    MAX_SOCKET_DIR_LEN,
    ShimManager,
    check_socket_dir,
    check_sun_path,
    write_options,
)

NS = "testns"
TIMEOUT = 10


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tpm", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def manager(base: Path) -> AsyncIterator[ShimManager]:
    exchange = Exchange()
    m = ShimManager(
        exchange=exchange,
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
    )
    await m.start_events_server()
    yield m
    await m.aclose()
    exchange.close()


def test_socket_dir_must_be_absolute() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="socket_dir must be an absolute path"):
        check_socket_dir("run/s")


def test_socket_dir_too_long_names_its_exact_length() -> None:
    long_dir = "/" + "d" * 50
    with pytest.raises(errdefs.InvalidArgument) as caught:
        check_socket_dir(long_dir)
    assert "is 51 characters long" in str(caught.value)
    assert f"no longer than {MAX_SOCKET_DIR_LEN} characters" in str(caught.value)
    assert check_socket_dir("/run/x/../s/") == "/run/s"


def test_sun_path_check_gives_the_exact_length() -> None:
    path = "/" + "p" * 110
    with pytest.raises(errdefs.InvalidArgument, match="is 111 bytes long"):
        check_sun_path(path, "ttrpc address")
    check_sun_path("/run/taskplane/taskplane.sock.ttrpc", "ttrpc address")


async def test_bad_socket_dir_fails_the_plugin_at_boot_and_blocks_the_task_plugin(
    base: Path,
) -> None:
    config = {
        "version": 3,
        "plugins": {"io.containerd.shim.v1.manager": {"socket_dir": "/" + "s" * 60}},
    }
    host = await boot_async(
        config,
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(base / "r"),
        state=str(base / "s"),
    )
    try:
        statuses = {s.uri: s for s in host.statuses}
        shim = statuses["io.containerd.shim.v1.manager"]
        assert shim.status == "failed"
        assert "61 characters long" in (shim.reason or "")
        assert statuses["io.containerd.runtime.v2.task"].status in ("blocked", "failed")
    finally:
        await host.aclose()


async def test_state_dir_too_long_for_the_events_socket_fails_with_the_length(
    base: Path,
) -> None:
    deep = base / ("x" * 90)
    host = await boot_async(
        {},
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(base / "r"),
        state=str(deep),
    )
    try:
        status = next(s for s in host.statuses if s.uri == "io.containerd.shim.v1.manager")
        assert status.status == "failed"
        assert "bytes long; a unix socket path must be shorter than 108" in (status.reason or "")
    finally:
        await host.aclose()


async def test_forwarded_shim_events_reach_subscribers(manager: ShimManager) -> None:
    envelope = event_pb2.Envelope(
        namespace=NS, topic="/tasks/oom", event=typeurl.pack(events_pb2.TaskOOM(container_id="c1"))
    )
    envelope.timestamp.FromSeconds(1_700_000_000)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        async with await ttrpc.Client.connect(manager.ttrpc_address) as client:
            await client.call(
                "containerd.services.events.ttrpc.v1.Events",
                "Forward",
                events_service_pb2.ForwardRequest(envelope=envelope),
                empty_pb2.Empty,
                namespace=NS,
            )
            bad = event_pb2.Envelope(namespace=NS, topic="no-slash")
            bad.timestamp.FromSeconds(1)
            with pytest.raises(errdefs.InvalidArgument):
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    events_service_pb2.ForwardRequest(envelope=bad),
                    empty_pb2.Empty,
                )
        received = await events.get(timeout=TIMEOUT)
    assert received.topic == "/tasks/oom"
    assert received.unpack(events_pb2.TaskOOM).container_id == "c1"


async def test_only_one_process_serves_the_events_address_and_another_takes_over(
    manager: ShimManager, base: Path
) -> None:
    assert manager.serves_events
    second = ShimManager(
        exchange=Exchange(), grpc_address=str(base / "tp.sock"), ttrpc_address=manager.ttrpc_address
    )
    await second.start_events_server()
    try:
        assert not second.serves_events
        await manager.aclose()  # the owner goes away...
        async with asyncio.timeout(TIMEOUT):
            await second.events_served.wait()  # ...and the other process takes over
        assert second.serves_events
        envelope = event_pb2.Envelope(
            namespace=NS,
            topic="/tasks/oom",
            event=typeurl.pack(events_pb2.TaskOOM(container_id="c")),
        )
        envelope.timestamp.FromSeconds(1_700_000_000)
        async with second.exchange.subscribe(namespace=NS) as events:
            async with await ttrpc.Client.connect(manager.ttrpc_address) as client:
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    events_service_pb2.ForwardRequest(envelope=envelope),
                    empty_pb2.Empty,
                )
            assert (await events.get(timeout=TIMEOUT)).topic == "/tasks/oom"
    finally:
        await second.aclose()
    assert not os.path.exists(manager.ttrpc_address)


async def test_a_stale_events_socket_is_replaced(base: Path) -> None:
    import socket

    path = str(base / "stale.sock.ttrpc")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    m = ShimManager(exchange=Exchange(), grpc_address=str(base / "stale.sock"), ttrpc_address=path)
    await m.start_events_server()
    assert m.serves_events
    await m.aclose()


class FakeBinary:
    """Stands in for ShimBinary in the dead-shim cleanup."""

    def __init__(self, exit: Exit | None) -> None:
        self.exit = exit
        self.deleted = 0
        self.closed = 0
        self.options: list[Any] = []

    async def delete(self, options: Any = None, *, remove_bundle: bool = True) -> Exit:
        self.deleted += 1
        self.options.append(options)
        if self.exit is None:
            raise errdefs.Unknown("delete failed")
        return self.exit

    def close(self) -> None:
        self.closed += 1


async def _registered_shim(manager: ShimManager, base: Path, binary: Any) -> tuple[Shim, FakeShim]:
    fake = await FakeShim(str(base / "shim.sock"), versions=(2,)).start()
    bundle = new_bundle(str(base / "root"), str(base / "state"), NS, "dead", b"{}")
    client = await ttrpc.Client.connect(fake.address)
    shim = Shim(bundle, client, address=fake.address)
    manager.watch(shim, binary)
    await shim.negotiate()
    manager.shims.add(NS, "dead", shim)
    return shim, fake


@pytest.mark.parametrize(
    ("exit", "expected"),
    [(Exit(pid=42, status=137, timestamp=None), (42, 137)), (None, (0, 255))],
    ids=["delete-ok", "delete-failed"],
)
async def test_a_dead_shim_is_cleaned_up_and_reported(
    manager: ShimManager, base: Path, exit: Exit | None, expected: tuple[int, int]
) -> None:
    binary = FakeBinary(exit)
    shim, fake = await _registered_shim(manager, base, binary)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()  # the shim dies
        task_exit = (await events.get(timeout=TIMEOUT)).unpack(events_pb2.TaskExit)
        task_delete = (await events.get(timeout=TIMEOUT)).unpack(events_pb2.TaskDelete)
    assert (task_exit.container_id, task_exit.id) == ("dead", "dead")
    assert (task_exit.pid, task_exit.exit_status) == expected
    assert (task_delete.pid, task_delete.exit_status) == expected
    assert task_exit.exited_at.seconds > 0
    assert binary.deleted == 1 and binary.closed >= 1
    assert not manager.shims.contains(NS, "dead")
    assert not os.path.exists(shim.bundle.path)


async def test_dead_shim_delete_gets_the_options_recorded_at_start(
    manager: ShimManager, base: Path
) -> None:
    binary = FakeBinary(Exit(pid=7, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    write_options(shim.bundle, options)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()
        await events.get(timeout=TIMEOUT)
    assert binary.options == [options]


async def test_an_orderly_shutdown_publishes_nothing_and_runs_no_delete(
    manager: ShimManager, base: Path
) -> None:
    binary = FakeBinary(Exit(pid=1, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    shim.orderly_shutdown = True
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()
        await shim.client.wait_closed()
        with pytest.raises(TimeoutError):
            await events.get(timeout=0.2)
    assert binary.deleted == 0
    assert not manager.shims.contains(NS, "dead")


async def test_closing_the_manager_leaves_shims_alone(manager: ShimManager, base: Path) -> None:
    binary = FakeBinary(Exit(pid=1, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    await manager.aclose()
    assert binary.deleted == 0
    assert os.path.exists(shim.bundle.path)
    assert not fake.shutdown_requested.is_set()
    assert manager.shims.get_all(all=True) == []
    await fake.stop()


def _info_script(base: Path, fail: bool = False) -> Path:
    info = introspection_pb2.RuntimeInfo(name="fake.runtime")
    (base / "info.out").write_bytes(info.SerializeToString())
    script = base / "containerd-shim-fake-v1"
    body = 'echo "no info" >&2; exit 3' if fail else f'cat "{base}/info.out"'
    script.write_text(f'#!/bin/sh\necho run >> "{base}/runs"\ncat > /dev/null\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _runs(base: Path) -> int:
    try:
        return len((base / "runs").read_text().split())
    except FileNotFoundError:
        return 0


async def test_info_results_are_cached_per_options(manager: ShimManager, base: Path) -> None:
    script = str(_info_script(base))
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    assert (await manager.runtime_info(script, None)).name == "fake.runtime"
    assert (await manager.runtime_info(script, None)).name == "fake.runtime"
    assert _runs(base) == 1
    await manager.runtime_info(script, options)
    assert _runs(base) == 2


async def test_info_failures_are_cached_too(manager: ShimManager, base: Path) -> None:
    script = str(_info_script(base, fail=True))
    for _ in range(3):
        with pytest.raises(errdefs.ContainerdError, match="no info"):
            await manager.runtime_info(script, None)
    assert _runs(base) == 1


async def test_unknown_runtime_for_info_is_not_found(manager: ShimManager) -> None:
    with pytest.raises(errdefs.NotFound):
        await manager.runtime_info("io.containerd.nosuch.v7", None)
