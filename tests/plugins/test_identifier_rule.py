"""plugins.identifiers: containerd's identifier rule, what is accepted, what is rejected and
how the error reads (one wording, containerd's)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins import identifiers
from plugins.errdefs import InvalidArgument
from plugins.identifiers import MAX_LENGTH, is_valid, quote, validate


@pytest.mark.parametrize(
    "value", ["a", "default", "k8s.io", "my-task_1", "A.B-C_D", "0", "x" * MAX_LENGTH]
)
def test_valid_identifiers_pass(value: str) -> None:
    validate(value)
    assert is_valid(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "identifier must not be empty"),
        ("x" * 77, "greater than maximum length (76 characters)"),
        ("-a", 'identifier "-a" must match'),
        ("a-", 'identifier "a-" must match'),
        ("a..b", 'identifier "a..b" must match'),
        ("a b", 'identifier "a b" must match'),
        ("a/b", 'identifier "a/b" must match'),
        ("é", 'identifier "é" must match'),
        ("a\n", 'identifier "a\\n" must match'),
    ],
)
def test_invalid_identifiers_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        validate(value)
    assert not is_valid(value)


def test_the_message_names_what_was_validated() -> None:
    with pytest.raises(
        InvalidArgument, match=re.escape('invalid namespace a b: identifier "a b" must match')
    ):
        validate("a b", what="namespace")
    with pytest.raises(InvalidArgument, match="namespace must be a string, not int"):
        validate(7, what="namespace")


_ALNUM = st.text("abcXYZ019", min_size=1, max_size=5)


@given(st.lists(st.tuples(st.sampled_from(".-_"), _ALNUM), max_size=8), _ALNUM)
def test_alphanumerics_joined_by_single_separators_are_valid(
    rest: list[tuple[str, str]], first: str
) -> None:
    value = first + "".join(sep + part for sep, part in rest)
    assert is_valid(value) == (len(value) <= MAX_LENGTH)


@pytest.mark.parametrize(
    "value",
    ["a", "0", "foo", "Foo-Bar", "a.b_c-d", "task1", "ra-shim1", "x" * 76, "1.2.3", "a-b-c"],
)
def test_valid_identifiers_are_accepted_by_every_validator(value: str) -> None:
    identifiers.validate(value)
    identifiers.validate_task_id(value)
    identifiers.validate_namespace(value)
    identifiers.validate_exec_id(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("../x", "must match"),
        ("a/b", "must match"),
        (".hidden", "must match"),
        ("trailing-", "must match"),
        ("a..b", "must match"),
        ("a--b", "must match"),
        ("a b", "must match"),
        ("tâche", "must match"),
        ("١٢٣", "must match"),  # non-ASCII digits are not [0-9]
        ("abc\n", "must match"),
        ("x" * 77, "greater than maximum length (76 characters)"),
        ("", "must not be empty"),
    ],
)
def test_invalid_identifiers_are_rejected_with_value_and_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        identifiers.validate(value)
    assert reason in str(info.value)
    if value:  # quoted as Go's %q quotes: a newline shows as \n
        assert quote(value) in str(info.value)


def test_mismatch_error_quotes_the_pattern() -> None:
    with pytest.raises(InvalidArgument, match="must match") as info:
        identifiers.validate("../x")
    assert str(info.value) == f'identifier "../x" must match {identifiers.PATTERN}'


def test_task_id_error_says_invalid_task_id() -> None:
    with pytest.raises(InvalidArgument) as info:
        identifiers.validate_task_id("a/b")
    assert str(info.value).startswith('invalid task id a/b: identifier "a/b" must match')


def test_exec_id_error_says_invalid_exec_id() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid exec id \.\./x: "):
        identifiers.validate_exec_id("../x")


def test_namespace_is_required() -> None:
    with pytest.raises(InvalidArgument, match="namespace is required"):
        identifiers.validate_namespace("")


def test_namespace_error_says_invalid_namespace() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid namespace a/b: "):
        identifiers.validate_namespace("a/b")


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="must be a string"):
        identifiers.validate(42)  # type: ignore[arg-type]


def test_empty_task_id_is_shown_quoted() -> None:
    with pytest.raises(InvalidArgument) as info:
        identifiers.validate_task_id("")
    assert str(info.value) == 'invalid task id "": identifier must not be empty'


@given(st.text(alphabet=st.sampled_from("aZ09._-/é \n"), max_size=80))
def test_validate_agrees_with_containerds_pattern(value: str) -> None:
    ok = re.fullmatch(identifiers.PATTERN.strip("^$"), value, re.ASCII) is not None
    ok = ok and len(value) <= identifiers.MAX_LENGTH
    if ok:
        identifiers.validate(value)
    else:
        with pytest.raises(InvalidArgument):
            identifiers.validate(value)
