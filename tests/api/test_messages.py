"""Wire checks of the containerd messages against bytes observed from the real 1.6.20 peers."""

from __future__ import annotations

from types import ModuleType

import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from runtime_v2.api import (
    bootstrap_pb2,
    event_pb2,
    events_pb2,
    events_service_pb2,
    introspection_pb2,
    mount_pb2,
    runc_options_pb2,
    task_types_pb2,
    task_v2_pb2,
    task_v3_pb2,
)

TASK_APIS = pytest.mark.parametrize("api", [task_v2_pb2, task_v3_pb2], ids=["v2", "v3"])

# Observed: stdout of the 1.6.20 shim's `delete`.
OBSERVED_DELETE_RESPONSE = bytes.fromhex("08ba9301 108901 1a0b 08d4ebabd806 10d0b9ea54")
# Observed: stdin containerd 1.6.20 sent to `start` for --runc-binary/--runc-root.
OBSERVED_OPTIONS_ANY = (
    b"\x0a\x1a" + b"containerd.runc.v1.Options" + b"\x12\x29"
    b"\x32\x0e" + b"/usr/sbin/runc" + b"\x3a\x17" + b"/run/containerd/runc-ra"
)
GO_ZERO_TIME_SECONDS = -62135596800
GO_ZERO_TIME_VARINT = bytes.fromhex("8092b8c398feffffff01")


@TASK_APIS
def test_observed_delete_response_decodes_and_reencodes_byte_for_byte(api: ModuleType) -> None:
    response = api.DeleteResponse.FromString(OBSERVED_DELETE_RESPONSE)
    assert response.pid == 18874
    assert response.exit_status == 137
    assert response.exited_at == timestamp_pb2.Timestamp(seconds=1795880404, nanos=177904848)
    assert response.SerializeToString() == OBSERVED_DELETE_RESPONSE


def test_observed_runc_options_any_matches_our_encoding() -> None:
    options = runc_options_pb2.Options(binary_name="/usr/sbin/runc", root="/run/containerd/runc-ra")
    packed = any_pb2.Any(type_url="containerd.runc.v1.Options", value=options.SerializeToString())
    assert packed.SerializeToString() == OBSERVED_OPTIONS_ANY
    decoded = any_pb2.Any.FromString(OBSERVED_OPTIONS_ANY)
    assert runc_options_pb2.Options.FromString(decoded.value) == options


def test_go_zero_time_encodes_as_the_observed_ten_byte_varint() -> None:
    zero = timestamp_pb2.Timestamp(seconds=GO_ZERO_TIME_SECONDS)
    assert zero.SerializeToString() == b"\x08" + GO_ZERO_TIME_VARINT


@TASK_APIS
def test_state_response_with_go_zero_exited_at_round_trips(api: ModuleType) -> None:
    wire = b"\x20\x01" + b"\x52\x0b\x08" + GO_ZERO_TIME_VARINT  # status=CREATED, exited_at=zero
    state = api.StateResponse.FromString(wire)
    assert state.status == task_types_pb2.CREATED
    assert state.exited_at.seconds == GO_ZERO_TIME_SECONDS
    assert state.SerializeToString() == wire


def test_observed_connect_response_payload_decodes() -> None:
    # Observed: the Connect success frame carried payload `08 a5 8c 01`.
    assert task_v2_pb2.ConnectResponse.FromString(b"\x08\xa5\x8c\x01").shim_pid == 17957


def _field_signature(field: FieldDescriptor) -> tuple[object, ...]:
    target = field.message_type or field.enum_type
    name = target.full_name if target is not None else None
    if name is not None:  # the only thing allowed to differ is the task package itself
        name = name.replace("containerd.task.v2.", "").replace("containerd.task.v3.", "")
    return (field.name, field.number, field.type, field.is_repeated, name)


def _message_signature(message: Descriptor) -> list[tuple[object, ...]]:
    return sorted(_field_signature(f) for f in message.fields)


def test_task_v2_and_v3_define_the_same_messages_field_for_field() -> None:
    v2 = task_v2_pb2.DESCRIPTOR.message_types_by_name
    v3 = task_v3_pb2.DESCRIPTOR.message_types_by_name
    assert sorted(v2) == sorted(v3)
    for name, message in v2.items():
        assert _message_signature(message) == _message_signature(v3[name]), name


