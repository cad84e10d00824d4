"""The pure frame codec and stream bookkeeping, tested on bytes alone (ttrpc's
``channel.go`` and ``server.go``)."""

from __future__ import annotations

import pytest

from runtime_v2.ttrpc import (
    MAX_MESSAGE_SIZE,
    Code,
    Flag,
    Frame,
    FrameDecoder,
    MessageType,
    OversizedMessage,
    OversizeFrame,
    ServerStreams,
    encode_frame,
    rpc_status_pb2,
    ttrpc_pb2,
)
from runtime_v2.ttrpc._codec import (
    encode_metadata,
    encode_method,
    encode_request,
    encode_response_payload,
    encode_varint,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_constants_match_the_wire() -> None:
    assert MAX_MESSAGE_SIZE == 4194304
    assert (MessageType.REQUEST, MessageType.RESPONSE, MessageType.DATA) == (1, 2, 3)
    assert (Flag.REMOTE_CLOSED, Flag.REMOTE_OPEN, Flag.NO_DATA) == (1, 2, 4)


def test_observed_connect_response_frame_decodes() -> None:
    wire = h("00000006 00000001 02 00 12 04 08 a5 8c 01")
    assert FrameDecoder().feed(wire) == [Frame(1, 2, 0, h("12 04 08 a5 8c 01"))]
    assert encode_frame(1, MessageType.RESPONSE, 0, h("12 04 08 a5 8c 01")) == wire
    resp = ttrpc_pb2.Response.FromString(h("12 04 08 a5 8c 01"))
    assert not resp.HasField("status")
    assert resp.payload == h("08 a5 8c 01")


def test_empty_success_response_is_a_zero_length_frame() -> None:
    assert encode_response_payload(b"") == b""
    assert encode_frame(13, 2, 0, b"") == h("00000000 0000000d 02 00")
    assert FrameDecoder().feed(h("00000000 0000000d 02 00")) == [Frame(13, 2, 0, b"")]


def test_success_response_encoding_equals_protobuf() -> None:
    for payload in (b"\x08\x01", b"x" * 300):
        expected = ttrpc_pb2.Response(payload=payload).SerializeToString()
        assert encode_response_payload(payload) == expected


def test_unimplemented_status_bytes_match_observed() -> None:
    resp = ttrpc_pb2.Response(
        status=rpc_status_pb2.Status(code=12, message="service containerd.task.v3.Task")
    )
    assert resp.SerializeToString() == h("0a 23 08 0c 12 1f") + b"service containerd.task.v3.Task"
    method = ttrpc_pb2.Response(status=rpc_status_pb2.Status(code=12, message="method Bogus"))
    assert method.SerializeToString() == h("0a 10 08 0c 12 0c") + b"method Bogus"


def test_two_second_timeout_encodes_as_observed() -> None:
    assert encode_varint(2_000_000_000) == h("80 a8 d6 b9 07")
    data = encode_request(b"", b"", 2_000_000_000, b"")
    assert data == h("20 80 a8 d6 b9 07")
    assert ttrpc_pb2.Request(timeout_nano=2_000_000_000).SerializeToString() == data


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)])
def test_varint_matches_protobuf_int64(value: int) -> None:
    encoded = ttrpc_pb2.Request(timeout_nano=value).SerializeToString()
    if value == 0:
        assert encoded == b""
    else:
        assert encoded == b"\x20" + encode_varint(value)


def test_hand_encoded_request_equals_protobuf() -> None:
    md = [("containerd-namespace-ttrpc", "default"), ("k", ""), ("", "v"), ("ü", "é")]
    for payload in (b"", b"\x0a\x02id", b"p" * 200):
        for timeout in (0, 1, 5_000_000_000):
            expected = ttrpc_pb2.Request(
                service="containerd.task.v2.Task",
                method="State",
                payload=payload,
                timeout_nano=timeout,
                metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in md],
            ).SerializeToString()
            got = encode_request(
                encode_method("containerd.task.v2.Task", "State"),
                payload,
                timeout,
                encode_metadata(md),
            )
            assert got == expected


def test_frame_header_is_big_endian_length_stream_type_flags() -> None:
    assert encode_frame(0x01020304, 3, 5, b"ab") == h("00000002 01020304 03 05") + b"ab"


