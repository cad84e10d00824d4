"""The ``taskplane`` command line: argument parsing and dispatch.

taskplane is daemonless: every invocation boots the registry from the config (which reattaches
to the shims of running tasks), does one thing and exits. :data:`COMMANDS` names each command
and the small module that holds it (``cli_plugins``, ``cli_config``, ``cli_run``, ``cli_tasks``,
``cli_containers``, ``cli_oci``, ``cli_rootfs``, ``cli_runtime``, ``cli_events``,
``cli_demo``); a command's module is imported only when that command runs (see
:mod:`taskplane.cli_common`). :mod:`taskplane.errors` turns every failure into one line on
stderr.

Global options may come before or after the command (``taskplane --namespace x tasks ls`` and
``taskplane tasks ls --namespace x`` mean the same). A command to run in a container follows
the task id, after an optional ``--``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from taskplane.cli_common import Command, Handler, Options, Parser, add_commands, add_global_options
from taskplane.errors import CLIError, report

__all__ = ["COMMANDS", "Options", "build_parser", "main"]

#: Exit code when stdout's reader went away (128 + SIGPIPE, what a shell reports).
EXIT_BROKEN_PIPE = 141

#: Every top-level command: its module is imported only when the command runs.
COMMANDS = (
    Command("plugins", "taskplane.cli_plugins", "inspect plugins"),
    Command("config", "taskplane.cli_config", "print and check configuration"),
    Command(
        "run",
        "taskplane.cli_run",
        "run a command in a new container",
        usage="taskplane run [options] (--rootfs DIR | --spec FILE) ID [--] [CMD [ARG...]]",
    ),
    Command("tasks", "taskplane.cli_tasks", "manage tasks", aliases=("t",)),
    Command("containers", "taskplane.cli_containers", "list containers", aliases=("c",)),
    Command("oci", "taskplane.cli_oci", "OCI spec helpers"),
    Command("rootfs", "taskplane.cli_rootfs", "build root filesystems"),
    Command("runtime", "taskplane.cli_runtime", "inspect runtimes"),
    Command(
        "events",
        "taskplane.cli_events",
        "print events as they happen, from every process on the state dir, until interrupted",
    ),
    Command(
        "demo",
        "taskplane.cli_demo",
        "run 'echo hello from taskplane' in a busybox container (what 'make demo' runs)",
    ),
)


def build_parser(*, command_after_dashdash: bool = False) -> argparse.ArgumentParser:
    """Return the ``taskplane`` argument parser.

    Each command's module adds its arguments when the parser meets the command's name (see
    :mod:`taskplane.cli_common`). A container command follows the task id. Without ``--``
    everything after the id is the command (``run --rootfs r id ls -l``); when the caller has
    split the command off at ``--`` (``command_after_dashdash``), options may also follow the
    id (``run id --rm -- ls``).
    """
    parser = Parser(
        prog="taskplane",
        description="containerd's plugin registry and runtime v2 task manager, in Python.",
    )
    parser.taskplane_dashdash = command_after_dashdash  # type: ignore[attr-defined]
    add_global_options(parser, top=True)
    add_commands(parser, COMMANDS, dest="command")
    return parser


class OneLineFormatter(logging.Formatter):
    """``taskplane: LEVEL logger: message``, one line per record.

    A logged exception adds its type and message to the line; its traceback is printed only
    with ``--debug``, so the stderr of a command that succeeds carries no tracebacks (a benign
    race logged by a library is one line, not thirty).
    """

    def __init__(self, *, debug: bool = False) -> None:
        super().__init__("taskplane: %(levelname)s %(name)s: %(message)s")
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        if self.debug or not (record.exc_info or record.stack_info):
            return super().format(record)
        exc = record.exc_info[1] if record.exc_info else None
        line = logging.LogRecord(
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            record.getMessage(),
            None,
            None,
        )
        line.levelname = record.levelname
        text = super().format(line)
        if exc is not None:
            detail = " ".join(str(exc).split())
            text += f" ({type(exc).__name__}{': ' + detail if detail else ''})"
        return text


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at the first ``--``: options before, the container command after."""
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``taskplane`` command; return its exit code (the console script exits with it)."""
    args, trailing = _split_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_after_dashdash=trailing is not None)
    ns = parser.parse_args(args)
    if hasattr(ns, "cmd"):
        ns.cmd = [*ns.cmd, *(trailing or [])]
    elif trailing is not None:
        parser.error(f"unexpected arguments after '--': {' '.join(trailing) or '(none)'}")
    # What a daemon started by systemd has: whatever umask the user typed the command under,
    # files taskplane and the shims it starts create are never group- or world-writable.
    os.umask(0o022)
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(OneLineFormatter(debug=ns.debug))
    logging.basicConfig(level=getattr(logging, ns.log_level.upper()), handlers=[log_handler])
    handler: Handler = ns.handler
    try:
        opts = Options(
            config=ns.config,
            root=_absolute("--root", ns.root),
            state=_absolute("--state", ns.state),
            namespace=ns.namespace,
            log_level=ns.log_level,
            debug=ns.debug,
        )
        return handler(opts, ns)
    except BrokenPipeError:
        # The reader went away (``taskplane plugins ls | head``): stop quietly, like cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, debug=ns.debug)


def _absolute(option: str, path: str | None) -> str | None:
    if path is None:
        return None
    if not path:
        raise CLIError(f"{option} must not be empty")
    return os.path.abspath(path)
