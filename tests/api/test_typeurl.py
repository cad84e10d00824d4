"""runtime_v2.typeurl packs and unpacks Any values with containerd's type URLs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import any_pb2, timestamp_pb2

from plugins import errdefs as plugin_errdefs
from runtime_v2 import typeurl
from runtime_v2.api import events_pb2, runc_options_pb2, task_v2_pb2, task_v3_pb2

OBSERVED_OPTIONS_ANY = (
    b"\x0a\x1a" + b"containerd.runc.v1.Options" + b"\x12\x29"
    b"\x32\x0e" + b"/usr/sbin/runc" + b"\x3a\x17" + b"/run/containerd/runc-ra"
)
RUNC_OPTIONS = runc_options_pb2.Options(
    binary_name="/usr/sbin/runc", root="/run/containerd/runc-ra"
)


def test_pack_uses_the_bare_full_name_as_type_url() -> None:
    packed = typeurl.pack(RUNC_OPTIONS)
    assert packed.type_url == "containerd.runc.v1.Options"
    assert packed.SerializeToString() == OBSERVED_OPTIONS_ANY


def test_pack_of_an_event_uses_the_events_package() -> None:
    assert typeurl.pack(events_pb2.TaskExit()).type_url == "containerd.events.TaskExit"


def test_pack_returns_an_any_unchanged_instead_of_wrapping_it_twice() -> None:
    packed = typeurl.pack(RUNC_OPTIONS)
    assert typeurl.pack(packed) is packed


def test_pack_rejects_a_non_message_with_a_hint_to_pack_json() -> None:
    with pytest.raises(plugin_errdefs.InvalidArgument, match="pack_json"):
        typeurl.pack({"ociVersion": "1.0.2"})  # type: ignore[arg-type]


def test_unpack_decodes_the_observed_options_any() -> None:
    decoded = typeurl.unpack(any_pb2.Any.FromString(OBSERVED_OPTIONS_ANY))
    assert isinstance(decoded, runc_options_pb2.Options)
    assert decoded == RUNC_OPTIONS


@pytest.mark.parametrize(
    "url",
    [
        "containerd.runc.v1.Options",
        "types.containerd.io/containerd.runc.v1.Options",
        "type.googleapis.com/containerd.runc.v1.Options",
    ],
)
def test_unpack_accepts_bare_and_prefixed_urls(url: str) -> None:
    packed = any_pb2.Any(type_url=url, value=RUNC_OPTIONS.SerializeToString())
    assert typeurl.unpack(packed) == RUNC_OPTIONS
    assert typeurl.is_(packed, runc_options_pb2.Options)
    assert typeurl.unpack_as(packed, runc_options_pb2.Options) == RUNC_OPTIONS


def test_unpack_resolves_well_known_types_too() -> None:
    stamp = timestamp_pb2.Timestamp(seconds=3)
    assert typeurl.unpack(typeurl.pack(stamp)) == stamp


def test_unpack_keeps_task_v2_and_v3_types_apart() -> None:
    v3 = typeurl.unpack(typeurl.pack(task_v3_pb2.StartRequest(id="x")))
    assert isinstance(v3, task_v3_pb2.StartRequest)
    assert not isinstance(v3, task_v2_pb2.StartRequest)


def test_unknown_url_raises_not_found_naming_the_url() -> None:
    with pytest.raises(typeurl.UnknownTypeError) as info:
        typeurl.unpack(any_pb2.Any(type_url="x.Y", value=b""))
    assert str(info.value) == 'type with url "x.Y": not found'
    assert info.value.url == "x.Y"
    assert isinstance(info.value, plugin_errdefs.NotFound)


def test_empty_url_is_unknown() -> None:
    with pytest.raises(typeurl.UnknownTypeError, match='type with url "": not found'):
        typeurl.unpack(any_pb2.Any())


def test_unknown_oci_kind_url_is_unknown() -> None:
    url = typeurl.JSON_TYPE_PREFIX + "Bogus"
    with pytest.raises(typeurl.UnknownTypeError, match="Bogus"):
        typeurl.unpack(any_pb2.Any(type_url=url, value=b"{}"))


def test_undecodable_value_is_invalid_argument_naming_the_url() -> None:
    broken = any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x32\x05ab")
    with pytest.raises(plugin_errdefs.InvalidArgument, match=r"containerd\.runc\.v1\.Options"):
        typeurl.unpack(broken)


@pytest.mark.parametrize("kind", sorted(typeurl.JSON_KINDS))
def test_pack_json_uses_containerds_oci_urls(kind: str) -> None:
    packed = typeurl.pack_json(kind, {"a": 1})
    assert packed.type_url == f"types.containerd.io/opencontainers/runtime-spec/1/{kind}"
    assert json.loads(packed.value) == {"a": 1}
    assert typeurl.unpack(packed) == typeurl.JSONValue(kind, {"a": 1})
    assert typeurl.is_(packed, kind)


def test_pack_json_keeps_json_bytes_byte_for_byte() -> None:
    raw = b'{ "ociVersion": "1.0.2",\n  "process": {"args": ["/bin/true"]} }'
    assert typeurl.pack_json("Spec", raw).value == raw
    assert typeurl.pack_json("Spec", raw.decode()).value == raw


def test_pack_json_encodes_compactly() -> None:
    assert typeurl.pack_json("Process", {"args": ["sh"], "cwd": "/"}).value == (
        b'{"args":["sh"],"cwd":"/"}'
    )


def test_pack_json_rejects_an_unknown_kind_listing_the_known_ones() -> None:
    with pytest.raises(plugin_errdefs.InvalidArgument, match=r'"Bogus".*LinuxResources'):
        typeurl.pack_json("Bogus", {})


def test_pack_json_rejects_text_that_is_not_json() -> None:
    with pytest.raises(plugin_errdefs.InvalidArgument, match='"Spec" is not JSON'):
        typeurl.pack_json("Spec", b"{not json")


def test_pack_json_rejects_a_value_json_cannot_encode() -> None:
    with pytest.raises(plugin_errdefs.InvalidArgument, match="cannot be encoded"):
        typeurl.pack_json("Spec", {"x": object()})


def test_unpack_of_json_that_is_not_json_is_invalid_argument() -> None:
    broken = any_pb2.Any(type_url=typeurl.JSON_TYPE_PREFIX + "Spec", value=b"{")
    with pytest.raises(plugin_errdefs.InvalidArgument, match="runtime-spec/1/Spec"):
        typeurl.unpack(broken)


def test_pack_of_a_json_value_round_trips() -> None:
    value = typeurl.JSONValue("LinuxResources", {"cpu": {"shares": 512}})
    packed = typeurl.pack(value)
    assert packed.type_url == value.type_url
    assert typeurl.unpack(packed) == value


def test_type_url_of_accepts_classes_and_instances() -> None:
    assert typeurl.type_url_of(runc_options_pb2.Options) == "containerd.runc.v1.Options"
    assert typeurl.type_url_of(RUNC_OPTIONS) == "containerd.runc.v1.Options"
    assert typeurl.type_url_of(task_v3_pb2.WaitRequest) == "containerd.task.v3.WaitRequest"


def test_type_url_of_rejects_a_non_message() -> None:
    with pytest.raises(plugin_errdefs.InvalidArgument, match="not a protobuf message"):
        typeurl.type_url_of(dict)  # type: ignore[arg-type]


def test_is_compares_the_name_not_a_suffix() -> None:
    packed = typeurl.pack(events_pb2.TaskExit())
    assert typeurl.is_(packed, events_pb2.TaskExit)
    assert not typeurl.is_(packed, events_pb2.TaskExecStarted)
    assert not typeurl.is_(
        any_pb2.Any(type_url="other.containerd.events.TaskExit"), events_pb2.TaskExit
    )


def test_is_does_not_confuse_json_and_protobuf_types() -> None:
    spec = typeurl.pack_json("Spec", {})
    assert not typeurl.is_(spec, "Process")
    assert not typeurl.is_(spec, runc_options_pb2.Options)
    assert not typeurl.is_(typeurl.pack(RUNC_OPTIONS), "Spec")


def test_unpack_as_rejects_another_type_naming_both() -> None:
    packed = typeurl.pack(events_pb2.TaskStart())
    with pytest.raises(
        plugin_errdefs.InvalidArgument, match=r"containerd.events.TaskStart.*TaskExit"
    ):
        typeurl.unpack_as(packed, events_pb2.TaskExit)


def test_unpack_resolves_containerd_types_that_nothing_imported_yet() -> None:
    # A fresh interpreter: importing typeurl loads no API module; the first unpack does.
    code = (
        "import sys\n"
        "from google.protobuf import any_pb2\n"
        "from runtime_v2 import typeurl\n"
        "before = sorted(m for m in sys.modules if m.startswith('runtime_v2.api.'))\n"
        "value = typeurl.unpack(any_pb2.Any(type_url='containerd.events.TaskOOM'))\n"
        "print(before, type(value).DESCRIPTOR.full_name)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "containerd.events.TaskOOM"]


def test_every_api_module_is_registered_for_unpack() -> None:
    api = Path(typeurl.__file__).parent / "api"
    assert {f"{p.stem}_pb2" for p in api.glob("*.proto")} == set(typeurl._API_MODULES)
