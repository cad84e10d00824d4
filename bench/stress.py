"""Peers on one state dir under stress: many ``taskplane`` processes, same-id races, SIGKILLs.

Run as root (``.venv/bin/python bench/stress.py``; counts are arguments). Three scenarios, each
on its own fresh state dir, with real ``python -m taskplane`` processes, the runc shim, runc and
a busybox rootfs:

1. ``--runs`` ``taskplane run --rm`` over ``--workers`` concurrent workers: every exit status and
   output must be the task's own (task ``i`` prints ``out-i`` and exits ``i % 200``);
2. ``--races`` same-id races: two ``run`` of one id at once (alternately ``--rm`` and ``-d``):
   exactly one winner, the loser's error names the id, the winner's output (``--rm``) or log
   (``-d``, read with ``tasks wait`` + ``tasks logs``) intact;
3. ``--kills`` ``run --rm`` SIGKILLed at a random moment (0-1.5 s after it starts, so every
   step of create, start, wait and delete gets hit), each followed by ``tasks rm --force``.

After each scenario every task it used is checked for leftovers (shim, socket, bundle, work
dir, io dir, lifecycle step, record, runc state, cgroup, mount: ``tests/cli/peer_checks.py``).
Prints one line per scenario and exits 1 if any failure or leak was seen. ``make test`` runs a
small count of the same code (``tests/cli/test_stress_bench.py``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from cli.conftest import Taskplane, base_env  # noqa: E402
from cli.peer_checks import remains  # noqa: E402

from taskplane.rootfs import build_busybox_rootfs  # noqa: E402

NS = "default"


class StateDir(Taskplane):
    """A private root/state pair and the ``taskplane`` command line on it (the CLI tests'
    runner: ``sd(*args)`` runs, ``sd.popen(*args)`` starts)."""

    @classmethod
    def under(cls, base: Path, name: str) -> StateDir:
        return cls(root=base / f"{name}r", state=base / f"{name}s", cwd=base, env=base_env())

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self(*args, timeout=120)

    def leaks(self, ids: list[str]) -> list[str]:
        return [f"{i}: {what}" for i in ids for what in remains(self.root, self.state, NS, i)]


def many_runs(
    sd: StateDir, rootfs: Path, runs: int, workers: int
) -> tuple[int, list[str], list[str]]:
    prefix = f"r{uuid.uuid4().hex[:6]}"

    def one(i: int) -> str:
        res = sd.run(
            "run",
            "--rm",
            "--rootfs",
            str(rootfs),
            f"{prefix}-{i}",
            "--",
            "sh",
            "-c",
            f"echo out-{i}; exit {i % 200}",
        )
        if res.returncode != i % 200 or res.stdout != f"out-{i}\n":
            return (
                f"run {i}: exit {res.returncode}, stdout {res.stdout!r}, "
                f"stderr {res.stderr.strip()!r}"
            )
        return ""

    with ThreadPoolExecutor(workers) as pool:
        failures = [f for f in pool.map(one, range(runs)) if f]
    return runs, failures, sd.leaks([f"{prefix}-{i}" for i in range(runs)])


def races(sd: StateDir, rootfs: Path, rounds: int) -> tuple[int, list[str], list[str]]:
    failures: list[str] = []
    ids = []
    for n in range(rounds):
        task_id = f"same{n}-{uuid.uuid4().hex[:6]}"
        ids.append(task_id)
        detach = n % 2 == 1
        cmd = [
            "run",
            "-d" if detach else "--rm",
            "--rootfs",
            str(rootfs),
            task_id,
            "--",
            "sh",
            "-c",
            f"echo won-{n}; sleep 1; exit 3",
        ]
        procs = [sd.popen(*cmd) for _ in range(2)]
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                err = f"hung for 120 s (killed): {err}"
            results.append((p.returncode, out, err))
        winning_code = 0 if detach else 3
        winners = [r for r in results if r[0] == winning_code]
        losers = [r for r in results if r[0] != winning_code]
        if len(winners) != 1 or len(losers) != 1:
            failures.append(
                f"race {n}: exits {[r[0] for r in results]}: {[r[2].strip() for r in results]}"
            )
            sd.run("tasks", "rm", "--force", task_id)
            continue
        loser_err = losers[0][2]
        if (
            losers[0][0] != 1
            or f'"{task_id}"' not in loser_err
            or "already in use" not in loser_err
        ):
            failures.append(f"race {n}: loser exit {losers[0][0]}: {loser_err.strip()!r}")
        if detach:
            waited = sd.run("tasks", "wait", task_id)
            logs = sd.run("tasks", "logs", task_id)
            if waited.stdout.strip() != "3" or logs.stdout != f"won-{n}\n":
                failures.append(
                    f"race {n}: wait {waited.stdout!r}, logs {logs.stdout!r} {logs.stderr!r}"
                )
            rm = sd.run("tasks", "rm", task_id)
            if rm.returncode != 0:
                failures.append(f"race {n}: rm: {rm.stderr.strip()}")
        elif winners[0][1] != f"won-{n}\n":
            failures.append(f"race {n}: winner's output {winners[0][1]!r}")
    return rounds, failures, sd.leaks(ids)


def kills(
    sd: StateDir, rootfs: Path, count: int, workers: int, seed: int
) -> tuple[int, list[str], list[str]]:
    rng = random.Random(seed)
    delays = [rng.uniform(0.0, 1.5) for _ in range(count)]
    prefix = f"k{uuid.uuid4().hex[:6]}"

    def one(i: int) -> str:
        task_id = f"{prefix}-{i}"
        proc = sd.popen(
            "run", "--rm", "--rootfs", str(rootfs), task_id, "--", "sh", "-c", "echo hi; sleep 1"
        )
        time.sleep(delays[i])  # the random moment: this is a stress bench, not a test
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        rm = sd.run("tasks", "rm", "--force", task_id)
        if rm.returncode != 0 and "no container or task" not in rm.stderr:
            return f"kill {i} after {delays[i]:.2f}s: rm --force: {rm.stderr.strip()}"
        return ""

    with ThreadPoolExecutor(workers) as pool:
        failures = [f for f in pool.map(one, range(count)) if f]
    return count, failures, sd.leaks([f"{prefix}-{i}" for i in range(count)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--races", type=int, default=50)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--kill-workers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/stress.py must run as root (it runs real containers)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="tps", dir="/tmp"))
    bad = False
    try:
        rootfs = build_busybox_rootfs(base / "rootfs")
        scenarios = [
            (
                "run --rm",
                lambda: many_runs(StateDir.under(base, "a"), rootfs, args.runs, args.workers),
                f"{args.workers} workers",
            ),
            (
                "same-id race",
                lambda: races(StateDir.under(base, "b"), rootfs, args.races),
                "2 processes per id",
            ),
            (
                "SIGKILL of run + rm --force",
                lambda: kills(
                    StateDir.under(base, "c"), rootfs, args.kills, args.kill_workers, args.seed
                ),
                f"{args.kill_workers} at a time",
            ),
        ]
        for name, scenario, how in scenarios:
            started = time.monotonic()
            count, failures, leaks = scenario()
            elapsed = time.monotonic() - started
            print(
                f"{name}: {count} ({how}) in {elapsed:.1f} s, "
                f"{len(failures)} failures, {len(leaks)} leaks"
            )
            for problem in (failures + leaks)[:10]:
                print(f"  {problem}")
            bad = bad or bool(failures or leaks)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
