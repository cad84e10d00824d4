"""ttrpc server on asyncio: services from protobuf descriptors, unary calls.

Each accepted connection is checked with SO_PEERCRED, then frames are decoded with the pure
codec and every valid Request runs its handler in its own task. Answers queued in one event-loop
turn are written together. Errors are answered exactly as containerd's ttrpc server does
(``server.go``, ``services.go``): unknown service/method -> Unimplemented "service X" /
"method X", stream id violations -> InvalidArgument, oversize frames -> ResourceExhausted
(connection kept); a handler's :class:`StatusError` is answered with its status and any other
exception as :func:`status_of` says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from google.protobuf import message_factory
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from runtime_v2.ttrpc import ttrpc_pb2
from runtime_v2.ttrpc._address import socket_name
from runtime_v2.ttrpc._codec import (
    MAX_MESSAGE_SIZE,
    Frame,
    FrameDecoder,
    MessageType,
    ServerStreams,
    encode_frame,
    encode_response_payload,
)
from runtime_v2.ttrpc._deadline import loop_time, set_deadline
from runtime_v2.ttrpc._errors import (
    Code,
    OversizedMessage,
    StatusError,
    listen_errors,
    status_of,
)
from runtime_v2.ttrpc._metadata import MD, NAMESPACE_KEY
from runtime_v2.ttrpc._peer import PeerCredentials, read_peer_credentials, same_user
from runtime_v2.ttrpc._writer import FrameWriter

__all__ = [
    "LOG_INTERVAL",
    "MAX_CONNECTIONS",
    "CallContext",
    "Handler",
    "PeerCredentials",
    "Server",
    "same_user",
]

log = logging.getLogger("taskplane." + __name__)

#: Connections one server holds at once (and never more than a quarter of the process's open
#: file limit); further ones are closed as soon as they are accepted. A flood must not use up
#: the process's descriptors, which the rest of taskplane needs: at the limit asyncio's accept
#: loop logs a traceback per attempt, and unmounting a rootfs fails.
MAX_CONNECTIONS = 256
#: Seconds between two log lines about the same kind of refused connection; the ones between
#: are counted and the count is logged with the next line (or when the server closes).
LOG_INTERVAL = 10.0


class _ThrottledLog:
    """Log a repeated warning once per :data:`LOG_INTERVAL`, counting the repeats in between.

    Under a connection flood every connection fails the same way; one line per connection is
    hundreds of thousands of lines. ``warn(key, message)`` logs the first, then at most one line
    per interval that says how many were not logged; :meth:`flush` logs what is left.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._skipped: dict[str, tuple[int, str]] = {}

    def warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < LOG_INTERVAL:
            count, _ = self._skipped.get(key, (0, message))
            self._skipped[key] = (count + 1, message)
            return
        self._last[key] = now
        count, _ = self._skipped.pop(key, (0, message))
        log.warning("%s%s", message, _more(count))

    def flush(self) -> None:
        for count, message in self._skipped.values():
            log.warning("%s%s", message, _more(count, last=True))
        self._skipped.clear()


def _more(count: int, *, last: bool = False) -> str:
    if count == 0:
        return ""
    return f" ({count} more like this {'not logged' if last else 'since the last line'})"


_REQUEST = int(MessageType.REQUEST)
_RESPONSE = int(MessageType.RESPONSE)
_DATA = int(MessageType.DATA)
_Request = ttrpc_pb2.Request


