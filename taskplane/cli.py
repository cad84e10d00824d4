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
import os
import sys
from collections.abc import Callable, Sequence

from taskplane.cli_common import (
    DEFAULT_LOG_LEVEL,
    Command,
    Handler,
    Options,
    Parser,
    add_commands,
    add_global_options,
)
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
    cancel_log_setup = _set_up_log(ns.log_level, debug=ns.debug)
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
    finally:
        if cancel_log_setup is not None:  # an embedder's later records are its own business
            cancel_log_setup()


def _set_up_log(level: str, *, debug: bool) -> Callable[[], None] | None:
    """Set up the one-line log on stderr (:mod:`taskplane.cli_log`) now when logging is in use
    already or ``--log-level``/``--debug`` asks for it, else when logging is first used;
    returns what cancels the deferred setup (None when done now).

    Deferring changes no output: nothing logs before the setup runs (see
    :mod:`taskplane.cli_log`), and a command that logs nothing never imports :mod:`logging`.
    """

    def configure() -> None:
        from taskplane.cli_log import configure as configure_log

        configure_log(level, debug=debug)

    if "logging" in sys.modules or level != DEFAULT_LOG_LEVEL or debug:
        configure()
        return None
    from registry.log import on_first_use

    return on_first_use(configure)


def _absolute(option: str, path: str | None) -> str | None:
    if path is None:
        return None
    if not path:
        raise CLIError(f"{option} must not be empty")
    return os.path.abspath(path)
