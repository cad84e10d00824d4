"""ShimTask and Process over real ttrpc against an in-process fake shim."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _fake_shim import FakeShim
from google.protobuf import timestamp_pb2

from runtime_v2 import errdefs, runtime, ttrpc
from runtime_v2.bundle import Bundle, new_bundle
from runtime_v2.runtime import Status, from_timestamp
from runtime_v2.shim import (
    TASK_SERVICE_V2,
    TASK_SERVICE_V3,
    ConnectionClosed,
    Shim,
    ShimTask,
)
from runtime_v2.shim import connect as shim_connect

NS = "testns"


@pytest.fixture
def bundle(base: Path) -> Bundle:
    return new_bundle(str(base / "root"), str(base / "state"), NS, "task1", b"{}")


async def connect(fake: FakeShim, bundle: Bundle) -> ShimTask:
    client = await ttrpc.Client.connect(fake.address)
    shim = Shim(bundle, client, address=fake.address, version=2)
    await shim.negotiate()
    return ShimTask(shim)


@pytest.fixture
async def v2_shim(base: Path) -> AsyncIterator[FakeShim]:
    fake = await FakeShim(str(base / "v2.sock"), versions=(2,)).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def v3_shim(base: Path) -> AsyncIterator[FakeShim]:
    fake = await FakeShim(str(base / "v3.sock"), versions=(3,)).start()
    yield fake
    await fake.stop()


def test_go_zero_time_and_unset_timestamps_become_none() -> None:
    assert from_timestamp(timestamp_pb2.Timestamp(seconds=-62135596800)) is None
    assert from_timestamp(timestamp_pb2.Timestamp()) is None
    assert from_timestamp(None) is None
    when = from_timestamp(timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5000))
    assert when is not None and when.timestamp() == pytest.approx(1_700_000_000.000005)


async def test_negotiation_falls_back_to_v2_when_v3_is_not_implemented(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    assert task.shim.version == 2
    assert [(svc, m) for svc, m, _, _ in v2_shim.calls] == [(TASK_SERVICE_V2, "Connect")]
    assert task.shim.shim_pid == os.getpid()
    await task.shim.close()


async def test_negotiation_keeps_v3_when_the_shim_serves_it(
    v3_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v3_shim, bundle)
    assert task.shim.version == 3
    assert [(svc, m) for svc, m, _, _ in v3_shim.calls] == [(TASK_SERVICE_V3, "Connect")]
    await task.shim.close()


async def test_full_lifecycle_carries_the_namespace_on_every_call(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    pid = await task.create(stdout="/dev/null")
    state = await task.state()
    assert state.status is Status.CREATED
    assert state.exited_at is None  # Go's zero time
    assert await task.start() == pid
    assert [p.pid for p in await task.pids()] == [pid]
    await task.kill(9)
    exit = await task.wait()
    assert (exit.pid, exit.status) == (pid, 137)
    assert exit.timestamp is not None
    assert (await task.state()).status is Status.STOPPED
    removed: list[bool] = []
    deleted = await task.delete(lambda: removed.append(True))
    assert (deleted.pid, deleted.status) == (pid, 137)
    assert removed
    assert not os.path.exists(bundle.path)
    assert {ns for _, _, ns, _ in v2_shim.calls} == {NS}
    assert v2_shim.methods()[-2:] == ["Delete", "Shutdown"]


async def test_delete_rejected_by_the_shim_changes_nothing_and_can_be_retried(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    await task.start()
    with pytest.raises(errdefs.FailedPrecondition):
        await task.delete()
    assert "Shutdown" not in v2_shim.methods()
    assert os.path.exists(bundle.path)
    await task.kill(9)
    await task.wait()
    await task.delete()
    assert not os.path.exists(bundle.path)


async def test_delete_of_a_task_the_shim_already_deleted_finishes_the_teardown(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    with pytest.raises(errdefs.NotFound):
        await task.delete()
    assert "Shutdown" in v2_shim.methods()
    assert not os.path.exists(bundle.path)


async def test_state_of_a_closed_shim_is_not_found(v2_shim: FakeShim, bundle: Bundle) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    await v2_shim.stop()
    await task.shim.client.wait_closed()
    with pytest.raises(errdefs.NotFound, match="shim connection closed"):
        await task.state()


async def test_exec_process_lifecycle_names_the_exec_id(v2_shim: FakeShim, bundle: Bundle) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    await task.start()
    process = await task.exec("probe", {"args": ["/bin/true"], "cwd": "/"})
    pid = await process.start()
    assert pid == process.pid
    assert (await process.state()).exec_id == "probe"
    await process.resize_pty(80, 24)
    await process.close_io()
    await process.kill(15, all=True)
    assert (await process.wait()).status == 128 + 15
    assert (await process.delete()).pid == pid
    exec_request = next(r for _, m, _, r in v2_shim.calls if m == "Exec")
    assert exec_request.spec.type_url.endswith("runtime-spec/1/Process")
    kill = [r for _, m, _, r in v2_shim.calls if m == "Kill"][-1]
    assert (kill.exec_id, kill.all) == ("probe", False)


async def test_exec_id_is_validated_before_any_rpc(v2_shim: FakeShim, bundle: Bundle) -> None:
    task = await connect(v2_shim, bundle)
    with pytest.raises(errdefs.InvalidArgument, match="invalid exec id"):
        await task.exec("../x", {"args": ["/bin/true"]})
    assert "Exec" not in v2_shim.methods()


async def test_other_task_calls_map_to_their_rpcs(v2_shim: FakeShim, bundle: Bundle) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    await task.pause()
    await task.resume()
    await task.resize_pty(100, 40)
    await task.close_io()
    await task.update({"cpu": {"shares": 512}}, {"a": "b"})
    assert (await task.stats()).type_url == "fake.Stats"
    with pytest.raises(errdefs.NotImplemented):
        await task.checkpoint("/tmp/cp")
    update = next(r for _, m, _, r in v2_shim.calls if m == "Update")
    assert update.resources.type_url.endswith("LinuxResources")
    assert dict(update.annotations) == {"a": "b"}
    close_io = next(r for _, m, _, r in v2_shim.calls if m == "CloseIO")
    assert close_io.stdin is True
    await task.shim.close()


async def test_errors_from_the_shim_arrive_as_errdefs_classes(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    v2_shim.fail["Start"] = errdefs.FailedPrecondition("cannot start")
    with pytest.raises(errdefs.NotFound):
        await task.state()
    with pytest.raises(errdefs.FailedPrecondition, match="cannot start"):
        await task.start()
    await task.shim.close()


async def test_create_downgrades_to_v2_when_a_v3_shim_says_not_implemented(
    base: Path, bundle: Bundle
) -> None:
    fake = await FakeShim(str(base / "both.sock"), versions=(2, 3)).start()
    try:
        task = await connect(fake, bundle)
        assert task.shim.version == 3
        fake.fail["Create"] = errdefs.NotImplemented("no v3 create")
        with pytest.raises(errdefs.NotImplemented):
            await task.create()  # both services share the failure: retried once, then raised
        assert task.shim.version == 2
        creates = [svc for svc, m, _, _ in fake.calls if m == "Create"]
        assert creates == [TASK_SERVICE_V3, TASK_SERVICE_V2]
        await task.shim.close()
    finally:
        await fake.stop()


async def test_two_namespaces_with_the_same_id_are_separate_tasks(
    base: Path, v2_shim: FakeShim
) -> None:
    a = new_bundle(str(base / "root"), str(base / "state"), "ns-a", "same", b"{}")
    b = new_bundle(str(base / "root"), str(base / "state"), "ns-b", "same", b"{}")
    task_a = await connect(v2_shim, a)
    task_b = await connect(v2_shim, b)
    await task_a.create()
    await task_b.create()
    await task_a.kill(9)
    assert (await task_a.state()).status is Status.STOPPED
    assert (await task_b.state()).status is Status.CREATED
    await asyncio.gather(task_a.shim.close(), task_b.shim.close())


@pytest.mark.parametrize("version", [2, 3])
async def test_shutdown_asks_an_idle_shim_to_exit_and_it_goes(
    base: Path, bundle: Bundle, version: int
) -> None:
    fake = await FakeShim(str(base / f"v{version}.sock"), versions=(version,)).start()
    try:
        task = await connect(fake, bundle)
        await task.shutdown()
        assert fake.shutdown_requested.is_set()
        service, method, namespace, request = fake.calls[-1]
        assert method == "Shutdown"
        assert service == (TASK_SERVICE_V3 if version == 3 else TASK_SERVICE_V2)
        assert (namespace, request.id) == (NS, "task1")
        async with asyncio.timeout(5):
            await task.shim.client.wait_closed()  # the shim went away
        await task.shutdown()  # a shim that is already gone: fine, no error
        assert fake.methods().count("Shutdown") == 1
        assert os.path.exists(bundle.path)  # shutdown alone leaves the bundle
    finally:
        await fake.stop()


async def test_shutdown_of_a_shim_that_still_has_a_task_leaves_it_running(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    await task.shutdown()
    assert v2_shim.shutdown_requested.is_set()
    assert (await task.state()).status is Status.CREATED  # still connected and serving
    await task.shim.close()


async def test_shutdown_errors_from_the_shim_are_raised(v2_shim: FakeShim, bundle: Bundle) -> None:
    v2_shim.fail["Shutdown"] = errdefs.FailedPrecondition("shim busy")
    task = await connect(v2_shim, bundle)
    with pytest.raises(errdefs.FailedPrecondition, match="shim busy"):
        await task.shutdown()
    await task.shim.close()


async def test_a_connection_lost_mid_call_is_ttrpc_closed_and_errdefs_unavailable(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    await task.create()
    v2_shim.hang.add("Start")
    started = asyncio.ensure_future(task.start())
    await v2_shim.hanging.wait()
    await v2_shim.stop()  # the shim dies with the call in flight
    with pytest.raises(ConnectionClosed) as info:
        await started
    # Callers catch either: ttrpc's Closed (containerd checks ttrpc.ErrClosed) or the class.
    assert isinstance(info.value, ttrpc.Closed)
    assert isinstance(info.value, errdefs.Unavailable)
    assert errdefs.kind(info.value) is errdefs.Unavailable
    assert str(info.value) == "ttrpc: closed"
    await task.shim.close()


async def test_connect_failures_are_errdefs_classes(base: Path) -> None:
    with pytest.raises(errdefs.NotFound, match="no such socket"):
        await shim_connect(str(base / "missing.sock"), timeout=5)
    refusing = base / "refusing.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(refusing))  # bound, never listening: connections are refused
    try:
        with pytest.raises(errdefs.Unavailable, match="connection refused"):
            await shim_connect(str(refusing), timeout=5)
    finally:
        sock.close()


async def test_shim_task_and_process_implement_the_runtime_contract(
    v2_shim: FakeShim, bundle: Bundle
) -> None:
    task = await connect(v2_shim, bundle)
    assert isinstance(task, runtime.Task)
    assert isinstance(task.process("e1"), runtime.Process)
    await task.shim.close()
