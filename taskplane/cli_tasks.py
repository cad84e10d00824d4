"""``taskplane tasks ...``: the task commands of ``ctr tasks``.

This module is the ``tasks`` group: its table names every sub-command and the module that
adds the sub-command's arguments when it runs (:mod:`taskplane.cli_common`). ``ls``, ``kill``,
``rm``, ``wait`` and ``logs`` live here; ``exec`` in :mod:`taskplane.cli_exec` and ``ps``,
``pause``, ``resume`` and ``metrics`` in :mod:`taskplane.cli_verbs`. Each boots the registry,
does its work through :class:`taskplane.containers.Client` and exits; only the shims of the tasks
it uses are reattached (``ls``: the namespace's).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from plugins import errdefs
from taskplane.cli_client import (
    for_each_id,
    validate_ids,
    with_client,
)
from taskplane.cli_common import (
    Command,
    Options,
    add_commands,
    format_table,
    line_count,
    list_format,
)
from taskplane.collector import without_cycle_collection
from taskplane.containers import Client
from taskplane.errors import CLIError, about
from taskplane.task_list import TaskEntry

__all__ = ["COMMANDS", "kill", "logs", "ls", "parse_signal", "register", "rm", "wait"]

#: ``taskplane tasks COMMAND``.
COMMANDS = (
    Command("ls", "taskplane.cli_tasks:register_ls", "list tasks", aliases=("list",)),
    Command("kill", "taskplane.cli_tasks:register_kill", "signal tasks"),
    Command(
        "rm",
        "taskplane.cli_tasks:register_rm",
        "delete tasks and their containers",
        aliases=("delete",),
    ),
    Command("ps", "taskplane.cli_verbs:register_ps", "list the processes of a task"),
    Command("pause", "taskplane.cli_verbs:register_pause", "freeze tasks"),
    Command("resume", "taskplane.cli_verbs:register_resume", "thaw paused tasks"),
    Command(
        "metrics",
        "taskplane.cli_verbs:register_metrics",
        "print a task's memory, cpu, pids and io",
    ),
    Command(
        "exec",
        "taskplane.cli_exec",
        "run another process in a running task",
        usage="taskplane tasks exec [options] --exec-id EID ID [--] CMD [ARG...]",
    ),
    Command("logs", "taskplane.cli_tasks:register_logs", "print a task's output (stdout, stderr)"),
    Command(
        "wait",
        "taskplane.cli_tasks:register_wait",
        "wait for a task to exit and print its exit status",
    ),
)


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane tasks COMMAND``."""
    add_commands(parser, COMMANDS)


def register_ls(parser: argparse.ArgumentParser) -> None:
    """The flags of ``taskplane tasks ls``."""
    list_format(parser)
    parser.set_defaults(handler=ls)


def register_kill(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks kill``."""
    parser.add_argument(
        "--signal",
        "-s",
        metavar="SIG",
        default="SIGTERM",
        help="signal name or number (default: SIGTERM)",
    )
    parser.add_argument(
        "--all", "-a", action="store_true", help="signal every process in the container"
    )
    parser.add_argument("ids", metavar="ID", nargs="+")
    parser.set_defaults(handler=kill)


def register_rm(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks rm``."""
    parser.add_argument("--force", "-f", action="store_true", help="kill the task first if running")
    parser.add_argument("ids", metavar="ID", nargs="+")
    parser.set_defaults(handler=rm)


def register_logs(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks logs``."""
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing output until the task exits"
    )
    parser.add_argument("--tail", metavar="N", type=line_count, help="only the last N lines")
    parser.add_argument(
        "-t", "--timestamps", action="store_true", help="prefix each line with its time"
    )
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(handler=logs)


def register_wait(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks wait``."""
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(handler=wait)


def parse_signal(value: str) -> int:
    """Parse ``KILL``, ``SIGKILL``, ``sigkill`` or ``9`` into a signal number."""
    text = value.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise CLIError(f"invalid signal {value}: numbers go from 1 to {signal.NSIG - 1}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise CLIError(f"invalid signal {value}: not a signal name or number") from None


def ls(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks ls``: TASK PID STATUS for every task in the namespace.

    Nothing is hidden: a task whose shim does not answer is UNKNOWN, what an interrupted command
    left (a record, an io dir, a lifecycle step, runc state, no bundle) is ORPHAN, and a task a
    peer is creating or deleting right now is CREATING / DELETING (see ``Client.entries``).
    """
    from plugins import identifiers

    identifiers.validate_namespace(opts.namespace)

    async def body(client: Client) -> list[TaskEntry]:
        return list(await client.entries())

    # A listing is short and builds no cycles worth freeing: the collector's dozens of walks
    # over what boot made cost it about 5 ms of CPU.
    with without_cycle_collection():
        entries = with_client(opts, body)
    if args.quiet:
        for entry in entries:
            print(entry.id)
    elif args.json:
        records = [{"id": e.id, "pid": e.pid, "status": e.status} for e in entries]
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        rows = [[e.id, str(e.pid) if e.pid else "-", e.status] for e in entries]
        print(format_table(["TASK", "PID", "STATUS"], rows))
    return 0


def kill(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks kill ID...``: send a signal (SIGTERM by default) to tasks."""
    number = parse_signal(args.signal)

    async def action(client: Client, task_id: str) -> None:
        task = await client.task(task_id)
        with about(f'cannot signal task "{task_id}"'):
            await task.kill(number, all=args.all)

    return for_each_id(opts, args.ids, action)


def rm(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks rm ID...``: delete stopped tasks and their containers (--force kills
    first)."""

    async def action(client: Client, task_id: str) -> None:
        await client.delete(task_id, force=args.force)

    return for_each_id(opts, args.ids, action)


def wait(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks wait``: block until the task exits, print its exit status."""
    validate_ids(opts, args.id)

    async def body(client: Client) -> int:
        task = await client.task(args.id)
        exit_ = await task.wait()
        return int(exit_.status)

    print(with_client(opts, body))
    return 0


def logs(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks logs``: print a task's logged output, stdout to stdout and stderr to
    stderr (``--tail N`` lines, ``--timestamps``); ``--follow`` until the task exits."""
    from taskplane import logs as tplogs

    validate_ids(opts, args.id)

    def show(record: tplogs.Record) -> None:
        stream = sys.stderr.buffer if record.stream == "stderr" else sys.stdout.buffer
        if args.timestamps:
            stream.write(record.time.encode() + b" ")
        stream.write(record.data)
        stream.flush()

    async def body(client: Client) -> int:
        log_path = client.log_path(args.id)
        directory = log_path.parent
        if args.follow:
            records, start = tplogs.read_for_follow(directory)
        else:
            records, start = tplogs.read_records(directory), None
        task = None
        if not records or args.follow:
            try:
                task = await client.task(args.id)
            except errdefs.NotFound:
                if not log_path.exists():
                    raise
        if task is None and not log_path.exists():
            raise CLIError(f'task "{args.id}" has no log (it has not written anything)')
        shown = tplogs.tail(records, args.tail)
        for record in shown:
            show(record)
        if args.follow and task is not None:
            async for record in tplogs.follow(directory, task.wait(), start=start):
                show(record)
        return 0

    return with_client(opts, body)
