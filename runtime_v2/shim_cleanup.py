"""Cleaning up after a shim: its ``delete`` command, its bundle and socket, a stuck process.

containerd's dead-shim cleanup (``cleanupAfterDeadShim`` in ``core/runtime/v2/shim.go``) runs the
shim binary's ``delete``, which kills and deletes the container, and removes the bundle. The
pieces shared by the shim manager, restart recovery (:mod:`runtime_v2.shim_load`) and the forced
teardown (:mod:`runtime_v2.teardown`) live here, with the two files a bundle keeps for them: the
task's effective runtime options (``delete`` gets the same options as ``start``) and the sandbox
the task runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from registry.log import get_logger
from runtime_v2.bundle import Bundle, write_file
from runtime_v2.shim_socket import remove_stale_socket

if TYPE_CHECKING:
    from google.protobuf import any_pb2

    from runtime_v2.binary import ShimBinary
    from runtime_v2.runtime import Exit

__all__ = [
    "CLEANUP_TIMEOUT",
    "OPTIONS_FILE",
    "SANDBOX_FILE",
    "SHIM_PID_FILE",
    "kill_and_wait",
    "read_options",
    "read_sandbox_id",
    "read_shim_pid",
    "reap_dead_shim",
    "run_delete",
    "shim_argv",
    "write_options",
    "write_shim_pid",
]

log = get_logger(__name__)

#: containerd's ``io.containerd.timeout.shim.cleanup`` default (``[timeouts]`` sets it).
CLEANUP_TIMEOUT = 5.0


async def kill_and_wait(pid: int, timeout: float) -> None:
    """SIGKILL process ``pid`` (not necessarily our child) and wait, at most ``timeout`` s,
    until it has exited: its pidfd, opened before the signal so the pid cannot be reused
    meanwhile, turns readable then, zombie or not. A process already gone is fine."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await exited
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


#: containerd's file naming the sandbox a task's bundle belongs to (its shim is the sandbox's).
SANDBOX_FILE = "sandbox"


def read_sandbox_id(bundle: Bundle) -> str:
    """The sandbox ``bundle``'s task runs in ("" for none)."""
    try:
        with open(os.path.join(bundle.path, SANDBOX_FILE), "rb") as f:
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


#: The task's effective runtime options in its bundle, so a later process runs ``delete`` with
#: the same options (a serialized ``google.protobuf.Any``, mode 0600).
OPTIONS_FILE = "taskplane-options.pb"


def write_options(bundle: Bundle, options: any_pb2.Any) -> None:
    """Record the task's effective runtime options in its bundle."""
    write_file(os.path.join(bundle.path, OPTIONS_FILE), options.SerializeToString(), 0o600)


def read_options(bundle: Bundle) -> any_pb2.Any | None:
    """The options :func:`write_options` recorded, or None."""
    from google.protobuf import any_pb2
    from google.protobuf.message import DecodeError

    try:
        with open(os.path.join(bundle.path, OPTIONS_FILE), "rb") as f:
            return any_pb2.Any.FromString(f.read())
    except (OSError, DecodeError):
        return None


#: The pid of the task's shim daemon as it answered Connect, so a later process can look at the
#: process before it connects (a stopped shim accepts connections but never answers).
SHIM_PID_FILE = "taskplane-shim.pid"


def write_shim_pid(bundle: Bundle, pid: int) -> None:
    """Record the pid of ``bundle``'s shim daemon."""
    if pid > 0:
        write_file(os.path.join(bundle.path, SHIM_PID_FILE), str(pid).encode())


def shim_argv(pid: int) -> list[str] | None:
    """The command line of process ``pid`` when it is a shim (argv[0]'s file name holds
    ``containerd-shim``), else None (not a shim, gone, or not readable)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    return argv if "containerd-shim" in os.path.basename(argv[0]) else None


def read_shim_pid(bundle: Bundle) -> int:
    """The pid :func:`write_shim_pid` recorded, or 0."""
    try:
        with open(os.path.join(bundle.path, SHIM_PID_FILE), "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


async def run_delete(binary: ShimBinary, bundle: Bundle) -> Exit:
    """Run ``binary``'s ``delete`` with the task's effective runtime options on stdin.

    The options are the ones :func:`write_options` recorded in ``bundle`` at start, so a later
    process (restart recovery) sends the same value; a task without options gets /dev/null.
    The bundle is left to the caller.
    """
    return await binary.delete(read_options(bundle), remove_bundle=False)


async def reap_dead_shim(
    binary: ShimBinary | None,
    bundle: Bundle,
    address: str | None,
    timeout: float = CLEANUP_TIMEOUT,
) -> Exit | None:
    """Clean up after a shim that is gone: its binary's ``delete`` (which kills and deletes the
    container), then the bundle, then the shim's stale socket.

    Each step runs even when the one before failed (failures are logged). Returns the
    ``delete`` command's Exit, or None when there is no binary or the command failed.
    """
    exit: Exit | None = None
    if binary is not None:
        try:
            async with asyncio.timeout(timeout):
                exit = await run_delete(binary, bundle)
        except Exception as exc:
            log.warning(
                "task %s/%s: shim delete command failed: %s", bundle.namespace, bundle.id, exc
            )
    try:
        await asyncio.to_thread(bundle.delete)
    except OSError as exc:
        log.warning("task %s/%s: failed to remove the bundle: %s", bundle.namespace, bundle.id, exc)
    if address:
        remove_stale_socket(address)
    return exit
