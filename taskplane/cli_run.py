"""``taskplane run``: create a container and its task, run it attached (or ``-d`` detached).

Attached output flows through FIFOs in ``<state>/taskplane.io/<ns>/<id>/`` and is logged
there too (:mod:`taskplane.logs`), which ``tasks logs`` prints; a detached task's output is
logged by its shim's logging binary.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from taskplane import preflight
from taskplane.cli_attach import Output, SignalForwarder, add_process_arguments, attached
from taskplane.cli_client import validate_ids, with_client
from taskplane.cli_common import Options
from taskplane.cli_spec import add_spec_options, check_not_image, spec_from_args
from taskplane.containers import DEFAULT_RUNTIME, Client, runc_options
from taskplane.errors import CLIError

if TYPE_CHECKING:
    from runtime_v2.shim import ShimTask

__all__ = ["parse_labels", "register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    """The flags of ``taskplane run``."""
    add_spec_options(parser)
    parser.add_argument(
        "--label",
        metavar="K=V",
        action="append",
        default=[],
        help="a label on the container record (repeatable)",
    )
    parser.add_argument(
        "--overlay",
        action="store_true",
        help="give the container a private writable layer over --rootfs (overlayfs snapshotter)",
    )
    parser.add_argument("--rm", action="store_true", help="delete the task and container on exit")
    parser.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="print the id and leave the task running; output goes to a log file",
    )
    parser.add_argument(
        "--runtime",
        metavar="NAME|PATH",
        default=DEFAULT_RUNTIME,
        help=f"runtime name or absolute shim path (default: {DEFAULT_RUNTIME})",
    )
    parser.add_argument(
        "--runc-binary", metavar="PATH", help="runc-compatible binary the runc shim runs"
    )
    add_process_arguments(parser, "container and task id")
    parser.set_defaults(handler=run)


def parse_labels(items: list[str]) -> dict[str, str]:
    """``--label K=V`` values as a dict (a later value of the same key wins)."""
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"label {item!r} must have the form KEY=VALUE")
        labels[key] = value
    return labels


def run(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane run``: create a container and its task, run it, exit with its status."""
    check_not_image(args.id, args.cmd)
    validate_ids(opts, args.id)
    if args.detach and args.rm:
        raise CLIError("--rm and --detach cannot be used together")
    if args.detach and (args.interactive or args.tty):
        raise CLIError("--detach cannot be used with -i/--interactive or -t/--tty")
    labels = parse_labels(args.label)
    preflight.require_linux("taskplane run")
    preflight.require_root("taskplane run")
    spec = spec_from_args(args, args.id, opts.namespace)
    preflight.resolve_runtime(args.runtime)
    if args.runc_binary or preflight.uses_runc(args.runtime):
        preflight.find_runc(args.runc_binary)
    options = runc_options(args.runc_binary) if args.runc_binary else None

    async def body(client: Client) -> int:
        if args.detach:
            await client.start_detached(
                args.id,
                spec,
                runtime=args.runtime,
                runtime_options=options,
                labels=labels,
                overlay=args.overlay,
            )
            print(args.id)
            return 0
        forwarder = SignalForwarder()
        output = Output(forwarder)
        try:
            with attached(args.tty) as (terminal, resized):
                tty_size = terminal.size() if terminal else None

                def started(task: ShimTask) -> None:
                    forwarder.attach(task)
                    resized.add(task, tty_size)

                result = await client.run(
                    args.id,
                    spec,
                    runtime=args.runtime,
                    runtime_options=options,
                    on_stdout=output.to(sys.stdout.buffer),
                    on_stderr=output.to(sys.stderr.buffer),
                    remove=args.rm,
                    started=started,
                    stdin=sys.stdin.buffer if args.interactive else None,
                    tty=args.tty,
                    tty_size=tty_size,
                    labels=labels,
                    overlay=args.overlay,
                )
        finally:
            forwarder.close()
        if output.broken:
            raise BrokenPipeError
        return result.exit_status & 0xFF

    return with_client(opts, body)
