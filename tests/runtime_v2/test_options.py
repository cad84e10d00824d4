"""The effective runtime options: runtime options overlaid by the fields task options set."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from runtime_v2 import errdefs, typeurl
from runtime_v2.api import bootstrap_pb2, runc_options_pb2
from runtime_v2.options import EffectiveOptions, effective_runtime_options

Options = runc_options_pb2.Options


def test_binary_name_survives_task_options_that_set_only_io_uid_and_io_gid() -> None:
    runtime = typeurl.pack(Options(binary_name="/usr/sbin/crun", root="/run/crun"))
    task = typeurl.pack(Options(io_uid=1000, io_gid=2000))
    eff = effective_runtime_options(runtime, task)
    assert eff.message == Options(
        binary_name="/usr/sbin/crun", root="/run/crun", io_uid=1000, io_gid=2000
    )
    assert eff.runc_options == eff.message
    assert dict(eff.sources) == {
        "io_uid": "task",
        "io_gid": "task",
        "binary_name": "runtime",
        "root": "runtime",
    }
    assert eff.any is not None
    assert eff.any.type_url == "containerd.runc.v1.Options"
    assert typeurl.unpack(eff.any) == eff.message


def test_a_field_set_by_both_comes_from_the_task() -> None:
    eff = effective_runtime_options(
        Options(binary_name="runc", systemd_cgroup=True), Options(binary_name="crun")
    )
    assert eff.message == Options(binary_name="crun", systemd_cgroup=True)
    assert dict(eff.sources) == {"binary_name": "task", "systemd_cgroup": "runtime"}


def test_a_task_field_at_its_default_does_not_override() -> None:
    # proto3 cannot tell "set to false" from "unset"; the wire carries neither.
    eff = effective_runtime_options(
        Options(systemd_cgroup=True), Options(systemd_cgroup=False, io_uid=1)
    )
    assert eff.runc_options is not None
    assert eff.runc_options.systemd_cgroup is True
    assert eff.sources["systemd_cgroup"] == "runtime"


def test_only_runtime_options() -> None:
    eff = effective_runtime_options(Options(binary_name="crun"), None)
    assert eff.message == Options(binary_name="crun")
    assert dict(eff.sources) == {"binary_name": "runtime"}
    assert eff.note == ""


def test_only_task_options() -> None:
    eff = effective_runtime_options(None, typeurl.pack(Options(io_uid=7)))
    assert eff.message == Options(io_uid=7)
    assert dict(eff.sources) == {"io_uid": "task"}


def test_no_options_at_all() -> None:
    eff = effective_runtime_options(None, None)
    assert eff == EffectiveOptions()
    assert eff.any is None
    assert eff.message is None
    assert eff.runc_options is None
    assert eff.marshal() == b""


def test_an_empty_any_counts_as_absent() -> None:
    eff = effective_runtime_options(Options(binary_name="crun"), any_pb2.Any())
    assert eff.message == Options(binary_name="crun")


def test_task_options_with_no_fields_set_keep_the_runtime_options() -> None:
    eff = effective_runtime_options(Options(binary_name="crun"), typeurl.pack(Options()))
    assert eff.message == Options(binary_name="crun")
    assert dict(eff.sources) == {"binary_name": "runtime"}


def test_task_options_of_another_type_win_entirely_and_say_so() -> None:
    other = bootstrap_pb2.Extension()
    eff = effective_runtime_options(Options(binary_name="crun"), other)
    assert eff.message == other
    assert eff.runc_options is None
    assert "replace runtime options of type containerd.runc.v1.Options entirely" in eff.note


def test_unknown_task_options_type_wins_entirely_and_is_passed_through() -> None:
    foreign = any_pb2.Any(type_url="example.com/vendor.Options", value=b"\x08\x01")
    eff = effective_runtime_options(Options(binary_name="crun"), foreign)
    assert eff.any == foreign
    assert eff.message is None
    assert dict(eff.sources) == {}
    assert "vendor.Options" in eff.note


def test_prefixed_type_urls_are_merged_and_sent_with_the_bare_name() -> None:
    runtime = any_pb2.Any(
        type_url="type.googleapis.com/containerd.runc.v1.Options",
        value=Options(binary_name="crun").SerializeToString(),
    )
    eff = effective_runtime_options(runtime, Options(io_gid=5))
    assert eff.any is not None
    assert eff.any.type_url == "containerd.runc.v1.Options"  # containerd 1.6 needs the bare name
    assert eff.message == Options(binary_name="crun", io_gid=5)


def test_marshal_gives_the_any_a_shim_reads_on_stdin() -> None:
    eff = effective_runtime_options(
        Options(binary_name="/usr/sbin/runc", root="/run/containerd/runc-ra"), None
    )
    # the bytes containerd 1.6.20 sent
    expected = (
        b"\x0a\x1acontainerd.runc.v1.Options\x12\x29"
        b"\x32\x0e/usr/sbin/runc\x3a\x17/run/containerd/runc-ra"
    )
    assert eff.marshal() == expected


def test_repeated_and_map_fields_are_replaced_whole() -> None:
    runtime = bootstrap_pb2.BootstrapResult(
        version=2, capabilities=[bootstrap_pb2.UNSPECIFIED] * 2, metadata={"a": "1", "b": "2"}
    )
    task = bootstrap_pb2.BootstrapResult(
        capabilities=[bootstrap_pb2.UNSPECIFIED], metadata={"c": "3"}
    )
    eff = effective_runtime_options(runtime, task)
    assert eff.message == bootstrap_pb2.BootstrapResult(
        version=2, capabilities=[bootstrap_pb2.UNSPECIFIED], metadata={"c": "3"}
    )
    assert dict(eff.sources) == {"version": "runtime", "capabilities": "task", "metadata": "task"}


def test_message_fields_are_replaced_whole() -> None:
    runtime = bootstrap_pb2.Extension(value=any_pb2.Any(type_url="a", value=b"1"))
    task = bootstrap_pb2.Extension(value=any_pb2.Any(type_url="b"))
    eff = effective_runtime_options(runtime, task)
    assert eff.message == task


def test_broken_runtime_options_are_an_invalid_argument_naming_them() -> None:
    broken = any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x0f")
    with pytest.raises(errdefs.InvalidArgument, match=r"^runtime options: "):
        effective_runtime_options(broken, Options(io_uid=1))


def test_a_non_protobuf_value_is_rejected() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="task options must be a protobuf"):
        effective_runtime_options(None, {"binary_name": "crun"})  # type: ignore[arg-type]


def test_sources_cannot_be_modified() -> None:
    eff = effective_runtime_options(Options(binary_name="crun"), None)
    with pytest.raises(TypeError):
        eff.sources["binary_name"] = "task"  # type: ignore[index]
