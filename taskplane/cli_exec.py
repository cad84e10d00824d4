"""``taskplane tasks exec``: run another process in a running task, attached; exit with its
status. The process's FIFOs live next to the task's, prefixed ``exec-<exec id>-``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from plugins import errdefs
from taskplane import oci
from taskplane.cli_attach import Output, SignalForwarder, add_process_arguments, attached
from taskplane.cli_client import validate_ids, with_client
from taskplane.cli_common import Options
from taskplane.containers import DRAIN_TIMEOUT, Client
from taskplane.errors import CLIError, about
from taskplane.stdio import FifoPair, StdinFifo

__all__ = ["exec_", "register"]


def register(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane tasks exec``."""
    parser.add_argument("--exec-id", metavar="EID", required=True, help="id of the new process")
    parser.add_argument(
        "--env",
        metavar="K=V",
        action="append",
        default=[],
        help="set an environment variable (repeatable)",
    )
    parser.add_argument("--cwd", metavar="DIR", help="working directory")
    add_process_arguments(parser, "task id")
    parser.set_defaults(handler=exec_)


def exec_(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks exec``: run another process in a running task; exit with its status."""
    validate_ids(opts, args.id, args.exec_id)
    if not args.cmd:
        raise CLIError(
            f"no command given: taskplane tasks exec --exec-id {args.exec_id} "
            f"{args.id} -- CMD [ARG...]"
        )

    async def body(client: Client) -> int:
        task = await client.task(args.id)
        # The record's spec, else the bundle's: a lost metadata record does not stop exec.
        base = (await client.spec(args.id)).get("process", {})
        # The container's environment, then --env (a later value of the same key wins).
        process = oci.process_spec(
            args.cmd, env=[*base.get("env", []), *args.env], cwd=args.cwd or base.get("cwd", "/")
        )
        for key in ("user", "capabilities", "rlimits", "noNewPrivileges", "apparmorProfile"):
            if key in base:
                process[key] = base[key]
        if args.tty:
            process["terminal"] = True
        prefix = f"exec-{args.exec_id}-"
        fifos = FifoPair(client.io_dir(args.id), prefix=prefix, stderr=not args.tty).open()
        stdin = StdinFifo(client.io_dir(args.id), prefix).open() if args.interactive else None
        feeding: asyncio.Future[None] | None = None
        try:
            with about(f'cannot exec in task "{args.id}"'):
                proc = await task.exec(
                    args.exec_id,
                    process,
                    stdin=stdin.path if stdin else "",
                    stdout=fifos.stdout,
                    stderr=fifos.stderr,
                    terminal=args.tty,
                )
            forwarder = SignalForwarder()
            output = Output(forwarder)
            try:
                with attached(args.tty) as (terminal, resized):
                    async with fifos.copying(
                        output.to(sys.stdout.buffer), output.to(sys.stderr.buffer), DRAIN_TIMEOUT
                    ) as drain:
                        with about(f'cannot start exec "{args.exec_id}" in task "{args.id}"'):
                            await proc.start()
                            # An exec's console exists once it started (runc exec runs in
                            # Start); resized before its stdin is read, so before any command.
                            size = terminal.size() if terminal else None
                            if size is not None:
                                await proc.resize_pty(*size)
                        fifos.release()  # an exec's shim opens its FIFOs in Start, not in Exec
                        forwarder.attach(proc)
                        resized.add(proc, size)
                        if stdin is not None:
                            feeding = asyncio.ensure_future(stdin.feed(proc, sys.stdin.buffer))
                        exit_ = await proc.wait()
                        await drain()
            finally:
                forwarder.close()
                if feeding is not None:
                    feeding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeding
                with contextlib.suppress(errdefs.ContainerdError):
                    await proc.delete()
        finally:
            fifos.close()
            if stdin is not None:
                stdin.close()
        if output.broken:
            raise BrokenPipeError
        return int(exit_.status) & 0xFF

    return with_client(opts, body)
