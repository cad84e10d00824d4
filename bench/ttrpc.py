"""ttrpc round-trip benchmark: our client against our server (another process) and the Go shim.

Measures small unary calls (``containerd.task.v2.Task/Connect``, which both peers answer with a
ConnectResponse) one at a time and with 64 concurrent calls on one connection, against:

1. a Python :class:`runtime_v2.ttrpc.Server` in a separate process (``--serve`` mode of this
   script) serving Connect (and State, answering NotFound like a shim);
2. the real ``containerd-shim-runc-v2`` (1.6.20), started the way containerd does (spec 5.1)
   with a bundle that never gets a container; Shutdown ends it afterwards.

Prints calls/s, p50 and p99 latency for each, and the ratio Python server / Go shim.

    .venv/bin/python bench/ttrpc.py [--calls 20000] [--concurrency 64] [--no-shim]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime_v2 import errdefs, ttrpc
from runtime_v2.api import task_v2_pb2

TASK = "containerd.task.v2.Task"
SHIM_BINARY = "containerd-shim-runc-v2"


# --- the Python server process ----------------------------------------------------------------


async def serve(path: str) -> None:
    """Serve the bench's Task subset on ``path`` until SIGTERM; print "ready" once listening."""

    async def connect(
        req: task_v2_pb2.ConnectRequest, ctx: ttrpc.CallContext
    ) -> task_v2_pb2.ConnectResponse:
        return task_v2_pb2.ConnectResponse(shim_pid=os.getpid(), version="bench")

    async def state(
        req: task_v2_pb2.StateRequest, ctx: ttrpc.CallContext
    ) -> task_v2_pb2.StateResponse:
        raise errdefs.NotFound("container not created")

    server = ttrpc.Server()
    server.register(
        task_v2_pb2.DESCRIPTOR.services_by_name["Task"], {"Connect": connect, "State": state}
    )
    await server.serve(path)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.shutdown()


@contextlib.contextmanager
def python_server(workdir: Path) -> Iterator[str]:
    path = str(workdir / "py.sock")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"python server did not start (said {line!r})")
        yield "unix://" + path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the Go shim ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def go_shim(workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """Start containerd-shim-runc-v2 on a fresh bundle; yield (address, id); shut it down."""
    shim = shutil.which(SHIM_BINARY)
    if shim is None:
        raise RuntimeError(f"{SHIM_BINARY} is not installed")
    task_id = f"bench-{uuid.uuid4().hex[:8]}"
    bundle = workdir / task_id  # the shim derives the bundle from its id at `delete`
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    log = bundle / "log"
    os.mkfifo(log)
    # A reader must exist before start, or the daemon blocks opening the FIFO for writing.
    log_fd = os.open(log, os.O_RDWR | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()

    def drain_log() -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(log_fd, 65536)

    loop.add_reader(log_fd, drain_log)
    grpc_address = str(workdir / "fake.sock")
    env = dict(os.environ, GOMAXPROCS="2", TTRPC_ADDRESS=grpc_address + ".ttrpc")
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
    start = await asyncio.create_subprocess_exec(
        shim,
        "-namespace", "bench",
        "-address", grpc_address,
        "-publish-binary", "/usr/bin/containerd",
        "-id", task_id,
        "start",
        cwd=bundle,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await start.communicate()
    if start.returncode != 0:
        loop.remove_reader(log_fd)
        os.close(log_fd)
        raise RuntimeError(f"shim start failed ({start.returncode}): {err.decode().strip()}")
    address = out.decode().strip()
    shim_pid = 0
    try:
        async with await ttrpc.Client.connect(address, timeout=10) as client:
            resp = await client.call(
                TASK, "Connect", task_v2_pb2.ConnectRequest(id=task_id),
                task_v2_pb2.ConnectResponse, namespace="bench", timeout=10,
            )  # fmt: skip
            shim_pid = resp.shim_pid
        yield address, task_id
    finally:
        with contextlib.suppress(errdefs.ContainerdError):
            async with await ttrpc.Client.connect(address, timeout=10) as client:
                await client.call_raw(
                    TASK, "Shutdown",
                    task_v2_pb2.ShutdownRequest(id=task_id, now=True).SerializeToString(),
                    namespace="bench", timeout=10,
                )  # fmt: skip
        if shim_pid and not await _wait_gone(shim_pid, 5.0):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shim_pid, signal.SIGKILL)  # the daemon leads its own group
        sock = address.removeprefix("unix://")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
        loop.remove_reader(log_fd)
        os.close(log_fd)


async def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _is_zombie(pid):
            return True
        await asyncio.sleep(0.02)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --- measuring --------------------------------------------------------------------------------


async def measure(address: str, calls: int, concurrency: int) -> dict[str, float]:
    """Run ``calls`` Connect round trips with ``concurrency`` callers on one connection."""
    payload = task_v2_pb2.ConnectRequest(id="bench").SerializeToString()
    latencies: list[float] = []
    async with await ttrpc.Client.connect(address, timeout=10) as client:
        for _ in range(200):  # warm up
            await client.call_raw(TASK, "Connect", payload, namespace="bench")

        async def worker(n: int) -> None:
            perf = time.perf_counter
            for _ in range(n):
                t = perf()
                await client.call_raw(TASK, "Connect", payload, namespace="bench")
                latencies.append(perf() - t)

        per_worker = calls // concurrency
        start = time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "calls_per_s": len(latencies) / elapsed,
        "p50_us": q[49] * 1e6,
        "p99_us": q[98] * 1e6,
    }


def report(name: str, result: dict[str, float]) -> None:
    print(
        f"{name:<34} {result['calls_per_s']:>10,.0f} calls/s"
        f"   p50 {result['p50_us']:>8.1f} us   p99 {result['p99_us']:>8.1f} us",
        flush=True,
    )


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ttrpc-bench-", dir="/tmp"))
    results: dict[str, dict[str, float]] = {}
    try:
        with python_server(workdir) as address:
            for conc in (1, args.concurrency):
                calls = args.calls if conc > 1 else args.calls // 4
                key = f"python server, {conc} concurrent"
                results[key] = await measure(address, calls, conc)
                report(key, results[key])
        if not args.no_shim:
            async with go_shim(workdir) as (address, _task_id):
                for conc in (1, args.concurrency):
                    calls = args.calls if conc > 1 else args.calls // 4
                    key = f"go shim, {conc} concurrent"
                    results[key] = await measure(address, calls, conc)
                    report(key, results[key])
            for conc in (1, args.concurrency):
                py = results[f"python server, {conc} concurrent"]["calls_per_s"]
                go = results[f"go shim, {conc} concurrent"]["calls_per_s"]
                print(f"ratio python/go, {conc} concurrent: {py / go:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-shim", action="store_true", help="skip the Go shim")
    parser.add_argument("--serve", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
