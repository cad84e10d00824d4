"""Helpers for the interop tests: an OCI bundle for the real runc shim, started and deleted the way
containerd 1.6 does it (spec sections 2.1, 2.3, 2.4), and a leak check for what a test leaves.

Everything a test creates lives under one short temp dir (sun_path is 108 bytes), plus the
shim's socket in /run/containerd/s and runc's state in /run/containerd/runc/<ns>/<id>, whose
names are known in advance so the leak check looks at exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import attrs

from taskplane.rootfs import build_busybox_rootfs

SHIM_BINARY = "containerd-shim-runc-v2"
RUNC_BINARY = "runc"
PUBLISH_BINARY = "/usr/bin/containerd"
SOCKET_ROOT = Path("/run/containerd/s")
RUNC_ROOT = Path("/run/containerd/runc")
TIMEOUT = 20.0  # seconds for any single step against the real peers


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
        """The socket path the shim derives: sha256 of Join(grpc address, ns, id) (spec 2.3)."""
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


def _shim_pids(bundle: ShimBundle) -> list[int]:
    """Live runc-shim processes whose argv or cwd belongs to this bundle."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not argv[0].endswith(SHIM_BINARY.encode()):
                continue
            cwd = ""
            with contextlib.suppress(OSError):
                cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # exited meanwhile
        mentions = any(bundle.id.encode() in arg for arg in argv[1:])
        if mentions or cwd.startswith(str(bundle.workdir)):
            pids.append(int(entry.name))
    return pids


def _mounts_under(path: Path) -> list[str]:
    """Mount points under ``path`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # octal escapes like \040
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def find_and_clean_leaks(bundle: ShimBundle) -> list[str]:
    """Report everything the test left behind, then remove it so the machine stays clean."""
    leaks: list[str] = []
    for pid in _shim_pids(bundle):
        leaks.append(f"shim process {pid} for {bundle.id} is still running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if bundle.runc_state.exists():
        leaks.append(f"runc state {bundle.runc_state} was left")
        subprocess.run(
            [
                RUNC_BINARY,
                "--root",
                str(RUNC_ROOT / bundle.namespace),
                "delete",
                "--force",
                bundle.id,
            ],
            capture_output=True,
            check=False,
            env=shim_env(bundle.ttrpc_address),
        )
        shutil.rmtree(bundle.runc_state, ignore_errors=True)
    with contextlib.suppress(OSError):
        (RUNC_ROOT / bundle.namespace).rmdir()  # the shim's per-namespace runc root, if empty
    if bundle.expected_socket.exists() or bundle.expected_socket.is_symlink():
        leaks.append(f"shim socket {bundle.expected_socket} was left")
        bundle.expected_socket.unlink()
    mounts = _mounts_under(bundle.workdir)
    for point in mounts:
        leaks.append(f"mount {point} was left")
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    if bundle.bundle.exists():
        leaks.append(f"bundle {bundle.bundle} was left")
    try:
        shutil.rmtree(bundle.workdir)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            leaks.append(f"cannot remove {bundle.workdir}: {exc}")
    return leaks