def test_task_v2_and_v3_messages_are_wire_identical() -> None:
    def populated(api: ModuleType) -> bytes:
        request = api.CreateTaskRequest(
            id="c1",
            bundle="/run/b/c1",
            rootfs=[mount_pb2.Mount(type="overlay", source="overlay", options=["ro"])],
            terminal=True,
            stdin="/fifo/in",
            stdout="/fifo/out",
            stderr="/fifo/err",
            checkpoint="cp",
            parent_checkpoint="pcp",
            options=any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x08\x01"),
        )
        return request.SerializeToString()

    assert populated(task_v2_pb2) == populated(task_v3_pb2)
    v3_wire = task_v3_pb2.UpdateTaskRequest(id="x", annotations={"a": "b"}).SerializeToString()
    assert task_v2_pb2.UpdateTaskRequest.FromString(v3_wire).annotations == {"a": "b"}


EXPECTED_METHODS = {
    "State": ("StateRequest", "StateResponse"),
    "Create": ("CreateTaskRequest", "CreateTaskResponse"),
    "Start": ("StartRequest", "StartResponse"),
    "Delete": ("DeleteRequest", "DeleteResponse"),
    "Pids": ("PidsRequest", "PidsResponse"),
    "Pause": ("PauseRequest", "google.protobuf.Empty"),
    "Resume": ("ResumeRequest", "google.protobuf.Empty"),
    "Checkpoint": ("CheckpointTaskRequest", "google.protobuf.Empty"),
    "Kill": ("KillRequest", "google.protobuf.Empty"),
    "Exec": ("ExecProcessRequest", "google.protobuf.Empty"),
    "ResizePty": ("ResizePtyRequest", "google.protobuf.Empty"),
    "CloseIO": ("CloseIORequest", "google.protobuf.Empty"),
    "Update": ("UpdateTaskRequest", "google.protobuf.Empty"),
    "Wait": ("WaitRequest", "WaitResponse"),
    "Stats": ("StatsRequest", "StatsResponse"),
    "Connect": ("ConnectRequest", "ConnectResponse"),
    "Shutdown": ("ShutdownRequest", "google.protobuf.Empty"),
}


@TASK_APIS
def test_task_service_has_the_seventeen_methods_of_the_spec(api: ModuleType) -> None:
    service = api.DESCRIPTOR.services_by_name["Task"]
    package = api.DESCRIPTOR.package
    assert service.full_name == f"{package}.Task"
    actual = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}

    def qualify(name: str) -> str:
        return name if name.startswith("google.") else f"{package}.{name}"

    assert actual == {k: (qualify(a), qualify(b)) for k, (a, b) in EXPECTED_METHODS.items()}


def test_events_service_is_forward_of_an_envelope() -> None:
    service = events_service_pb2.DESCRIPTOR.services_by_name["Events"]
    assert service.full_name == "containerd.services.events.ttrpc.v1.Events"
    (forward,) = service.methods
    assert forward.name == "Forward"
    assert forward.input_type.full_name == "containerd.services.events.ttrpc.v1.ForwardRequest"
    assert forward.output_type.full_name == "google.protobuf.Empty"
    envelope = forward.input_type.fields_by_name["envelope"]
    assert (envelope.number, envelope.message_type.full_name) == (1, "containerd.types.Envelope")


