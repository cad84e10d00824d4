"""Our ttrpc client drives the real containerd-shim-runc-v2 1.6.20 through a task's lifecycle."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from runtime_v2 import errdefs
from runtime_v2.api import task_types_pb2, task_v2_pb2, task_v3_pb2
from runtime_v2.ttrpc import Client

from .shimlib import ShimBundle, wait_process_exit

pytestmark = pytest.mark.integration

TASK_V3 = "containerd.task.v3.Task"
GO_ZERO_TIME_SECONDS = -62135596800


async def test_client_runs_true_through_the_shim_and_the_shim_cleans_up(
    prepared_bundle: ShimBundle,
) -> None:
    bundle = prepared_bundle
    with contextlib.closing(bundle.refuse_events()):  # no containerd here to take events
        await _run_true_through_the_shim(bundle)


async def _run_true_through_the_shim(bundle: ShimBundle) -> None:
    address = await bundle.start()
    assert address == f"unix://{bundle.expected_socket}"
    assert (bundle.bundle / "address").read_text() == address

    client = await Client.connect(address)
    try:
        connected = await bundle.call(
            client, "Connect", task_v2_pb2.ConnectRequest(id=bundle.id), task_v2_pb2.ConnectResponse
        )
        shim_pid = connected.shim_pid
        assert shim_pid > 0

        with pytest.raises(errdefs.NotFound):
            await bundle.call(
                client, "State", task_v2_pb2.StateRequest(id=bundle.id), task_v2_pb2.StateResponse
            )

        with pytest.raises(errdefs.NotImplemented) as unimplemented:
            await bundle.call(
                client,
                "State",
                task_v3_pb2.StateRequest(id=bundle.id),
                task_v3_pb2.StateResponse,
                service=TASK_V3,
            )
        assert str(unimplemented.value) == f"service {TASK_V3}"

        created = await bundle.call(
            client,
            "Create",
            task_v2_pb2.CreateTaskRequest(id=bundle.id, bundle=str(bundle.bundle)),
            task_v2_pb2.CreateTaskResponse,
        )
        assert created.pid > 0
        state = await bundle.call(
            client, "State", task_v2_pb2.StateRequest(id=bundle.id), task_v2_pb2.StateResponse
        )
        assert (state.id, state.bundle, state.pid) == (bundle.id, str(bundle.bundle), created.pid)
        assert state.status == task_types_pb2.CREATED
        assert state.exited_at.seconds == GO_ZERO_TIME_SECONDS  # Go's zero time, not unset

        started = await bundle.call(
            client, "Start", task_v2_pb2.StartRequest(id=bundle.id), task_v2_pb2.StartResponse
        )
        assert started.pid == created.pid
        waited = await bundle.call(
            client, "Wait", task_v2_pb2.WaitRequest(id=bundle.id), task_v2_pb2.WaitResponse
        )
        assert waited.exit_status == 0
        assert waited.exited_at.seconds > 0

        state = await bundle.call(
            client, "State", task_v2_pb2.StateRequest(id=bundle.id), task_v2_pb2.StateResponse
        )
        assert (state.status, state.exit_status) == (task_types_pb2.STOPPED, 0)

        deleted = await bundle.call(
            client, "Delete", task_v2_pb2.DeleteRequest(id=bundle.id), task_v2_pb2.DeleteResponse
        )
        assert (deleted.pid, deleted.exit_status) == (created.pid, 0)
        assert deleted.exited_at == waited.exited_at
        with pytest.raises(errdefs.NotFound):
            await bundle.call(
                client, "State", task_v2_pb2.StateRequest(id=bundle.id), task_v2_pb2.StateResponse
            )

        await bundle.shutdown(client)
        await wait_process_exit(shim_pid)
    finally:
        await client.close()
    assert not bundle.expected_socket.exists(), "the shim daemon removes its socket on Shutdown"

    code, stdout, stderr = await bundle.delete()
    assert code == 0, f"shim delete failed: {stderr!r}"
    response = task_v2_pb2.DeleteResponse.FromString(stdout)
    assert response.pid == created.pid
    assert response.exit_status == 137  # the binary delete always reports 128 + SIGKILL
    assert response.exited_at.seconds > 0
    shutil.rmtree(bundle.bundle)  # containerd removes the bundle; the shim does not
