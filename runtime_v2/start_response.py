"""What a shim's ``start`` prints, and the ``bootstrap.json`` that remembers it.

containerd's ``parseStartResponse`` and ``{read,write}BootstrapParams`` (``shim.go``) and
``restoreBootstrapParams`` (``shim_manager.go``), kept in one module of their own.

A shim's ``start`` command prints where its daemon listens. Three encodings exist in the wild,
tried in this order exactly as containerd main does (:func:`parse_start_response`):

1. a protobuf ``containerd.runtime.bootstrap.v1.BootstrapResult`` (containerd 2.3+ shims),
   decoded as strictly as Go decodes it, without trimming;
2. JSON ``{"version": 3, "address": "unix:///...", "protocol": "ttrpc"}`` (2.0-2.2 shims; keys
   match case-insensitively, as Go's ``encoding/json`` does), used only when version >= 2;
3. plain text: the trimmed output is a ttrpc address, version 2 (1.6/1.7 shims).

The result is a :class:`ShimEndpoint`. The bundle's ``bootstrap.json`` stores it for restarts
(:func:`write_bootstrap_json`, :func:`restore_bootstrap_params`); a bundle of a 1.6 shim has an
``address`` file instead, which :func:`restore_bootstrap_params` migrates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from google.protobuf.message import DecodeError

from runtime_v2 import errdefs
from runtime_v2.api import bootstrap_pb2

__all__ = [
    "BOOTSTRAP_FILE",
    "CURRENT_SHIM_VERSION",
    "ShimEndpoint",
    "check_wire_format",
    "parse_start_response",
    "read_bootstrap_json",
    "restore_bootstrap_params",
    "write_bootstrap_json",
]

#: Highest shim protocol version taskplane speaks (containerd's ``CurrentShimVersion``).
CURRENT_SHIM_VERSION = 3

#: Name of the file in the bundle that records the endpoint.
BOOTSTRAP_FILE = "bootstrap.json"

_ADDRESS_FILE = "address"
_MAX_FIELD_NUMBER = (1 << 29) - 1
_MAX_GROUP_DEPTH = 10000


def _frozen_metadata(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class ShimEndpoint:
    """Where a shim daemon listens: the decoded ``BootstrapResult``.

    ``version`` is the shim protocol version (2: task v2 over ttrpc; 3: task v3), ``address``
    the dial address (``unix:///run/containerd/s/<hex>``; no scheme means an abstract socket)
    and ``protocol`` ``"ttrpc"`` or ``"grpc"`` (compare case-insensitively). ``capabilities``
    and ``metadata`` are carried through from a protobuf result only.
    """

    version: int
    address: str
    protocol: str
    capabilities: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_metadata, hash=False)

    @property
    def shim_address(self) -> str:
        """containerd's ``shim.address`` form: ``<protocol>+<address>``."""
        return f"{self.protocol}+{self.address}"

    def to_protobuf(self) -> bootstrap_pb2.BootstrapResult:
        """Return the endpoint as a ``BootstrapResult`` message."""
        return bootstrap_pb2.BootstrapResult(
            version=self.version,
            address=self.address,
            protocol=self.protocol,
            capabilities=list(self.capabilities),  # type: ignore[arg-type]
            metadata=dict(self.metadata),
        )


def check_wire_format(data: bytes) -> None:
    """Raise :class:`ValueError` unless ``data`` is well-formed protobuf wire format by Go's rules.

    Python's decoder accepts a few things Go's ``proto.Unmarshal`` rejects (a 10-byte varint whose
    last byte is above 1); this walks the tags, varints, lengths and groups the way Go's
    ``protowire`` does. It knows nothing about the message type.
    """
    end = _skip_fields(data, 0, None, 0)
    if end != len(data):  # pragma: no cover - _skip_fields consumes everything or raises
        raise ValueError("trailing bytes")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(10):
        if pos + i >= len(data):
            raise ValueError(f"truncated varint at offset {pos}")
        byte = data[pos + i]
        if i == 9 and byte > 1:
            raise ValueError(f"varint overflows 64 bits at offset {pos}")
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError(f"varint overflows 64 bits at offset {pos}")  # pragma: no cover


def _skip_fields(data: bytes, pos: int, group: int | None, depth: int) -> int:
    """Consume fields until the end (or the END_GROUP of ``group``); return the new offset."""
    if depth > _MAX_GROUP_DEPTH:
        raise ValueError("groups nested too deeply")
    while pos < len(data):
        tag_at = pos
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER:
            raise ValueError(f"invalid field number {number} at offset {tag_at}")
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            pos += length
        elif wire_type == 3:
            pos = _skip_fields(data, pos, number, depth + 1)
        elif wire_type == 4:
            if group != number:
                raise ValueError(f"unexpected end of group {number} at offset {tag_at}")
            return pos
        else:
            raise ValueError(f"invalid wire type {wire_type} at offset {tag_at}")
        if pos > len(data):
            raise ValueError(f"field {number} at offset {tag_at} is truncated")
    if group is not None:
        raise ValueError(f"group {group} is not closed")
    return pos


def _decode_protobuf(raw: bytes) -> ShimEndpoint | None:
    try:
        check_wire_format(raw)
        result = bootstrap_pb2.BootstrapResult()
        result.ParseFromString(raw)
    except (ValueError, DecodeError):
        return None
    return ShimEndpoint(
        version=result.version,
        address=result.address,
        protocol=result.protocol,
        capabilities=_int_tuple(result.capabilities),
        metadata=dict(result.metadata),
    )


_JSON_FIELDS = {"version": int, "address": str, "protocol": str}


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's (key, value) pairs in document order (arrays stay plain lists)."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON value {name}")


def _decode_json(text: str) -> tuple[int, str, str] | None:
    """Decode like Go's ``json.Unmarshal`` into ``{Version int; Address, Protocol string}``."""
    try:
        decoded = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_no_constants)
    except ValueError:
        return None
    if decoded is None:
        return 0, "", ""  # Go: null into a struct is a no-op
    if not isinstance(decoded, _Pairs):
        return None  # not an object
    values: dict[str, Any] = {"version": 0, "address": "", "protocol": ""}
    for key, value in decoded:
        name = key.lower()
        if name not in _JSON_FIELDS:
            continue  # unknown keys are ignored; of repeated keys the last one wins
        if value is None:
            continue
        kind = _JSON_FIELDS[name]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            if not -(2**63) <= value < 2**63:
                return None
        elif not isinstance(value, str):
            return None
        values[name] = value
    return values["version"], values["address"], values["protocol"]


