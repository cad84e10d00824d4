"""Status code mapping both ways (spec section 3.3)."""

from __future__ import annotations

import asyncio

import pytest

import plugins.errdefs
from runtime_v2 import errdefs

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
