"""``taskplane run``, ``taskplane tasks ...`` and ``taskplane runtime info``.

Each command boots the registry (the task manager reattaches to the shims of running tasks),
does its work through :class:`taskplane.containers.Client` and exits. Attached output flows
through FIFOs in ``<state>/taskplane.io/<ns>/<id>/``; every task's output is logged there
(:mod:`taskplane.logs`: by ``run`` itself, or by the shim's logging binary for ``run -d``),
which ``tasks logs`` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from plugins import errdefs
from taskplane import oci, preflight
from taskplane.cli import Options
from taskplane.cli_plugins import format_table
from taskplane.cli_run import check_not_image, spec_from_args
from taskplane.containers import DRAIN_TIMEOUT, Client, runc_options
from taskplane.errors import CLIError
from taskplane.stdio import FifoPair, StdinFifo
from taskplane.terminal import Terminal

__all__ = [
    "exec_",
    "for_each_id",
    "kill",
    "logs",
    "ls",
    "parse_labels",
    "parse_signal",
    "rm",
    "run",
    "runtime_info",
    "validate_ids",
    "wait",
    "with_client",
]

T = TypeVar("T")

#: Signals an attached ``run``/``exec`` forwards to the task instead of dying itself.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def parse_labels(items: list[str]) -> dict[str, str]:
    """``--label K=V`` values as a dict (a later value of the same key wins)."""
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"label {item!r} must have the form KEY=VALUE")
        labels[key] = value
    return labels


def _validate_ids(opts: Options, task_id: str, exec_id: str | None = None) -> None:
    from runtime_v2 import identifiers

    identifiers.validate_namespace(opts.namespace)
    identifiers.validate_task_id(task_id)
    if exec_id is not None:
        identifiers.validate_exec_id(exec_id)


def _with_client(opts: Options, body: Callable[[Client], Awaitable[T]]) -> T:
    """Boot the registry, run ``body(client)`` and close the host, all on one event loop."""

    async def main() -> T:
        host = await opts.boot_async()
        try:
            return await body(Client(host, opts.namespace))
        finally:
            await host.aclose()

    return asyncio.run(main())


#: Public names of the two helpers above, for the command modules next to this one.
with_client = _with_client
validate_ids = _validate_ids


class _SignalForwarder:
    """Forwards SIGINT/SIGTERM to a task (or exec) instead of letting them stop taskplane.

    Installed before the task exists; a signal that arrives before :meth:`attach` is held and
    delivered as soon as the task has started.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._target: Any = None
        self._held: list[int] = []
        self._sending: set[asyncio.Task[None]] = set()
        for sig in FORWARDED_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, int(sig))

    def attach(self, target: Any) -> None:
        """Start forwarding to ``target`` (something with ``async kill(signal)``)."""
        self._target = target
        held, self._held = self._held, []
        for sig in held:
            self._send(sig)

    def send_now(self, sig: int) -> None:
        """Send ``sig`` to the target now (or as soon as it is attached)."""
        self._on_signal(sig)

    def _on_signal(self, sig: int) -> None:
        if self._target is None:
            self._held.append(sig)
        else:
            self._send(sig)

    def _send(self, sig: int) -> None:
        async def send() -> None:
            with contextlib.suppress(errdefs.ContainerdError):
                await self._target.kill(sig)

        job = self._loop.create_task(send())
        self._sending.add(job)
        job.add_done_callback(self._sending.discard)

    def close(self) -> None:
        """Restore the default signal handling."""
        for sig in FORWARDED_SIGNALS:
            self._loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _about(what: str) -> Iterator[None]:
    """Prefix a shim's error with what we were doing (``cannot signal task "web": ...``)."""
    try:
        yield
    except errdefs.ContainerdError as exc:
        raise errdefs.wrap(exc, what) from exc


@contextlib.contextmanager
def _attached(tty: bool) -> Iterator[tuple[Terminal | None, list[Any]]]:
    """With ``tty``: our terminal (stdin's, else stdout's) in raw mode while a process is
    attached, and window size changes forwarded to the processes appended to the list."""
    terminal = Terminal.of_caller(0, 1) if tty else None
    if terminal is None:
        yield None, []
        return
    with terminal.forwarding_resizes() as targets:
        with terminal.raw() if os.isatty(0) else contextlib.nullcontext():
            yield terminal, targets


