"""ttrpc round-trip benchmark: our client against our server (another process) and the Go shim.

Measures small unary calls one at a time and with 64 concurrent calls on one connection, against:

1. a Python :class:`runtime_v2.ttrpc.Server` in a separate process (``--serve`` mode of this
   script) serving Connect, and State answering NotFound "container not created" as the shim does;
2. the real ``containerd-shim-runc-v2`` (1.6.20), started the way containerd does (its
   ``core/runtime/v2/binary.go``)
   with a bundle that never gets a container; Shutdown ends it afterwards.

Two methods, each a row per peer and concurrency:

- ``State`` on the shim's own id (the figure the issue asks for). No container is ever created,
  so the shim answers NotFound "container not created": a complete request/response round trip
  (status instead of payload), counted as a successful call; any other outcome fails the bench.
- ``Connect``: a normal success answer (ConnectResponse), as a second reference.

Prints calls/s, p50 and p99 latency for every row, and the Python server / Go shim ratios.

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

from google.protobuf import empty_pb2

from runtime_v2 import errdefs, ttrpc
from runtime_v2.api import task_v2_pb2
from tests.interop.shimlib import SHIM_BINARY, ShimBundle, wait_process_exit

TASK = "containerd.task.v2.Task"


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
        task_v2_pb2.DESCRIPTOR.services_by_name["Task"],
        {"Connect": connect, "State": errdefs.grpc_handler(state)},
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
    """Start containerd-shim-runc-v2 on a fresh bundle; yield (address, id); shut it down.

    The shim is started as the interop tests start it (tests/interop/shimlib.py); the bundle
    only needs a config.json and the `log` FIFO, since no container is ever created.
    """
    if shutil.which(SHIM_BINARY) is None:
        raise RuntimeError(f"{SHIM_BINARY} is not installed")
    shim = ShimBundle(workdir=workdir, namespace="bench", id=f"bench-{uuid.uuid4().hex[:8]}")
    shim.bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=shim.bundle, check=True)
    os.mkfifo(shim.bundle / "log")
    loop = asyncio.get_running_loop()
    shim.open_log_reader(loop)  # before start, or the daemon blocks opening the FIFO
    try:
        address = (await shim.start()).strip()
        shim_pid = 0
        try:
            async with await ttrpc.Client.connect(address, timeout=10) as client:
                connected = await shim.call(
                    client, "Connect", task_v2_pb2.ConnectRequest(id=shim.id),
                    task_v2_pb2.ConnectResponse,
                )  # fmt: skip
                shim_pid = connected.shim_pid
            yield address, shim.id
        finally:
            with contextlib.suppress(ttrpc.StatusError):
                async with await ttrpc.Client.connect(address, timeout=10) as client:
                    await shim.call(
                        client, "Shutdown", task_v2_pb2.ShutdownRequest(id=shim.id, now=True),
                        empty_pb2.Empty,
                    )  # fmt: skip
            if shim_pid:
                try:
                    await wait_process_exit(shim_pid, 5.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(shim_pid, signal.SIGKILL)  # the daemon leads its own group
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address.removeprefix("unix://"))
    finally:
        shim.close_log_reader(loop)


# --- measuring --------------------------------------------------------------------------------


def methods(task_id: str) -> dict[str, tuple[bytes, ttrpc.Code | None]]:
    """The measured calls and the status code they are answered with (None: success), State
    first; ``task_id`` is the shim's own id."""
    return {
        "State": (task_v2_pb2.StateRequest(id=task_id).SerializeToString(), ttrpc.Code.NOT_FOUND),
        "Connect": (task_v2_pb2.ConnectRequest(id=task_id).SerializeToString(), None),
    }


async def _one(
    client: ttrpc.Client, method: str, payload: bytes, expect: ttrpc.Code | None
) -> None:
    if expect is None:
        await client.call_raw(TASK, method, payload, namespace="bench")
        return
    try:
        await client.call_raw(TASK, method, payload, namespace="bench")
    except ttrpc.StatusError as exc:
        if exc.code == expect:
            return  # the expected answer: a full round trip
        raise
    raise RuntimeError(f"{method} succeeded; expected {expect.name}")


async def describe(address: str, method: str, payload: bytes) -> str:
    """What the peer answers to one call (for the output)."""
    async with await ttrpc.Client.connect(address, timeout=10) as client:
        try:
            await client.call_raw(TASK, method, payload, namespace="bench", timeout=10)
        except ttrpc.StatusError as exc:
            return f"{type(errdefs.from_grpc(exc)).__name__} {exc.message!r}"
    return "ok"


async def measure(
    address: str,
    method: str,
    payload: bytes,
    expect: ttrpc.Code | None,
    calls: int,
    concurrency: int,
) -> dict[str, float]:
    """Run ``calls`` round trips of ``method`` with ``concurrency`` callers on one connection."""
    latencies: list[float] = []
    async with await ttrpc.Client.connect(address, timeout=10) as client:
        for _ in range(200):  # warm up
            await _one(client, method, payload, expect)

        async def worker(n: int) -> None:
            perf = time.perf_counter
            for _ in range(n):
                t = perf()
                await _one(client, method, payload, expect)
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
        f"{name:<40} {result['calls_per_s']:>10,.0f} calls/s"
        f"   p50 {result['p50_us']:>8.1f} us   p99 {result['p99_us']:>8.1f} us",
        flush=True,
    )


async def bench_peer(
    peer: str, address: str, task_id: str, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for method, (payload, expect) in methods(task_id).items():
        answer = await describe(address, method, payload)
        print(f"{peer}: {method}(id={task_id!r}) answers {answer}", flush=True)
        for conc in (1, args.concurrency):
            calls = args.calls if conc > 1 else args.calls // 4
            key = f"{peer}, {method}, {conc} concurrent"
            results[key] = await measure(address, method, payload, expect, calls, conc)
            report(key, results[key])
    return results


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ttrpc-bench-", dir="/tmp"))
    results: dict[str, dict[str, float]] = {}
    print(
        f"ttrpc unary round trips, one connection per row; {args.calls // 4} calls at 1 "
        f"concurrent, {args.calls} at {args.concurrency} concurrent; {os.cpu_count()} CPUs",
        flush=True,
    )
    print(
        'State: no container exists, so both peers answer NotFound "container not created";'
        " each such answer is counted as a completed round trip.",
        flush=True,
    )
    try:
        with python_server(workdir) as address:
            results |= await bench_peer("python server", address, "bench", args)
        if not args.no_shim:
            async with go_shim(workdir) as (address, task_id):
                results |= await bench_peer("go shim", address, task_id, args)
            print("ratios python server / go shim (calls/s; p50; p99):")
            for method in methods("").keys():
                for conc in (1, args.concurrency):
                    py = results[f"python server, {method}, {conc} concurrent"]
                    go = results[f"go shim, {method}, {conc} concurrent"]
                    print(
                        f"  {method:<8} {conc:>3} concurrent: "
                        f"{py['calls_per_s'] / go['calls_per_s']:.2f}; "
                        f"{py['p50_us'] / go['p50_us']:.2f}; {py['p99_us'] / go['p99_us']:.2f}"
                    )
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
