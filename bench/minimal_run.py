"""The least a Python runtime v2 client can do for ``run --rm ID /bin/true``: the floor of
``taskplane run --rm``.

A straight-line script, run as its own process by ``bench/cli.py`` (one run per process, as a
command is): no registry, no plugins, no task manager, no locks, no records, no event journal.
It imports the standard library, protobuf and the generated messages of ``runtime_v2.api`` and
``runtime_v2.ttrpc`` (nothing else of taskplane), and speaks ttrpc over one blocking unix
socket. It does what every runtime v2 client has to do for the task, with the same shim, runc
and rootfs as ``taskplane run --rm`` (containerd's ``core/runtime/v2/binary.go``,
``shim.go`` and ``bundle.go`` for the steps):

1. the bundle ``STATE/NS/ID`` with its ``config.json`` (the ``--spec`` file, as taskplane's
   oci module writes it for ``run``, with this task's hostname and cgroup);
2. the shim's ``log`` FIFO, opened for reading before the shim starts (an unread FIFO blocks
   the shim), and the task's stdout/stderr FIFOs, opened before Create;
3. ``<shim> -namespace NS -address A -publish-binary B -id ID start`` in the bundle, with
   ``TTRPC_ADDRESS``, ``GRPC_ADDRESS``, ``NAMESPACE``, ``GOMAXPROCS`` and ``MAX_SHIM_VERSION``
   in its environment (as runtime_v2/binary.py sets them) and on stdin the runc options
   (``root``: a private runc root; ``binary_name`` with ``--runc``), or, with ``--bootstrap``
   (a containerd 2.3+ shim, which refuses the legacy start), ``BootstrapParams`` carrying them;
4. Create, Start, Wait (its output read to the end), Delete and Shutdown over the task API the
   shim announced (``containerd.task.v2.Task`` for a 1.6 shim, v3 for a 2.x one), every call
   carrying the namespace metadata, while the shim's events at ``TTRPC_ADDRESS`` are answered
   and its log FIFO read (:class:`Sideband`: without them a shim lingers for seconds after
   Shutdown, retrying);
5. the bundle removed; the exit status is the task's.

What it leaves out is what ``run --rm /bin/true`` does not need from a client: keeping the
events, state shared with other processes (records, locks, logs), and recovery from a crash
at any step. Nothing is left behind (tests/bench/test_minimal_run.py checks). A failure is one
line on stderr naming the step, exit status 1, after a best-effort removal of what was
started.

``--preload MODULE,...`` imports those modules first and does nothing with them: the same
floor for a client that has to import them (``bench/cli.py`` preloads taskplane's
dependencies, to show what they alone add to a run).

Usage: ``python bench/minimal_run.py --state DIR --namespace NS --spec FILE --rootfs DIR
[--shim PATH] [--runc PATH] [--bootstrap] [--preload MODULE,...] ID``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
from typing import NamedTuple

from google.protobuf import any_pb2, empty_pb2

from runtime_v2.api import bootstrap_pb2, runc_options_pb2, task_v3_pb2
from runtime_v2.ttrpc import ttrpc_pb2

SHIM = "containerd-shim-runc-v2"
#: ttrpc frame header: payload length, stream id, message type, flags (big endian).
HEADER = struct.Struct(">IIBB")
REQUEST, RESPONSE = 1, 2
NAMESPACE_KEY = "containerd-namespace-ttrpc"
#: Every wait on the shim is bounded, so a hung shim fails the bench instead of hanging it.
TIMEOUT = 30.0
SOCKET_DIR = "/run/containerd/s"


USAGE = (
    "usage: minimal_run.py --state DIR --namespace NS --spec FILE --rootfs DIR [--shim PATH] "
    "[--runc PATH] [--bootstrap] [--preload MODULE,...] ID"
)


class Failed(Exception):
    """A step failed; the message names it."""


class Args(NamedTuple):
    """The command line. A NamedTuple, not attrs (the project's way to write values): attrs
    costs about 18 ms to import, which is what this floor is measured against."""

    state: str
    namespace: str
    spec: str
    rootfs: str
    id: str
    shim: str = SHIM
    runc: str | None = None
    bootstrap: bool = False
    #: Modules to import before the run, comma-separated (and not used).
    preload: str | None = None


def parse(argv: list[str]) -> Args:
    """``argv`` (without the program) as :class:`Args`; Failed with the usage when it is not
    one. Not argparse: it costs a few ms to import, and the floor has nothing to explain."""
    values: dict[str, object] = {}
    words = iter(argv)
    for word in words:
        name = word[2:]
        if word == "--bootstrap":
            values["bootstrap"] = True
        elif word.startswith("--") and name in Args._fields and name != "id":
            values[name] = next(words, None)
        elif not word.startswith("-") and "id" not in values:
            values["id"] = word
        else:
            raise Failed(f"unexpected {word!r}; {USAGE}")
    missing = [f for f in Args._fields[:5] if values.get(f) is None]
    if missing or any(v is None for v in values.values()):
        raise Failed(f"missing {', '.join(missing) or 'a value'}; {USAGE}")
    return Args(**values)  # type: ignore[arg-type]


def preload(modules: str | None) -> None:
    """Import each of the comma-separated ``modules`` (Failed naming one that cannot be)."""
    import importlib

    for name in filter(None, (modules or "").split(",")):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise Failed(f"cannot preload {name!r}: {exc}") from None


class Sideband:
    """What a shim sends besides its answers: events and its log.

    The shim publishes each task event to ``Forward`` at ``TTRPC_ADDRESS`` (containerd's
    events service): answered here and dropped. A daemon answers for ctr, and taskplane
    serves the address too. The socket file (one per state dir: one run at a time) stays
    after :meth:`close`, as runtime_v2/events_server.py leaves it: an event published after
    this process is done (the shim's TaskDelete may come after Shutdown's answer) is then
    refused at once, where a missing file makes the shim retry for seconds before it exits.
    The shim's log FIFO is read so that it never fills (a full FIFO blocks the shim). Both
    are served only while this process waits for something else anyway (an RPC's answer,
    the task's output), in the same thread.
    """

    def __init__(self, path: str, log_fd: int) -> None:
        self.log_fd = log_fd
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the previous run's: nothing listens there any more
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        self.listener.setblocking(False)
        self.conns: dict[int, tuple[socket.socket, bytearray]] = {}

    def fds(self) -> list[int]:
        return [self.log_fd, self.listener.fileno(), *self.conns]

    def serve(self, fd: int) -> None:
        """Read the log, accept a connection, or answer every whole request frame a
        connection holds."""
        if fd == self.log_fd:
            drain(fd)
            return
        if fd == self.listener.fileno():
            with contextlib.suppress(BlockingIOError):
                conn, _ = self.listener.accept()
                conn.setblocking(False)
                self.conns[conn.fileno()] = (conn, bytearray())
            return
        conn, buf = self.conns[fd]
        try:
            data = conn.recv(65536)
            buf += data
            while data and len(buf) >= HEADER.size:
                length, stream, kind, _ = HEADER.unpack_from(buf)
                if len(buf) < HEADER.size + length:
                    break
                del buf[: HEADER.size + length]
                if kind == REQUEST:  # an empty Response: status OK, google.protobuf.Empty
                    conn.sendall(HEADER.pack(0, stream, RESPONSE, 0))
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            data = b""  # the shim is gone (it published, then exited): nothing to answer
        if not data:
            del self.conns[fd]
            conn.close()

    def close(self) -> None:
        for conn, _ in self.conns.values():
            conn.close()
        self.listener.close()


def wait_readable(fds: list[int], side: Sideband) -> list[int]:
    """Which of ``fds`` can be read (or hung up), serving ``side`` until one can."""
    poller = select.poll()
    for fd in (*fds, *side.fds()):
        poller.register(fd, select.POLLIN)
    while True:
        events = poller.poll(TIMEOUT * 1000)
        if not events:
            raise Failed("the shim did not answer in time")
        ready = [fd for fd, _ in events if fd in fds]
        for fd, _ in events:
            if fd not in fds:
                known = set(side.fds())
                side.serve(fd)
                for new in set(side.fds()) - known:
                    poller.register(new, select.POLLIN)
                if fd not in side.fds():
                    poller.unregister(fd)
        if ready:
            return ready


class Ttrpc:
    """One blocking ttrpc connection to a shim, one call in flight at a time."""

    def __init__(self, address: str, service: str, namespace: str, side: Sideband) -> None:
        path = address.removeprefix("unix://")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        # A leading "@" names an abstract socket (1.6 shims before 1.6.x used them).
        self.sock.connect("\0" + path[1:] if path.startswith("@") else path)
        self.metadata = [ttrpc_pb2.KeyValue(key=NAMESPACE_KEY, value=namespace)]
        self.stream = 1
        self.service = service
        self.side = side

    def call(self, method: str, request: object, response: object) -> None:
        """Send ``request``, parse the answer into ``response``; Failed on an error status."""
        payload = ttrpc_pb2.Request(
            service=self.service,
            method=method,
            payload=request.SerializeToString(),  # type: ignore[attr-defined]
            metadata=self.metadata,
        ).SerializeToString()
        self.sock.sendall(HEADER.pack(len(payload), self.stream, REQUEST, 0) + payload)
        while True:
            wait_readable([self.sock.fileno()], self.side)
            length, stream, kind, _ = HEADER.unpack(self._read(HEADER.size))
            body = self._read(length)
            if stream == self.stream and kind == RESPONSE:
                break
        self.stream += 2
        answer = ttrpc_pb2.Response()
        answer.ParseFromString(body)
        if answer.status.code:
            raise Failed(f"{method}: {answer.status.message} (code {answer.status.code})")
        response.ParseFromString(answer.payload)  # type: ignore[attr-defined]

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionResetError("the shim closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def drain(fd: int) -> bool:
    """Read what a non-blocking FIFO holds now (the bytes are not needed); True at its end
    (no writer left)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return True
        except BlockingIOError:
            return False


def read_to_end(fds: list[int], side: Sideband) -> None:
    """Read the task's output FIFOs until the shim has closed them (all output copied)."""
    left = list(fds)
    while left:
        for fd in wait_readable(left, side):
            if drain(fd):
                left.remove(fd)


def options_any(runc_root: str, runc: str | None) -> any_pb2.Any:
    """The runc options every call that takes options gets: a private runc root, the runc."""
    options = runc_options_pb2.Options(root=runc_root, binary_name=runc or "")
    return any_pb2.Any(type_url="containerd.runc.v1.Options", value=options.SerializeToString())


def shim_argv(args: Args, grpc_address: str, *tail: str) -> list[str]:
    """``<shim> -namespace NS -address A -publish-binary B -id ID TAIL...`` (binary.go)."""
    return [
        args.shim,
        "-namespace", args.namespace,
        "-address", grpc_address,
        "-publish-binary", sys.executable,
        "-id", args.id,
        *tail,
    ]  # fmt: skip


def start_shim(
    args: Args, bundle: str, options: any_pb2.Any, env: dict[str, str]
) -> tuple[str, int]:
    """``<shim> ... start``; the shim's ttrpc address and the task API version it serves."""
    grpc_address = env["GRPC_ADDRESS"]
    if args.bootstrap:
        params = bootstrap_pb2.BootstrapParams(
            instance_id=args.id,
            namespace=args.namespace,
            log_level=bootstrap_pb2.INFO,
            containerd_version="2.4.0+minimal",
            containerd_ttrpc_address=env["TTRPC_ADDRESS"],
            containerd_grpc_address=grpc_address,
            containerd_binary=sys.executable,
            socket_dir=SOCKET_DIR,
        )
        params.extensions.add().value.CopyFrom(options)
        stdin = params.SerializeToString()
    else:
        stdin = options.SerializeToString()
    result = subprocess.run(
        shim_argv(args, grpc_address, "start"),
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=bundle,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    out = result.stdout
    if result.returncode != 0:
        raise Failed(f"{args.shim} start: {out.decode(errors='replace').strip()}")
    if args.bootstrap:
        answer = bootstrap_pb2.BootstrapResult()
        answer.ParseFromString(out)
        return answer.address, answer.version
    text = out.decode().strip()
    if text.startswith("{"):  # 2.0-2.2 shims: JSON
        decoded = json.loads(text)
        return decoded["address"], decoded["version"]
    return text, 2  # 1.6/1.7 shims: the address alone


def undo(args: Args, bundle: str, env: dict[str, str], client: Ttrpc | None) -> None:
    """Best effort after a failure: the shim's ``delete`` kills and removes the container,
    then the shim is told to exit."""
    argv = shim_argv(args, env["GRPC_ADDRESS"], "-bundle", bundle, "delete")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, cwd=bundle, env=env, capture_output=True, timeout=TIMEOUT)
    if client is not None:
        with contextlib.suppress(Exception):
            request = task_v3_pb2.ShutdownRequest(id=args.id, now=True)
            client.call("Shutdown", request, empty_pb2.Empty())


def remove_bundle(bundle: str) -> None:
    """Remove the bundle: files only (config.json, FIFOs, what the shim writes), and the odd
    directory through shutil (not imported otherwise: it costs more than this loop)."""
    try:
        entries = list(os.scandir(bundle))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            import shutil

            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    os.rmdir(bundle)


def run(args: Args) -> int:
    """The whole ``run --rm``; the task's exit status."""
    bundle = os.path.join(args.state, args.namespace, args.id)
    with open(args.spec, "rb") as f:
        spec = json.load(f)
    spec["hostname"] = args.id
    spec["root"]["path"] = args.rootfs
    spec["linux"]["cgroupsPath"] = f"/minimal@{args.namespace}@{args.id}"
    os.makedirs(os.path.dirname(bundle), 0o711, exist_ok=True)
    os.mkdir(bundle, 0o700)
    client: Ttrpc | None = None
    side: Sideband | None = None
    events = os.path.join(args.state, "events.sock")
    fds: list[int] = []
    started = False
    env: dict[str, str] = {}
    options = options_any(os.path.join(args.state, ".runc"), args.runc)
    try:
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        paths = [os.path.join(bundle, name) for name in ("log", "stdout", "stderr")]
        for path in paths:
            os.mkfifo(path, 0o700)
            # O_RDWR on the log: the shim's open for writing does not wait for a reader, and
            # we never see end-of-file there.
            mode = os.O_RDWR if path.endswith("log") else os.O_RDONLY
            fds.append(os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC))
        log_fd = fds[0]
        env = dict(
            os.environ,
            GOMAXPROCS="2",
            MAX_SHIM_VERSION="2",
            TTRPC_ADDRESS=events,
            GRPC_ADDRESS=os.path.join(args.state, "minimal.sock"),
            NAMESPACE=args.namespace,
        )
        side = Sideband(events, log_fd)
        address, version = start_shim(args, bundle, options, env)
        started = True
        service = f"containerd.task.v{3 if version >= 3 else 2}.Task"
        client = Ttrpc(address, service, args.namespace, side)
        created = task_v3_pb2.CreateTaskResponse()
        client.call(
            "Create",
            task_v3_pb2.CreateTaskRequest(
                id=args.id, bundle=bundle, stdout=paths[1], stderr=paths[2], options=options
            ),
            created,
        )
        client.call("Start", task_v3_pb2.StartRequest(id=args.id), task_v3_pb2.StartResponse())
        waited = task_v3_pb2.WaitResponse()
        client.call("Wait", task_v3_pb2.WaitRequest(id=args.id), waited)
        read_to_end(fds[1:], side)
        client.call("Delete", task_v3_pb2.DeleteRequest(id=args.id), task_v3_pb2.DeleteResponse())
        try:
            client.call(
                "Shutdown",
                task_v3_pb2.ShutdownRequest(id=args.id),
                empty_pb2.Empty(),
            )
        except (ConnectionResetError, BrokenPipeError):
            pass  # the shim exited before it answered (or read) it: the shutdown is done
        return int(waited.exit_status)
    except BaseException:
        if started:
            undo(args, bundle, env, client)
        raise
    finally:
        if client is not None:
            client.close()
        if side is not None:
            side.close()
        for fd in fds:
            os.close(fd)
        remove_bundle(bundle)


def main() -> int:
    try:
        args = parse(sys.argv[1:])
        preload(args.preload)
    except Failed as exc:
        print(f"minimal run: {exc}", file=sys.stderr)
        return 2
    try:
        status = run(args)
    except (Failed, OSError, subprocess.SubprocessError) as exc:
        print(f"minimal run of {args.id}: {exc}", file=sys.stderr)
        return 1
    if status != 0:
        print(f"minimal run of {args.id}: the task exited with status {status}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
