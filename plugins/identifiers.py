"""containerd's identifier rule (``pkg/identifiers``): namespaces, container, task and exec ids,
snapshot names and event topic components.

An identifier is 1 to 76 ASCII letters and digits, where single ``.``, ``_`` or ``-``
separators may appear between alphanumerics: ``default``, ``k8s.io``, ``my-task_1``. It can
never be empty, ``.``/``..``, contain ``/`` or start or end with a separator, so it is safe as
a path component and as a socket-hash input.

The errors read as containerd's (``identifiers.Validate``, wrapped by the caller as its task
manager does)::

    validate("a/b")                      # identifier "a/b" must match ^[A-Za-z0-9]+...$
    validate("a/b", what="namespace")    # invalid namespace a/b: identifier "a/b" must match ...
    validate_namespace("")               # namespace is required: identifier must not be empty
"""

from __future__ import annotations

import json
import re

from plugins.errdefs import InvalidArgument

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_LENGTH",
    "PATTERN",
    "is_valid",
    "quote",
    "validate",
    "validate_exec_id",
    "validate_namespace",
    "validate_task_id",
]

#: containerd's ``identifiers.Validate`` length limit.
MAX_LENGTH = 76

#: The pattern an identifier must match as a whole (ASCII only).
IDENTIFIER_PATTERN = r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"

#: The anchored pattern, as containerd's error messages show it.
PATTERN = f"^{IDENTIFIER_PATTERN}$"

_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)


def quote(value: str) -> str:
    """Quote ``value`` for an error message the way Go's ``%q`` does (double quotes, escapes)."""
    return json.dumps(value, ensure_ascii=False)


def is_valid(value: object) -> bool:
    """Return whether ``value`` is a string that passes :func:`validate`."""
    return isinstance(value, str) and _problem(value) is None


def _problem(value: str) -> str | None:
    """containerd's ``identifiers.Validate`` message for ``value``, or None when it is valid."""
    if not value:
        return "identifier must not be empty"
    if len(value) > MAX_LENGTH:
        return f"identifier {quote(value)} greater than maximum length ({MAX_LENGTH} characters)"
    if _IDENTIFIER_RE.fullmatch(value) is None:
        return f"identifier {quote(value)} must match {PATTERN}"
    return None


def validate(value: object, *, what: str = "identifier") -> None:
    """Raise :class:`~plugins.errdefs.InvalidArgument` unless ``value`` is a valid identifier.

    ``what`` names the thing: the default gives containerd's bare message
    (``identifier "a/b" must match ^...$``); ``what="namespace"`` wraps it as containerd's
    callers do (``invalid namespace a/b: identifier "a/b" must match ^...$``).
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    problem = _problem(value)
    if problem is None:
        return
    if what == "identifier":
        raise InvalidArgument(problem)
    # Go's %s shows the value as it is; a value that would garble the line is quoted.
    shown = value if value.isprintable() and value.strip() == value and value else quote(value)
    raise InvalidArgument(f"invalid {what} {shown}: {problem}")


def validate_namespace(namespace: object) -> None:
    """Validate a namespace; an empty one reads ``namespace is required: ...`` (containerd's
    ``namespaces.NamespaceRequired``), another bad one ``invalid namespace <ns>: ...``."""
    if namespace == "":
        raise InvalidArgument("namespace is required: identifier must not be empty")
    validate(namespace, what="namespace")


def validate_task_id(task_id: object) -> None:
    """Validate a task (container) id; the error reads ``invalid task id <id>: <reason>``."""
    validate(task_id, what="task id")


def validate_exec_id(exec_id: object) -> None:
    """Validate an exec (process) id; the error reads ``invalid exec id <id>: <reason>``."""
    validate(exec_id, what="exec id")
