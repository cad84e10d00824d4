"""``taskplane tasks ps|pause|resume|metrics``: the task verbs of ``ctr tasks``.

Each boots the registry, asks the task's shim through :class:`taskplane.containers.Client`
and exits; ``pause``/``resume`` take the task's lock like every other change to a task.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from taskplane.cli_client import for_each_id, validate_ids, with_client
from taskplane.cli_common import Options, format_table
from taskplane.containers import Client

if TYPE_CHECKING:
    from runtime_v2.runtime import ProcessInfo
    from taskplane.metrics import Metrics

__all__ = [
    "metrics",
    "pause",
    "ps",
    "register_metrics",
    "register_pause",
    "register_ps",
    "register_resume",
    "resume",
]


def register_ps(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks ps``."""
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(handler=ps)


def register_pause(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks pause``."""
    parser.add_argument("ids", metavar="ID", nargs="+")
    parser.set_defaults(handler=pause)


def register_resume(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks resume``."""
    parser.add_argument("ids", metavar="ID", nargs="+")
    parser.set_defaults(handler=resume)


def register_metrics(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks metrics``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(handler=metrics)


def ps(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks ps ID``: the pid of every process in the task."""
    validate_ids(opts, args.id)

    async def body(client: Client) -> list[ProcessInfo]:
        return await client.ps(args.id)

    processes = with_client(opts, body)
    print(format_table(["PID"], [[str(p.pid)] for p in processes]))
    return 0


def pause(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks pause ID...``: freeze every process of the tasks."""
    return for_each_id(opts, args.ids, lambda client, task_id: client.pause(task_id))


def resume(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks resume ID...``: thaw paused tasks."""
    return for_each_id(opts, args.ids, lambda client, task_id: client.resume(task_id))


def metrics(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks metrics ID``: memory, cpu, pids and io of the task's cgroup."""
    validate_ids(opts, args.id)

    async def body(client: Client) -> Metrics:
        return await client.metrics(args.id)

    result = with_client(opts, body)
    if args.json:
        json.dump({"id": args.id, **result.as_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(["METRIC", "VALUE"], result.rows()))
    return 0
