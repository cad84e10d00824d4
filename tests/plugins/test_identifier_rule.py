"""plugins.identifiers: containerd's identifier rule."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.errdefs import InvalidArgument
from plugins.identifiers import MAX_LENGTH, is_valid, validate


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
        ("x" * 77, "is 77 characters long; the maximum is 76"),
        ("-a", 'identifier "-a" is invalid'),
        ("a-", 'identifier "a-" is invalid'),
        ("a..b", 'identifier "a..b" is invalid'),
        ("a b", 'identifier "a b" is invalid'),
        ("a/b", 'identifier "a/b" is invalid'),
        ("é", 'identifier "é" is invalid'),
        ("a\n", 'identifier "a\\n" is invalid'),
    ],
)
def test_invalid_identifiers_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        validate(value)
    assert not is_valid(value)


def test_the_message_names_what_was_validated() -> None:
    with pytest.raises(InvalidArgument, match=re.escape('namespace "a b" is invalid')):
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
