"""Parsing a shim's start output and the bundle's bootstrap.json (containerd's ``shim.go``
``parseStartResponse`` and ``shim_manager.go`` ``restoreBootstrapParams``)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime_v2 import errdefs
from runtime_v2.api import bootstrap_pb2
from runtime_v2.start_response import (
    ShimEndpoint,
    check_wire_format,
    parse_start_response,
    read_bootstrap_json,
    restore_bootstrap_params,
    write_bootstrap_json,
)

REAL_1_6_20_OUTPUT = (
    b"unix:///run/containerd/s/5bb31de0f0760cf90af29545a698bb285f0496022668b930256d8f6aadee39dc"
)


def test_plain_path_with_newline_is_a_v2_ttrpc_address() -> None:
    assert parse_start_response(b"/somedirectory/somesocket\n") == ShimEndpoint(
        2, "/somedirectory/somesocket", "ttrpc"
    )


def test_real_containerd_1_6_20_output_is_a_v2_ttrpc_address() -> None:
    assert len(REAL_1_6_20_OUTPUT) == 89
    endpoint = parse_start_response(REAL_1_6_20_OUTPUT)
    assert endpoint == ShimEndpoint(2, REAL_1_6_20_OUTPUT.decode(), "ttrpc")
    assert endpoint.shim_address == "ttrpc+" + REAL_1_6_20_OUTPUT.decode()


def test_protobuf_result_is_decoded_exactly_without_trimming() -> None:
    message = bootstrap_pb2.BootstrapResult(
        version=3,
        address="unix:///run/containerd/shim.sock",
        protocol="ttrpc",
        metadata={"note": "line\n"},
    )
    raw = message.SerializeToString()
    assert raw.endswith(b"\n")  # trimming first would corrupt it
    endpoint = parse_start_response(raw)
    assert endpoint == ShimEndpoint(
        3, "unix:///run/containerd/shim.sock", "ttrpc", metadata={"note": "line\n"}
    )
    assert endpoint.to_protobuf() == message


def test_protobuf_capabilities_are_kept() -> None:
    raw = bootstrap_pb2.BootstrapResult(
        version=3,
        address="unix:///x",
        protocol="grpc",
        capabilities=[bootstrap_pb2.UNSPECIFIED, bootstrap_pb2.UNSPECIFIED],
    ).SerializeToString()
    assert parse_start_response(raw).capabilities == (0, 0)


@pytest.mark.parametrize("protocol", ["grpc", "ttrpc"])
def test_json_result_keeps_its_protocol(protocol: str) -> None:
    raw = json.dumps(
        {"version": 2, "address": "/somedirectory/somesocket", "protocol": protocol}
    ).encode()
    assert parse_start_response(raw) == ShimEndpoint(2, "/somedirectory/somesocket", protocol)


def test_json_from_a_2_0_shim_with_trailing_newline() -> None:
    raw = b'{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}\n'
    assert parse_start_response(raw) == ShimEndpoint(3, "unix:///run/containerd/s/abc", "ttrpc")


def test_json_without_version_is_taken_as_a_plain_address() -> None:
    raw = b'{"address":"/somedirectory/somesocket","protocol":"ttrpc"}'
    assert parse_start_response(raw) == ShimEndpoint(2, raw.decode(), "ttrpc")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"version":1,"address":"x","protocol":"grpc"}',
        b'{"version":"3","address":"x"}',
        b'{"version":2.5,"address":"x"}',
        b'{"version":3,"address":7}',
        b'{"version":NaN}',
        b"[3]",
        b"null",
    ],
)
def test_json_that_go_would_not_decode_is_a_plain_address(raw: bytes) -> None:
    assert parse_start_response(raw) == ShimEndpoint(2, raw.decode(), "ttrpc")


def test_json_keys_match_case_insensitively() -> None:
    raw = b'{"VERSION":3,"Address":"unix:///x","pRoToCoL":"ttrpc","extra":[1]}'
    assert parse_start_response(raw) == ShimEndpoint(3, "unix:///x", "ttrpc")


def test_capitalised_version_4_is_not_implemented_and_says_who_is_too_old() -> None:
    raw = b'{"Version": 4, "Address": "/somedirectory/somesocket", "Protocol": "ttrpc"}'
    with pytest.raises(errdefs.NotImplemented) as info:
        parse_start_response(raw)
    message = str(info.value)
    assert message.startswith("unsupported shim version (4): ")
    assert errdefs.to_status(info.value) == (12, message + ": not implemented")
    assert "taskplane is too old" in message
    assert "upgrade taskplane" in message


def test_protobuf_version_4_is_not_implemented_too() -> None:
    raw = bootstrap_pb2.BootstrapResult(version=4, address="unix:///x", protocol="ttrpc")
    with pytest.raises(errdefs.NotImplemented, match=r"unsupported shim version \(4\)"):
        parse_start_response(raw.SerializeToString())


def test_empty_output_decodes_as_version_0_with_no_protocol() -> None:
    # containerd then fails with 'unexpected protocol: ""'.
    assert parse_start_response(b"") == ShimEndpoint(0, "", "")


@pytest.mark.parametrize(
    "raw",
    [
        b"/somedirectory/somesocket\n",
        REAL_1_6_20_OUTPUT,
        b'{"version":2,"address":"/x","protocol":"grpc"}',
        b'{"Version": 4, "Address": "/x", "Protocol": "ttrpc"}',
        b'{"address":"x"}',
    ],
)
def test_text_and_json_are_not_protobuf(raw: bytes) -> None:
    with pytest.raises(ValueError):
        check_wire_format(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "overflows"),  # upb accepts this
        (b"\x08", "truncated"),
        (b"\x00\x01", "field number 0"),
        (b"\x0f", "wire type 7"),
        (b"\x0c", "end of group"),
        (b"\x0b", "not closed"),
        (b"\x0b\x14", "end of group 2"),
        (b"\x12\x05ab", "truncated"),
        (b"\x80\x80\x80\x80\x10\x00", "field number"),
    ],
)
def test_wire_format_check_rejects_what_go_rejects(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_wire_format(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x08\x80\x00",  # non-minimal varint: Go accepts
        b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
        b"\x0b\x08\x01\x0c",  # a group for field 1
        b"\xfa\xff\xff\xff\x0f\x00",  # the largest field number
        b"\x15\x00\x00\x00\x00\x19\x00\x00\x00\x00\x00\x00\x00\x00",
    ],
)
def test_wire_format_check_accepts_what_go_accepts(raw: bytes) -> None:
    check_wire_format(raw)


def test_overflowing_varint_is_not_taken_as_protobuf() -> None:
    raw = b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
    assert parse_start_response(raw).version == 2  # plain text fallback, like Go


def test_invalid_utf8_in_a_protobuf_string_is_not_protobuf() -> None:
    raw = b"\x12\x02\xff\xfe"
    assert parse_start_response(raw).protocol == "ttrpc"


@given(
    version=st.integers(min_value=-(2**31), max_value=3),
    address=st.text(),
    protocol=st.text(),
    metadata=st.dictionaries(st.text(), st.text(), max_size=3),
)
def test_every_protobuf_result_round_trips(
    version: int, address: str, protocol: str, metadata: dict[str, str]
) -> None:
    endpoint = ShimEndpoint(version, address, protocol, metadata=metadata)
    assert parse_start_response(endpoint.to_protobuf().SerializeToString()) == endpoint


def test_bootstrap_json_is_written_atomically_with_omitempty_keys(tmp_path: Path) -> None:
    write_bootstrap_json(str(tmp_path), ShimEndpoint(3, "unix:///run/containerd/s/abc", "ttrpc"))
    path = tmp_path / "bootstrap.json"
    assert path.read_bytes() == (
        b'{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["bootstrap.json"]  # no temp file left
    assert read_bootstrap_json(str(tmp_path)) == ShimEndpoint(
        3, "unix:///run/containerd/s/abc", "ttrpc"
    )


def test_bootstrap_json_replaces_an_old_one(tmp_path: Path) -> None:
    write_bootstrap_json(str(tmp_path), ShimEndpoint(2, "unix:///old", "ttrpc"))
    write_bootstrap_json(str(tmp_path), ShimEndpoint(3, "unix:///new", "grpc"))
    assert read_bootstrap_json(str(tmp_path)) == ShimEndpoint(3, "unix:///new", "grpc")


def test_restore_bootstrap_params_migrates_an_address_file(tmp_path: Path) -> None:
    (tmp_path / "address").write_text("unix://123")
    restored = restore_bootstrap_params(str(tmp_path))
    assert restored == ShimEndpoint(2, "unix://123", "ttrpc")
    assert (tmp_path / "bootstrap.json").exists()
    assert read_bootstrap_json(str(tmp_path)) == restored
    assert restore_bootstrap_params(str(tmp_path)) == restored


def test_restore_bootstrap_params_prefers_bootstrap_json(tmp_path: Path) -> None:
    (tmp_path / "address").write_text("unix://old")
    write_bootstrap_json(str(tmp_path), ShimEndpoint(3, "unix:///new", "ttrpc"))
    assert restore_bootstrap_params(str(tmp_path)) == ShimEndpoint(3, "unix:///new", "ttrpc")


def test_restore_bootstrap_params_with_empty_address_says_no_shim_address(tmp_path: Path) -> None:
    (tmp_path / "address").write_text("")
    with pytest.raises(errdefs.NotFound, match="no shim address"):
        restore_bootstrap_params(str(tmp_path))
    assert not (tmp_path / "bootstrap.json").exists()


def test_restore_bootstrap_params_without_any_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(errdefs.NotFound, match=f"for bundle {tmp_path}"):
        restore_bootstrap_params(str(tmp_path))
