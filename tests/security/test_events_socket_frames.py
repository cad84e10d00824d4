"""Hostile frames on the events socket (the hostile-input catalogue's "frames" part, issue 9).

A booted taskplane serves ``containerd.services.events.ttrpc.v1.Events`` at
``<state>/taskplane.sock.ttrpc`` for its shims. Each frame below gets a one-line error status
or a closed connection -- never a traceback in the log -- and changes nothing on disk; a good
event still gets through afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import any_pb2, timestamp_pb2

import taskplane
from runtime_v2.api import event_pb2, events_pb2, events_service_pb2
from runtime_v2.ttrpc import FrameDecoder, encode_frame, ttrpc_pb2

SERVICE = "containerd.services.events.ttrpc.v1.Events"
SOCKET = "taskplane.sock.ttrpc"


def _request(service: str, method: str, payload: bytes) -> bytes:
    return ttrpc_pb2.Request(service=service, method=method, payload=payload).SerializeToString()


def _forward(namespace: str = "default", topic: str = "/tasks/exit", **kw: object) -> bytes:
    event = any_pb2.Any()
    event.Pack(events_pb2.TaskExit(container_id="c", id="c", pid=1, exit_status=0))
    envelope = event_pb2.Envelope(
        timestamp=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        namespace=namespace,
        topic=topic,
        event=event,
    )
    for key, value in kw.items():
        setattr(envelope, key, value)
    return events_service_pb2.ForwardRequest(envelope=envelope).SerializeToString()


def _frame(payload: bytes, stream: int = 1, type_: int = 1) -> bytes:
    return encode_frame(stream, type_, 0, payload)


#: (what, bytes sent on a fresh connection)
FRAMES: list[tuple[str, bytes]] = [
    ("half a header", b"\0\0\0"),
    ("4 GiB length", b"\xff\xff\xff\xff\0\0\0\1\1\0"),
    ("garbage request", _frame(b"\xff\xfe\xfd")),
    ("unknown service", _frame(_request("x.Nope", "Forward", b""))),
    ("unknown method", _frame(_request(SERVICE, "Publish", b""))),
    ("garbage payload", _frame(_request(SERVICE, "Forward", b"\x0a\xff\xff\xff"))),
    ("empty envelope", _frame(_request(SERVICE, "Forward", b""))),
    ("bad namespace", _frame(_request(SERVICE, "Forward", _forward(namespace="../x")))),
    ("bad topic", _frame(_request(SERVICE, "Forward", _forward(topic="no slash")))),
    ("even stream id", _frame(_request(SERVICE, "Forward", _forward()), stream=2)),
    ("data on no stream", _frame(b"x", stream=7, type_=3)),
    ("unknown frame type", _frame(b"x", type_=99)),
]


def _listing(*dirs: Path) -> dict[str, str]:
    out = {}
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                out[path] = (
                    f"{stat.filemode(st.st_mode)} {st.st_size if stat.S_ISREG(st.st_mode) else 0}"
                )
    return out


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[object]:
    async with await taskplane.boot_async(
        root=str(tmp_path / "r"), state=str(tmp_path / "s")
    ) as booted:
        yield booted


async def _send(path: Path, data: bytes) -> list[ttrpc_pb2.Response] | None:
    """Send ``data``, half-close, and return the responses (None: closed without one)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        decoder = FrameDecoder()
        frames = []
        async with asyncio.timeout(10):  # only to stop a hung test
            while chunk := await reader.read(65536):
                frames.extend(decoder.feed(chunk))
        responses = [ttrpc_pb2.Response.FromString(f.data) for f in frames if hasattr(f, "data")]
        return responses or None
    except ConnectionError:
        return None
    finally:
        writer.close()


async def test_hostile_frames_get_a_one_line_status_and_change_nothing(
    host: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    socket_path = tmp_path / "s" / SOCKET
    before = _listing(tmp_path / "r", tmp_path / "s")
    seen = {}
    for what, data in FRAMES:
        responses = await _send(socket_path, data)
        for response in responses or []:
            assert response.status.code != 0, what
            assert "\n" not in response.status.message, (what, response.status.message)
        seen[what] = [r.status.code for r in responses] if responses else "closed"
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert _listing(tmp_path / "r", tmp_path / "s") == before
    # The server still serves (a good event is journalled: only now may the state change).
    good = await _send(socket_path, _frame(_request(SERVICE, "Forward", _forward())))
    assert good is not None and [r.status.code for r in good] == [0]
    assert len(seen) == len(FRAMES)
