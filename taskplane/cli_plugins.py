"""``taskplane plugins ls``: every plugin and the one status it ended the boot with.

The table has the columns of ``ctr plugins ls`` (TYPE ID PLATFORMS STATUS) with the status as a
word: ok, skip, error, disabled or blocked. Unlike ctr, disabled plugins and the plugins they
block are listed too. ``--detailed`` adds why (the skip reason, the error, or the dependency that
blocked it) and the init time; ``--json`` prints everything as a JSON list.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from taskplane.cli_common import Command, Options, add_commands, format_table

if TYPE_CHECKING:
    from registry import Host, PluginStatus

__all__ = [
    "STATUS_WORDS",
    "format_table",
    "ls",
    "records",
    "register",
    "render",
    "status_record",
]

#: The table's word for each registry status (``ctr plugins ls`` says ok / skip / error).
STATUS_WORDS = {
    "loaded": "ok",
    "skipped": "skip",
    "failed": "error",
    "disabled": "disabled",
    "blocked": "blocked",
}


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane plugins COMMAND``."""
    add_commands(
        parser,
        [
            Command(
                "ls",
                "taskplane.cli_plugins:register_ls",
                "list every plugin and its status",
                aliases=("list",),
            )
        ],
    )


def register_ls(parser: argparse.ArgumentParser) -> None:
    """The flags of ``taskplane plugins ls``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--detailed", "-d", action="store_true", help="add the reason or error and the init time"
    )
    parser.set_defaults(handler=ls)


def _why(status: PluginStatus) -> str:
    if status.status == "failed" and status.error is not None:
        return " ".join(f"{type(status.error).__name__}: {status.error}".split())
    if status.reason:
        return " ".join(status.reason.split())
    if status.status == "disabled":
        return "disabled by config"
    return "-"


def status_record(status: PluginStatus) -> dict[str, Any]:
    """One plugin's status as a JSON-able dict (what ``--json`` prints for it)."""
    why = _why(status)
    return {
        "type": status.type,
        "id": status.id,
        "uri": status.uri,
        "platforms": list(status.platforms),
        "status": STATUS_WORDS.get(status.status, status.status),
        "reason": None if why == "-" else why,
        "init_time": status.init_time,
        "requires": list(status.requires),
        "exports": dict(status.exports),
        "capabilities": list(status.capabilities),
    }


def _failure_rows(host: Host) -> list[dict[str, Any]]:
    """Third-party entry points that could not be loaded, shaped like status records."""
    return [
        {
            "type": None,
            "id": f"{f.distribution}:{f.entry_point}",
            "uri": None,
            "platforms": [],
            "status": "error",
            "reason": f.message,
            "init_time": 0.0,
            "requires": [],
            "exports": {},
            "capabilities": [],
        }
        for f in host.load_failures
    ]


def records(host: Host) -> list[dict[str, Any]]:
    """Every plugin of a booted host as a JSON-able record, failed entry points last."""
    return [*(status_record(s) for s in host.statuses), *_failure_rows(host)]


def render(host: Host, *, detailed: bool = False) -> str:
    """The ``plugins ls`` table of a booted host."""
    header = ["TYPE", "ID", "PLATFORMS", "STATUS"]
    if detailed:
        header = [*header, "INIT TIME", "REASON/ERROR"]
    rows = []
    for r in records(host):
        row = [r["type"] or "-", r["id"], ",".join(r["platforms"]) or "-", r["status"]]
        if detailed:
            row = [*row, f"{r['init_time'] * 1000:.2f}ms", r["reason"] or "-"]
        rows.append(row)
    return format_table(header, rows)


def ls(opts: Options, args: argparse.Namespace) -> int:
    """Boot the registry and print every plugin's status."""
    with opts.boot() as host:
        if args.json:
            json.dump(records(host), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render(host, detailed=args.detailed))
    return 0