@pytest.mark.parametrize(
    ("message", "full_name"),
    [
        (mount_pb2.Mount, "containerd.types.Mount"),
        (mount_pb2.ActiveMount, "containerd.types.ActiveMount"),
        (mount_pb2.ActivationInfo, "containerd.types.ActivationInfo"),
        (event_pb2.Envelope, "containerd.types.Envelope"),
        (introspection_pb2.RuntimeRequest, "containerd.types.RuntimeRequest"),
        (introspection_pb2.RuntimeVersion, "containerd.types.RuntimeVersion"),
        (introspection_pb2.RuntimeInfo, "containerd.types.RuntimeInfo"),
        (task_types_pb2.Process, "containerd.v1.types.Process"),
        (task_types_pb2.ProcessInfo, "containerd.v1.types.ProcessInfo"),
        (task_v2_pb2.CreateTaskRequest, "containerd.task.v2.CreateTaskRequest"),
        (task_v3_pb2.CreateTaskRequest, "containerd.task.v3.CreateTaskRequest"),
        (events_pb2.TaskCreate, "containerd.events.TaskCreate"),
        (events_pb2.TaskIO, "containerd.events.TaskIO"),
        (events_pb2.TaskStart, "containerd.events.TaskStart"),
        (events_pb2.TaskOOM, "containerd.events.TaskOOM"),
        (events_pb2.TaskExit, "containerd.events.TaskExit"),
        (events_pb2.TaskDelete, "containerd.events.TaskDelete"),
        (events_pb2.TaskExecAdded, "containerd.events.TaskExecAdded"),
        (events_pb2.TaskExecStarted, "containerd.events.TaskExecStarted"),
        (events_pb2.TaskPaused, "containerd.events.TaskPaused"),
        (events_pb2.TaskResumed, "containerd.events.TaskResumed"),
        (events_pb2.TaskCheckpointed, "containerd.events.TaskCheckpointed"),
        (
            events_service_pb2.ForwardRequest,
            "containerd.services.events.ttrpc.v1.ForwardRequest",
        ),
        (runc_options_pb2.Options, "containerd.runc.v1.Options"),
        (runc_options_pb2.CheckpointOptions, "containerd.runc.v1.CheckpointOptions"),
        (runc_options_pb2.ProcessDetails, "containerd.runc.v1.ProcessDetails"),
        (bootstrap_pb2.BootstrapParams, "containerd.runtime.bootstrap.v1.BootstrapParams"),
        (bootstrap_pb2.Extension, "containerd.runtime.bootstrap.v1.Extension"),
        (bootstrap_pb2.BootstrapResult, "containerd.runtime.bootstrap.v1.BootstrapResult"),
    ],
)
def test_message_full_names_are_containerds(message: type, full_name: str) -> None:
    # Any type URLs are these names, so a wrong package breaks every peer.
    assert message.DESCRIPTOR.full_name == full_name


def test_status_enum_has_containerds_numbers() -> None:
    assert dict(task_types_pb2.Status.items()) == {
        "UNKNOWN": 0,
        "CREATED": 1,
        "RUNNING": 2,
        "STOPPED": 3,
        "PAUSED": 4,
        "PAUSING": 5,
    }


def test_task_exit_event_field_numbers_match_the_spec() -> None:
    event = events_pb2.TaskExit(
        container_id="c", id="c", pid=5, exit_status=137, exited_at={"seconds": 1}
    )
    assert event.SerializeToString() == b"\x0a\x01c\x12\x01c\x18\x05\x20\x89\x01\x2a\x02\x08\x01"


def test_task_delete_event_keeps_exec_id_at_field_five() -> None:
    event = events_pb2.TaskDelete(container_id="c", pid=5, exit_status=3, id="e")
    assert event.SerializeToString() == b"\x0a\x01c\x10\x05\x18\x03\x2a\x01e"


def test_task_create_event_with_empty_io_keeps_io_present() -> None:
    # The 1.6.20 shim sends io present but empty; presence must survive a round trip.
    wire = b"\x0a\x01c\x22\x00\x30\x07"
    event = events_pb2.TaskCreate.FromString(wire)
    assert event.HasField("io")
    assert event.pid == 7
    assert event.SerializeToString() == wire


def test_forward_request_envelope_round_trips() -> None:
    inner = events_pb2.TaskStart(container_id="c", pid=9)
    request = events_service_pb2.ForwardRequest(
        envelope=event_pb2.Envelope(
            timestamp=timestamp_pb2.Timestamp(seconds=10, nanos=5),
            namespace="ns",
            topic="/tasks/start",
            event=any_pb2.Any(
                type_url="containerd.events.TaskStart", value=inner.SerializeToString()
            ),
        )
    )
    wire = request.SerializeToString()
    assert wire.startswith(b"\x0a")
    decoded = events_service_pb2.ForwardRequest.FromString(wire)
    assert decoded == request
    assert events_pb2.TaskStart.FromString(decoded.envelope.event.value) == inner


