"""The real runc shim's Go ttrpc client forwards task events to our ttrpc Server."""

from __future__ import annotations

import asyncio
import shutil

import attrs
import pytest
from google.protobuf import empty_pb2

from runtime_v2 import typeurl
from runtime_v2.api import events_pb2, events_service_pb2, task_v2_pb2
from runtime_v2.ttrpc import NAMESPACE_KEY, CallContext, Client, Server

from .shimlib import TIMEOUT, ShimBundle, wait_process_exit

pytestmark = pytest.mark.integration


@attrs.frozen
class Forwarded:
    """One Forward call as our server saw it."""

    request: events_service_pb2.ForwardRequest
    namespace: str | None
    metadata: dict[str, list[str]]
    deadline: float | None


async def test_shim_forwards_create_start_exit_delete_to_our_events_server(
    prepared_bundle: ShimBundle,
) -> None:
    bundle = prepared_bundle
    received: asyncio.Queue[Forwarded] = asyncio.Queue()

    async def forward(
        request: events_service_pb2.ForwardRequest, context: CallContext
    ) -> empty_pb2.Empty:
        received.put_nowait(
            Forwarded(
                request=request,
                namespace=context.namespace,
                metadata={k: list(v) for k, v in context.metadata.items()},
                deadline=context.deadline,
            )
        )
        return empty_pb2.Empty()

    server = Server()
    server.register(events_service_pb2.DESCRIPTOR.services_by_name["Events"], {"Forward": forward})
    await server.serve(bundle.ttrpc_address)
    try:
        address = await bundle.start()
        client = await Client.connect(address)
        try:
            shim_pid = (
                await bundle.call(
                    client,
                    "Connect",
                    task_v2_pb2.ConnectRequest(id=bundle.id),
                    task_v2_pb2.ConnectResponse,
                )
            ).shim_pid
            created = await bundle.call(
                client,
                "Create",
                task_v2_pb2.CreateTaskRequest(id=bundle.id, bundle=str(bundle.bundle)),
                task_v2_pb2.CreateTaskResponse,
            )
            await bundle.call(
                client, "Start", task_v2_pb2.StartRequest(id=bundle.id), task_v2_pb2.StartResponse
            )
            await bundle.call(
                client, "Wait", task_v2_pb2.WaitRequest(id=bundle.id), task_v2_pb2.WaitResponse
            )
            await bundle.call(
                client,
                "Delete",
                task_v2_pb2.DeleteRequest(id=bundle.id),
                task_v2_pb2.DeleteResponse,
            )

            events = [await asyncio.wait_for(received.get(), TIMEOUT) for _ in range(4)]

            await bundle.shutdown(client)
            await wait_process_exit(shim_pid)
        finally:
            await client.close()
    finally:
        await server.close()

    assert [e.request.envelope.topic for e in events] == [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ]
    assert [e.request.envelope.event.type_url for e in events] == [
        "containerd.events.TaskCreate",
        "containerd.events.TaskStart",
        "containerd.events.TaskExit",
        "containerd.events.TaskDelete",
    ]
    for event in events:
        assert event.namespace == bundle.namespace
        assert event.metadata[NAMESPACE_KEY] == [bundle.namespace]
        assert event.request.envelope.namespace == bundle.namespace
        assert event.request.envelope.timestamp.seconds > 0
        assert event.deadline is not None  # the shim's publisher sends a 5 s timeout

    create, start, exit_, delete = (typeurl.unpack(e.request.envelope.event) for e in events)
    assert isinstance(create, events_pb2.TaskCreate)
    assert (create.container_id, create.bundle, create.pid) == (
        bundle.id,
        str(bundle.bundle),
        created.pid,
    )
    assert create.HasField("io")  # present but empty: no stdio was given
    assert start == events_pb2.TaskStart(container_id=bundle.id, pid=created.pid)
    assert isinstance(exit_, events_pb2.TaskExit)
    assert (exit_.container_id, exit_.id, exit_.pid, exit_.exit_status) == (
        bundle.id,
        bundle.id,
        created.pid,
        0,
    )
    assert isinstance(delete, events_pb2.TaskDelete)
    assert (delete.container_id, delete.pid, delete.exit_status, delete.id) == (
        bundle.id,
        created.pid,
        0,
        "",
    )
    assert received.empty()

    code, _, stderr = await bundle.delete()
    assert code == 0, f"shim delete failed: {stderr!r}"
    shutil.rmtree(bundle.bundle)
