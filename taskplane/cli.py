"""The ``taskplane`` command line: argument parsing and dispatch.

taskplane is daemonless: every invocation boots the registry from the config (which reattaches
to the shims of running tasks), does one thing and exits. The commands live in small modules:
:mod:`taskplane.cli_plugins`, :mod:`taskplane.cli_config`, :mod:`taskplane.cli_tasks`,
:mod:`taskplane.cli_events` and :mod:`taskplane.cli_demo`; :mod:`taskplane.errors` turns every
failure into one line on stderr.

Global options may come before or after the command (``taskplane --namespace x tasks ls`` and
``taskplane tasks ls --namespace x`` mean the same). A command to run in a container follows
the task id, after an optional ``--``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from taskplane import DEFAULT_NAMESPACE
from taskplane.errors import EXIT_USAGE, CLIError, report

__all__ = ["Options", "build_parser", "main"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: Exit code when stdout's reader went away (128 + SIGPIPE, what a shell reports).
EXIT_BROKEN_PIPE = 141

#: Environment variables that stand in for a missing global option.
ENV_CONFIG = "TASKPLANE_CONFIG"
ENV_NAMESPACE = "TASKPLANE_NAMESPACE"


@attrs.frozen
class Options:
    """The global options every command sees."""

    config: str | None = None
    root: str | None = None
    state: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    log_level: str = "error"
    debug: bool = False

    async def boot_async(self) -> Any:
        """Boot the registry with these options (config file, root and state overrides)."""
        import taskplane

        return await taskplane.boot_async(self.config, root=self.root, state=self.state)

    def boot(self) -> Any:
        """Synchronous :meth:`boot_async`; the returned Host owns its event loop."""
        import taskplane

        return taskplane.boot(self.config, root=self.root, state=self.state)


Handler = Callable[[Options, argparse.Namespace], int]


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Add the global options; on sub-commands they default to SUPPRESS so the top level wins."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="FILE",
        default=default(os.environ.get(ENV_CONFIG) or None),
        help=f"config file (default: ${ENV_CONFIG}, else the embedded defaults)",
    )
    group.add_argument(
        "--root",
        metavar="DIR",
        default=default(None),
        help="persistent state directory (overrides the config's root)",
    )
    group.add_argument(
        "--state",
        metavar="DIR",
        default=default(None),
        help="runtime state directory (overrides the config's state)",
    )
    group.add_argument(
        "--namespace",
        "-n",
        metavar="NS",
        default=default(os.environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE),
        help=f"namespace of tasks (default: ${ENV_NAMESPACE} or 'default')",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default("error"),
        type=str.lower,
        choices=LOG_LEVELS,
        help="log level of taskplane's own log on stderr (default: error; "
        "plugin failures are shown by 'plugins ls' either way)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="print tracebacks with errors"
    )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming the command."""

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn
        """Exit 2 with ``<prog>: <message> (see '<prog> --help')`` on stderr."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _io_options(parser: argparse.ArgumentParser) -> None:
    """``-i`` and ``-t`` of ``run`` and ``tasks exec`` (docker's spelling)."""
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="attach stdin to the process"
    )
    parser.add_argument(
        "-t", "--tty", action="store_true", help="run the process on a pseudo-terminal"
    )


