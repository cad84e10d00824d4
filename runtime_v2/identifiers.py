"""containerd's identifier rule (``pkg/identifiers``): namespaces, task ids, exec ids.

An identifier is one or more ASCII alphanumeric runs joined by single ``.``, ``_`` or ``-``
characters, at most 76 characters long. It is safe as a path component and as a socket-hash
input: it can never be empty, ``.``/``..``, contain ``/`` or start with a separator.

>>> validate("my-task.1")
>>> validate("../x")  # raises InvalidArgument: identifier "../x" must match ^[A-Za-z0-9]+...
"""

from __future__ import annotations

from plugins.identifiers import IDENTIFIER_PATTERN, MAX_LENGTH, is_valid
from runtime_v2 import errdefs

__all__ = [
    "MAX_LENGTH",
    "PATTERN",
    "validate",
    "validate_exec_id",
    "validate_namespace",
    "validate_task_id",
]

#: containerd's identifier regular expression (ASCII only). The rule itself lives in
#: :mod:`plugins.identifiers`; this module words the errors as containerd's task manager does.
PATTERN = f"^{IDENTIFIER_PATTERN}$"


def _problem(s: str) -> str | None:
    """Return why ``s`` is not a valid identifier, or None when it is valid."""
    if not s:
        return "identifier must not be empty"
    if len(s) > MAX_LENGTH:
        return f'identifier "{s}" greater than maximum length ({MAX_LENGTH} characters)'
    if not is_valid(s):
        return f'identifier "{s}" must match {PATTERN}'
    return None


def validate(s: str) -> None:
    """Raise :class:`errdefs.InvalidArgument` unless ``s`` is a valid containerd identifier.

    The message names the value and the reason, as containerd's does::

        identifier "a/b" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$
    """
    if not isinstance(s, str):
        raise errdefs.InvalidArgument(f"identifier {s!r} must be a string")
    problem = _problem(s)
    if problem is not None:
        raise errdefs.InvalidArgument(problem)


def _validate_as(kind: str, s: str) -> None:
    try:
        validate(s)
    except errdefs.InvalidArgument as exc:
        shown = s if s else '""'
        raise errdefs.InvalidArgument(f"invalid {kind} {shown}: {exc}") from None


def validate_namespace(namespace: str) -> None:
    """Validate a namespace name; the error reads ``invalid namespace <ns>: <reason>``."""
    if namespace == "":
        raise errdefs.InvalidArgument("namespace is required: identifier must not be empty")
    _validate_as("namespace", namespace)


def validate_task_id(task_id: str) -> None:
    """Validate a task (container) id; the error reads ``invalid task id <id>: <reason>``."""
    _validate_as("task id", task_id)


def validate_exec_id(exec_id: str) -> None:
    """Validate an exec (process) id; the error reads ``invalid exec id <id>: <reason>``."""
    _validate_as("exec id", exec_id)
