"""The one place where exceptions become what the user sees: one line on stderr and an exit code.

Commands raise; :func:`report` decides how the failure reads. Known failures (a bad config, a
missing binary, an unknown task id, ...) read as one sentence naming the thing; anything else is
an internal error that says so. ``--debug`` adds the traceback to either.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CLIError",
    "Missing",
    "about",
    "report",
]

#: Exit code of every ordinary failure.
EXIT_FAILURE = 1
#: Exit code of a command-line usage error (argparse uses it too).
EXIT_USAGE = 2
#: Exit code after Ctrl-C interrupted taskplane itself (128 + SIGINT).
EXIT_INTERRUPTED = 130

PROG = "taskplane"


class CLIError(Exception):
    """A failure the command reports as its message, exiting with ``exit_code``; each line of
    the message is one ``taskplane: <line>`` on stderr."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Missing(CLIError):
    """A prerequisite is missing: a binary, root privileges, a file, the right OS."""


def _lines(exc: BaseException) -> list[str]:
    """Return the user-facing lines for ``exc`` (several only for a config with several errors)."""
    from registry import ConfigError  # lazy: importing errors.py stays cheap

    if isinstance(exc, ConfigError):
        return [str(issue) for issue in exc.issues] or [str(exc)]
    if isinstance(exc, CLIError):
        return str(exc).splitlines() or [str(exc)]
    if isinstance(exc, OSError):
        return [_os_error_line(exc)]
    return [_one_line(exc)]


def _os_error_line(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """Render a known library error as one line; anything else as an internal error."""
    known = _known_error_types()
    text = " ".join(str(exc).split())
    if isinstance(exc, known):
        return text or type(exc).__name__
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"internal error: {detail} (run with --debug for the traceback)"


def _known_error_types() -> tuple[type[BaseException], ...]:
    from plugins.errdefs import ContainerdError
    from registry import PluginError
    from taskplane.oci import SpecError
    from taskplane.rootfs import RootfsError

    return (PluginError, ContainerdError, SpecError, RootfsError, TimeoutError)


def report(exc: BaseException, *, debug: bool = False, stream: TextIO | None = None) -> int:
    """Write ``exc`` to ``stream`` (stderr) as ``taskplane: <message>`` lines; return the exit code.

    With ``debug`` the traceback is printed first, so the one-line summary stays last.
    """
    out = stream if stream is not None else sys.stderr
    if isinstance(exc, KeyboardInterrupt):
        print(f"{PROG}: interrupted", file=out)
        return EXIT_INTERRUPTED
    if debug:
        import traceback  # only for --debug: a one-line report needs none

        traceback.print_exception(exc, file=out)
    for line in _lines(exc):
        print(f"{PROG}: {line}", file=out)
    if isinstance(exc, CLIError):
        return exc.exit_code
    return EXIT_FAILURE


@contextlib.contextmanager
def about(what: str) -> Iterator[None]:
    """Raise every errdefs error of the block prefixed with ``what``, of its errdefs class
    (:func:`plugins.errdefs.wrap`)."""
    from plugins import errdefs

    try:
        yield
    except errdefs.ContainerdError as exc:
        raise errdefs.wrap(exc, what) from exc
