"""Command-line process cost: whole ``taskplane`` processes against ``ctr``, in one run.

Run as root (``make bench`` or ``.venv/bin/python bench/cli.py``). Every figure is the median
wall time of whole processes, the two sides of a comparison interleaved run by run so that load
from other processes on the machine hits both, bytecode cached (each command runs once first):

1. ``python -c pass`` (the interpreter's own start, the floor);
2. ``taskplane tasks ls`` with no task next to ``ctr tasks ls`` (containerd 1.6.20), and with
   50 running ``sleep`` tasks on each side;
3. ``taskplane plugins ls`` and ``taskplane config validate FILE``;
4. ``taskplane run --rm --rootfs R ID /bin/true`` next to ``ctr run --rm`` through Debian's
   containerd 1.6.20 (its shim, runc 1.1.5) and, when ``../shared/upstream`` exists,
   containerd 2.4 (its shim, runc 1.5; taskplane names both by path);

then the ten most expensive imports of ``taskplane tasks ls`` (``-X importtime``, cumulative).
Each containerd runs privately (bench/lifecycle.py's references and tests/interop's
PrivateContainerd) and is stopped at the end; every task is removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from lifecycle import DEBIAN, UPSTREAM, Reference, available_references  # noqa: E402

from taskplane.rootfs import build_busybox_rootfs  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from interop.containerd import PrivateContainerd  # noqa: E402

PYTHON = sys.executable
#: Our environment, with bytecode written and read (as an installed taskplane has it): the
#: first run of each command writes what later runs read.
PY_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: The targets of issue 13 (seconds, or ratios taskplane / ctr).
TASKS_LS_TARGET = 0.060
TASKS_LS_50_TARGET = 0.150
RUN_TARGETS = {DEBIAN.label: 1.0, UPSTREAM.label: 1.3}
TASK_COUNT = 50


@attrs.frozen
class Figure:
    """One line of the report: a measure, taskplane's median and what it is compared with."""

    measure: str
    taskplane: float
    other: float | None = None
    target: str = ""
    met: bool = True

    @property
    def ratio(self) -> float | None:
        return self.taskplane / self.other if self.other else None


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run ``argv`` to completion; its wall time (RuntimeError naming it when it fails)."""
    began = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return elapsed


def paired(
    runs: int, first: Callable[[int], float], second: Callable[[int], float] | None = None
) -> tuple[float, float | None]:
    """Medians of ``runs`` calls of each side (the run's index passed), interleaved."""
    first(-1)  # warm: bytecode, page cache, lazy init
    if second is not None:
        second(-1)
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(runs):
        mine.append(first(i))
        if second is not None:
            theirs.append(second(i))
    return statistics.median(mine), statistics.median(theirs) if theirs else None


@attrs.frozen
class Taskplane:
    """``python -m taskplane`` on a private root and state."""

    root: Path
    state: Path
    namespace: str

    def argv(self, *args: str) -> list[str]:
        return [
            PYTHON,
            "-m",
            "taskplane",
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            "--namespace",
            self.namespace,
            *args,
        ]

    def __call__(self, *args: str) -> float:
        return timed(self.argv(*args), PY_ENV)


def top_imports(tp: Taskplane, count: int = 10) -> list[tuple[int, int, str]]:
    """The ``count`` imports of ``taskplane tasks ls`` with the most cumulative time (µs)."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", *tp.argv("tasks", "ls")[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=PY_ENV,
    )
    rows = []
    for line in result.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def run_figure(reference: Reference, base: Path, rootfs: Path, runs: int, tp: Taskplane) -> Figure:
    """``taskplane run --rm`` against ``ctr run --rm`` through ``reference``'s containerd."""
    containerd = PrivateContainerd(
        base,
        containerd=reference.containerd,
        ctr=reference.ctr,
        config_version=reference.config_version,
        path_prefix=reference.path_prefix,
    )
    namespace = f"bench-cli-{uuid.uuid4().hex[:6]}"
    extra = [] if reference.runtime == DEBIAN.runtime else ["--runtime", reference.runtime]
    extra += ["--runc-binary", reference.runc] if reference.runc else []
    try:
        containerd.start()
        ctr_env = containerd.env()

        def mine(i: int) -> float:
            return tp("run", "--rm", *extra, "--rootfs", str(rootfs), f"tp{i + 1}", "/bin/true")

        def theirs(i: int) -> float:
            argv = containerd.ctr_argv(
                namespace, "run", "--rm", "--rootfs", str(rootfs), f"ctr{i + 1}", "/bin/true"
            )
            return timed(argv, ctr_env)

        tp_median, ctr_median = paired(runs, mine, theirs)
    finally:
        containerd.stop()
        shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
    assert ctr_median is not None
    limit = RUN_TARGETS[reference.label]
    return Figure(
        f"run --rm /bin/true vs ctr ({reference.label.split(' (')[0]})",
        tp_median,
        ctr_median,
        f"<= {limit:.1f}x",
        tp_median / ctr_median <= limit,
    )


def tasks_ls_figures(base: Path, rootfs: Path, runs: int, tp: Taskplane) -> list[Figure]:
    """``tasks ls`` with no task and with :data:`TASK_COUNT` running tasks, both sides."""
    containerd = PrivateContainerd(
        base, containerd=DEBIAN.containerd, ctr=DEBIAN.ctr, config_version=DEBIAN.config_version
    )
    namespace = f"bench-ls-{uuid.uuid4().hex[:6]}"
    started: list[str] = []
    try:
        containerd.start()
        env = containerd.env()
        ls_argv = containerd.ctr_argv(namespace, "tasks", "ls")

        def ctr_ls(_: int) -> float:
            return timed(ls_argv, env)

        def tp_ls(_: int) -> float:
            return tp("tasks", "ls")

        empty_tp, empty_ctr = paired(runs, tp_ls, ctr_ls)
        for i in range(TASK_COUNT):
            task_id = f"ls{i}"
            tp("run", "-d", "--rootfs", str(rootfs), task_id, "/bin/sleep", "600")
            started.append(task_id)
            containerd.ctr_run(
                namespace, "run", "-d", "--rootfs", str(rootfs), task_id, "/bin/sleep", "600"
            )
        full_tp, full_ctr = paired(runs, tp_ls, ctr_ls)
    finally:
        for task_id in started:
            subprocess.run(
                tp.argv("tasks", "rm", "--force", task_id), capture_output=True, env=PY_ENV
            )
            for argv in (("tasks", "rm", "-f", task_id), ("containers", "rm", task_id)):
                subprocess.run(containerd.ctr_argv(namespace, *argv), capture_output=True)
        containerd.stop()
        shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
    return [
        Figure(
            "tasks ls, no task (vs ctr tasks ls)",
            empty_tp,
            empty_ctr,
            f"<= {TASKS_LS_TARGET * 1000:.0f} ms",
            empty_tp <= TASKS_LS_TARGET,
        ),
        Figure(
            f"tasks ls, {TASK_COUNT} running tasks (vs ctr)",
            full_tp,
            full_ctr,
            f"<= {TASKS_LS_50_TARGET * 1000:.0f} ms",
            full_tp <= TASKS_LS_50_TARGET,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per side and measure")
    args = parser.parse_args()
    references = available_references("bench/cli.py")
    if references is None:
        return 2

    base = Path(tempfile.mkdtemp(prefix="tpc", dir="/tmp"))
    try:
        rootfs = build_busybox_rootfs(base / "rootfs")
        config = base / "config.toml"
        config.write_text("version = 3\n")
        tp = Taskplane(base / "r", base / "s", f"bench-{uuid.uuid4().hex[:6]}")
        floor, _ = paired(args.runs, lambda _: timed([PYTHON, "-c", "pass"], PY_ENV))
        figures = [Figure("python -c pass (the floor)", floor)]
        figures += tasks_ls_figures(base / "ls", rootfs, args.runs, tp)
        for name, command in (
            ("plugins ls", ("plugins", "ls")),
            ("config validate", ("config", "validate", str(config))),
        ):
            median, _ = paired(args.runs, lambda _, c=command: tp(*c))  # type: ignore[misc]
            figures.append(
                Figure(
                    name,
                    median,
                    None,
                    f"<= {TASKS_LS_TARGET * 1000:.0f} ms",
                    median <= TASKS_LS_TARGET,
                )
            )
        for i, reference in enumerate(references):
            figures.append(run_figure(reference, base / f"c{i}", rootfs, args.runs, tp))
        imports = top_imports(tp)

        print(f"{'measure':<52}{'taskplane':>11}{'other':>11}{'ratio':>8}  target")
        for f in figures:
            other = f"{f.other:>11.4f}" if f.other is not None else f"{'':>11}"
            ratio = f"{f.ratio:>8.2f}" if f.ratio is not None else f"{'':>8}"
            mark = "" if f.met else "  MISSED"
            print(f"{f.measure:<52}{f.taskplane:>11.4f}{other}{ratio}  {f.target}{mark}")
        print("\nthe ten most expensive imports of 'taskplane tasks ls' (cumulative, self; ms):")
        for cumulative, own, name in imports:
            print(f"  {cumulative / 1000:>8.1f} {own / 1000:>8.1f}  {name.strip()}")
        ok = all(f.met for f in figures)
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1
    finally:
        subprocess.run(["umount", "-R", str(base)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