class CallContext:
    """What a handler knows about its call besides the request message.

    ``deadline`` is absolute :func:`time.monotonic` seconds (None: no deadline); the handler
    runs under an ``asyncio.timeout`` for it, and ttrpc calls the handler makes inherit it.
    """

    __slots__ = ("deadline", "metadata", "method", "peer", "service", "stream_id")

    def __init__(
        self,
        service: str,
        method: str,
        metadata: MD,
        deadline: float | None,
        peer: PeerCredentials | None,
        stream_id: int,
    ) -> None:
        self.service = service
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.stream_id = stream_id

    @property
    def namespace(self) -> str | None:
        """The ``containerd-namespace-ttrpc`` metadata value, if sent."""
        values = self.metadata.get(NAMESPACE_KEY)
        return values[0] if values else None

    def remaining(self) -> float | None:
        """Seconds left until the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def __repr__(self) -> str:
        return (
            f"CallContext({self.service}/{self.method}, stream={self.stream_id}, "
            f"namespace={self.namespace!r}, deadline={self.deadline!r})"
        )


#: A handler: ``async def handler(request, ctx: CallContext) -> response``.
Handler = Callable[[Any, CallContext], Awaitable[Message]]


@attrs.frozen
class _Method:
    name: str
    handler: Handler
    request_class: type[Message]


class Server:
    """A ttrpc server.

    Example::

        server = Server()
        server.register(task_v2_pb2.DESCRIPTOR.services_by_name["Task"], {"State": state})
        await server.serve("/run/taskplane/shim.sock")
        ...
        await server.shutdown()

    ``check_peer`` decides from the client's SO_PEERCRED credentials whether to accept a
    connection (default :func:`same_user`; None accepts everyone). Rejected connections are
    closed without a frame, as are connections beyond ``max_connections`` at once (default:
    :data:`MAX_CONNECTIONS`, at most a quarter of the open file limit). Refusals
    are logged throttled: one line per kind every :data:`LOG_INTERVAL` seconds with a count.
    """

    def __init__(
        self,
        *,
        check_peer: Callable[[PeerCredentials], bool] | None = same_user,
        max_connections: int | None = None,
    ) -> None:
        self._check_peer = check_peer
        if max_connections is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_connections = MAX_CONNECTIONS
            if soft != resource.RLIM_INFINITY:
                max_connections = max(1, min(MAX_CONNECTIONS, soft // 4))
        self._max_connections = max_connections
        self._throttled = _ThrottledLog()
        self._services: dict[str, dict[str, _Method]] = {}
        self._listeners: list[asyncio.AbstractServer] = []
        self._paths: list[str] = []
        self._connections: set[_ServerConnection] = set()
        self._all_closed: asyncio.Event | None = None
        self._shutting_down = False

    # --- registration -------------------------------------------------------------------

    def register(self, service: ServiceDescriptor, handlers: Mapping[str, Handler]) -> None:
        """Serve ``service`` with ``handlers`` (method name -> async handler).

        Request classes come from the descriptor's input types. Methods without a handler
        answer Unimplemented "method <name>".
        """
        name = service.full_name
        if name in self._services:
            raise StatusError(Code.ALREADY_EXISTS, f"ttrpc service {name!r} is already registered")
        methods: dict[str, _Method] = {}
        for method_name, handler in handlers.items():
            method = service.methods_by_name.get(method_name)
            if method is None:
                raise StatusError(
                    Code.INVALID_ARGUMENT, f"ttrpc service {name!r} has no method {method_name!r}"
                )
            if method.client_streaming or method.server_streaming:
                raise StatusError(
                    Code.UNIMPLEMENTED,
                    f"ttrpc method {name}/{method_name} is streaming; only unary is supported",
                )
            if not callable(handler):
                raise StatusError(
                    Code.INVALID_ARGUMENT,
                    f"handler for ttrpc method {name}/{method_name} is not callable",
                )
            request_class = message_factory.GetMessageClass(method.input_type)
            methods[method_name] = _Method(method_name, handler, request_class)
        self._services[name] = methods

    # --- listening ----------------------------------------------------------------------

    async def serve(self, address: str, *, keep_socket_file: bool = False) -> None:
        """Listen on ``address`` (a path, ``unix://`` address or abstract name); return once
        listening.

        A filesystem socket gets mode 0600; a stale socket file nobody listens on is replaced,
        while a live one raises :class:`StatusError` AlreadyExists. The file is removed when the
        server stops unless ``keep_socket_file`` is set: a stale file makes clients fail at once
        with ECONNREFUSED, where a missing one makes Go clients retry on ENOENT for seconds.
        The socket's directory must exist (NotFound otherwise).
        """
        name = socket_name(address)
        path = None if name.startswith("\0") else name
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with listen_errors(address):
                if path is not None:
                    _remove_stale_socket(address, path)
                    os.fchmod(sock.fileno(), 0o600)  # Linux: the mode bind() gives the file
                sock.bind(name)
                if path is not None:
                    os.chmod(path, 0o600)
        except BaseException:
            sock.close()
            raise
        if path is not None and not keep_socket_file:
            self._paths.append(path)
        await self.serve_socket(sock)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Accept connections on an already bound unix socket (e.g. one inherited as fd 3)."""
        if self._shutting_down:
            raise StatusError(Code.FAILED_PRECONDITION, "ttrpc: server closed")
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        with listen_errors(str(sock.getsockname())):
            listener = await loop.create_unix_server(
                lambda: _ServerConnection(self), sock=sock, backlog=128
            )
        self._listeners.append(listener)

    # --- stopping -----------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight calls finish and be answered, then close connections.

        Requests not yet read are not served (their callers see the connection close).
        """
        self._stop_listening()
        for conn in list(self._connections):
            conn.begin_shutdown()
        await self._wait_all_closed()

    async def close(self) -> None:
        """Stop accepting and close every connection now; running handlers are cancelled."""
        self._stop_listening()
        for conn in list(self._connections):
            conn.abort()
        await self._wait_all_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _stop_listening(self) -> None:
        self._shutting_down = True
        self._throttled.flush()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for path in self._paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._paths.clear()

    async def _wait_all_closed(self) -> None:
        if self._connections:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()

    def _forget(self, conn: _ServerConnection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()


def _remove_stale_socket(address: str, path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StatusError(
            Code.ALREADY_EXISTS, f"ttrpc address {address!r} exists and is not a socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: nobody listens
        return
    finally:
        probe.close()
    raise StatusError(Code.ALREADY_EXISTS, f"ttrpc address {address!r} is in use by another server")


class _ServerConnection(asyncio.Protocol):
    """One accepted connection: decodes frames, runs handlers, answers."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._services = server._services
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._writer: FrameWriter | None = None
        self._decoder = FrameDecoder()
        self._streams = ServerStreams()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._peer: PeerCredentials | None = None
        self._eof = False
        self._lost = False

    # --- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._writer = FrameWriter(self._loop, transport)
        server = self._server
        if server._shutting_down:
            transport.abort()
            return
        if len(server._connections) >= server._max_connections:
            server._throttled.warn(
                "full",
                f"ttrpc: refused a connection: {server._max_connections} connections are open",
            )
            transport.abort()
            return
        server._connections.add(self)
        sock = transport.get_extra_info("socket")
        try:
            self._peer = read_peer_credentials(sock)
        except OSError as exc:
            server._throttled.warn(
                "peercred", f"ttrpc: cannot read peer credentials, closing connection: {exc}"
            )
            transport.abort()
            return
        check = server._check_peer
        try:
            accepted = check is None or check(self._peer)
        except Exception as exc:
            server._throttled.warn(
                "check", f"ttrpc: peer check raised {exc!r}; rejecting the connection"
            )
            accepted = False
        if not accepted:
            server._throttled.warn(
                "rejected",
                f"ttrpc: rejected connection from pid {self._peer.pid} (uid {self._peer.uid}, "
                f"gid {self._peer.gid}): peer check failed",
            )
            transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self._decoder.feed(data):
                if isinstance(frame, Frame):
                    if frame.type == _REQUEST:
                        self._on_request(frame)
                    elif frame.type == _DATA:
                        self._on_data(frame)
                    # Other types (including Response) are ignored for forward compatibility.
                else:
                    self._send_oversize(frame.stream_id, OversizedMessage(frame.length))
        except Exception as exc:
            # A bug here must cost this connection only, never the server (nor flood the log).
            self._server._throttled.warn(
                "internal", f"ttrpc: closing connection after an internal error: {exc!r}"
            )
            self.abort()

    def eof_received(self) -> bool:
        self._eof = True
        if self._decoder.buffered:
            log.debug("ttrpc: client closed its side inside a frame")
        # Keep the write side open until in-flight calls are answered.
        self._close_if_idle()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._writer is not None:
            self._writer.discard()
        for task in self._tasks.values():
            task.cancel()
        self._server._forget(self)

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._server._shutting_down and not self._eof:
            self._transport.resume_reading()

    # --- shutdown -----------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Read no more requests; close once in-flight calls are answered."""
        if self._transport is not None and not self._lost:
            if not self._eof:
                self._transport.pause_reading()
            self._close_if_idle()

    def abort(self) -> None:
        """Close now, dropping unanswered calls."""
        if self._transport is not None:
            self._transport.abort()

    def _close_if_idle(self) -> None:
        if self._tasks or self._lost or self._transport is None:
            return
        if self._eof or self._server._shutting_down:
            assert self._writer is not None
            self._writer.flush()
            self._transport.close()

    # --- frames -------------------------------------------------------------------------

    def _on_request(self, frame: Frame) -> None:
        sid = frame.stream_id
        problem = self._streams.open(sid)
        if problem is not None:
            self._send_status(sid, Code.INVALID_ARGUMENT, problem)
            return
        try:
            req = _Request.FromString(frame.data)
        except Exception as exc:
            self._streams.close(sid)
            self._send_status(sid, Code.INVALID_ARGUMENT, f"unmarshal request error: {exc}")
            return
        methods = self._services.get(req.service)
        if methods is None:
            self._streams.close(sid)
            self._send_status(sid, Code.UNIMPLEMENTED, f"service {req.service}")
            return
        method = methods.get(req.method)
        if method is None:
            self._streams.close(sid)
            self._send_status(sid, Code.UNIMPLEMENTED, f"method {req.method}")
            return
        try:
            message = method.request_class.FromString(req.payload)
        except Exception as exc:
            self._streams.close(sid)
            self._send_status(sid, Code.INTERNAL, f"ttrpc: error unmarshalling payload: {exc}")
            return
        md = MD.from_pairs((kv.key, kv.value) for kv in req.metadata) if req.metadata else MD()
        deadline = None
        if req.timeout_nano > 0:
            deadline = time.monotonic() + req.timeout_nano / 1e9
        ctx = CallContext(req.service, method.name, md, deadline, self._peer, sid)
        self._tasks[sid] = self._loop.create_task(self._run(sid, method, message, ctx))

    def _on_data(self, frame: Frame) -> None:
        problem = self._streams.check_data(frame.stream_id)
        if problem is not None:
            self._send_status(frame.stream_id, Code.INVALID_ARGUMENT, problem)
        # Data on an active unary stream has nothing to feed; it is dropped.

    async def _run(self, sid: int, method: _Method, message: Message, ctx: CallContext) -> None:
        scope: asyncio.Timeout | None = None
        try:
            try:
                if ctx.deadline is None:
                    result = await method.handler(message, ctx)
                else:
                    set_deadline(ctx.deadline)  # nested ttrpc calls inherit it
                    async with asyncio.timeout_at(loop_time(self._loop, ctx.deadline)) as scope:
                        result = await method.handler(message, ctx)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._lost or (task is not None and task.cancelling()):
                    raise
                self._send_status(sid, *status_of(asyncio.CancelledError()))
                return
            except Exception as exc:
                err: BaseException = exc
                if scope is not None and scope.expired():
                    err = TimeoutError()  # our deadline fired: context deadline exceeded
                elif not isinstance(exc, StatusError):
                    log.warning(
                        "ttrpc: handler %s/%s raised %r",
                        ctx.service,
                        ctx.method,
                        exc,
                        exc_info=exc,
                    )
                details = err.details if isinstance(err, StatusError) else ()
                self._send_status(sid, *status_of(err), details)
                return
            if result is None:
                self._send_status(sid, Code.UNKNOWN, "ttrpc: marshal called with nil")
                return
            try:
                frame = encode_frame(
                    sid, _RESPONSE, 0, encode_response_payload(result.SerializeToString())
                )
            except OversizedMessage as exc:
                self._send_oversize(sid, exc)
                return
            self._write(frame)
        finally:
            del self._tasks[sid]
            self._streams.close(sid)
            if not self._lost:
                self._close_if_idle()

    # --- writing ------------------------------------------------------------------------

    def _send_status(
        self, sid: int, code: int, message: str, details: tuple[AnyMessage, ...] = ()
    ) -> None:
        resp = ttrpc_pb2.Response()
        resp.status.code = code
        resp.status.message = message[: MAX_MESSAGE_SIZE // 2]
        resp.status.details.extend(details)
        self._write(encode_frame(sid, _RESPONSE, 0, resp.SerializeToString()))

    def _send_oversize(self, sid: int, exc: OversizedMessage) -> None:
        self._send_status(sid, exc.code, str(exc))

    def _write(self, frame: bytes) -> None:
        if self._writer is not None:
            self._writer.write(frame)
