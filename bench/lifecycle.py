"""Task lifecycle benchmark: taskplane's TaskManager against containerd 1.6 and 2.4 + ctr.

Run as root (``make bench`` or ``.venv/bin/python bench/lifecycle.py``). One run prints, for
each reference -- Debian's containerd 1.6.20 (its shim and runc 1.1.5) and, when the upstream
binaries (:data:`UPSTREAM_BIN`, beside the repository) exist, a private containerd 2.4 (its 2.4
shim and runc 1.5):

1. the median create -> start -> wait -> delete time of one ``/bin/true`` task, in-process
   through taskplane's TaskManager, next to ``ctr run --rm`` of the same container against a
   private containerd daemon (ratio; target <= 0.9);
2. the median wall time of 3 bursts of 20 concurrent lifecycles next to 20 concurrent
   ``ctr run --rm`` (bursts alternating between the sides; ratio; target <= 1.0);

and once: 3. the restart recovery time with 50 live shims: booting a new TaskManager over them
(target < 1 s).

Both sides of a comparison run the same busybox rootfs, the same shim binary and the same runc
(taskplane names the 2.4 shim by path and runc 1.5 by ``binary_name``; containerd 2.4 finds
both first on its PATH), and read the task's stdout and stderr through FIFOs the containerd
way. Each containerd runs on a private --root/--state/--address in a temporary directory with
CRI and other unneeded plugins disabled (tests/interop/containerd.py), logging to a file there;
it is stopped by its PID and everything is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import plugins.builtin  # noqa: E402
import runtime_v2.builtin  # noqa: E402
from registry import boot_async  # noqa: E402
from runtime_v2 import CreateOpts  # noqa: E402
from runtime_v2.api import runc_options_pb2  # noqa: E402
from runtime_v2.shim_log import SHIM_LOGGER  # noqa: E402
from taskplane.oci import default_spec, spec_bytes  # noqa: E402
from taskplane.rootfs import build_busybox_rootfs  # noqa: E402
from taskplane.stdio import FifoPair  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from interop.containerd import PrivateContainerd  # noqa: E402

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
UPSTREAM_BIN = HERE.parent.parent / "shared" / "upstream" / "bin"
TASKS = ("io.containerd.runtime.v2", "task")


@attrs.frozen
class Reference:
    """One side-by-side comparison: a containerd + ctr, and the shim and runc both use."""

    label: str
    containerd: str
    ctr: str
    config_version: int
    #: What taskplane's CreateOpts name (runtime, runtime_options).
    runtime: str = "io.containerd.runc.v2"
    runc: str | None = None
    #: Directories first on the daemon's PATH (where it finds the shim and the shim runc).
    path_prefix: tuple[str, ...] = ()

    def create_kw(self) -> dict[str, Any]:
        options = runc_options_pb2.Options(binary_name=self.runc) if self.runc else None
        return {"runtime": self.runtime, "runtime_options": options}

    def missing(self) -> list[str]:
        needed = [self.containerd, self.ctr, self.runtime if "/" in self.runtime else None]
        return [p for p in needed if p and not os.path.exists(p)]


DEBIAN = Reference("containerd 1.6.20 (Debian shim, runc 1.1.5)", CONTAINERD, CTR, 2)
UPSTREAM = Reference(
    "containerd 2.4 (2.4 shim, runc 1.5)",
    str(UPSTREAM_BIN / "containerd"),
    str(UPSTREAM_BIN / "ctr"),
    3,
    runtime=str(UPSTREAM_BIN / "containerd-shim-runc-v2"),
    runc=str(UPSTREAM_BIN / "runc"),
    path_prefix=(str(UPSTREAM_BIN),),
)


def available_references(bench: str) -> list[Reference] | None:
    """Debian's containerd, and containerd 2.4 when ``../shared/upstream`` has it (saying so
    when not); None, after one line on stderr, when root or a prerequisite is missing."""
    if os.geteuid() != 0:
        print(f"{bench} needs root (runc)", file=sys.stderr)
        return None
    for binary in (CONTAINERD, CTR, shutil.which("containerd-shim-runc-v2"), shutil.which("runc")):
        if not binary or not os.path.exists(binary):
            print(f"missing prerequisite: {binary}", file=sys.stderr)
            return None
    references = [DEBIAN]
    if UPSTREAM.missing():
        print(f"not comparing with containerd 2.4: missing {', '.join(UPSTREAM.missing())}")
    else:
        references.append(UPSTREAM)
    return references


async def ctr_run(
    containerd: PrivateContainerd, namespace: str, rootfs: Path, task_id: str
) -> float:
    """One ``ctr run --rm`` of ``/bin/true``; returns its wall time."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *containerd.ctr_argv(namespace, "run", "--rm", "--rootfs", str(rootfs), task_id),
        "/bin/true",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=containerd.env(),
    )
    _, err = await proc.communicate()
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"ctr run {task_id} failed ({proc.returncode}): {err.decode()}")
    return elapsed


