"""ttrpc framing and stream bookkeeping: bytes in, events out, no I/O (ttrpc's
``channel.go``).

A frame is a 10-byte big-endian header ``>IIBB`` (data length, stream id, message type, flags)
followed by the data. Everything here works on plain byte strings so it can be tested without
sockets and reused under any I/O layer::

    >>> encode_frame(1, MessageType.RESPONSE, 0, b"")
    b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x02\\x00'
    >>> FrameDecoder().feed(encode_frame(1, MessageType.RESPONSE, 0, b"ok"))
    [Frame(stream_id=1, type=2, flags=0, data=b'ok')]

The module also hand-encodes the two hot ``ttrpc.Request`` / ``ttrpc.Response`` shapes; the
encodings equal protobuf's (fields in number order, defaults omitted), which the tests check.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import NamedTuple

from runtime_v2.ttrpc._errors import MAX_MESSAGE_SIZE, OversizedMessage

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "Flag",
    "Frame",
    "FrameDecoder",
    "MessageType",
    "OversizeFrame",
    "ServerStreams",
    "encode_frame",
    "encode_metadata",
    "encode_method",
    "encode_request",
    "encode_response_payload",
    "encode_varint",
]

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size  # 10


class MessageType(enum.IntEnum):
    """Frame message types; other values are ignored by receivers."""

    REQUEST = 1
    RESPONSE = 2
    DATA = 3


class Flag(enum.IntFlag):
    """Frame flags."""

    REMOTE_CLOSED = 1
    REMOTE_OPEN = 2
    NO_DATA = 4


class Frame(NamedTuple):
    """One complete frame as received."""

    stream_id: int
    type: int
    flags: int
    data: bytes


class OversizeFrame(NamedTuple):
    """A frame whose data exceeded :data:`MAX_MESSAGE_SIZE`; its bytes were discarded.

    Receivers answer (server) or fail (client) the stream with ResourceExhausted and keep the
    connection.
    """

    stream_id: int
    type: int
    flags: int
    length: int


_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from


def encode_frame(stream_id: int, type: int, flags: int, data: bytes) -> bytes:
    """Return the frame bytes; raise :class:`OversizedMessage` for more than 4 MiB of data."""
    n = len(data)
    if n > MAX_MESSAGE_SIZE:
        raise OversizedMessage(n)
    return _pack_header(n, stream_id, type, flags) + data


class FrameDecoder:
    """Incremental frame parser: :meth:`feed` bytes, get complete frames back.

    Oversize frames are consumed without being buffered and reported as one
    :class:`OversizeFrame` once all their bytes have been discarded.
    """

    __slots__ = ("_buf", "_discard_header", "_discard_left")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discard_left = 0
        self._discard_header: tuple[int, int, int, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (or still to discard); nonzero at EOF = truncated."""
        return len(self._buf) + self._discard_left

    def feed(self, data: bytes) -> list[Frame | OversizeFrame]:
        """Consume ``data`` and return the frames it completed, in order."""
        out: list[Frame | OversizeFrame] = []
        if self._discard_left:
            take = min(self._discard_left, len(data))
            self._discard_left -= take
            data = data[take:]
            if self._discard_left:
                return out
            assert self._discard_header is not None
            out.append(OversizeFrame(*self._discard_header))
            self._discard_header = None
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data
        end = len(src)
        off = 0
        while end - off >= HEADER_SIZE:
            length, sid, mtype, flags = _unpack_header(src, off)
            if length > MAX_MESSAGE_SIZE:
                off += HEADER_SIZE
                available = end - off
                if available >= length:
                    off += length
                    out.append(OversizeFrame(sid, mtype, flags, length))
                    continue
                self._discard_left = length - available
                self._discard_header = (sid, mtype, flags, length)
                off = end
                break
            stop = off + HEADER_SIZE + length
            if stop > end:
                break
            out.append(Frame(sid, mtype, flags, bytes(src[off + HEADER_SIZE : stop])))
            off = stop
        if src is buf:
            del buf[:off]
        elif off < end:
            buf += memoryview(data)[off:]
        return out


# --- hand-encoded Request / Response (package ttrpc) ---------------------------------------


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (negative int64 as two's complement)."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(tag: int, data: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(data)) + data


def encode_method(service: str, method: str) -> bytes:
    """Fields 1 and 2 of a Request (service, method), to be cached per method."""
    out = b""
    if service:
        out += _field_bytes(0x0A, service.encode())
    if method:
        out += _field_bytes(0x12, method.encode())
    return out


def encode_metadata(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Field 5 entries (repeated KeyValue) of a Request, to be cached per metadata set."""
    out = b""
    for key, value in pairs:
        kv = b""
        if key:
            kv += _field_bytes(0x0A, key.encode())
        if value:
            kv += _field_bytes(0x12, value.encode())
        out += _field_bytes(0x2A, kv)
    return out


def encode_request(
    method_bytes: bytes, payload: bytes, timeout_nano: int, metadata_bytes: bytes
) -> bytes:
    """Serialized ``ttrpc.Request`` from pre-encoded parts (see :func:`encode_method`)."""
    parts = [method_bytes]
    if payload:
        parts.append(b"\x1a" + encode_varint(len(payload)))
        parts.append(payload)
    if timeout_nano:
        parts.append(b"\x20" + encode_varint(timeout_nano))
    parts.append(metadata_bytes)
    return b"".join(parts)


def encode_response_payload(payload: bytes) -> bytes:
    """Serialized success ``ttrpc.Response``: no status, payload omitted when empty."""
    if not payload:
        return b""
    return b"\x12" + encode_varint(len(payload)) + payload


# --- server-side stream bookkeeping --------------------------------------------------------

ERR_EVEN_STREAM = "StreamID must be odd for client initiated streams"
ERR_REUSED_STREAM = "StreamID cannot be re-used and must increment"
ERR_INACTIVE_STREAM = "StreamID is no longer active"


class ServerStreams:
    """Which client stream ids a server connection accepts (ttrpc >= 1.2 rules).

    Client-initiated ids are odd and strictly increasing; Data is only valid on an active
    stream. The check methods return None when the frame is acceptable, or the exact
    InvalidArgument message containerd's server sends.
    """

    __slots__ = ("active", "last_id")

    def __init__(self) -> None:
        self.last_id = 0
        self.active: set[int] = set()

    def open(self, stream_id: int) -> str | None:
        """Check a Request's id; on success the stream becomes active and the new last id."""
        if not stream_id & 1:
            return ERR_EVEN_STREAM
        if stream_id <= self.last_id:
            return ERR_REUSED_STREAM
        self.last_id = stream_id
        self.active.add(stream_id)
        return None

    def check_data(self, stream_id: int) -> str | None:
        """Check a Data frame's id."""
        if stream_id in self.active:
            return None
        return ERR_INACTIVE_STREAM

    def close(self, stream_id: int) -> None:
        """The stream was answered; later Data on it is rejected."""
        self.active.discard(stream_id)
