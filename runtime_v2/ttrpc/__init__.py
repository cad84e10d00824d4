"""ttrpc, containerd's lightweight RPC over unix sockets (``github.com/containerd/ttrpc``), on
asyncio.

A library of its own, as containerd/ttrpc is its own Go module: it imports nothing from the rest
of taskplane. It owns its wire messages (``ttrpc.proto``: ``Request``, ``Response``, and the
``google.rpc.Status`` they carry, in ``rpc_status.proto``) and its errors, which carry gRPC status
codes (:class:`Code`, :class:`StatusError`); mapping those to containerd's errdefs classes is the
user's business (:mod:`runtime_v2.errdefs`, as containerd's ``errgrpc``).

Public face of the package; the work lives in small private modules:

- ``_codec``: frame encoding/decoding and stream-id rules, pure (bytes in, events out);
- ``_client`` / ``_server``: the asyncio layers, writing through ``_writer`` (one write per
  event-loop turn);
- ``_deadline``: call deadlines (:func:`timeout`, :func:`deadline`) shared by both sides;
- ``_errors``: status codes, the exception tree and the one place that maps OS errors onto
  status codes;
- ``_metadata``: request metadata (:class:`MD`);
- ``_address``: shim address forms.

Client example::

    from runtime_v2 import ttrpc
    async with await ttrpc.Client.connect("unix:///run/containerd/s/abc") as client:
        async with ttrpc.timeout(5):  # asyncio.timeout(5) that the server also sees
            resp = await client.call("containerd.task.v2.Task", "Connect", req, ConnectResponse,
                                     namespace="default")

Use :func:`timeout` (or ``timeout=``) to bound calls: a plain ``asyncio.timeout()`` cancels the
call locally but its deadline is not sent as ``timeout_nano`` (Python 3.11 cannot read it).

Names are loaded on first use (:pep:`562`): code that only catches :class:`Closed` or reads
:class:`Code` does not load the client and the server.

Server example::

    server = ttrpc.Server()
    server.register(task_v2_pb2.DESCRIPTOR.services_by_name["Task"], {"Connect": connect})
    await server.serve("/run/taskplane/s/abc")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime_v2.ttrpc._address import (
        socket_name,
    )
    from runtime_v2.ttrpc._client import (
        Client,
    )
    from runtime_v2.ttrpc._codec import (
        HEADER_SIZE,
        MAX_MESSAGE_SIZE,
        Flag,
        Frame,
        FrameDecoder,
        MessageType,
        OversizeFrame,
        ServerStreams,
        encode_frame,
    )
    from runtime_v2.ttrpc._deadline import (
        current_deadline,
        deadline,
        timeout,
    )
    from runtime_v2.ttrpc._errors import (
        Closed,
        Code,
        ConnectionRefused,
        DeadlineExceeded,
        OversizedMessage,
        RemoteProtocolError,
        SocketNotFound,
        StatusError,
        status_of,
    )
    from runtime_v2.ttrpc._metadata import (
        MD,
        NAMESPACE_KEY,
    )
    from runtime_v2.ttrpc._peer import (
        PeerCredentials,
        same_user,
    )
    from runtime_v2.ttrpc._server import (
        CallContext,
        Handler,
        Server,
    )

__all__ = [
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "MD",
    "NAMESPACE_KEY",
    "CallContext",
    "Client",
    "Closed",
    "Code",
    "ConnectionRefused",
    "DeadlineExceeded",
    "Flag",
    "Frame",
    "FrameDecoder",
    "Handler",
    "MessageType",
    "OversizeFrame",
    "OversizedMessage",
    "PeerCredentials",
    "RemoteProtocolError",
    "Server",
    "ServerStreams",
    "SocketNotFound",
    "StatusError",
    "current_deadline",
    "deadline",
    "encode_frame",
    "same_user",
    "socket_name",
    "status_of",
    "timeout",
]

_WHERE = {
    "socket_name": "_address",
    "Client": "_client",
    "HEADER_SIZE": "_codec",
    "MAX_MESSAGE_SIZE": "_codec",
    "Flag": "_codec",
    "Frame": "_codec",
    "FrameDecoder": "_codec",
    "MessageType": "_codec",
    "OversizeFrame": "_codec",
    "ServerStreams": "_codec",
    "encode_frame": "_codec",
    "current_deadline": "_deadline",
    "deadline": "_deadline",
    "timeout": "_deadline",
    "Closed": "_errors",
    "Code": "_errors",
    "ConnectionRefused": "_errors",
    "DeadlineExceeded": "_errors",
    "OversizedMessage": "_errors",
    "RemoteProtocolError": "_errors",
    "SocketNotFound": "_errors",
    "StatusError": "_errors",
    "status_of": "_errors",
    "MD": "_metadata",
    "NAMESPACE_KEY": "_metadata",
    "PeerCredentials": "_peer",
    "same_user": "_peer",
    "CallContext": "_server",
    "Handler": "_server",
    "Server": "_server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime_v2.ttrpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"runtime_v2.ttrpc.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
