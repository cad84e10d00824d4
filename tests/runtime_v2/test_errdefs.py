"""runtime_v2.errdefs: the errdefs classes <-> ttrpc status codes, both ways (containerd's
``errgrpc.ToGRPC`` / ``ToNative``), over a real ttrpc connection too, and ``wrap``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import empty_pb2

import plugins.errdefs
from runtime_v2 import errdefs, ttrpc
from runtime_v2.api import events_service_pb2

CLASSES_BY_CODE = [
    (errdefs.Canceled, 1),
    (errdefs.Unknown, 2),
    (errdefs.InvalidArgument, 3),
    (errdefs.DeadlineExceeded, 4),
    (errdefs.NotFound, 5),
    (errdefs.AlreadyExists, 6),
    (errdefs.PermissionDenied, 7),
    (errdefs.ResourceExhausted, 8),
    (errdefs.FailedPrecondition, 9),
    (errdefs.Aborted, 10),
    (errdefs.OutOfRange, 11),
    (errdefs.NotImplemented, 12),
    (errdefs.Internal, 13),
    (errdefs.Unavailable, 14),
    (errdefs.DataLoss, 15),
    (errdefs.Unauthenticated, 16),
]


def test_runtime_errdefs_reexports_every_plugins_class() -> None:
    for name in plugins.errdefs.__all__:
        assert getattr(errdefs, name) is getattr(plugins.errdefs, name)


@pytest.mark.parametrize(("cls", "code"), CLASSES_BY_CODE)
def test_each_class_round_trips_through_its_code(
    cls: type[errdefs.ContainerdError], code: int
) -> None:
    sent = errdefs.to_status(cls("task t1"))
    assert sent == (code, f"task t1: {cls.text}")
    back = errdefs.from_status(*sent)
    assert type(back) is cls
    assert str(back) == "task t1"


def test_observed_shim_not_found_message_keeps_its_detail() -> None:
    err = errdefs.from_status(5, "container not created: not found")
    assert type(err) is errdefs.NotFound
    assert str(err) == "container not created"
    assert errdefs.to_status(err) == (5, "container not created: not found")


def test_bare_class_text_gives_the_bare_class() -> None:
    err = errdefs.from_status(5, "not found")
    assert type(err) is errdefs.NotFound
    assert str(err) == "not found"
    assert errdefs.to_status(errdefs.NotFound()) == (5, "not found")


def test_class_text_is_not_appended_twice() -> None:
    assert errdefs.to_status(errdefs.NotFound("x: not found")) == (5, "x: not found")


@pytest.mark.parametrize(
    ("message", "cls", "text"),
    [
        ("conflict", errdefs.Conflict, "conflict"),
        ("container c1: conflict", errdefs.Conflict, "container c1"),
        ("not modified", errdefs.NotModified, "not modified"),
        ("image x: not modified", errdefs.NotModified, "image x"),
        ("conflicting things", errdefs.FailedPrecondition, "conflicting things"),
        ("conflict: with more", errdefs.FailedPrecondition, "conflict: with more"),
        ("x: failed precondition", errdefs.FailedPrecondition, "x"),
    ],
)
def test_failed_precondition_is_refined_by_message(
    message: str, cls: type[errdefs.ContainerdError], text: str
) -> None:
    err = errdefs.from_status(9, message)
    assert type(err) is cls
    assert str(err) == text


def test_conflict_and_not_modified_are_sent_as_failed_precondition() -> None:
    assert errdefs.to_status(errdefs.Conflict("task t1")) == (9, "task t1: conflict")
    assert errdefs.to_status(errdefs.NotModified()) == (9, "not modified")


def test_unknown_codes_become_unknown_naming_the_code() -> None:
    err = errdefs.from_status(99, "odd")
    assert type(err) is errdefs.Unknown
    assert str(err) == "odd (status code 99)"
    assert str(errdefs.from_status(0, "")) == "status code 0"


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            FileNotFoundError(2, "No such file or directory"),
            5,
            "[Errno 2] No such file or directory",
        ),
        (OSError(2, "No such file or directory"), 5, "[Errno 2] No such file or directory"),
        (FileExistsError("exists"), 6, "exists"),
        (PermissionError("nope"), 7, "nope"),
        (asyncio.CancelledError(), 1, "context canceled"),
        (TimeoutError(), 4, "context deadline exceeded"),
        (EOFError("eof"), 11, "eof"),
        (asyncio.IncompleteReadError(b"", 10), 9, "0 bytes read on a total of 10 expected bytes"),
        (ValueError("bad"), 2, "bad"),
        (RuntimeError(), 2, "unknown"),
    ],
)
def test_non_errdefs_exceptions_follow_convert_code(
    exc: BaseException, code: int, message: str
) -> None:
    assert errdefs.to_status(exc) == (code, message)


def test_the_export_list_is_the_classes_and_the_mapping() -> None:
    assert set(errdefs.__all__) == {
        *plugins.errdefs.__all__,
        "from_grpc",
        "from_status",
        "grpc_handler",
        "to_grpc",
        "to_status",
    }
    for name in errdefs.__all__:
        assert hasattr(errdefs, name), name


# --- over a real ttrpc connection ------------------------------------------------------------

_FORWARD = events_service_pb2.DESCRIPTOR.services_by_name["Events"]


@pytest.fixture
async def forward(base: Path) -> AsyncIterator[tuple[list[BaseException], ttrpc.Client]]:
    """A ttrpc server whose Forward handler (wrapped by grpc_handler) raises what the test
    appends, and a client connected to it."""
    raises: list[BaseException] = []

    async def handler(request: object, ctx: ttrpc.CallContext) -> empty_pb2.Empty:
        raise raises.pop()

    server = ttrpc.Server()
    server.register(_FORWARD, {"Forward": errdefs.grpc_handler(handler)})
    await server.serve(str(base / "events.sock"))
    client = await ttrpc.Client.connect(str(base / "events.sock"))
    try:
        yield raises, client
    finally:
        await client.close()
        await server.close()


async def _forward_error(client: ttrpc.Client) -> ttrpc.StatusError:
    request = events_service_pb2.ForwardRequest()
    with pytest.raises(ttrpc.StatusError) as info:
        await client.call(_FORWARD.full_name, "Forward", request, empty_pb2.Empty)
    return info.value


@pytest.mark.parametrize(("cls", "code"), CLASSES_BY_CODE)
async def test_a_handlers_errdefs_error_crosses_the_wire_and_comes_back_as_its_class(
    forward: tuple[list[BaseException], ttrpc.Client],
    cls: type[errdefs.ContainerdError],
    code: int,
) -> None:
    raises, client = forward
    raises.append(cls("task t1"))
    status = await _forward_error(client)
    assert (status.code, status.message) == (code, f"task t1: {cls.text}")
    native = errdefs.from_grpc(status)
    assert type(native) is cls
    assert str(native) == "task t1"
    assert native.__cause__ is status


async def test_a_conflict_crosses_the_wire_as_failed_precondition_and_comes_back_a_conflict(
    forward: tuple[list[BaseException], ttrpc.Client],
) -> None:
    raises, client = forward
    raises.append(errdefs.Conflict("task t1"))
    status = await _forward_error(client)
    assert status.code == ttrpc.Code.FAILED_PRECONDITION
    assert type(errdefs.from_grpc(status)) is errdefs.Conflict


async def test_grpc_handler_leaves_other_errors_to_ttrpc(
    forward: tuple[list[BaseException], ttrpc.Client],
) -> None:
    raises, client = forward
    raises.append(FileNotFoundError("no such thing"))
    status = await _forward_error(client)
    assert (status.code, status.message) == (ttrpc.Code.NOT_FOUND, "no such thing")


def test_to_grpc_is_the_status_a_handler_raises() -> None:
    status = errdefs.to_grpc(errdefs.NotFound("container c1"))
    assert isinstance(status, ttrpc.StatusError)
    assert (status.code, status.message) == (ttrpc.Code.NOT_FOUND, "container c1: not found")


# --- wrap --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "code"), CLASSES_BY_CODE)
def test_wrap_keeps_the_class_and_prefixes_the_message(
    cls: type[errdefs.ContainerdError], code: int
) -> None:
    cause = cls("task t1")
    wrapped = errdefs.wrap(cause, "cannot signal")
    assert type(wrapped) is cls
    assert str(wrapped) == "cannot signal: task t1"
    assert wrapped.__cause__ is cause


def test_wrap_takes_the_errdefs_base_of_a_subclass_defined_elsewhere() -> None:
    class ShimGone(errdefs.Unavailable):
        def __init__(self, pid: int) -> None:
            super().__init__(f"shim {pid} is gone")

    assert type(errdefs.wrap(ShimGone(7), "cannot kill")) is errdefs.Unavailable
    assert type(errdefs.wrap(errdefs.Conflict("x"), "y")) is errdefs.Conflict


def test_wrap_of_an_error_of_no_class_is_unknown() -> None:
    wrapped = errdefs.wrap(ValueError("bad"), "cannot parse")
    assert type(wrapped) is errdefs.Unknown
    assert str(wrapped) == "cannot parse: bad"
