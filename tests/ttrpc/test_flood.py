"""A connection flood on a ttrpc server (issue 9, case 6): connections past the cap are closed
at once, the server keeps answering the ones it holds, and the log stays a few lines."""

from __future__ import annotations

import logging
import resource

import pytest

from runtime_v2 import ttrpc
from runtime_v2.ttrpc import _server

from . import echo_pb2
from .conftest import ECHO_DESCRIPTOR, EchoService, RawConnection, response_of

CAP = 8
FLOOD = 200


async def _answered(conn: RawConnection, stream_id: int) -> bool:
    """Whether the server answers an Echo on ``conn`` (False: it closed the connection)."""
    try:
        await conn.send_request(
            stream_id, "Echo", echo_pb2.EchoRequest(text="x").SerializeToString()
        )
        [frame] = await conn.read_frames(1)
    except (EOFError, ConnectionError):
        return False
    return response_of(frame).status.code == 0


async def test_connections_past_the_cap_are_closed_and_logged_in_one_line(
    socket_path: str, echo_service: EchoService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runtime_v2.ttrpc")
    server = ttrpc.Server(max_connections=CAP)
    server.register(ECHO_DESCRIPTOR, echo_service.handlers())
    await server.serve(socket_path)
    conns = [await RawConnection.open(socket_path) for _ in range(FLOOD)]
    try:
        answers = [await _answered(conn, 1) for conn in conns]
        assert answers == [True] * CAP + [False] * (FLOOD - CAP)
        during = [r.getMessage() for r in caplog.records]
        assert during == [f"ttrpc: refused a connection: {CAP} connections are open"]
    finally:
        for conn in conns:
            await conn.close()
        await server.close()
    assert [r.getMessage() for r in caplog.records][1:] == [
        f"ttrpc: refused a connection: {CAP} connections are open "
        f"({FLOOD - CAP - 1} more like this not logged)"
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_the_default_cap_leaves_most_descriptors_to_the_rest_of_taskplane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert ttrpc.Server()._max_connections == _server.MAX_CONNECTIONS == 256
    monkeypatch.setattr(resource, "getrlimit", lambda _: (200, 4096))
    assert ttrpc.Server()._max_connections == 50


def test_refusals_are_throttled_not_silenced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [100.0]
    monkeypatch.setattr(_server.time, "monotonic", lambda: clock[0])
    throttled = _server._ThrottledLog()
    caplog.set_level(logging.WARNING, logger="runtime_v2.ttrpc")
    for _ in range(5):
        throttled.warn("k", "refused")
    clock[0] += _server.LOG_INTERVAL
    throttled.warn("k", "refused")
    throttled.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "refused",
        "refused (4 more like this since the last line)",
    ]