async def taskplane_run(
    tasks: Any, reference: Reference, namespace: str, rootfs: Path, io_dir: Path, task_id: str
) -> float:
    """One create -> start -> wait -> delete of ``/bin/true``, stdio through FIFOs."""
    began = time.perf_counter()
    spec = spec_bytes(
        default_spec(task_id, rootfs=str(rootfs), args=["/bin/true"], namespace=namespace)
    )
    with FifoPair(io_dir, prefix=f"{task_id}-") as fifos:
        task = await tasks.create(
            task_id,
            CreateOpts(
                spec=spec, stdout=fifos.stdout, stderr=fifos.stderr, **reference.create_kw()
            ),
            namespace=namespace,
        )
        fifos.release()
        copying = asyncio.ensure_future(fifos.copy_to(lambda b: None, lambda b: None))
        await task.start()
        exit = await task.wait()
        await tasks.delete(task_id, namespace=namespace)
        await copying
    if exit.status != 0:
        raise RuntimeError(f"task {task_id} exited {exit.status}")
    return time.perf_counter() - began


async def sequential(runs: int, first: Any, second: Any) -> tuple[float, float]:
    """Median time of ``runs`` lifecycles of each side, interleaved so load drifts hit both."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(runs):
        for side, one in enumerate((first, second)):
            times[side].append(await one(f"seq-{i}-{uuid.uuid4().hex[:6]}"))
    return statistics.median(times[0]), statistics.median(times[1])


async def concurrent(count: int, one: Any) -> float:
    began = time.perf_counter()
    await asyncio.gather(*(one(f"par-{i}-{uuid.uuid4().hex[:6]}") for i in range(count)))
    return time.perf_counter() - began


async def concurrent_rounds(
    rounds: int, count: int, first: Any, second: Any
) -> tuple[float, float]:
    """Median wall time of ``rounds`` bursts of ``count`` concurrent lifecycles per side, the
    sides alternating so that load from other processes on the machine hits both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for side, one in enumerate((first, second)):
            times[side].append(await concurrent(count, one))
    return statistics.median(times[0]), statistics.median(times[1])


async def boot(root: str, state: str) -> Any:
    """Boot the built-in plugins (a TaskManager host) on ``root`` and ``state``."""
    return await boot_async(
        {}, builtins=[plugins.builtin, runtime_v2.builtin], autoload=False, root=root, state=state
    )


async def recovery(base: Path, rootfs: Path, shims: int) -> tuple[float, float, int]:
    """Boot a TaskManager over ``shims`` live shims; return (load time, boot time, reattached)."""
    root, state = str(base / "rr"), str(base / "rs")
    namespace = "bench-restart"
    first = await boot(root, state)
    tasks = first.get(*TASKS)
    try:

        async def start_one(i: int) -> None:
            task_id = f"live-{i}"
            spec = spec_bytes(
                default_spec(
                    task_id, rootfs=str(rootfs), args=["/bin/sleep", "600"], namespace=namespace
                )
            )
            task = await tasks.create(task_id, CreateOpts(spec=spec), namespace=namespace)
            await task.start()

        sem = asyncio.Semaphore(10)

        async def bounded(i: int) -> None:
            async with sem:
                await start_one(i)

        await asyncio.gather(*(bounded(i) for i in range(shims)))
    finally:
        await first.aclose()  # shims keep running

    began = time.perf_counter()
    second = await boot(root, state)
    tasks = second.get(*TASKS)
    # Restart recovery runs at a namespace's first use (runtime_v2.task_manager), not at boot.
    loading = time.perf_counter()
    outcomes = await tasks.load_existing_shims(namespace)
    load_time = time.perf_counter() - loading
    boot_time = time.perf_counter() - began  # boot and the namespace's recovery
    reattached = sum(1 for o in outcomes if o.outcome == "reattached")
    try:

        async def stop(task: Any) -> None:
            await task.kill(signal.SIGKILL)
            await task.wait()
            await tasks.delete(task.id, namespace=namespace)

        await asyncio.gather(*(stop(t) for t in await tasks.tasks(namespace=namespace)))
    finally:
        await second.aclose()
    shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
    return load_time, boot_time, reattached


