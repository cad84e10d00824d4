"""``taskplane containers ls|info``: the container records of a namespace (``ctr containers``).

A container is the metadata record ``taskplane run`` creates with its task (id, runtime,
labels, spec); these commands read the records only and never talk to a shim.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from taskplane.cli_client import validate_ids, with_client
from taskplane.cli_common import Command, Options, add_commands, format_table, list_format
from taskplane.containers import Client

if TYPE_CHECKING:
    from plugins.metadata import Container

__all__ = ["container_record", "info", "ls", "register"]


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane containers COMMAND``."""
    add_commands(
        parser,
        [
            Command(
                "ls",
                "taskplane.cli_containers:register_ls",
                "list containers",
                aliases=("list",),
            ),
            Command(
                "info",
                "taskplane.cli_containers:register_info",
                "print a container record as JSON",
            ),
        ],
    )


def register_ls(parser: argparse.ArgumentParser) -> None:
    """The flags of ``taskplane containers ls``."""
    list_format(parser)
    parser.set_defaults(handler=ls)


def register_info(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane containers info``."""
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(handler=info)


def container_record(container: Container, *, spec: bool = True) -> dict[str, Any]:
    """A container record as JSON: id, runtime, labels, times, and (``spec``) the spec decoded."""
    record: dict[str, Any] = {
        "id": container.id,
        "runtime": container.runtime_name,
        "labels": dict(container.labels),
        "created_at": container.created_at.isoformat(),
        "updated_at": container.updated_at.isoformat(),
    }
    if spec:
        record["spec"] = json.loads(container.spec) if container.spec else None
    return record


def ls(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane containers ls``: CONTAINER RUNTIME LABELS (``-q`` ids, ``--json``)."""
    from plugins import identifiers

    identifiers.validate_namespace(opts.namespace)

    async def body(client: Client) -> list[Container]:
        return await client.containers()

    found = with_client(opts, body)
    if args.quiet:
        for container in found:
            print(container.id)
    elif args.json:
        records = [container_record(c, spec=False) for c in found]  # containers info prints it
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        rows = [
            [
                c.id,
                c.runtime_name,
                ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())) or "-",
            ]
            for c in found
        ]
        print(format_table(["CONTAINER", "RUNTIME", "LABELS"], rows))
    return 0


def info(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane containers info ID``: the container record, its spec included, as JSON."""
    validate_ids(opts, args.id)

    async def body(client: Client) -> Container:
        return await client.container(args.id)

    json.dump(container_record(with_client(opts, body)), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
