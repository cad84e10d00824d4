"""Forced teardown of one task, without its shim's help (``taskplane tasks rm --force``).

When a shim answers, a task is killed and deleted through it. When it does not -- stopped
(SIGSTOP), wedged, dead, or its bundle removed under it -- something must still make sure that
nothing of the task keeps running. :func:`force_teardown` does what containerd's dead-shim cleanup
does, but without depending on the bundle being intact:

1. runc itself: ``<runc> --root <root>/<namespace> delete --force <id>`` kills the container (every
   process, SIGKILL) and removes its runc state and cgroup. The runc binary and root come from the
   effective options recorded in the bundle (``taskplane-options.pb``), else the state dir's
   default root, so only this state dir's container is ever touched.
2. The shim process: found by its ``argv`` (``-namespace <ns> -id <id> -address <this state dir's
   grpc address>``, which is what the shim manager started it with), so a shim whose bundle is gone
   is found too; it is SIGKILLed.
3. The bundle (its rootfs unmounted first), a ``.<id>`` left by an interrupted delete, the work
   dir, and the shim's socket (it no longer answers).
4. The container's cgroup, when runc left it (a ``runc create`` cut off between making the cgroup
   and writing its state): processes still in it are SIGKILLed, then the directory is removed
   in every hierarchy. Only a cgroup the caller names as the task's own (``cgroups_path``) is
   touched: a spec's own ``cgroupsPath`` may be shared with processes that are not the task's.

It must run under the task's lock (:mod:`runtime_v2.locks`); :meth:`TaskManager.remove` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import signal
import time
from typing import TYPE_CHECKING

import attrs

from registry.log import get_logger
from runtime_v2 import errdefs
from runtime_v2.bundle import Bundle, remove_all
from runtime_v2.shim_cleanup import kill_and_wait, read_options, shim_argv
from runtime_v2.shim_socket import remove_stale_socket
from runtime_v2.start_response import restore_bootstrap_params

if TYPE_CHECKING:
    from runtime_v2.runtime import Exit
    from runtime_v2.shim import Shim, ShimTask
    from runtime_v2.shim_manager import ShimManager

__all__ = [
    "RUNC_TIMEOUT",
    "TeardownOutcome",
    "force_teardown",
    "kill_and_delete",
    "remove_cgroup",
    "runc_of",
    "shim_pids",
]

log = get_logger(__name__)

#: The deadline of each runc command.
RUNC_TIMEOUT = 10.0
#: How long to wait for a SIGKILLed shim to be gone.
KILL_TIMEOUT = 5.0
CGROUP_ROOT = "/sys/fs/cgroup"


@attrs.frozen
class TeardownOutcome:
    """Whether anything of the task was found, and what could not be removed (one clause each)."""

    found: bool
    problems: tuple[str, ...] = ()


def runc_of(bundle: Bundle, default_root: str) -> tuple[str, str]:
    """(runc binary, runc ``--root`` for the task's namespace) from the options recorded in
    ``bundle``; ``runc`` and ``default_root`` when it records none."""
    from runtime_v2.api import runc_options_pb2

    binary, root = "runc", default_root
    recorded = read_options(bundle)
    if recorded is not None and recorded.type_url.endswith("containerd.runc.v1.Options"):
        options = runc_options_pb2.Options()
        with contextlib.suppress(Exception):
            options.ParseFromString(recorded.value)
            binary = options.binary_name or binary
            root = options.root or root
    return binary, os.path.join(root, bundle.namespace)


def shim_pids(namespace: str, task_id: str, grpc_address: str) -> list[int]:
    """Pids of shim processes started for ``namespace``/``task_id`` by this state dir."""
    wanted = [
        ("-namespace", namespace),
        ("-id", task_id),
        ("-address", grpc_address),
    ]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = shim_argv(int(entry))
        if argv is None:
            continue
        pairs = set(itertools.pairwise(argv))
        if all(pair in pairs for pair in wanted):
            found.append(int(entry))
    return found


async def _runc(binary: str, root: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--root",
        root,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(RUNC_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return -1, f"{binary} {args[0]} did not finish within {RUNC_TIMEOUT:g} s"
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def force_teardown(
    bundle: Bundle,
    *,
    root: str,
    runc_root: str,
    shims: ShimManager,
    shim: Shim | None = None,
    cgroups_path: str = "",
) -> TeardownOutcome:
    """Leave nothing of the task of ``bundle`` (see the module docstring).

    ``root`` is the task plugin's ROOT (work dirs), ``runc_root`` the state dir's default runc
    root, ``shims`` the shim manager (its grpc address identifies this state dir's shims),
    ``shim`` the task's shim connection when there is one (closed here), ``cgroups_path`` the
    task's own cgroup (one nothing else uses), or "" to leave cgroups to runc.
    """
    found = False
    problems: list[str] = []
    namespace, task_id = bundle.namespace, bundle.id
    binary, runc_ns_root = runc_of(bundle, runc_root)
    if os.path.isdir(os.path.join(runc_ns_root, task_id)):
        found = True
        try:
            code, out = await _runc(binary, runc_ns_root, "delete", "--force", task_id)
        except OSError as exc:
            code, out = -1, f"cannot run {binary}: {exc.strerror}"
        if code != 0 and os.path.isdir(os.path.join(runc_ns_root, task_id)):
            problems.append(f"runc delete --force failed: {out}")
    pids = shim_pids(namespace, task_id, shims.grpc_address)
    # A sandboxed task's shim is the sandbox's: it is not this task's to kill.
    sandboxed = shim is not None and bool(shim.sandbox_id)
    if (
        shim is not None
        and not sandboxed
        and shim.shim_pid not in pids
        and shim_argv(shim.shim_pid) is not None
    ):
        pids.append(shim.shim_pid)
    for pid in pids:
        found = True
        await kill_and_wait(pid, KILL_TIMEOUT)
    addresses = list(shims.expected_addresses(bundle))
    with contextlib.suppress(errdefs.ContainerdError, OSError):
        addresses.append(restore_bootstrap_params(bundle.path).address)
    if shim is not None:
        addresses.append(shim.address)
        shim.orderly_shutdown = True
        # A connection already lost has its dead-shim cleanup pending, waiting for the task's
        # lock we hold: awaiting close() (which waits for that cleanup) would deadlock.
        if not shim.client.closed:
            with contextlib.suppress(Exception):
                await shim.close()
    work = os.path.join(root, namespace, task_id)
    hidden = os.path.join(os.path.dirname(bundle.path), "." + task_id)
    hidden_work = os.path.join(root, namespace, "." + task_id)
    for path in (bundle.path, hidden, work, hidden_work):
        found = found or os.path.lexists(path)
    try:
        await asyncio.to_thread(bundle.delete)
    except OSError as exc:
        problems.append(f"bundle {bundle.path}: {exc.strerror or exc}")
    for path in (hidden, work, hidden_work):
        try:
            await asyncio.to_thread(remove_all, path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    for address in addresses:
        remove_stale_socket(address)
    if cgroups_path:
        left, problem = await asyncio.to_thread(remove_cgroup, cgroups_path)
        found = found or left
        if problem:
            problems.append(problem)
    return TeardownOutcome(found=found, problems=tuple(problems))


def remove_cgroup(cgroups_path: str, cgroup_root: str = CGROUP_ROOT) -> tuple[bool, str]:
    """Kill what is left in cgroup ``cgroups_path`` (a cgroupfs path such as ``/a@b``) and
    remove it in every hierarchy. Returns (whether it existed, a problem or "").

    Only plain absolute paths below the root are handled (systemd ``slice:prefix:name`` paths
    are runc's to remove).
    """
    relative = os.path.normpath(cgroups_path).lstrip("/")
    if not cgroups_path.startswith("/") or not relative or relative.startswith(".."):
        return False, ""
    hierarchies = [cgroup_root]
    with contextlib.suppress(OSError):
        hierarchies += [e.path for e in os.scandir(cgroup_root) if e.is_dir()]
    existed = False
    for hierarchy in hierarchies:
        target = os.path.join(hierarchy, relative)
        if not os.path.isdir(target) or os.path.samefile(target, hierarchy):
            continue
        existed = True
        for _ in range(10):  # a fork racing with the kill: a few rounds
            try:
                with open(os.path.join(target, "cgroup.procs")) as f:
                    pids = [int(line) for line in f.read().split()]
            except OSError:
                pids = []
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.rmdir(target)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    return existed, f"cgroup {target}: {exc.strerror}"
                time.sleep(0.05)  # the killed processes leave the cgroup asynchronously
        else:
            return existed, f"cgroup {target} still has processes"
    return existed, ""


async def kill_and_delete(task: ShimTask, timeout: float) -> Exit | None:
    """SIGKILL every process of ``task``, wait for it and delete it, each step bounded; None
    when the shim did not do it (it does not answer, or died)."""
    from runtime_v2 import ttrpc

    try:
        async with ttrpc.timeout(timeout):
            with contextlib.suppress(errdefs.NotFound, errdefs.FailedPrecondition):
                await task.kill(signal.SIGKILL, all=True)
            with contextlib.suppress(errdefs.NotFound):
                await task.wait()
        async with ttrpc.timeout(timeout):
            return await task.delete()
    except (errdefs.ContainerdError, TimeoutError, OSError) as exc:
        log.warning("task %s/%s: the shim did not remove it: %s", task.namespace, task.id, exc)
        return None
