"""Fixtures for the ttrpc tests: an Echo service, a running server, clients and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import attrs
import pytest
from google.protobuf import any_pb2, empty_pb2

from runtime_v2 import ttrpc
from runtime_v2.ttrpc import (
    CallContext,
    Code,
    Frame,
    FrameDecoder,
    OversizeFrame,
    PeerCredentials,
    same_user,
    ttrpc_pb2,
)

from . import echo_pb2

SERVICE = "taskplane.test.echo.Echo"
ECHO_DESCRIPTOR = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
#: The type url of the detail a Fail call with ``detail`` attaches to its status.
DETAIL_TYPE = "type.googleapis.com/taskplane.test.Detail"

_PYTHON_ERRORS: dict[str, type[BaseException]] = {
    "FileNotFoundError": FileNotFoundError,
    "FileExistsError": FileExistsError,
    "PermissionError": PermissionError,
    "TimeoutError": TimeoutError,
    "ValueError": ValueError,
}


@attrs.define
class EchoService:
    """Handlers of the test Echo service, with hooks the tests observe and control."""

    slow_started: asyncio.Event = attrs.field(factory=asyncio.Event)
    release_slow: asyncio.Event = attrs.field(factory=asyncio.Event)
    slow_cancelled: asyncio.Event = attrs.field(factory=asyncio.Event)
    contexts: list[CallContext] = attrs.field(factory=list)

    async def echo(self, req: echo_pb2.EchoRequest, ctx: CallContext) -> echo_pb2.EchoResponse:
        remaining = ctx.remaining()
        if req.reply_size > 2 * ttrpc.MAX_MESSAGE_SIZE:
            raise ttrpc.StatusError(
                Code.INVALID_ARGUMENT, f"reply_size {req.reply_size} is too large"
            )
        data = b"x" * req.reply_size if req.reply_size > 0 else req.data
        return echo_pb2.EchoResponse(
            text=req.text,
            data=data,
            remaining=-1.0 if remaining is None else remaining,
            namespace=ctx.namespace or "",
            metadata=[f"{k}={v}" for k, values in ctx.metadata.items() for v in values],
        )

    async def slow(self, req: echo_pb2.EchoRequest, ctx: CallContext) -> echo_pb2.EchoResponse:
        """Waits for release_slow (or req.sleep seconds when set), then echoes."""
        self.contexts.append(ctx)
        self.slow_started.set()
        try:
            if req.sleep:
                await asyncio.sleep(req.sleep)
            else:
                await self.release_slow.wait()
        except asyncio.CancelledError:
            self.slow_cancelled.set()
            raise
        return await self.echo(req, ctx)

    async def fail(self, req: echo_pb2.FailRequest, ctx: CallContext) -> empty_pb2.Empty:
        if req.python_error:
            raise _PYTHON_ERRORS[req.python_error](req.message)
        details = [any_pb2.Any(type_url=DETAIL_TYPE, value=req.detail)] if req.detail else []
        raise ttrpc.StatusError(req.code, req.message, details)

    async def nothing(self, req: empty_pb2.Empty, ctx: CallContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def handlers(self) -> dict[str, ttrpc.Handler]:
        return {"Echo": self.echo, "Slow": self.slow, "Fail": self.fail, "Nothing": self.nothing}


@contextlib.contextmanager
def raises_status(
    code: Code, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[ttrpc.StatusError]]:
    """``pytest.raises(ttrpc.StatusError, match=match)`` that also checks the status code."""
    with pytest.raises(ttrpc.StatusError, match=match) as info:
        yield info
    assert info.value.code == code, f"{info.value!r}: expected code {code.name}"


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A short directory for sockets (AF_UNIX paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="ttrpc-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(sock_dir: str) -> str:
    return os.path.join(sock_dir, "echo.sock")


@pytest.fixture
def echo_service() -> EchoService:
    return EchoService()


@contextlib.asynccontextmanager
async def serving(
    address: str,
    handlers: Mapping[str, ttrpc.Handler],
    *,
    check_peer: Callable[[PeerCredentials], bool] | None = same_user,
) -> AsyncIterator[ttrpc.Server]:
    """A server of the Echo service with ``handlers``, listening on ``address``; closed after."""
    srv = ttrpc.Server(check_peer=check_peer)
    srv.register(ECHO_DESCRIPTOR, handlers)
    await srv.serve(address)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def server(echo_service: EchoService, socket_path: str) -> AsyncIterator[ttrpc.Server]:
    async with serving(socket_path, echo_service.handlers()) as srv:
        yield srv


@pytest.fixture
async def client(server: ttrpc.Server, socket_path: str) -> AsyncIterator[ttrpc.Client]:
    cl = await ttrpc.Client.connect("unix://" + socket_path, timeout=5)
    yield cl
    await cl.close()


def request_frame(
    stream_id: int,
    method: str,
    payload: bytes = b"",
    *,
    service: str = SERVICE,
    flags: int = 0,
    timeout_nano: int = 0,
) -> bytes:
    """The bytes of a Request frame, encoded the plain protobuf way (not the client's)."""
    req = ttrpc_pb2.Request(
        service=service, method=method, payload=payload, timeout_nano=timeout_nano
    )
    return ttrpc.encode_frame(stream_id, 1, flags, req.SerializeToString())


async def read_frame_data(reader: asyncio.StreamReader) -> bytes:
    """Read one whole frame from ``reader`` and return its data (for scripted peers)."""
    header = await reader.readexactly(ttrpc.HEADER_SIZE)
    return await reader.readexactly(int.from_bytes(header[:4], "big"))


class RawConnection:
    """A client speaking raw frames, to check exact bytes and protocol violations."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.frames: list[Frame | OversizeFrame] = []

    @classmethod
    async def open(cls, path: str) -> RawConnection:
        reader, writer = await asyncio.open_unix_connection(path, limit=16 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_request(
        self,
        stream_id: int,
        method: str,
        payload: bytes = b"",
        *,
        service: str = SERVICE,
        flags: int = 0,
        timeout_nano: int = 0,
    ) -> None:
        await self.send(
            request_frame(
                stream_id,
                method,
                payload,
                service=service,
                flags=flags,
                timeout_nano=timeout_nano,
            )
        )

    async def read_frames(self, count: int, timeout: float = 5.0) -> list[Frame | OversizeFrame]:
        """Return the next ``count`` frames (raises TimeoutError if they do not come)."""
        async with asyncio.timeout(timeout):
            while len(self.frames) < count:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError(f"connection closed after {len(self.frames)} frames")
                self.frames.extend(self.decoder.feed(data))
        out, self.frames = self.frames[:count], self.frames[count:]
        return out

    async def read_until_eof(self, timeout: float = 5.0) -> tuple[list[Frame | OversizeFrame], int]:
        """All frames until the server closes, and the count of trailing bytes."""
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                self.frames.extend(self.decoder.feed(data))
        out, self.frames = self.frames, []
        return out, self.decoder.buffered

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def response_of(frame: Frame | OversizeFrame) -> ttrpc_pb2.Response:
    assert isinstance(frame, Frame), frame
    assert frame.type == 2 and frame.flags == 0, frame
    return ttrpc_pb2.Response.FromString(frame.data)


@pytest.fixture
async def raw(server: ttrpc.Server, socket_path: str) -> AsyncIterator[RawConnection]:
    conn = await RawConnection.open(socket_path)
    yield conn
    await conn.close()


def unused_abstract_name() -> str:
    """An abstract socket name nobody listens on."""
    return f"taskplane-ttrpc-test-{os.getpid()}-{id(object())}"


def is_listening(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


FakeHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(path: str, handler: FakeHandler) -> AsyncIterator[None]:
    """A scripted peer on ``path``: ``handler`` talks raw bytes; its writer is closed after."""
    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_unix_server(run, path)
    try:
        async with srv:
            yield
    finally:
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