def _count(value: str) -> int:
    """A non-negative number of lines."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"invalid line count {value!r}: use a number, 0 or more")
    return int(value)


def build_parser(*, command_after_dashdash: bool = False) -> argparse.ArgumentParser:
    """Return the full ``taskplane`` argument parser.

    A container command follows the task id. Without ``--`` everything after the id is the
    command (``run --rootfs r id ls -l``); when the caller has split the command off at ``--``
    (``command_after_dashdash``), options may also follow the id (``run id --rm -- ls``).
    """
    command_nargs: Any = "*" if command_after_dashdash else argparse.REMAINDER
    from taskplane import (
        cli_config,
        cli_containers,
        cli_demo,
        cli_events,
        cli_oci,
        cli_plugins,
        cli_rootfs,
        cli_run,
        cli_tasks,
        cli_verbs,
    )
    from taskplane.containers import DEFAULT_RUNTIME

    parser = _Parser(
        prog="taskplane",
        description="containerd's plugin registry and runtime v2 task manager, in Python.",
    )
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add(group: Any, name: str, handler: Handler, help: str, **kw: Any) -> Any:
        sub = group.add_parser(name, help=help, description=help, **kw)
        _global_options(sub, top=False)
        sub.set_defaults(handler=handler)
        return sub

    # plugins
    plugins = commands.add_parser("plugins", help="inspect plugins")
    _global_options(plugins, top=False)
    plugins_cmds = plugins.add_subparsers(
        dest="subcommand", metavar="COMMAND", parser_class=_Parser
    )
    plugins_cmds.required = True
    ls = add(
        plugins_cmds, "ls", cli_plugins.ls, "list every plugin and its status", aliases=["list"]
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.add_argument(
        "--detailed", "-d", action="store_true", help="add the reason or error and the init time"
    )

    # config
    config = commands.add_parser("config", help="print and check configuration")
    _global_options(config, top=False)
    config_cmds = config.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)
    config_cmds.required = True
    add(
        config_cmds,
        "default",
        cli_config.default,
        "print every registered plugin's default config as TOML",
    )
    add(
        config_cmds,
        "dump",
        cli_config.dump,
        "print the effective config (after imports and migration)",
    )
    validate = add(
        config_cmds,
        "validate",
        cli_config.validate,
        "check a config file; print every error and ignored setting",
    )
    validate.add_argument("file", metavar="FILE")
    validate.add_argument(
        "--strict", action="store_true", help="treat ignored settings (warnings) as errors"
    )

    # run
    run = add(
        commands,
        "run",
        cli_tasks.run,
        "run a command in a new container",
        usage="taskplane run [options] (--rootfs DIR | --spec FILE) ID [--] [CMD [ARG...]]",
    )
    cli_run.add_spec_options(run)
    run.add_argument(
        "--label",
        metavar="K=V",
        action="append",
        default=[],
        help="a label on the container record (repeatable)",
    )
    run.add_argument(
        "--overlay",
        action="store_true",
        help="give the container a private writable layer over --rootfs (overlayfs snapshotter)",
    )
    run.add_argument("--rm", action="store_true", help="delete the task and container on exit")
    run.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="print the id and leave the task running; output goes to a log file",
    )
    run.add_argument(
        "--runtime",
        metavar="NAME|PATH",
        default=DEFAULT_RUNTIME,
        help=f"runtime name or absolute shim path (default: {DEFAULT_RUNTIME})",
    )
    run.add_argument(
        "--runc-binary", metavar="PATH", help="runc-compatible binary the runc shim runs"
    )
    _io_options(run)
    run.add_argument("id", metavar="ID", help="container and task id")
    run.add_argument(
        "cmd", metavar="CMD", nargs=command_nargs, help="the command and its arguments (after --)"
    )

    # tasks
    tasks = commands.add_parser("tasks", help="manage tasks", aliases=["t"])
    _global_options(tasks, top=False)
    tasks_cmds = tasks.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)
    tasks_cmds.required = True
    tasks_ls = add(tasks_cmds, "ls", cli_tasks.ls, "list tasks", aliases=["list"])
    _list_format(tasks_ls)
    kill = add(tasks_cmds, "kill", cli_tasks.kill, "signal tasks")
    kill.add_argument(
        "--signal",
        "-s",
        metavar="SIG",
        default="SIGTERM",
        help="signal name or number (default: SIGTERM)",
    )
    kill.add_argument(
        "--all", "-a", action="store_true", help="signal every process in the container"
    )
    kill.add_argument("ids", metavar="ID", nargs="+")
    rm = add(
        tasks_cmds, "rm", cli_tasks.rm, "delete tasks and their containers", aliases=["delete"]
    )
    rm.add_argument("--force", "-f", action="store_true", help="kill the task first if running")
    rm.add_argument("ids", metavar="ID", nargs="+")
    add(tasks_cmds, "ps", cli_verbs.ps, "list the processes of a task").add_argument(
        "id", metavar="ID"
    )
    add(tasks_cmds, "pause", cli_verbs.pause, "freeze tasks").add_argument(
        "ids", metavar="ID", nargs="+"
    )
    add(tasks_cmds, "resume", cli_verbs.resume, "thaw paused tasks").add_argument(
        "ids", metavar="ID", nargs="+"
    )
    metrics = add(
        tasks_cmds, "metrics", cli_verbs.metrics, "print a task's memory, cpu, pids and io"
    )
    metrics.add_argument("--json", action="store_true", help="print JSON instead of a table")
    metrics.add_argument("id", metavar="ID")
    exec_ = add(
        tasks_cmds,
        "exec",
        cli_tasks.exec_,
        "run another process in a running task",
        usage="taskplane tasks exec [options] --exec-id EID ID [--] CMD [ARG...]",
    )
    exec_.add_argument("--exec-id", metavar="EID", required=True, help="id of the new process")
    exec_.add_argument(
        "--env",
        metavar="K=V",
        action="append",
        default=[],
        help="set an environment variable (repeatable)",
    )
    exec_.add_argument("--cwd", metavar="DIR", help="working directory")
    _io_options(exec_)
    exec_.add_argument("id", metavar="ID", help="task id")
    exec_.add_argument(
        "cmd", metavar="CMD", nargs=command_nargs, help="the command and its arguments (after --)"
    )
    logs = add(tasks_cmds, "logs", cli_tasks.logs, "print a task's output (stdout, stderr)")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing output until the task exits"
    )
    logs.add_argument("--tail", metavar="N", type=_count, help="only the last N lines")
    logs.add_argument(
        "-t", "--timestamps", action="store_true", help="prefix each line with its time"
    )
    logs.add_argument("id", metavar="ID")
    wait = add(
        tasks_cmds, "wait", cli_tasks.wait, "wait for a task to exit and print its exit status"
    )
    wait.add_argument("id", metavar="ID")

    # containers
    def group(name: str, help: str, **kw: Any) -> Any:
        """A command with sub-commands (``taskplane NAME COMMAND``)."""
        parser = commands.add_parser(name, help=help, **kw)
        _global_options(parser, top=False)
        subcommands = parser.add_subparsers(
            dest="subcommand", metavar="COMMAND", parser_class=_Parser
        )
        subcommands.required = True
        return subcommands

    containers_cmds = group("containers", "list containers", aliases=["c"])
    _list_format(add(containers_cmds, "ls", cli_containers.ls, "list containers", aliases=["list"]))
    add(
        containers_cmds, "info", cli_containers.info, "print a container record as JSON"
    ).add_argument("id", metavar="ID")

    # oci
    oci_cmds = group("oci", "OCI spec helpers")
    spec = add(
        oci_cmds,
        "spec",
        cli_oci.spec,
        "print the OCI spec 'run' would use (with the same flags) as JSON",
        usage="taskplane oci spec [options] [ID] [-- CMD [ARG...]]",
    )
    cli_run.add_spec_options(spec)
    spec.add_argument("id", metavar="ID", nargs="?", help="id (hostname and cgroup)")
    spec.add_argument("cmd", metavar="CMD", nargs=command_nargs, help="the command (default: sh)")

    # rootfs
    rootfs_cmds = group("rootfs", "build root filesystems")
    add(
        rootfs_cmds,
        "busybox",
        cli_rootfs.busybox,
        "build a busybox root filesystem in DIR (from Debian's busybox-static)",
    ).add_argument("dir", metavar="DIR")

    # runtime
    runtime = commands.add_parser("runtime", help="inspect runtimes")
    _global_options(runtime, top=False)
    runtime_cmds = runtime.add_subparsers(
        dest="subcommand", metavar="COMMAND", parser_class=_Parser
    )
    runtime_cmds.required = True
    info = add(
        runtime_cmds,
        "info",
        cli_tasks.runtime_info,
        "print a runtime's PluginInfo (name, version, features, annotations) as JSON",
    )
    info.add_argument("runtime", metavar="NAME|PATH")
    info.add_argument(
        "--runc-binary",
        metavar="PATH",
        help="runc-compatible binary to pass in the runtime options",
    )

    # events
    events = add(
        commands,
        "events",
        cli_events.events,
        "print events as they happen, from every process on the state dir, until interrupted",
    )
    events.add_argument(
        "filters",
        metavar="FILTER",
        nargs="*",
        help='containerd filters such as topic~="/tasks/" or event.container_id==web, or a'
        " topic or prefix (/tasks/*); an event is printed when any filter matches",
    )
    events.add_argument("--json", action="store_true", help="print JSON lines")
    events.add_argument(
        "--topic",
        metavar="TOPIC",
        action="append",
        default=[],
        help="only this topic, or topics under a prefix such as /tasks/* (repeatable)",
    )
    events.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="events of every namespace, not only --namespace's",
    )

    # demo
    add(
        commands,
        "demo",
        cli_demo.demo,
        "run 'echo hello from taskplane' in a busybox container (what 'make demo' runs)",
    )
    return parser


def _list_format(parser: argparse.ArgumentParser) -> None:
    """``-q`` (ids only) and ``--json`` for a list command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the ids")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")


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