class _Output:
    """Writes a process's output to our stdout/stderr as it arrives.

    When the reader of our output goes away (``taskplane run ... | head``), later chunks are
    discarded, so the shim never blocks on a full FIFO, and the process is killed once, as a
    pipeline's writer dies of SIGPIPE; :attr:`broken` tells the command to exit 141.
    """

    def __init__(self, forwarder: _SignalForwarder) -> None:
        self.forwarder = forwarder
        self.broken = False

    def to(self, stream: Any) -> Callable[[bytes], None]:
        """A callback writing chunks to the binary ``stream``."""

        def write(chunk: bytes) -> None:
            if self.broken:
                return
            try:
                stream.write(chunk)
                stream.flush()
            except BrokenPipeError:
                self.broken = True
                self.forwarder.send_now(signal.SIGKILL)

        return write


# --------------------------------------------------------------------------------------- run


def run(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane run``: create a container and its task, run it, exit with its status."""
    check_not_image(args.id, args.cmd)
    _validate_ids(opts, args.id)
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
        forwarder = _SignalForwarder()
        output = _Output(forwarder)
        try:
            with _attached(args.tty) as (terminal, resized):

                def started(task: Any) -> None:
                    forwarder.attach(task)
                    resized.append(task)

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
                    tty_size=terminal.size() if terminal else None,
                    labels=labels,
                    overlay=args.overlay,
                )
        finally:
            forwarder.close()
        if output.broken:
            raise BrokenPipeError
        return result.exit_status & 0xFF

    return _with_client(opts, body)


# ------------------------------------------------------------------------------------- tasks


def ls(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks ls``: TASK PID STATUS for every task in the namespace.

    Nothing is hidden: a task whose shim does not answer is UNKNOWN, what an interrupted command
    left (a record, an io dir, a lifecycle step, runc state, no bundle) is ORPHAN, and a task a
    peer is creating or deleting right now is CREATING / DELETING (see ``Client.entries``).
    """
    from runtime_v2 import identifiers

    identifiers.validate_namespace(opts.namespace)

    async def body(client: Client) -> list[Any]:
        return list(await client.entries())

    entries = _with_client(opts, body)
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


def for_each_id(
    opts: Options, ids: list[str], action: Callable[[Client, str], Awaitable[object]]
) -> int:
    """Run ``action(client, id)`` for every id in turn, as ctr does for ``rm``/``kill``.

    Every id is tried even when one fails; each failure is one line on stderr naming it and
    the exit status is 1 if any failed. A single id fails as every other command does.
    """
    for task_id in ids:
        _validate_ids(opts, task_id)

    async def body(client: Client) -> int:
        failed = 0
        for task_id in ids:
            try:
                await action(client, task_id)
            except errdefs.ContainerdError as exc:
                if len(ids) == 1:
                    raise
                failed += 1
                print(f"taskplane: {exc}", file=sys.stderr)
        return 1 if failed else 0

    return _with_client(opts, body)


def kill(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks kill ID...``: send a signal (SIGTERM by default) to tasks."""
    number = parse_signal(args.signal)

    async def action(client: Client, task_id: str) -> None:
        task = await client.task(task_id)
        with _about(f'cannot signal task "{task_id}"'):
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
    _validate_ids(opts, args.id)

    async def body(client: Client) -> int:
        task = await client.task(args.id)
        exit_ = await task.wait()
        return int(exit_.status)

    print(_with_client(opts, body))
    return 0


def logs(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks logs``: print a task's logged output, stdout to stdout and stderr to
    stderr (``--tail N`` lines, ``--timestamps``); ``--follow`` until the task exits."""
    from taskplane import logs as tplogs

    _validate_ids(opts, args.id)

    def show(record: tplogs.Record) -> None:
        stream = sys.stderr.buffer if record.stream == "stderr" else sys.stdout.buffer
        if args.timestamps:
            stream.write(record.time.encode() + b" ")
        stream.write(record.data)
        stream.flush()

    async def body(client: Client) -> int:
        directory = client.log_path(args.id).parent
        records = tplogs.read_records(directory)
        task = None
        if not records or args.follow:
            try:
                task = await client.task(args.id)
            except errdefs.NotFound:
                if not client.log_path(args.id).exists():
                    raise
        if task is None and not client.log_path(args.id).exists():
            raise CLIError(f'task "{args.id}" has no log (it has not written anything)')
        shown = tplogs.tail(records, args.tail)
        for record in shown:
            show(record)
        if args.follow and task is not None:
            async for record in tplogs.follow(directory, task.wait(), skip=len(records)):
                show(record)
        return 0

    return _with_client(opts, body)


def exec_(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane tasks exec``: run another process in a running task; exit with its status."""
    _validate_ids(opts, args.id, args.exec_id)
    if not args.cmd:
        raise CLIError(
            f"no command given: taskplane tasks exec --exec-id {args.exec_id} "
            f"{args.id} -- CMD [ARG...]"
        )

    async def body(client: Client) -> int:
        task = await client.task(args.id)
        # The record's spec, else the bundle's: a lost metadata record does not stop exec.
        base = client.spec(args.id).get("process", {})
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
            with _about(f'cannot exec in task "{args.id}"'):
                proc = await task.exec(
                    args.exec_id,
                    process,
                    stdin=stdin.path if stdin else "",
                    stdout=fifos.stdout,
                    stderr=fifos.stderr,
                    terminal=args.tty,
                )
            forwarder = _SignalForwarder()
            output = _Output(forwarder)
            try:
                with _attached(args.tty) as (terminal, resized):
                    async with fifos.copying(
                        output.to(sys.stdout.buffer), output.to(sys.stderr.buffer), DRAIN_TIMEOUT
                    ) as drain:
                        with _about(f'cannot start exec "{args.exec_id}" in task "{args.id}"'):
                            await proc.start()
                            # An exec's console exists once it started (runc exec runs in
                            # Start); resized before its stdin is read, so before any command.
                            size = terminal.size() if terminal else None
                            if size is not None:
                                await proc.resize_pty(*size)
                        fifos.release()  # an exec's shim opens its FIFOs in Start, not in Exec
                        forwarder.attach(proc)
                        resized.append(proc)
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

    return _with_client(opts, body)


# ----------------------------------------------------------------------------------- runtime


def runtime_info(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane runtime info``: the runtime's PluginInfo as JSON."""
    preflight.resolve_runtime(args.runtime)  # names what it searched when missing
    if args.runc_binary:
        preflight.find_runc(args.runc_binary)

    async def body(client: Client) -> dict[str, Any]:
        from runtime_v2 import typeurl
        from runtime_v2.api import introspection_pb2

        request = introspection_pb2.RuntimeRequest(runtime_path=args.runtime)
        if args.runc_binary:
            request.options.CopyFrom(typeurl.pack(runc_options(args.runc_binary)))
        negotiated = client.task_manager.shims.negotiated(args.runtime)
        try:
            info = await client.task_manager.plugin_info(request)
        except errdefs.NotImplemented as exc:  # a shim without -info (before containerd 2.0)
            if negotiated is None or not negotiated.task_api:
                raise
            raise CLIError(
                f"{exc}; taskplane starts it with the {negotiated.start_protocol} start "
                f"protocol and speaks task API v{negotiated.task_api} to it"
            ) from exc
        record = runtime_info_record(info)
        # taskplane's own addition: how it starts this shim (null until a task has run on it).
        record["start"] = {
            "protocol": negotiated.start_protocol if negotiated else None,
            "task_api": (negotiated.task_api or None) if negotiated else None,
        }
        return record

    json.dump(_with_client(opts, body), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def runtime_info_record(info: Any) -> dict[str, Any]:
    """A ``containerd.types.RuntimeInfo`` as a JSON-able dict (Any values decoded)."""
    from google.protobuf import json_format

    from runtime_v2 import typeurl

    def decode(any_: Any) -> Any:
        if not any_.type_url:
            return None
        try:
            value = typeurl.unpack(any_)
        except errdefs.ContainerdError:
            return {"type_url": any_.type_url, "value": any_.value.hex()}
        if isinstance(value, typeurl.JSONValue):
            return value.value
        return json_format.MessageToDict(value, preserving_proto_field_name=True)

    return {
        "name": info.name,
        "version": {"version": info.version.version, "revision": info.version.revision},
        "options": decode(info.options) if info.HasField("options") else None,
        "features": decode(info.features) if info.HasField("features") else None,
        "annotations": dict(info.annotations),
    }
