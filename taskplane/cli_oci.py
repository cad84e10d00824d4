"""``taskplane oci spec``: print the spec ``taskplane run`` would use, as JSON (``ctr oci spec``).

The same flags as ``run`` apply (``--user``, ``--memory-limit``, ``--spec FILE``...); without
``--rootfs`` the root is ``rootfs`` (relative to the spec file when it is given back to
``run --spec``), as in ``ctr oci spec``. Without an ID the spec has no hostname and no cgroup,
so ``run --spec`` fills in the run's own (the ID's hostname, taskplane's cgroup for it).
Nothing is booted and nothing is created.
"""

from __future__ import annotations

import argparse
import json
import sys

from taskplane.cli_common import Command, Options, add_commands, command_nargs
from taskplane.cli_spec import add_spec_options, spec_from_args

__all__ = ["register", "register_spec", "spec"]


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane oci COMMAND``."""
    add_commands(
        parser,
        [
            Command(
                "spec",
                "taskplane.cli_oci:register_spec",
                "print the OCI spec 'run' would use (with the same flags) as JSON",
                usage="taskplane oci spec [options] [ID] [-- CMD [ARG...]]",
            )
        ],
    )


def register_spec(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane oci spec``: ``run``'s container flags."""
    add_spec_options(parser)
    parser.add_argument("id", metavar="ID", nargs="?", help="id (hostname and cgroup)")
    parser.add_argument(
        "cmd", metavar="CMD", nargs=command_nargs(parser), help="the command (default: sh)"
    )
    parser.set_defaults(handler=spec)


def spec(opts: Options, args: argparse.Namespace) -> int:
    """Print the spec the flags of ``args`` give, as JSON."""
    from runtime_v2 import identifiers

    identifiers.validate_namespace(opts.namespace)
    if args.id is not None:
        identifiers.validate_task_id(args.id)
    document = spec_from_args(args, args.id or "spec", opts.namespace, rootfs_required=False)
    if args.id is None:
        if args.hostname is None:
            del document["hostname"]
        del document["linux"]["cgroupsPath"]
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
