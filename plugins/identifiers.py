"""containerd's identifier rule (``pkg/identifiers``), shared by namespaces, ids and topics.

An identifier is 1 to 76 ASCII letters and digits, where single ``.``, ``_`` or ``-``
separators may appear between alphanumerics: ``default``, ``k8s.io``, ``my-task_1``.
It must not start or end with a separator and must not contain two in a row.

Example::

    validate("k8s.io", what="namespace")   # returns None
    validate("-bad", what="namespace")     # InvalidArgument: namespace "-bad" is invalid: ...
"""

from __future__ import annotations

import json
import re

from plugins.errdefs import InvalidArgument

__all__ = ["IDENTIFIER_PATTERN", "MAX_LENGTH", "is_valid", "quote", "validate"]

#: containerd's ``identifiers.Validate`` length limit.
MAX_LENGTH = 76

#: The pattern an identifier must match as a whole (ASCII only).
IDENTIFIER_PATTERN = r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"

_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)


def quote(value: str) -> str:
    """Quote ``value`` for an error message the way Go's ``%q`` does (double quotes, escapes)."""
    return json.dumps(value, ensure_ascii=False)


def is_valid(value: object) -> bool:
    """Return whether ``value`` is a string that passes :func:`validate`."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_LENGTH
        and _IDENTIFIER_RE.fullmatch(value) is not None
    )


def validate(value: object, *, what: str = "identifier") -> None:
    """Raise :class:`~plugins.errdefs.InvalidArgument` unless ``value`` is a valid identifier.

    ``what`` names the thing in the message, e.g. ``what="namespace"`` gives
    ``namespace "a..b" is invalid: it must match ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$ ...``.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidArgument(
            f"{what} {quote(value)} is {len(value)} characters long; the maximum is {MAX_LENGTH}"
        )
    if _IDENTIFIER_RE.fullmatch(value) is None:
        raise InvalidArgument(
            f"{what} {quote(value)} is invalid: it must match ^{IDENTIFIER_PATTERN}$"
            " (letters and digits, with single '.', '_' or '-' between them)"
        )
