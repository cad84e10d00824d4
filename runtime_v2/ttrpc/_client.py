"""ttrpc client on asyncio: one connection, many concurrent unary calls.

Each call gets the next odd stream id; the id is allocated and the Request frame queued in one
synchronous step, so ids on the wire always increase. Frames queued in one event-loop turn are
written together. Responses are matched to calls by stream id; a response for a call that gave up
(cancelled, deadline) is dropped.

Deadlines: the deadline sent to the server (``timeout_nano``) is the earlier of the ``timeout=``
argument and the deadline of the enclosing :func:`~runtime_v2.ttrpc.timeout` /
:func:`~runtime_v2.ttrpc.deadline` block (see ``_deadline``). ``ttrpc.timeout`` is the one to
use: it is ``asyncio.timeout()`` that also tells the server::

    async with ttrpc.timeout(5):
        state = await client.call("containerd.task.v2.Task", "State", req, StateResponse)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import DecodeError, Message

from runtime_v2.ttrpc import ttrpc_pb2
from runtime_v2.ttrpc._address import socket_name
from runtime_v2.ttrpc._codec import (
    Frame,
    FrameDecoder,
    MessageType,
    OversizeFrame,
    encode_frame,
    encode_metadata,
    encode_method,
    encode_request,
)
from runtime_v2.ttrpc._deadline import deadline_within
from runtime_v2.ttrpc._errors import (
    Code,
    DeadlineExceeded,
    OversizedMessage,
    RemoteProtocolError,
    StatusError,
    closed_error,
    connect_errors,
)
from runtime_v2.ttrpc._metadata import NAMESPACE_KEY
from runtime_v2.ttrpc._writer import FrameWriter

if TYPE_CHECKING:
    from runtime_v2.ttrpc._peer import PeerCredentials

__all__ = ["Client"]

log = logging.getLogger("taskplane." + __name__)

M = TypeVar("M", bound=Message)

_MAX_STREAM_ID = 0xFFFFFFFF
_REQUEST = int(MessageType.REQUEST)
_RESPONSE = int(MessageType.RESPONSE)
_DATA = int(MessageType.DATA)
_Response = ttrpc_pb2.Response


class _ClientProtocol(asyncio.Protocol):
    """Thin asyncio adapter: forwards transport events to the :class:`Client`."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        client = self._client
        client._transport = transport
        client._writer = FrameWriter(client._loop, transport)

    def data_received(self, data: bytes) -> None:
        self._client._data_received(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too: the server is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._connection_lost(exc)

    def pause_writing(self) -> None:
        self._client._pause_writing()

    def resume_writing(self) -> None:
        self._client._resume_writing()


class Client:
    """A ttrpc client connection. Create it with :meth:`connect`; close it with :meth:`close`.

    Example::

        client = await Client.connect("unix:///run/containerd/s/abc")
        resp = await client.call("containerd.task.v2.Task", "Connect",
                                 ConnectRequest(id="c1"), ConnectResponse, namespace="default")
        await client.close()

    An error status raises :class:`StatusError` with its code; once the connection is gone
    every pending and later call raises :class:`Closed`.
    """

    def __init__(self, address: str = "") -> None:
        """Internal: use :meth:`connect`."""
        self.address = address
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._writer: FrameWriter | None = None
        self._decoder = FrameDecoder()
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Frame | OversizeFrame]] = {}
        self._drain: asyncio.Future[None] | None = None
        self._close_cause: BaseException | None = None
        self._closing = False
        self._lost = False
        self._on_close: list[Callable[[], object]] = []
        self._closed_event = asyncio.Event()
        self._on_close_task: asyncio.Task[None] | None = None
        self._method_cache: dict[tuple[str, str], bytes] = {}
        self._md_cache: dict[tuple[str | None, tuple[tuple[str, str], ...]], bytes] = {}

    # --- construction / lifecycle --------------------------------------------------------

    @classmethod
    async def connect(cls, address: str, *, timeout: float = 100.0) -> Client:
        """Dial ``address`` (``unix:///path``, ``/path``, ``unix:/path``, or abstract ``name``).

        Fails fast, without retrying: :class:`ConnectionRefused` (Unavailable) when nothing
        listens, :class:`SocketNotFound` (NotFound) when the socket file is missing, a
        :class:`StatusError` Unavailable when the listener's backlog is full (EAGAIN),
        :class:`DeadlineExceeded` after ``timeout`` seconds.
        """
        name = socket_name(address)
        loop = asyncio.get_running_loop()
        client = cls(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with connect_errors(address, timeout):
                sock.setblocking(False)
                # A unix connect completes or fails at once (EAGAIN when the backlog is full,
                # like Go); asyncio's sock_connect would wrongly wait on EAGAIN.
                sock.connect(name)
                async with asyncio.timeout(timeout):
                    await loop.create_unix_connection(lambda: _ClientProtocol(client), sock=sock)
        except BaseException:
            sock.close()
            raise
        return client

    @property
    def closed(self) -> bool:
        """True once the connection is closing or gone; calls then raise :class:`Closed`."""
        return self._closing or self._lost

    def on_close(self, callback: Callable[[], object | Awaitable[object]]) -> None:
        """Run ``callback`` once, after the connection is gone (awaited if it is a coroutine).

        Registered after the connection closed, it is scheduled right away.
        """
        self._on_close.append(callback)
        if self._closed_event.is_set():
            self._closed_event.clear()
            self._on_close_task = self._loop.create_task(self._run_on_close())

    def peer_credentials(self) -> PeerCredentials | None:
        """The SO_PEERCRED credentials of the server process, or None when not connected."""
        # Imported here: a client that never asks (a listing) builds no credentials class.
        from runtime_v2.ttrpc._peer import read_peer_credentials

        sock = self._transport.get_extra_info("socket") if self._transport is not None else None
        if sock is None:
            return None
        try:
            return read_peer_credentials(sock)
        except OSError:
            return None

    async def wait_closed(self) -> None:
        """Return once the connection is gone and every on-close callback has returned.

        Called from an on-close callback it returns at once (waiting would deadlock).
        """
        if self._on_close_task is not None and asyncio.current_task() is self._on_close_task:
            return
        await self._closed_event.wait()

    async def close(self) -> None:
        """Close the connection (pending calls fail with :class:`Closed`) and wait for it."""
        self._closing = True
        if self._transport is not None:
            assert self._writer is not None
            self._writer.flush()
            self._transport.close()
        await self.wait_closed()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- calls --------------------------------------------------------------------------

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        namespace: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> M:
        """Call ``service``/``method`` with ``request`` and decode the result as ``response_type``.

        ``namespace`` is sent as ``containerd-namespace-ttrpc`` metadata; ``metadata`` pairs are
        sent as given (keys lowercased). ``timeout`` (seconds) and the enclosing
        :func:`timeout` / :func:`deadline` block bound the call; the earlier one is sent to the
        server as ``timeout_nano``. Bound calls with ``async with ttrpc.timeout(s):``, not a
        plain ``asyncio.timeout(s)``: that one cancels the call locally, but Python offers no
        public way to read its deadline, so the server is not told. Raises
        :class:`StatusError` for an error status, :class:`OversizedMessage` (ResourceExhausted,
        nothing sent) for requests over 4 MiB, :class:`DeadlineExceeded`, or :class:`Closed`.
        """
        payload = await self.call_raw(
            service,
            method,
            request.SerializeToString(),
            namespace=namespace,
            metadata=metadata,
            timeout=timeout,
        )
        try:
            return response_type.FromString(payload)
        except DecodeError as exc:
            raise RemoteProtocolError(
                f"ttrpc: cannot decode the {response_type.DESCRIPTOR.full_name} answering "
                f"{service}/{method}: {exc}"
            ) from exc

    async def call_raw(
        self,
        service: str,
        method: str,
        payload: bytes,
        *,
        namespace: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> bytes:
        """Like :meth:`call` with an already marshalled request; returns the response payload."""
        if self._closing or self._lost:
            raise closed_error(self._close_cause)
        if self._drain is not None:
            await asyncio.shield(self._drain)
            if self._closing or self._lost:
                raise closed_error(self._close_cause)

        when = deadline_within(timeout)
        timeout_nano = 0
        remaining = 0.0
        if when is not None:
            remaining = when - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"ttrpc call {service}/{method}: deadline exceeded before it was sent"
                )
            timeout_nano = max(1, int(remaining * 1e9))

        method_bytes = self._method_cache.get((service, method))
        if method_bytes is None:
            method_bytes = self._method_cache[(service, method)] = encode_method(service, method)
        md_key = (namespace, tuple(metadata))
        md_bytes = self._md_cache.get(md_key)
        if md_bytes is None:
            md_bytes = self._metadata_bytes(namespace, metadata)
            if len(self._md_cache) > 256:
                self._md_cache.clear()
            self._md_cache[md_key] = md_bytes

        stream_id = self._next_id
        if stream_id > _MAX_STREAM_ID:
            raise StatusError(
                Code.RESOURCE_EXHAUSTED,
                f"ttrpc connection to {self.address!r} has used all its stream ids; reconnect",
            )
        # Raises OversizedMessage before the id is taken or anything is written.
        frame_bytes = encode_frame(
            stream_id, _REQUEST, 0, encode_request(method_bytes, payload, timeout_nano, md_bytes)
        )
        self._next_id = stream_id + 2
        loop = self._loop
        fut: asyncio.Future[Frame | OversizeFrame] = loop.create_future()
        self._pending[stream_id] = fut
        writer = self._writer
        assert writer is not None
        writer.write(frame_bytes)
        timer = None
        if when is not None:
            timer = loop.call_later(remaining, _expire, fut, service, method)
        try:
            frame = await fut
        finally:
            del self._pending[stream_id]
            if timer is not None:
                timer.cancel()

        if isinstance(frame, OversizeFrame):
            raise OversizedMessage(frame.length)
        if frame.type != _RESPONSE:
            raise RemoteProtocolError(
                f"ttrpc: server sent a data frame on unary call {service}/{method} "
                f"(stream {stream_id})"
            )
        raw = frame.data
        if not raw:
            return b""
        try:
            resp = _Response.FromString(raw)
        except DecodeError as exc:
            raise RemoteProtocolError(
                f"ttrpc: cannot decode the response to {service}/{method}: {exc}"
            ) from exc
        if resp.HasField("status") and resp.status.code != 0:
            status = resp.status
            raise StatusError(status.code, status.message, status.details)
        return resp.payload

    @staticmethod
    def _metadata_bytes(namespace: str | None, metadata: Sequence[tuple[str, str]]) -> bytes:
        pairs = [(key.lower(), value) for key, value in metadata]
        if namespace is not None:
            pairs.insert(0, (NAMESPACE_KEY, namespace))
        return encode_metadata(pairs)

    # --- transport events ---------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        pending = self._pending
        for frame in self._decoder.feed(data):
            fut = pending.get(frame.stream_id)
            if fut is None:
                # A call that gave up (cancelled / deadline) or a bogus id: drop it, as Go does.
                log.debug("ttrpc: received message on inactive stream %d", frame.stream_id)
                continue
            if frame.type in (_RESPONSE, _DATA) and not fut.done():
                fut.set_result(frame)

    def _connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._close_cause = exc
        if self._writer is not None:
            self._writer.discard()
        if self._decoder.buffered:
            log.debug("ttrpc: connection to %r closed inside a frame", self.address)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(closed_error(exc))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._on_close_task = self._loop.create_task(self._run_on_close())

    async def _run_on_close(self) -> None:
        while self._on_close:
            callback = self._on_close.pop(0)
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("ttrpc: on-close callback %r failed", callback)
        self._closed_event.set()

    def _pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_future()

    def _resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)


def _expire(fut: asyncio.Future[Any], service: str, method: str) -> None:
    if not fut.done():
        fut.set_exception(DeadlineExceeded(f"ttrpc call {service}/{method}: deadline exceeded"))