def test_encoder_refuses_more_than_four_mib() -> None:
    encode_frame(1, 1, 0, b"\0" * MAX_MESSAGE_SIZE)  # exactly the limit is fine
    with pytest.raises(OversizedMessage) as info:
        encode_frame(1, 1, 0, b"\0" * (MAX_MESSAGE_SIZE + 1))
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert str(info.value) == "message length 4194305 exceed maximum message size of 4194304"
    assert info.value.length == MAX_MESSAGE_SIZE + 1


def test_decoder_reassembles_frames_fed_byte_by_byte() -> None:
    frames = [Frame(1, 1, 0, b"hello"), Frame(3, 2, 0, b""), Frame(5, 3, 5, b"x" * 70000)]
    wire = b"".join(encode_frame(*f) for f in frames)
    dec = FrameDecoder()
    got = []
    for i in range(len(wire)):
        got.extend(dec.feed(wire[i : i + 1]))
    assert got == frames
    assert dec.buffered == 0


def test_decoder_returns_every_frame_of_one_chunk() -> None:
    frames = [Frame(i, 2, 0, bytes([i]) * i) for i in range(1, 40, 2)]
    assert FrameDecoder().feed(b"".join(encode_frame(*f) for f in frames)) == frames


def test_decoder_reports_a_partial_frame_as_buffered() -> None:
    dec = FrameDecoder()
    wire = encode_frame(1, 1, 0, b"abcdef")
    assert dec.feed(wire[:4]) == []
    assert dec.buffered == 4
    assert dec.feed(wire[4:12]) == []
    assert dec.buffered == 12
    assert dec.feed(wire[12:]) == [Frame(1, 1, 0, b"abcdef")]
    assert dec.buffered == 0


def test_oversize_frame_is_discarded_then_reported_and_decoding_continues() -> None:
    length = MAX_MESSAGE_SIZE + 10
    header = h(f"{length:08x} 00000007 01 00")
    after = encode_frame(9, 1, 0, b"next")
    dec = FrameDecoder()
    assert dec.feed(header + b"\1" * 1000) == []
    assert dec.buffered == length - 1000
    body_left = b"\1" * (length - 1000)
    # The rest of the oversize body arrives with the next frame in one chunk.
    assert dec.feed(body_left + after) == [
        OversizeFrame(7, 1, 0, length),
        Frame(9, 1, 0, b"next"),
    ]
    assert dec.buffered == 0


def test_oversize_frame_in_one_chunk_is_reported_after_its_bytes() -> None:
    length = MAX_MESSAGE_SIZE + 1
    wire = h(f"{length:08x} 00000003 01 00") + b"\0" * length + encode_frame(5, 2, 0, b"")
    assert FrameDecoder().feed(wire) == [OversizeFrame(3, 1, 0, length), Frame(5, 2, 0, b"")]


def test_decoder_keeps_unknown_types_and_flags_for_the_caller() -> None:
    assert FrameDecoder().feed(encode_frame(1, 0x7F, 0xFF, b"z")) == [Frame(1, 0x7F, 0xFF, b"z")]


def test_server_streams_accept_odd_increasing_ids() -> None:
    streams = ServerStreams()
    assert streams.open(1) is None
    assert streams.open(3) is None
    assert streams.open(11) is None
    assert streams.active == {1, 3, 11}


def test_server_streams_reject_even_ids_with_containerd_text() -> None:
    streams = ServerStreams()
    assert streams.open(2) == "StreamID must be odd for client initiated streams"
    assert streams.open(0) == "StreamID must be odd for client initiated streams"
    assert streams.last_id == 0


def test_server_streams_reject_reused_or_lower_ids() -> None:
    streams = ServerStreams()
    assert streams.open(5) is None
    assert streams.open(5) == "StreamID cannot be re-used and must increment"
    assert streams.open(3) == "StreamID cannot be re-used and must increment"
    streams.close(5)
    assert streams.open(5) == "StreamID cannot be re-used and must increment"
    assert streams.open(7) is None


def test_data_is_valid_only_on_an_active_stream() -> None:
    streams = ServerStreams()
    assert streams.check_data(1) == "StreamID is no longer active"
    streams.open(1)
    assert streams.check_data(1) is None
    streams.close(1)
    assert streams.check_data(1) == "StreamID is no longer active"
