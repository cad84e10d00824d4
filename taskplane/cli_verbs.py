"""``taskplane tasks ps|pause|resume|metrics``: the task verbs of ``ctr tasks``.

Each boots the registry, asks the task's shim through :class:`taskplane.containers.Client`
and exits; ``pause``/``resume`` take the task's lock like every other change to a task.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from taskplane.cli import Options
from taskplane.cli_plugins import format_table
from taskplane.cli_tasks import for_each_id, validate_ids, with_client
from taskplane.containers import Client

__all__ = ["metrics", "pause", "ps", "resume"]


def ps(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks ps ID``: the pid of every process in the task."""
    validate_ids(opts, args.id)

    async def body(client: Client) -> list[Any]:
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

    async def body(client: Client) -> Any:
        return await client.metrics(args.id)

    result = with_client(opts, body)
    if args.json:
        json.dump({"id": args.id, **result.as_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(["METRIC", "VALUE"], result.rows()))
    return 0