def test_bootstrap_log_level_negative_values_encode_as_ten_byte_varints() -> None:
    params = bootstrap_pb2.BootstrapParams(log_level=bootstrap_pb2.TRACE)
    assert params.SerializeToString() == b"\x18" + bytes.fromhex("f8ffffffffffffffff01")
    assert bootstrap_pb2.LogLevel.Value("DEBUG") == -4
    assert dict(bootstrap_pb2.LogLevel.items()) == {
        "INFO": 0,
        "TRACE": -8,
        "DEBUG": -4,
        "WARN": 4,
        "ERROR": 8,
        "FATAL": 10,
        "PANIC": 12,
    }


def test_bootstrap_log_level_is_an_open_enum() -> None:
    params = bootstrap_pb2.BootstrapParams.FromString(b"\x18\x07")
    assert params.log_level == 7
    assert params.SerializeToString() == b"\x18\x07"


def test_bootstrap_socket_dir_has_explicit_presence() -> None:
    assert not bootstrap_pb2.BootstrapParams().HasField("socket_dir")
    empty = bootstrap_pb2.BootstrapParams(socket_dir="")
    assert empty.HasField("socket_dir")
    assert empty.SerializeToString() == b"\x4a\x00"


def test_bootstrap_result_capabilities_are_packed() -> None:
    result = bootstrap_pb2.BootstrapResult(
        version=3,
        address="unix:///run/containerd/shim.sock",
        protocol="ttrpc",
        capabilities=[bootstrap_pb2.UNSPECIFIED, bootstrap_pb2.UNSPECIFIED],
        metadata={"note": "line\n"},
    )
    wire = result.SerializeToString()
    assert b"\x22\x02\x00\x00" in wire
    assert wire.endswith(b"\n")  # a trailing newline inside a value survives
    assert bootstrap_pb2.BootstrapResult.FromString(wire) == result


def test_bootstrap_params_with_extension_round_trip() -> None:
    options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x32\x01x")
    params = bootstrap_pb2.BootstrapParams(
        instance_id="id",
        namespace="ns",
        containerd_ttrpc_address="/run/c.sock.ttrpc",
        extensions=[bootstrap_pb2.Extension(value=options)],
        socket_dir="/run/containerd/s",
    )
    decoded = bootstrap_pb2.BootstrapParams.FromString(params.SerializeToString())
    assert decoded == params
    assert decoded.extensions[0].value.type_url == "containerd.runc.v1.Options"


def test_runc_options_keep_both_16_and_main_fields() -> None:
    options = runc_options_pb2.Options(criu_path="/criu", task_api_version=3)
    assert options.SerializeToString() == b"\x42\x05/criu\x68\x03"


def test_checkpoint_options_field_numbers_match_the_spec() -> None:
    fields = {f.name: f.number for f in runc_options_pb2.CheckpointOptions.DESCRIPTOR.fields}
    assert fields == {
        "exit": 1,
        "open_tcp": 2,
        "external_unix_sockets": 3,
        "terminal": 4,
        "file_locks": 5,
        "empty_namespaces": 6,
        "cgroups_mode": 7,
        "image_path": 8,
        "work_path": 9,
        "parent_path": 10,
    }


def test_runtime_info_round_trips_with_features_and_annotations() -> None:
    info = introspection_pb2.RuntimeInfo(
        name="io.containerd.runc.v2",
        version=introspection_pb2.RuntimeVersion(version="1.6.20", revision="abc"),
        features=any_pb2.Any(
            type_url="types.containerd.io/opencontainers/runtime-spec/1/features/Features",
            value=b"{}",
        ),
        annotations={"k": "v"},
    )
    assert introspection_pb2.RuntimeInfo.FromString(info.SerializeToString()) == info


def test_truncated_message_is_rejected() -> None:
    with pytest.raises(DecodeError):
        task_v2_pb2.DeleteResponse.FromString(OBSERVED_DELETE_RESPONSE[:-1])
