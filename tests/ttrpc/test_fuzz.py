"""Random and mutated frames thrown at a running server over real sockets.

The server runs on its own event loop in a thread; each example opens a connection, sends its
bytes, half-closes and reads every answer until the server closes. Invariants:

- the server never crashes or logs an internal error;
- every answer is a well-formed Response frame on a stream the client used, and each Request,
  Data or oversize frame the server could decode gets at most one answer (each Request exactly
  one);
- a second, well-behaved connection gets correct answers after every example.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime_v2 import ttrpc
from runtime_v2.ttrpc import Frame, FrameDecoder, OversizeFrame, encode_frame, ttrpc_pb2

from . import echo_pb2
from .conftest import ECHO_DESCRIPTOR, SERVICE, EchoService, request_frame

EXAMPLES = 2000


class ThreadedServer:
    """A ttrpc server with the Echo service on its own loop in a daemon thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, object]] = []
        self.loop.set_exception_handler(lambda loop, ctx: self.loop_errors.append(ctx))
        self.server = ttrpc.Server()
        self.server.register(ECHO_DESCRIPTOR, EchoService().handlers())
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ttrpc-fuzz-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(self.path))
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()
        assert self._ready.wait(10), "fuzz server did not start"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ErrorRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class GoodClient:
    """A blocking, well-behaved raw client on its own connection."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.decoder = FrameDecoder()
        self.next_id = 1
        self.pending: list[Frame | OversizeFrame] = []

    def echo(self, text: str) -> str:
        sid, self.next_id = self.next_id, self.next_id + 2
        payload = echo_pb2.EchoRequest(text=text).SerializeToString()
        self.sock.sendall(request_frame(sid, "Echo", payload))
        while not self.pending:
            data = self.sock.recv(65536)
            assert data, "good connection closed"
            self.pending.extend(self.decoder.feed(data))
        frame = self.pending.pop(0)
        assert isinstance(frame, Frame) and frame.stream_id == sid
        resp = ttrpc_pb2.Response.FromString(frame.data)
        assert not resp.HasField("status"), resp.status
        return str(echo_pb2.EchoResponse.FromString(resp.payload).text)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[ThreadedServer, GoodClient, ErrorRecorder]]:
    import tempfile

    directory = tempfile.mkdtemp(prefix="ttrpc-fuzz-", dir="/tmp")
    path = os.path.join(directory, "fuzz.sock")
    recorder = ErrorRecorder()
    logger = logging.getLogger("runtime_v2.ttrpc")
    logger.addHandler(recorder)
    server = ThreadedServer(path)
    server.start()
    good = GoodClient(path)
    try:
        yield server, good, recorder
    finally:
        good.close()
        server.stop()
        logger.removeHandler(recorder)
        os.rmdir(directory)


# --- strategies -----------------------------------------------------------------------------

stream_ids = st.one_of(
    st.integers(0, 12),
    st.sampled_from([0xFFFFFFFF, 0xFFFFFFFE, 2**31 + 1]),
    st.integers(0, 2**32 - 1),
)
methods = st.sampled_from(["Echo", "Nothing", "Fail", "Bogus", ""])
services = st.sampled_from([SERVICE, SERVICE, "containerd.task.v3.Task", ""])


@st.composite
def request_frames(draw: st.DrawFn) -> bytes:
    method = draw(methods)
    if method == "Echo" and draw(st.booleans()):
        payload = echo_pb2.EchoRequest(
            text=draw(st.text(max_size=20)), data=draw(st.binary(max_size=64))
        ).SerializeToString()
    elif method == "Fail" and draw(st.booleans()):
        payload = echo_pb2.FailRequest(
            code=draw(st.integers(-5, 40)), message=draw(st.text(max_size=20))
        ).SerializeToString()
    else:
        payload = draw(st.binary(max_size=40))
    req = ttrpc_pb2.Request(
        service=draw(services),
        method=method,
        payload=payload,
        timeout_nano=draw(st.sampled_from([0, 0, 1, 10**9, -5, 2**63 - 1])),
        metadata=[ttrpc_pb2.KeyValue(key="containerd-namespace-ttrpc", value="fuzz")],
    )
    flags = draw(st.sampled_from([0, 0, 1, 2, 4, 0xFF]))
    return encode_frame(draw(stream_ids), 1, flags, req.SerializeToString())


@st.composite
def random_frames(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=64))
    return encode_frame(
        draw(stream_ids), draw(st.integers(0, 255)), draw(st.integers(0, 255)), data
    )


@st.composite
def oversize_headers(draw: st.DrawFn) -> bytes:
    """A header announcing more than 4 MiB (the body never fully arrives)."""
    length = draw(st.integers(ttrpc.MAX_MESSAGE_SIZE + 1, 2**32 - 1))
    return length.to_bytes(4, "big") + draw(stream_ids).to_bytes(4, "big") + b"\x01\x00"


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    if not data:
        return data
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "none"]))
    pos = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1 :]
    if kind == "truncate":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    return data


@st.composite
def streams_of_frames(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(request_frames(), request_frames(), random_frames()), min_size=1, max_size=6
        )
    )
    data = b"".join(parts)
    if draw(st.booleans()):
        data = mutate(data, draw)
    if draw(st.integers(0, 19)) == 0:
        data += draw(oversize_headers())
    return data


# --- the test -------------------------------------------------------------------------------


def exchange(path: str, data: bytes) -> tuple[list[Frame | OversizeFrame], int]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        decoder = FrameDecoder()
        frames: list[Frame | OversizeFrame] = []
        while chunk := sock.recv(65536):
            frames.extend(decoder.feed(chunk))
        return frames, decoder.buffered
    finally:
        sock.close()


def check_answers(sent: bytes, answers: list[Frame | OversizeFrame], trailing: int) -> None:
    assert trailing == 0, "the server left a partial frame"
    requests: collections.Counter[int] = collections.Counter()
    maybe: collections.Counter[int] = collections.Counter()
    for frame in FrameDecoder().feed(sent):
        if isinstance(frame, OversizeFrame):
            requests[frame.stream_id] += 1
        elif frame.type == 1:
            requests[frame.stream_id] += 1
        elif frame.type == 3:
            maybe[frame.stream_id] += 1  # answered unless its stream is still active
    answered: collections.Counter[int] = collections.Counter()
    for frame in answers:
        assert isinstance(frame, Frame)
        assert (frame.type, frame.flags) == (2, 0), frame
        ttrpc_pb2.Response.FromString(frame.data)  # well-formed
        answered[frame.stream_id] += 1
    for sid, count in answered.items():
        assert requests[sid] <= count <= requests[sid] + maybe[sid], (sid, count)
    for sid, count in requests.items():
        assert answered[sid] >= count, f"stream {sid}: {count} requests, {answered[sid]} answers"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=streams_of_frames())
def test_server_survives_random_and_mutated_frames(
    fuzz_target: tuple[ThreadedServer, GoodClient, ErrorRecorder], data: bytes
) -> None:
    server, good, recorder = fuzz_target
    answers, trailing = exchange(server.path, data)
    check_answers(data, answers, trailing)
    assert good.echo("still fine") == "still fine"
    assert server.thread.is_alive()
    assert not server.loop_errors, server.loop_errors
    assert not recorder.records, [r.getMessage() for r in recorder.records]
