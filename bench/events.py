"""Event journal benchmark: what sharing events between processes costs.

Rows:

- ``append``: :meth:`EventJournal.append` of a ``TaskExit``-sized record, one process
  (what every publish and every forwarded shim event pays on top of local delivery);
- ``append, N processes``: the same from N processes at once (total records/s);
- ``follower parse``: records/s a follower reads and decodes;
- ``cross-process latency``: publish in one exchange to delivery in another on the same journal
  (p50/p99; bounded by the follower's poll interval, 50 ms by default).

    .venv/bin/python bench/events.py [--records 20000] [--processes 4] [--latency-events 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.events import Exchange
from plugins.events_journal import EventJournal, Record
from runtime_v2.api import events_pb2

_VALUE = events_pb2.TaskExit(
    container_id="bench-container", id="bench-container", pid=4242, exit_status=137
).SerializeToString()


def _record(origin: str) -> Record:
    return Record(
        origin, datetime.now(UTC), "default", "/tasks/exit", "containerd.events.TaskExit", _VALUE
    )


def append(directory: str, records: int, origin: str = "bench") -> float:
    """Append ``records`` records; return the seconds it took."""
    journal = EventJournal(directory, max_size=1 << 40)
    began = time.perf_counter()
    for _ in range(records):
        journal.append(_record(origin))
    return time.perf_counter() - began


def bench_append(records: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        seconds = append(directory, records)
    print(f"append                   {records / seconds:10.0f} records/s  "
          f"{seconds / records * 1e6:6.1f} µs each")  # fmt: skip


def bench_concurrent(records: int, processes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        began = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--append-only", directory, str(records), f"p{i}"]
            )
            for i in range(processes)
        ]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit("an appender failed")
        seconds = time.perf_counter() - began  # includes interpreter start-up: a lower bound
        lines = Path(directory, "events.log").read_bytes().count(b"\n")
    assert lines == records * processes, (lines, records * processes)
    print(f"append, {processes} processes     {lines / seconds:10.0f} records/s  "
          f"(all {lines} records intact; start-up included)")  # fmt: skip


def bench_follow(records: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        journal = EventJournal(directory, max_size=1 << 40)
        follower = journal.follow()
        append(directory, records)
        began = time.perf_counter()
        got = len(follower.poll())
        seconds = time.perf_counter() - began
        follower.close()
    assert got == records
    print(f"follower parse           {records / seconds:10.0f} records/s  "
          f"{seconds / records * 1e6:6.1f} µs each")  # fmt: skip


async def bench_latency(events: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        publisher = Exchange(journal=EventJournal(directory))
        subscriber = Exchange(journal=EventJournal(directory))
        latencies = []
        async with subscriber.subscribe("/tasks/exit") as subscription:
            for _ in range(events):
                began = time.perf_counter()
                await publisher.publish(
                    "/tasks/exit", events_pb2.TaskExit(container_id="c"), namespace="default"
                )
                await subscription.get(timeout=5)
                latencies.append(time.perf_counter() - began)
                # Publish at a random phase of the poll interval, as real events do.
                await asyncio.sleep(0.013)
        await publisher.aclose()
        await subscriber.aclose()
    q = statistics.quantiles(latencies, n=100)
    print(f"cross-process latency    p50 {q[49] * 1e3:5.1f} ms  p99 {q[98] * 1e3:5.1f} ms  "
          f"(poll interval {subscriber.poll_interval * 1e3:.0f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--append-only", nargs=3, metavar=("DIR", "N", "ORIGIN"), help="internal")
    args = parser.parse_args()
    if args.append_only:
        directory, records, origin = args.append_only
        append(directory, int(records), origin)
        return
    bench_append(args.records)
    bench_concurrent(args.records, args.processes)
    bench_follow(args.records)
    asyncio.run(bench_latency(args.latency_events))


if __name__ == "__main__":
    main()
