"""Client <-> server round trips over real unix sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time

import pytest
from google.protobuf import empty_pb2

from runtime_v2 import ttrpc
from runtime_v2.ttrpc import MAX_MESSAGE_SIZE, Code, Frame, ttrpc_pb2

from . import echo_pb2
from .conftest import (
    DETAIL_TYPE,
    ECHO_DESCRIPTOR,
    SERVICE,
    EchoService,
    RawConnection,
    fake_server,
    is_listening,
    raises_status,
    read_frame_data,
    response_of,
    serving,
    unused_abstract_name,
)

Req = echo_pb2.EchoRequest
Resp = echo_pb2.EchoResponse
#: Only to stop a hung test: what is tested is the deadline or error, never how long it took.
HANG = 30.0


async def echo(client: ttrpc.Client, text: str = "hi", **kw: object) -> echo_pb2.EchoResponse:
    return await client.call(SERVICE, "Echo", Req(text=text), Resp, **kw)  # type: ignore[arg-type]


# --- round trips ---------------------------------------------------------------------------


async def test_unary_call_round_trips(client: ttrpc.Client) -> None:
    resp = await client.call(SERVICE, "Echo", Req(text="hello", data=b"\0\1"), Resp)
    assert (resp.text, resp.data) == ("hello", b"\0\1")
    assert resp.remaining == -1.0  # no deadline sent


async def test_namespace_and_metadata_reach_the_handler(client: ttrpc.Client) -> None:
    resp = await echo(client, namespace="ns1", metadata=[("X-Trace", "a"), ("x-trace", "b")])
    assert resp.namespace == "ns1"
    assert resp.metadata == ["containerd-namespace-ttrpc=ns1", "x-trace=a", "x-trace=b"]


async def test_empty_result_is_a_zero_length_response_frame(raw: RawConnection) -> None:
    await raw.send_request(1, "Nothing")
    [frame] = await raw.read_frames(1)
    assert frame == Frame(1, 2, 0, b"")


async def test_empty_result_decodes_on_the_client(client: ttrpc.Client) -> None:
    assert await client.call(SERVICE, "Nothing", empty_pb2.Empty(), empty_pb2.Empty) == (
        empty_pb2.Empty()
    )


async def test_hundred_concurrent_calls_each_get_their_own_answer(client: ttrpc.Client) -> None:
    results = await asyncio.gather(*(echo(client, str(i)) for i in range(100)))
    assert [r.text for r in results] == [str(i) for i in range(100)]


async def test_client_stream_ids_are_odd_and_increasing(socket_path: str) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = ttrpc.FrameDecoder()
        while len(seen) < 5:
            for frame in decoder.feed(await reader.read(65536)):
                seen.append(frame.stream_id)
                writer.write(ttrpc.encode_frame(frame.stream_id, 2, 0, b""))
        done.set()

    async with fake_server(socket_path, serve), await ttrpc.Client.connect(socket_path) as client:
        await asyncio.gather(*(client.call_raw(SERVICE, "Nothing", b"") for _ in range(5)))
        async with asyncio.timeout(5):
            await done.wait()
    assert seen == [1, 3, 5, 7, 9]


# --- errors -------------------------------------------------------------------------------


async def test_handler_status_error_keeps_its_code_message_and_details(
    client: ttrpc.Client,
) -> None:
    req = echo_pb2.FailRequest(code=5, message="container c1", detail=b"why")
    with raises_status(Code.NOT_FOUND) as info:
        await client.call(SERVICE, "Fail", req, empty_pb2.Empty)
    assert type(info.value) is ttrpc.StatusError
    assert info.value.message == str(info.value) == "container c1"
    assert [(d.type_url, d.value) for d in info.value.details] == [(DETAIL_TYPE, b"why")]


async def test_a_code_outside_the_enum_arrives_as_its_int(client: ttrpc.Client) -> None:
    req = echo_pb2.FailRequest(code=99, message="odd")
    with pytest.raises(ttrpc.StatusError, match="odd") as info:
        await client.call(SERVICE, "Fail", req, empty_pb2.Empty)
    assert info.value.code == 99


async def test_handler_python_errors_follow_convert_code(client: ttrpc.Client) -> None:
    cases = {
        "FileNotFoundError": Code.NOT_FOUND,
        "PermissionError": Code.PERMISSION_DENIED,
        "ValueError": Code.UNKNOWN,
    }
    for name, code in cases.items():
        req = echo_pb2.FailRequest(python_error=name, message="boom")
        with raises_status(code, match="boom"):
            await client.call(SERVICE, "Fail", req, empty_pb2.Empty)


async def test_unknown_service_answers_exact_unimplemented_bytes(raw: RawConnection) -> None:
    await raw.send_request(1, "Create", service="containerd.task.v3.Task")
    [frame] = await raw.read_frames(1)
    assert frame.data == bytes.fromhex("0a23080c121f") + b"service containerd.task.v3.Task"


async def test_unknown_method_answers_exact_unimplemented_bytes(raw: RawConnection) -> None:
    await raw.send_request(1, "Bogus")
    [frame] = await raw.read_frames(1)
    assert frame.data == bytes.fromhex("0a10080c120c") + b"method Bogus"


async def test_unknown_method_raises_not_implemented_on_the_client(client: ttrpc.Client) -> None:
    with raises_status(Code.UNIMPLEMENTED) as info:
        await client.call(SERVICE, "Bogus", Req(), Resp)
    assert str(info.value) == "method Bogus"
    with raises_status(Code.UNIMPLEMENTED, match=r"^service nope$"):
        await client.call("nope", "Echo", Req(), Resp)


async def test_undecodable_request_is_invalid_argument(raw: RawConnection) -> None:
    await raw.send(ttrpc.encode_frame(1, 1, 0, b"\xff\xff\xff"))
    status = response_of((await raw.read_frames(1))[0]).status
    assert status.code == 3
    assert status.message.startswith("unmarshal request error: ")


async def test_undecodable_payload_is_internal(raw: RawConnection) -> None:
    await raw.send_request(1, "Echo", payload=b"\x0a\x05ab")
    status = response_of((await raw.read_frames(1))[0]).status
    assert status.code == 13
    assert status.message.startswith("ttrpc: error unmarshalling payload: ")


async def test_success_with_explicit_zero_status_is_accepted(socket_path: str) -> None:
    ok = ttrpc_pb2.Response(payload=Resp(text="z").SerializeToString())
    ok.status.code = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame_data(reader)
        writer.write(ttrpc.encode_frame(1, 2, 0, ok.SerializeToString()))

    async with fake_server(socket_path, serve), await ttrpc.Client.connect(socket_path) as client:
        assert (await echo(client)).text == "z"


# --- stream id rules ------------------------------------------------------------------------


async def test_even_stream_id_is_rejected_with_containerd_text(raw: RawConnection) -> None:
    await raw.send_request(2, "Echo")
    [frame] = await raw.read_frames(1)
    assert frame.stream_id == 2
    status = response_of(frame).status
    assert (status.code, status.message) == (
        3,
        "StreamID must be odd for client initiated streams",
    )


async def test_reused_stream_id_is_rejected_and_connection_stays_usable(
    raw: RawConnection,
) -> None:
    await raw.send_request(5, "Nothing")
    await raw.read_frames(1)
    await raw.send_request(5, "Nothing")
    await raw.send_request(3, "Nothing")
    await raw.send_request(7, "Nothing")
    frames = await raw.read_frames(3)
    by_id = {f.stream_id: f for f in frames}
    for sid in (5, 3):
        status = response_of(by_id[sid]).status
        assert status.message == "StreamID cannot be re-used and must increment"
    assert by_id[7] == Frame(7, 2, 0, b"")


async def test_data_on_an_unknown_stream_is_rejected(raw: RawConnection) -> None:
    await raw.send(ttrpc.encode_frame(9, 3, 1, b"stuff"))
    [frame] = await raw.read_frames(1)
    assert frame.stream_id == 9
    assert response_of(frame).status.message == "StreamID is no longer active"


async def test_unknown_message_types_are_ignored(raw: RawConnection) -> None:
    await raw.send(ttrpc.encode_frame(1, 0x42, 0, b"future"))
    await raw.send(ttrpc.encode_frame(3, 2, 0, b""))  # a Response sent to a server
    await raw.send_request(5, "Nothing")
    assert await raw.read_frames(1) == [Frame(5, 2, 0, b"")]


async def test_streaming_flags_on_a_request_do_not_desync(raw: RawConnection) -> None:
    await raw.send_request(1, "Echo", payload=Req(text="a").SerializeToString(), flags=2)
    await raw.send(ttrpc.encode_frame(1, 3, 1, b""))  # client data, then close
    await raw.send_request(3, "Nothing")
    frames = await raw.read_frames(2)
    by_id = {f.stream_id: f for f in frames}
    assert Resp.FromString(response_of(by_id[1]).payload).text == "a"
    assert by_id[3] == Frame(3, 2, 0, b"")


# --- deadlines ------------------------------------------------------------------------------


async def test_timeout_is_propagated_as_timeout_nano(client: ttrpc.Client) -> None:
    resp = await echo(client, timeout=2)
    assert 1.5 < resp.remaining <= 2.0


async def test_deadline_context_is_propagated_and_earlier_deadline_wins(
    client: ttrpc.Client,
) -> None:
    with ttrpc.deadline(3):
        assert 2.5 < (await echo(client)).remaining <= 3.0
        assert (await echo(client, timeout=1)).remaining <= 1.0
        with ttrpc.deadline(10):
            assert (await echo(client)).remaining <= 3.0
    assert (await echo(client)).remaining == -1.0
    assert ttrpc.current_deadline() is None


async def test_timeout_nano_on_the_wire(socket_path: str) -> None:
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await read_frame_data(reader)
        seen.set_result(ttrpc_pb2.Request.FromString(data).timeout_nano)
        writer.write(ttrpc.encode_frame(1, 2, 0, b""))

    async with fake_server(socket_path, serve), await ttrpc.Client.connect(socket_path) as client:
        await client.call_raw(SERVICE, "Nothing", b"", timeout=2)
    assert 1.9e9 < await seen <= 2e9


async def test_slow_handler_gets_deadline_exceeded(
    client: ttrpc.Client, echo_service: EchoService, raw: RawConnection
) -> None:
    # Server side: the handler is cut off by its own deadline and answers DeadlineExceeded.
    await raw.send_request(1, "Slow", timeout_nano=50_000_000)
    status = response_of((await raw.read_frames(1))[0]).status
    assert (status.code, status.message) == (4, "context deadline exceeded")
    assert echo_service.slow_cancelled.is_set()
    # Client side: the call gives up at its deadline too (Slow never answers by itself).
    async with asyncio.timeout(HANG):  # only to stop a hang
        with pytest.raises(ttrpc.DeadlineExceeded):
            await client.call(SERVICE, "Slow", Req(), Resp, timeout=0.05)


async def test_handler_sees_deadline_and_nested_calls_inherit_it(socket_path: str) -> None:
    inner_seen: list[float | None] = []

    async def outer(req: echo_pb2.EchoRequest, ctx: ttrpc.CallContext) -> echo_pb2.EchoResponse:
        inner_seen.append(ttrpc.current_deadline())
        return Resp(remaining=ctx.remaining() or -1)

    async with serving(socket_path, {"Echo": outer}):
        async with await ttrpc.Client.connect(socket_path) as client:
            before = time.monotonic()
            await echo(client, timeout=4)
            after = time.monotonic()
    # The deadline is 4 s after the moment of the call, which lies between before and after.
    assert inner_seen[0] is not None and before + 4 <= inner_seen[0] <= after + 4


async def test_ttrpc_timeout_is_sent_as_timeout_nano(client: ttrpc.Client) -> None:
    async with ttrpc.timeout(2) as when:
        assert when is not None and ttrpc.current_deadline() == when
        resp = await echo(client)
        after = time.monotonic()
    # The server's remaining time was measured before we got its answer.
    assert when - after <= resp.remaining <= 2
    assert ttrpc.current_deadline() is None


async def test_ttrpc_timeout_slow_handler_raises_deadline_exceeded_at_the_deadline(
    client: ttrpc.Client, echo_service: EchoService
) -> None:
    async with asyncio.timeout(HANG):  # only to stop a hang
        with pytest.raises(ttrpc.DeadlineExceeded):
            async with ttrpc.timeout(0.3) as when:
                await client.call(SERVICE, "Slow", Req(), Resp)
        assert when is not None and time.monotonic() >= when  # not before the deadline
        # The server got the deadline too: its handler was cut off.
        await echo_service.slow_cancelled.wait()
    assert echo_service.contexts[0].deadline is not None
    # The task is not left cancelled: the connection and the task keep working.
    assert (await echo(client, "after")).text == "after"


@pytest.mark.parametrize("seconds", [0.01, 0.02, 0.05])
async def test_ttrpc_timeout_raises_deadline_exceeded_whichever_timer_fires_first(
    client: ttrpc.Client, seconds: float
) -> None:
    # The call's own timer and the asyncio timeout are due at the same moment; many calls make
    # both orders happen. The block must raise DeadlineExceeded, never TimeoutError/Cancelled.
    for _ in range(10):
        with pytest.raises(ttrpc.DeadlineExceeded):
            async with ttrpc.timeout(seconds):
                await asyncio.gather(*(client.call(SERVICE, "Slow", Req(), Resp) for _ in range(8)))
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_ttrpc_timeout_cancels_local_work_with_deadline_exceeded() -> None:
    with pytest.raises(ttrpc.DeadlineExceeded, match=r"ttrpc.timeout\(0.1\) expired") as info:
        async with ttrpc.timeout(0.1) as when:
            await asyncio.sleep(HANG)  # cut off by the timeout, long before this ends
    assert when is not None and time.monotonic() >= when
    # A drop-in for asyncio.timeout: what it raises is a TimeoutError, with a status code.
    assert isinstance(info.value, TimeoutError)
    assert info.value.code == Code.DEADLINE_EXCEEDED


async def test_ttrpc_timeout_nests_like_go_contexts(client: ttrpc.Client) -> None:
    with ttrpc.deadline(1):
        async with ttrpc.timeout(10):
            assert (await echo(client)).remaining <= 1.0
        async with ttrpc.timeout(None) as when:
            assert when == ttrpc.current_deadline()
    async with ttrpc.timeout(None) as when:
        assert when is None and ttrpc.current_deadline() is None
    # An inner asyncio.timeout's TimeoutError is not ours to convert.
    with pytest.raises(TimeoutError):
        async with ttrpc.timeout(10), asyncio.timeout(0.01):
            await asyncio.sleep(1)


async def test_plain_asyncio_timeout_is_not_sent(client: ttrpc.Client) -> None:
    # Documented limitation (Client.call): Python 3.11 cannot read an asyncio.timeout's
    # deadline, so only ttrpc.timeout() / timeout= / ttrpc.deadline() reach the server.
    async with asyncio.timeout(5):
        assert (await echo(client)).remaining == -1.0


async def test_expired_deadline_fails_before_sending(client: ttrpc.Client) -> None:
    with pytest.raises(ttrpc.DeadlineExceeded, match="before it was sent") as info:
        await echo(client, timeout=0)
    assert isinstance(info.value, TimeoutError)


async def test_cancelled_call_drops_its_late_response(
    client: ttrpc.Client, echo_service: EchoService
) -> None:
    task = asyncio.create_task(client.call(SERVICE, "Slow", Req(text="late"), Resp))
    async with asyncio.timeout(5):
        await echo_service.slow_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    echo_service.release_slow.set()
    # The late answer arrives on an abandoned stream and must not confuse later calls.
    assert [(await echo(client, str(i))).text for i in range(3)] == ["0", "1", "2"]


# --- oversize -------------------------------------------------------------------------------


async def test_oversize_request_is_refused_locally_and_nothing_is_written(
    client: ttrpc.Client,
) -> None:
    with pytest.raises(ttrpc.OversizedMessage) as info:
        await client.call(SERVICE, "Echo", Req(data=b"x" * MAX_MESSAGE_SIZE), Resp)
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert "exceed maximum message size of 4194304" in str(info.value)
    # Nothing went out: the next call uses stream 1.
    assert client._next_id == 1
    assert (await echo(client)).text == "hi"


async def test_oversize_frame_to_server_is_answered_and_connection_stays(
    raw: RawConnection,
) -> None:
    length = MAX_MESSAGE_SIZE + 1
    await raw.send(length.to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\1\0")
    await raw.send(b"\0" * length)
    await raw.send_request(3, "Nothing")
    frames = await raw.read_frames(2)
    status = response_of(frames[0]).status
    assert frames[0].stream_id == 1
    assert status.code == 8
    assert status.message == f"message length {length} exceed maximum message size of 4194304"
    assert frames[1] == Frame(3, 2, 0, b"")


async def test_oversize_response_fails_that_call_only(client: ttrpc.Client) -> None:
    with raises_status(Code.RESOURCE_EXHAUSTED, match="exceed maximum message size"):
        await client.call(SERVICE, "Echo", Req(reply_size=MAX_MESSAGE_SIZE + 1), Resp)
    assert (await echo(client)).text == "hi"


async def test_oversize_frame_to_client_fails_that_call_and_keeps_connection(
    socket_path: str,
) -> None:
    length = MAX_MESSAGE_SIZE + 5

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = ttrpc.FrameDecoder()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for frame in decoder.feed(data):
                if frame.stream_id == 1:
                    writer.write(length.to_bytes(4, "big") + b"\0\0\0\1\2\0" + b"\0" * length)
                else:
                    writer.write(ttrpc.encode_frame(frame.stream_id, 2, 0, b""))

    async with fake_server(socket_path, serve), await ttrpc.Client.connect(socket_path) as client:
        with raises_status(Code.RESOURCE_EXHAUSTED, match=str(length)):
            await client.call_raw(SERVICE, "Nothing", b"")
        assert await client.call_raw(SERVICE, "Nothing", b"") == b""


async def test_data_frame_on_a_unary_call_is_a_protocol_error_for_that_call(
    socket_path: str,
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = ttrpc.FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                kind = 3 if frame.stream_id == 1 else 2
                writer.write(ttrpc.encode_frame(frame.stream_id, kind, 0, b""))

    async with fake_server(socket_path, serve), await ttrpc.Client.connect(socket_path) as client:
        with pytest.raises(ttrpc.RemoteProtocolError, match="data frame"):
            await client.call_raw(SERVICE, "Nothing", b"")
        assert await client.call_raw(SERVICE, "Nothing", b"") == b""


# --- connection loss ------------------------------------------------------------------------


async def test_pending_and_later_calls_fail_closed_when_server_goes_away(
    server: ttrpc.Server, client: ttrpc.Client, echo_service: EchoService
) -> None:
    closed_calls: list[str] = []
    client.on_close(lambda: closed_calls.append("sync"))

    async def async_cb() -> None:
        await asyncio.sleep(0)
        closed_calls.append("async")

    client.on_close(async_cb)
    pending = asyncio.create_task(client.call(SERVICE, "Slow", Req(), Resp))
    async with asyncio.timeout(5):
        await echo_service.slow_started.wait()
    await server.close()
    with pytest.raises(ttrpc.Closed) as info:
        await pending
    assert str(info.value) == "ttrpc: closed"
    assert info.value.code == Code.UNAVAILABLE
    async with asyncio.timeout(5):
        await client.wait_closed()
    assert closed_calls == ["sync", "async"]
    assert client.closed
    with pytest.raises(ttrpc.Closed):
        await echo(client)


async def test_wait_closed_waits_for_the_on_close_callback(client: ttrpc.Client) -> None:
    gate = asyncio.Event()

    async def slow_callback() -> None:
        await gate.wait()

    client.on_close(slow_callback)
    closing = asyncio.create_task(client.close())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await asyncio.shield(client.wait_closed())
    gate.set()
    async with asyncio.timeout(5):
        await closing
        await client.wait_closed()


async def test_on_close_runs_once(client: ttrpc.Client) -> None:
    calls: list[int] = []
    client.on_close(lambda: calls.append(1))
    await client.close()
    await client.close()
    assert calls == [1]


async def test_server_closes_its_side_when_the_client_disconnects(
    server: ttrpc.Server, socket_path: str
) -> None:
    conn = await RawConnection.open(socket_path)
    await conn.send_request(1, "Nothing")
    await conn.read_frames(1)
    assert len(server._connections) == 1
    conn.writer.write_eof()
    frames, trailing = await conn.read_until_eof()
    assert (frames, trailing) == ([], 0)
    await conn.close()
    assert not server._connections


async def test_truncated_frame_closes_only_that_connection(
    server: ttrpc.Server, client: ttrpc.Client, socket_path: str
) -> None:
    conn = await RawConnection.open(socket_path)
    await conn.send(ttrpc.encode_frame(1, 1, 0, b"abcdef")[:8])
    conn.writer.write_eof()
    assert await conn.read_until_eof() == ([], 0)
    await conn.close()
    assert (await echo(client)).text == "hi"


# --- connecting -----------------------------------------------------------------------------


async def test_connect_refused_fails_fast_naming_the_address(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "dead.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound but not listening: ECONNREFUSED
    try:
        # Given all the time in the world, it still fails with the refusal (no retrying).
        with pytest.raises(ttrpc.ConnectionRefused) as info:
            await ttrpc.Client.connect("unix://" + path, timeout=HANG)
        assert info.value.code == Code.UNAVAILABLE
        assert info.value.address == "unix://" + path
        assert path in str(info.value)
    finally:
        dead.close()


async def test_connect_to_missing_socket_fails_fast_with_not_found(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "missing.sock")
    with pytest.raises(ttrpc.SocketNotFound) as info:
        await ttrpc.Client.connect(path)
    assert info.value.code == Code.NOT_FOUND
    assert path in str(info.value)


async def test_connect_to_unused_abstract_name_fails_fast() -> None:
    with pytest.raises(ttrpc.ConnectionRefused):
        await ttrpc.Client.connect(unused_abstract_name())


async def test_abstract_socket_round_trip(echo_service: EchoService) -> None:
    name = unused_abstract_name()
    async with serving(name, echo_service.handlers()):
        async with await ttrpc.Client.connect(name) as client:
            assert (await echo(client)).text == "hi"


# --- server lifecycle -------------------------------------------------------------------------


async def test_serve_creates_a_0600_socket_and_returns_once_listening(
    server: ttrpc.Server, socket_path: str
) -> None:
    st = os.stat(socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert is_listening(socket_path)


async def test_serve_replaces_a_stale_socket_file(
    socket_path: str, echo_service: EchoService
) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(socket_path)
    stale.close()
    async with serving(socket_path, echo_service.handlers()):
        async with await ttrpc.Client.connect(socket_path) as client:
            assert (await echo(client)).text == "hi"
    assert not os.path.exists(socket_path)


async def test_serve_refuses_a_socket_someone_listens_on(
    server: ttrpc.Server, socket_path: str
) -> None:
    with raises_status(Code.ALREADY_EXISTS, match="in use"):
        await ttrpc.Server().serve(socket_path)
    assert is_listening(socket_path)


async def test_serve_refuses_to_replace_a_regular_file(socket_path: str) -> None:
    with open(socket_path, "w"):
        pass
    with raises_status(Code.ALREADY_EXISTS, match="not a socket"):
        await ttrpc.Server().serve(socket_path)


async def test_graceful_shutdown_lets_in_flight_call_finish(
    server: ttrpc.Server, client: ttrpc.Client, echo_service: EchoService, socket_path: str
) -> None:
    in_flight = asyncio.create_task(client.call(SERVICE, "Slow", Req(text="done"), Resp))
    async with asyncio.timeout(5):
        await echo_service.slow_started.wait()
    shutting_down = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0)  # let shutdown stop the listener
    assert not is_listening(socket_path)
    assert not shutting_down.done()
    echo_service.release_slow.set()
    async with asyncio.timeout(5):
        assert (await in_flight).text == "done"
        await shutting_down
        await client.wait_closed()
    assert not os.path.exists(socket_path)


async def test_close_cancels_running_handlers(
    server: ttrpc.Server, client: ttrpc.Client, echo_service: EchoService
) -> None:
    in_flight = asyncio.create_task(client.call(SERVICE, "Slow", Req(), Resp))
    async with asyncio.timeout(5):
        await echo_service.slow_started.wait()
        await server.close()
        with pytest.raises(ttrpc.Closed):
            await in_flight
        await echo_service.slow_cancelled.wait()


async def test_peer_credentials_rejection_closes_without_frames(
    socket_path: str, echo_service: EchoService
) -> None:
    seen: list[ttrpc.PeerCredentials] = []

    def other_user_only(peer: ttrpc.PeerCredentials) -> bool:
        seen.append(peer)
        return peer.uid == os.geteuid() + 1

    async with serving(socket_path, echo_service.handlers(), check_peer=other_user_only):
        conn = await RawConnection.open(socket_path)
        await conn.send_request(1, "Nothing")
        try:
            frames, trailing = await conn.read_until_eof()
        except ConnectionResetError:
            frames, trailing = [], 0
        assert (frames, trailing) == ([], 0)
        await conn.close()
    assert seen[0].uid == os.geteuid()
    assert seen[0].pid == os.getpid()


async def test_same_user_peer_is_accepted_and_visible_to_handlers(
    client: ttrpc.Client, echo_service: EchoService
) -> None:
    echo_service.release_slow.set()
    await client.call(SERVICE, "Slow", Req(), Resp)
    peer = echo_service.contexts[0].peer
    assert peer == ttrpc.PeerCredentials(os.getpid(), os.geteuid(), os.getegid())


def test_register_rejects_unknown_methods_and_duplicates() -> None:
    srv = ttrpc.Server()

    async def h(req: object, ctx: ttrpc.CallContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    with raises_status(Code.INVALID_ARGUMENT, match="has no method 'Nope'"):
        srv.register(ECHO_DESCRIPTOR, {"Nope": h})
    srv.register(ECHO_DESCRIPTOR, {"Nothing": h})
    with raises_status(Code.ALREADY_EXISTS, match=r"taskplane\.test\.echo\.Echo"):
        srv.register(ECHO_DESCRIPTOR, {"Nothing": h})


async def test_unregistered_method_of_a_registered_service_is_unimplemented(
    socket_path: str,
) -> None:
    async def h(req: object, ctx: ttrpc.CallContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async with serving(socket_path, {"Nothing": h}):
        async with await ttrpc.Client.connect(socket_path) as client:
            with raises_status(Code.UNIMPLEMENTED, match=r"^method Echo$"):
                await echo(client)


async def test_handler_returning_none_is_unknown_marshal_nil(socket_path: str) -> None:
    async def h(req: object, ctx: ttrpc.CallContext) -> None:
        return None

    async with serving(socket_path, {"Echo": h}):  # type: ignore[dict-item]
        async with await ttrpc.Client.connect(socket_path) as client:
            with raises_status(Code.UNKNOWN, match="ttrpc: marshal called with nil"):
                await echo(client)


async def test_connect_to_a_full_backlog_fails_fast_with_unavailable(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "full.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        while True:  # fill the backlog until a non-blocking connect would block
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect(path)
            except BlockingIOError:
                break
        # Not a wait for the backlog to drain until the timeout: EAGAIN is the answer.
        with raises_status(Code.UNAVAILABLE, match="temporarily unavailable") as info:
            await ttrpc.Client.connect(path, timeout=HANG)
        assert path in str(info.value)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_closing_the_client_from_its_on_close_callback_does_not_deadlock(
    server: ttrpc.Server, client: ttrpc.Client
) -> None:
    done = asyncio.Event()

    async def reconnect_style_callback() -> None:
        await client.close()
        await client.wait_closed()
        done.set()

    client.on_close(reconnect_style_callback)
    await server.close()
    async with asyncio.timeout(5):
        await client.wait_closed()
    assert done.is_set()