def parse_start_response(raw: bytes) -> ShimEndpoint:
    """Decode a shim's ``start`` output (or a ``bootstrap.json``) into a :class:`ShimEndpoint`.

    Order (containerd main's ``parseStartResponse``): strict protobuf ``BootstrapResult`` on the
    untrimmed bytes (empty output decodes as version 0, protocol ""); then JSON with
    case-insensitive keys when version >= 2; else the trimmed text is a version 2 ttrpc address.

    Raises :class:`errdefs.NotImplemented` when the shim's version is above
    :data:`CURRENT_SHIM_VERSION` (for JSON *and* protobuf output; containerd only checks JSON and
    fails later with a vaguer message).
    """
    endpoint = _decode_protobuf(raw)
    if endpoint is None:
        text = raw.decode("utf-8", errors="replace").strip()
        decoded = _decode_json(text)
        if decoded is None or decoded[0] < 2:
            endpoint = ShimEndpoint(version=2, address=text, protocol="ttrpc")
        else:
            endpoint = ShimEndpoint(version=decoded[0], address=decoded[1], protocol=decoded[2])
    if endpoint.version > CURRENT_SHIM_VERSION:
        raise errdefs.NotImplemented(
            f"unsupported shim version ({endpoint.version}): the shim speaks a newer protocol "
            f"than taskplane supports (versions 2 to {CURRENT_SHIM_VERSION}), so taskplane is "
            "too old for this shim; upgrade taskplane or configure an older shim binary for this "
            "runtime"
        )
    return endpoint


def _endpoint_json(endpoint: ShimEndpoint) -> bytes:
    """Go ``encoding/json`` of a BootstrapResult: omitempty keys in field order."""
    doc: dict[str, Any] = {}
    if endpoint.version:
        doc["version"] = endpoint.version
    if endpoint.address:
        doc["address"] = endpoint.address
    if endpoint.protocol:
        doc["protocol"] = endpoint.protocol
    if endpoint.capabilities:
        doc["capabilities"] = list(endpoint.capabilities)
    if endpoint.metadata:
        doc["metadata"] = dict(sorted(endpoint.metadata.items()))
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def write_bootstrap_json(bundle_path: str, endpoint: ShimEndpoint) -> None:
    """Atomically write ``<bundle>/bootstrap.json`` (mode 0644) describing ``endpoint``.

    A temporary file in the bundle is written, chmod'ed, fsync'ed and renamed over the target, so
    a crash leaves either the old file or the new one. Its random name is made here rather than
    by :mod:`tempfile` (whose import, with :mod:`random`, costs every ``run`` a few
    milliseconds): the bundle is the task's own and written under its lock, and ``O_EXCL``
    refuses a name that exists.
    """
    data = _endpoint_json(endpoint)
    tmp = os.path.join(bundle_path, f".bootstrap-{os.urandom(8).hex()}.json.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(bundle_path, BOOTSTRAP_FILE))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_bootstrap_json(bundle_path: str) -> ShimEndpoint:
    """Read ``<bundle>/bootstrap.json`` with :func:`parse_start_response`.

    Raises :class:`FileNotFoundError` when there is none.
    """
    with open(os.path.join(bundle_path, BOOTSTRAP_FILE), "rb") as f:
        return parse_start_response(f.read())


def restore_bootstrap_params(bundle_path: str) -> ShimEndpoint:
    """Return the endpoint recorded in a bundle (containerd's ``restoreBootstrapParams``).

    Uses ``bootstrap.json`` when present. Otherwise the bundle is from a shim that wrote an
    ``address`` file (containerd 1.6/1.7 shims): it becomes ``{2, <address>, "ttrpc"}`` and is
    written to ``bootstrap.json`` for next time.

    Raises :class:`errdefs.NotFound` when neither file gives an address.
    """
    try:
        return read_bootstrap_json(bundle_path)
    except FileNotFoundError:
        pass
    address_path = os.path.join(bundle_path, _ADDRESS_FILE)
    try:
        with open(address_path, "rb") as f:
            address = f.read().decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        raise errdefs.NotFound(
            f"unable to migrate shim: failed to get socket address for bundle {bundle_path}: "
            f"neither {BOOTSTRAP_FILE} nor {_ADDRESS_FILE} exists"
        ) from None
    if not address:
        raise errdefs.NotFound(
            f"unable to migrate shim: failed to get socket address for bundle {bundle_path}: "
            f"no shim address in {address_path}"
        )
    endpoint = ShimEndpoint(version=2, address=address, protocol="ttrpc")
    try:
        write_bootstrap_json(bundle_path, endpoint)
    except OSError as exc:
        raise OSError(
            exc.errno, f"unable to migrate: failed to write {BOOTSTRAP_FILE} file: {exc}"
        ) from exc
    return endpoint
