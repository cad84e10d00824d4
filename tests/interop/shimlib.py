"""Helpers for the interop tests: an OCI bundle for the real runc shim, started and deleted the way
containerd 1.6 does it (containerd's core/runtime/v2/binary.go and shim.go).

Everything a test creates lives under one short temp dir (sun_path is 108 bytes), plus the
shim's socket in /run/containerd/s and runc's state in /run/containerd/runc/<ns>/<id>, whose
names are known in advance. The leak check is :mod:`tests.leaks` (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import uuid
from pathlib import Path
from typing import TypeVar

import attrs
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message

from runtime_v2 import errdefs
from runtime_v2.api import task_v2_pb2
from runtime_v2.ttrpc import Client, Closed, StatusError
from taskplane.rootfs import build_busybox_rootfs

SHIM_BINARY = "containerd-shim-runc-v2"
RUNC_BINARY = "runc"
PUBLISH_BINARY = "/usr/bin/containerd"
SOCKET_ROOT = Path("/run/containerd/s")
RUNC_ROOT = Path("/run/containerd/runc")
TIMEOUT = 20.0  # seconds for any single step against the real peers
TASK_V2 = "containerd.task.v2.Task"

M = TypeVar("M", bound=Message)


def unique_name(prefix: str) -> str:
    """A short identifier that no other test (or concurrent run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def shim_env(ttrpc_address: str) -> dict[str, str]:
    """The environment containerd 1.6 gives a shim: its own plus GOMAXPROCS and TTRPC_ADDRESS."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    for extra in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):  # runc lives in /usr/sbin
        if extra not in path.split(":"):
            path = f"{path}:{extra}" if path else extra
    env.update(PATH=path, GOMAXPROCS="2", TTRPC_ADDRESS=ttrpc_address)
    return env


@attrs.define
class ShimBundle:
    """One task's bundle for the runc shim, with its names and the shim commands."""

    workdir: Path
    namespace: str
    id: str
    log: bytearray = attrs.field(factory=bytearray)
    _log_fd: int | None = None

    @property
    def bundle(self) -> Path:
        """The bundle dir; its name must be the id because the shim's `delete` derives it."""
        return self.workdir / self.id

    @property
    def grpc_address(self) -> str:
        """The (never served) containerd address the shim hashes into its socket path."""
        return str(self.workdir / "fake.sock")

    @property
    def ttrpc_address(self) -> str:
        """Where the shim forwards events (TTRPC_ADDRESS)."""
        return self.grpc_address + ".ttrpc"

    @property
    def expected_socket(self) -> Path:
        """The socket path the shim derives: sha256 of Join(grpc address, ns, id), as containerd's
        pkg/shim/util.go SocketAddress does."""
        key = f"{self.grpc_address}/{self.namespace}/{self.id}"
        return SOCKET_ROOT / hashlib.sha256(key.encode()).hexdigest()

    @property
    def runc_state(self) -> Path:
        """runc's state dir for this container under the shim's default runc root."""
        return RUNC_ROOT / self.namespace / self.id

    def prepare(self, args: list[str]) -> None:
        """Create the bundle: a busybox rootfs, config.json from `runc spec`, the `log` FIFO."""
        self.bundle.mkdir(mode=0o700)
        rootfs = build_busybox_rootfs(self.bundle / "rootfs")
        subprocess.run(
            [RUNC_BINARY, "spec", "--bundle", str(self.bundle)],
            check=True,
            capture_output=True,
            env=shim_env(self.ttrpc_address),
        )
        config_path = self.bundle / "config.json"
        config = json.loads(config_path.read_text())
        config["root"] = {"path": str(rootfs.resolve()), "readonly": False}
        config["process"]["terminal"] = False
        config["process"]["args"] = args
        # containerd's layout, so the leak check finds the container's cgroups by namespace
        # (runc's default, /<id>, names no namespace).
        config["linux"]["cgroupsPath"] = f"/{self.namespace}/{self.id}"
        config_path.write_text(json.dumps(config, indent=2))
        os.mkfifo(self.bundle / "log", 0o700)

    def open_log_reader(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hold the `log` FIFO open for reading and drain it, as containerd does.

        The shim daemon opens `log` write-only and blocks until a reader exists; O_RDWR keeps
        our end from ever seeing EOF when the daemon closes it.
        """
        fd = os.open(self.bundle / "log", os.O_RDWR | os.O_NONBLOCK)
        self._log_fd = fd

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 65536):
                    self.log.extend(chunk)

        loop.add_reader(fd, drain)

    def close_log_reader(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop draining and close the FIFO."""
        if self._log_fd is not None:
            loop.remove_reader(self._log_fd)
            os.close(self._log_fd)
            self._log_fd = None

    def refuse_events(self) -> socket.socket:
        """Bind (without listening) a socket at TTRPC_ADDRESS so event forwarding fails fast.

        With no socket at all, the 1.6 shim's publisher retries dialing (ENOENT) for 5 s per
        event and the daemon's exit after Shutdown waits for it; a bound socket that does not
        listen answers ECONNREFUSED at once. Close the returned socket when done.
        """
        refuser = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        refuser.bind(self.ttrpc_address)
        return refuser

    def _argv(self, *action: str) -> list[str]:
        return [
            SHIM_BINARY,
            "-namespace",
            self.namespace,
            "-address",
            self.grpc_address,
            "-publish-binary",
            PUBLISH_BINARY,
            "-id",
            self.id,
            *action,
        ]

    async def start(self) -> str:
        """Run the shim's `start` command and return the address it printed (stdout+stderr)."""
        proc = await asyncio.create_subprocess_exec(
            *self._argv("start"),
            cwd=self.bundle,
            env=shim_env(self.ttrpc_address),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # containerd starts shims in their own process group
        )
        output, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, f"shim start failed ({proc.returncode}): {output!r}"
        return output.decode()

    async def call(
        self,
        client: Client,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        service: str = TASK_V2,
    ) -> M:
        """Call the shim's ``service``/``method`` in this bundle's namespace, within TIMEOUT.

        An error status raises its errdefs class, as containerd maps it (``errgrpc.ToNative``);
        a lost connection raises ttrpc's :class:`Closed`.
        """
        try:
            return await client.call(
                service, method, request, response_type, namespace=self.namespace, timeout=TIMEOUT
            )
        except Closed:
            raise
        except StatusError as exc:
            raise errdefs.from_grpc(exc) from exc

    async def shutdown(self, client: Client) -> None:
        """Ask the shim daemon to exit. It may exit before its reply is out, so a closed
        connection is an answer too: containerd's shimTask.Shutdown ignores ttrpc.ErrClosed
        (core/runtime/v2/shim.go)."""
        with contextlib.suppress(Closed):
            await self.call(client, "Shutdown", task_v2_pb2.ShutdownRequest(id=self.id), Empty)

    async def delete(self) -> tuple[int, bytes, bytes]:
        """Run the shim's `delete` command; return (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            *self._argv("-bundle", str(self.bundle), "delete"),
            cwd=self.bundle,
            env=shim_env(self.ttrpc_address),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode is not None
        return proc.returncode, stdout, stderr


async def wait_process_exit(pid: int, timeout: float = TIMEOUT) -> None:
    """Wait until process ``pid`` (not necessarily our child) has exited, via a pidfd."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await asyncio.wait_for(exited, timeout)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