@attrs.frozen
class Comparison:
    """taskplane's and containerd's figures against one :class:`Reference`."""

    reference: Reference
    tp_median: float
    ctr_median: float
    tp_par: float
    ctr_par: float

    @property
    def sequential_ratio(self) -> float:
        return self.tp_median / self.ctr_median

    @property
    def concurrent_ratio(self) -> float:
        return self.tp_par / self.ctr_par


async def compare(
    reference: Reference, base: Path, rootfs: Path, runs: int, concurrency: int, rounds: int
) -> Comparison:
    """Run both sides against ``reference`` (its private containerd under ``base``)."""
    containerd = PrivateContainerd(
        base / "ctd",
        containerd=reference.containerd,
        ctr=reference.ctr,
        config_version=reference.config_version,
        path_prefix=reference.path_prefix,
    )
    namespace_ctr = f"bench-ctr-{uuid.uuid4().hex[:6]}"
    namespace_tp = f"bench-tp-{uuid.uuid4().hex[:6]}"
    io_dir = base / "io"
    io_dir.mkdir(parents=True)
    host = None
    try:
        containerd.start()
        host = await boot(str(base / "r"), str(base / "s"))
        tasks = host.get(*TASKS)

        def ctr_one(task_id: str) -> Any:
            return ctr_run(containerd, namespace_ctr, rootfs, task_id)

        def tp_one(task_id: str) -> Any:
            return taskplane_run(tasks, reference, namespace_tp, rootfs, io_dir, task_id)

        # Warm both sides (page cache, first shim exec, containerd's lazy init, and taskplane's
        # start-protocol negotiation, which a real state dir remembers across processes).
        for _ in range(2):
            await ctr_one(f"warm-{uuid.uuid4().hex[:6]}")
            await tp_one(f"warm-{uuid.uuid4().hex[:6]}")

        tp_median, ctr_median = await sequential(runs, tp_one, ctr_one)
        tp_par, ctr_par = await concurrent_rounds(rounds, concurrency, tp_one, ctr_one)
        return Comparison(reference, tp_median, ctr_median, tp_par, ctr_par)
    finally:
        if host is not None:
            with contextlib.suppress(Exception):
                await host.aclose()
        containerd.stop()
        for ns in (namespace_ctr, namespace_tp):
            shutil.rmtree(f"/run/containerd/runc/{ns}", ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="sequential lifecycles per side")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="concurrent bursts per side")
    parser.add_argument("--shims", type=int, default=50, help="live shims for recovery")
    args = parser.parse_args()
    # The shims' own log lines (e.g. the 1.6 shim's "cgroups: epoll wait" burst as it exits)
    # are not the bench's output.
    SHIM_LOGGER.setLevel(logging.CRITICAL)
    references = available_references("bench/lifecycle.py")
    if references is None:
        return 2

    base = Path(tempfile.mkdtemp(prefix="tpb", dir="/tmp"))
    try:
        rootfs = build_busybox_rootfs(base / "rootfs")
        comparisons = [
            await compare(ref, base / f"c{i}", rootfs, args.runs, args.concurrency, args.rounds)
            for i, ref in enumerate(references)
        ]
        load_time, boot_time, reattached = await recovery(base, rootfs, args.shims)

        ok = load_time < 1.0 and reattached == args.shims
        for c in comparisons:
            print(f"against {c.reference.label}:")
            print(f"  {'measure':<42}{'taskplane':>12}{'containerd':>12}{'ratio':>8}  target")
            print(
                f"  {'median create->start->wait->delete (s)':<42}"
                f"{c.tp_median:>12.4f}{c.ctr_median:>12.4f}{c.sequential_ratio:>8.2f}  <= 0.9"
            )
            print(
                f"  {f'{args.concurrency} concurrent lifecycles, wall (s)':<42}"
                f"{c.tp_par:>12.4f}{c.ctr_par:>12.4f}{c.concurrent_ratio:>8.2f}  <= 1.0"
            )
            ok = ok and c.sequential_ratio <= 0.9 and c.concurrent_ratio <= 1.0
        print(
            f"{f'restart recovery of {args.shims} live shims (s)':<44}"
            f"{load_time:>12.4f}  < 1 s "
            f"(whole boot {boot_time:.4f} s; {reattached}/{args.shims} reattached)"
        )
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1
    finally:
        subprocess.run(["umount", "-R", str(base)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
