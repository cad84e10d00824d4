"""Command-line process cost: whole ``taskplane`` processes against ``ctr``, in one run.

Run as root (``make bench`` or ``.venv/bin/python bench/cli.py``). Every figure is the median
wall time of whole processes, the two sides of a comparison interleaved run by run so that load
from other processes on the machine hits both, bytecode cached (each command runs once first):

1. ``taskplane tasks ls`` with no task next to ``ctr tasks ls`` (containerd 1.6.20),
   ``taskplane plugins ls``, ``taskplane config validate FILE`` and the Python floors
   (:func:`python_floors`): ``python -c pass`` with the venv's python and with ``-S -I`` (no
   site, so no editable-install finder), and the dependency floor, ``python -c 'import
   asyncio, attrs, pluggy, argparse, logging, sqlite3'`` (what ``tasks ls`` imports of its
   dependencies), also without asyncio and without attrs, so that the report shows what each
   costs, and what ``config validate`` (:data:`CONFIG_DEPENDENCIES`) and ``plugins ls``
   (:data:`PLUGINS_DEPENDENCIES`) import: each command is held to its own;
2. ``tasks ls`` with 50 running ``sleep`` tasks on each side;
3. ``taskplane run --rm --rootfs R ID /bin/true`` next to ``ctr run --rm`` through Debian's
   containerd 1.6.20 (its shim, runc 1.1.5) and, when ``../shared/upstream`` exists,
   containerd 2.4 (its shim, runc 1.5; taskplane names both by path), and next to
   ``bench/minimal_run.py``, the least a Python client can do for the same run with the same
   shim, runc and rootfs (the floor of ``run --rm`` in Python), a process that only starts
   Python and imports what that run imports, and the minimal run importing
   :data:`DESIGN_CARD` first (attrs, pluggy, sqlite3: the floor of any design on the design
   card, whatever else it leaves out);

then the ten most expensive imports of ``taskplane tasks ls`` (``-X importtime``, cumulative),
and for each goal of issue 13 whether it is met and, when not, which floor bounds it
(:func:`fixed_cost_verdict`, :func:`tasks_50_verdict`, :func:`run_verdict`), and the CPU
time of every figure's processes (:class:`Sample`) with the fixed-cost verdicts by CPU time.
A goal counts as met by wall time, as the issue sets it. Each containerd
runs privately (bench/lifecycle.py's references and tests/interop's PrivateContainerd) and is
stopped at the end; every task is removed, and the minimal runs are checked for anything left
behind (tests/leaks.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from lifecycle import DEBIAN, UPSTREAM, Reference, available_references  # noqa: E402

from taskplane.oci import default_spec, spec_bytes  # noqa: E402
from taskplane.rootfs import build_busybox_rootfs  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from interop.containerd import PrivateContainerd  # noqa: E402

from tests import leaks  # noqa: E402

PYTHON = sys.executable
#: The console script next to the interpreter: what users type.
SCRIPT = Path(PYTHON).parent / "taskplane"
#: Our environment, with bytecode written and read (as an installed taskplane has it): the
#: first run of each command writes what later runs read.
PY_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: The targets of issue 13 (seconds, or ratios taskplane / ctr).
TASKS_LS_TARGET = 0.060
TASKS_LS_50_TARGET = 0.150
RUN_TARGETS = {DEBIAN.label: 1.0, UPSTREAM.label: 1.3}
TASK_COUNT = 50
MINIMAL_RUN = HERE / "minimal_run.py"
#: What every boot of taskplane imports (the dependency floor).
DEPENDENCIES = ("asyncio", "attrs", "pluggy", "argparse", "logging", "sqlite3")
#: What ``config validate FILE`` imports of them, and the TOML parser (its floor).
CONFIG_DEPENDENCIES = ("attrs", "pluggy", "argparse", "tomllib")
#: What ``plugins ls`` imports of them (the metadata store connects on first use: no sqlite3).
PLUGINS_DEPENDENCIES = ("asyncio", "attrs", "pluggy", "argparse", "logging")
#: What any design on the design card must import for ``run``, whatever else it leaves out.
DESIGN_CARD = ("attrs", "pluggy", "sqlite3")
DESIGN_CARD_WHY = (
    "the design card's values and plugin registry, and the SQLite store peers share records in"
)


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


class Sample(NamedTuple):
    """One process: its wall time and its CPU time (user + system, its own and that of the
    children it waited for), in seconds. Waiting for a core and for the shim or runc is not in
    the CPU time; cache and memory contention from other processes still are (measured on the
    2-core machine: with load average 5, ``python -c pass`` took 35 ms of CPU, against 24 ms
    of wall time with load 1)."""

    wall: float
    cpu: float


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> Sample:
    """Run ``argv`` to completion; its :class:`Sample` (RuntimeError naming it when it fails)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Sample(elapsed, cpu)


def interleaved(
    runs: int, sides: Sequence[Callable[[int], Sample]]
) -> tuple[list[float], list[float]]:
    """The median wall and CPU times of ``runs`` calls of each side (the run's index passed),
    the sides taking turns run by run so that load from elsewhere hits them alike; each side
    runs once first (bytecode, page cache, lazy init)."""
    for side in sides:
        side(-1)
    samples: list[list[Sample]] = [[] for _ in sides]
    for i in range(runs):
        for side, mine in zip(sides, samples, strict=True):
            mine.append(side(i))
    walls = [statistics.median(s.wall for s in mine) for mine in samples]
    cpus = [statistics.median(s.cpu for s in mine) for mine in samples]
    return walls, cpus


@attrs.frozen
class Floors:
    """The medians of the Python floors (:func:`python_floors`), in seconds."""

    interpreter: float
    no_site: float
    dependencies: float
    without_asyncio: float
    without_attrs: float
    without_both: float
    #: Importing :data:`CONFIG_DEPENDENCIES`: what ``config validate`` must import.
    config: float | None = None
    #: Importing :data:`PLUGINS_DEPENDENCIES`: what ``plugins ls`` must import.
    plugins: float | None = None


def python_floors() -> dict[str, list[str]]:
    """The floor processes, by :class:`Floors` field: ``python -c pass``, the same with
    ``-S -I`` (no site: no ``.pth`` files, so no editable-install finder), and importing
    :data:`DEPENDENCIES`, all of them, without asyncio, without attrs and without both."""

    def importing(*names: str) -> list[str]:
        return [PYTHON, "-c", f"import {', '.join(names)}"]

    return {
        "interpreter": [PYTHON, "-c", "pass"],
        "no_site": [PYTHON, "-S", "-I", "-c", "pass"],
        "dependencies": importing(*DEPENDENCIES),
        "without_asyncio": importing(*(d for d in DEPENDENCIES if d != "asyncio")),
        "without_attrs": importing(*(d for d in DEPENDENCIES if d != "attrs")),
        "without_both": importing(*(d for d in DEPENDENCIES if d not in ("asyncio", "attrs"))),
        "config": importing(*CONFIG_DEPENDENCIES),
        "plugins": importing(*PLUGINS_DEPENDENCIES),
    }


def floor_figures(floors: Floors) -> list[Figure]:
    """The report's lines for the floors."""
    return [
        Figure("python -c pass (the floor)", floors.interpreter),
        Figure("python -S -I -c pass (no site)", floors.no_site),
        Figure("dependency floor: python -c 'import ...' (*)", floors.dependencies),
        Figure("  the same without asyncio", floors.without_asyncio),
        Figure("  the same without attrs", floors.without_attrs),
        Figure("  the same without asyncio and attrs", floors.without_both),
        *(
            []
            if floors.config is None
            else [Figure(f"  {', '.join(CONFIG_DEPENDENCIES)} (config validate's)", floors.config)]
        ),
        *(
            []
            if floors.plugins is None
            else [Figure(f"  {', '.join(PLUGINS_DEPENDENCIES)} (plugins ls')", floors.plugins)]
        ),
    ]


def ms(seconds: float) -> str:
    """``0.0954`` -> ``95 ms``."""
    return f"{seconds * 1000:.0f} ms"


def fixed_cost_verdict(
    measure: str,
    median: float,
    goal: float,
    floors: Floors,
    *,
    asyncio: bool = True,
    plugins: bool = False,
) -> str:
    """Whether a command met its goal (seconds) and, when not, whether the Python floors
    measured in the same run leave room for it. A command that imports no asyncio
    (``asyncio=False``: ``config validate``) is held to what it imports,
    :data:`CONFIG_DEPENDENCIES` (the dependencies without asyncio when that was not
    measured); ``plugins ls`` (``plugins=True``) to :data:`PLUGINS_DEPENDENCIES` when
    measured."""
    head = f"{measure}: {ms(median)}, goal <= {ms(goal)}"
    own_floor = floors.without_asyncio if floors.config is None else floors.config
    floor = floors.dependencies if asyncio else own_floor
    if asyncio and plugins and floors.plugins is not None:
        floor = floors.plugins
    deps = (
        f"the dependency floor ({', '.join(DEPENDENCIES)}) is {ms(floors.dependencies)}; "
        f"asyncio costs {ms(floors.dependencies - floors.without_asyncio)} of it, attrs "
        f"{ms(floors.dependencies - floors.without_attrs)}; the interpreter alone "
        f"{ms(floors.interpreter)} ({ms(floors.no_site)} without site)"
    )
    if not asyncio:
        what = (
            "the dependencies without asyncio"
            if floors.config is None
            else f"importing {', '.join(CONFIG_DEPENDENCIES)}"
        )
        deps += f"; {measure} imports no asyncio, so its floor is {what}, {ms(floor)}"
    elif floor != floors.dependencies:
        deps += (
            f"; {measure} imports no sqlite3, so its floor is importing "
            f"{', '.join(PLUGINS_DEPENDENCIES)}, {ms(floor)}"
        )
    own = median - floor
    if median <= goal:
        return f"{head}: met ({deps})."
    if floor > goal:
        cheaper = [
            f"{name} ({ms(value)})"
            for name, value in (
                ("without asyncio", floors.without_asyncio),
                ("without attrs", floors.without_attrs),
                ("without asyncio and attrs", floors.without_both),
            )
            if value <= goal and (asyncio or name != "without asyncio")
        ]
        reach = (
            f"the floor is under the goal only {' or '.join(cheaper)}"
            if cheaper
            else "not even without asyncio and attrs "
            f"({ms(floors.without_both)}) is the floor under the goal"
        )
        return (
            f"{head}: MISSED, and below the floor: {deps}; {reach}. "
            f"taskplane's own work above the floor: {ms(own)}."
        )
    return (
        f"{head}: MISSED, but above the floor: {deps}, which leaves "
        f"{ms(goal - floor)} for taskplane's own work; it takes {ms(own)}."
    )


def tasks_50_verdict(full: float, empty: float, goal: float, count: int = TASK_COUNT) -> str:
    """Whether ``tasks ls`` with ``count`` running tasks met its goal, against the same
    command with no task (its floor)."""
    head = f"tasks ls, {count} running tasks: {ms(full)}, goal <= {ms(goal)}"
    per_task = (full - empty) / count * 1000
    cost = (
        f"with no task it takes {ms(empty)}, so the tasks cost {ms(full - empty)} "
        f"({per_task:.1f} ms each)"
    )
    if full <= goal:
        return f"{head}: met ({cost})."
    if empty > goal:
        return f"{head}: MISSED, and below the floor: {cost}."
    left = (goal - empty) / count * 1000
    return f"{head}: MISSED: {cost}; the goal leaves {left:.1f} ms per task."


def run_verdict(
    label: str,
    tp: float,
    ctr: float,
    minimal: float,
    imports: float,
    limit: float,
    *,
    design: float | None = None,
) -> str:
    """Whether ``run --rm`` met its goal (``limit`` times ctr's) and, when not, whether the
    minimal Python run (bench/minimal_run.py, same shim, runc and rootfs; ``imports``: a
    process that only starts Python and imports what it uses) leaves room for it, and
    ``design``, the same run importing :data:`DESIGN_CARD` first, too."""
    head = (
        f"run --rm vs ctr ({label}): {ms(tp)}, {tp / ctr:.2f}x ctr's {ms(ctr)}, "
        f"goal <= {limit:.1f}x ({ms(limit * ctr)})"
    )
    floor = (
        f"the minimal Python run takes {ms(minimal)}, {minimal / ctr:.2f}x ctr's (starting "
        f"Python and importing what it uses: {ms(imports)}; the rest, {ms(minimal - imports)}, "
        "is the shim, runc and the protocol)"
    )
    if design is not None:
        floor += (
            f", and {ms(design)}, {design / ctr:.2f}x ctr's, when it imports "
            f"{', '.join(DESIGN_CARD)} first ({DESIGN_CARD_WHY})"
        )
    if tp <= limit * ctr:
        return f"{head}: met ({floor})."
    if minimal > limit * ctr:
        return (
            f"{head}: MISSED, and below the floor: {floor}; taskplane's own work above "
            f"it: {ms(tp - minimal)}."
        )
    if design is not None and design > limit * ctr:
        return (
            f"{head}: MISSED, and below the floor of the design: {floor}; taskplane's own "
            f"work above that: {ms(tp - design)}."
        )
    lowest = minimal if design is None else design
    return (
        f"{head}: MISSED, but above the floor: {floor}, which leaves "
        f"{ms(limit * ctr - lowest)} for taskplane's own work; it takes {ms(tp - lowest)}."
    )


@attrs.frozen
class Taskplane:
    """``taskplane`` on a private root and state: timed as users run it, the console script
    (:data:`SCRIPT`, without ``runpy``'s imports), else ``python -m taskplane``."""

    root: Path
    state: Path
    namespace: str

    def argv(self, *args: str) -> list[str]:
        """``python -m taskplane ARGS``, for what is not timed."""
        return [PYTHON, "-m", "taskplane", *self.options(), *args]

    def options(self) -> list[str]:
        return ["--root", str(self.root), "--state", str(self.state), "--namespace", self.namespace]

    def __call__(self, *args: str) -> Sample:
        command = [str(SCRIPT)] if SCRIPT.exists() else [PYTHON, "-m", "taskplane"]
        return timed([*command, *self.options(), *args], PY_ENV)


def top_imports(tp: Taskplane, count: int = 10) -> list[tuple[int, int, str]]:
    """The ``count`` imports of ``taskplane tasks ls`` with the most cumulative time (µs)."""
    # The console script as a file (what users run: the same sys.path, so the same entry
    # point cache); python -m from the checkout would see its egg-info and scan.
    command = [str(SCRIPT)] if SCRIPT.exists() else ["-m", "taskplane"]
    result = subprocess.run(
        [PYTHON, "-X", "importtime", *command, *tp.options(), "tasks", "ls"],
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


@attrs.frozen
class FixedCost:
    """What a command costs before it has anything to do: taskplane's commands with no task
    and the Python floors, measured interleaved (seconds)."""

    tasks_ls: float
    ctr_tasks_ls: float
    plugins_ls: float
    config_validate: float
    floors: Floors

    def figures(self) -> list[Figure]:
        goal = f"<= {ms(TASKS_LS_TARGET)}"
        return [
            *floor_figures(self.floors),
            Figure(
                "tasks ls, no task (vs ctr tasks ls)",
                self.tasks_ls,
                self.ctr_tasks_ls,
                goal,
                self.tasks_ls <= TASKS_LS_TARGET,
            ),
            Figure("plugins ls", self.plugins_ls, None, goal, self.plugins_ls <= TASKS_LS_TARGET),
            Figure(
                "config validate",
                self.config_validate,
                None,
                goal,
                self.config_validate <= TASKS_LS_TARGET,
            ),
        ]

    def verdicts(self) -> list[str]:
        return [
            fixed_cost_verdict(
                name,
                median,
                TASKS_LS_TARGET,
                self.floors,
                asyncio=name != "config validate",
                plugins=name == "plugins ls",
            )
            for name, median in (
                ("tasks ls, no task", self.tasks_ls),
                ("plugins ls", self.plugins_ls),
                ("config validate", self.config_validate),
            )
        ]


@attrs.frozen
class Measured:
    """What :func:`tasks_ls_figures` measured: wall and CPU times of the fixed costs, of
    ``tasks ls`` with :data:`TASK_COUNT` tasks, and the latter's verdict."""

    fixed: FixedCost
    fixed_cpu: FixedCost
    full: Figure
    full_cpu: Figure
    full_verdict: str


def tasks_ls_figures(base: Path, rootfs: Path, config: Path, runs: int, tp: Taskplane) -> Measured:
    """``tasks ls`` with no task (interleaved with ``plugins ls``, ``config validate`` and the
    Python floors) and with :data:`TASK_COUNT` running tasks, both sides."""
    containerd = PrivateContainerd(
        base, containerd=DEBIAN.containerd, ctr=DEBIAN.ctr, config_version=DEBIAN.config_version
    )
    namespace = f"bench-ls-{uuid.uuid4().hex[:6]}"
    started: list[str] = []
    try:
        containerd.start()
        env = containerd.env()
        ls_argv = containerd.ctr_argv(namespace, "tasks", "ls")

        def ctr_ls(_: int) -> Sample:
            return timed(ls_argv, env)

        def command(*args: str) -> Callable[[int], Sample]:
            return lambda _: tp(*args)

        def process(argv: list[str]) -> Callable[[int], Sample]:
            return lambda _: timed(argv, PY_ENV)

        floor_argv = python_floors()
        medians, cpus = interleaved(
            runs,
            [
                command("tasks", "ls"),
                ctr_ls,
                command("plugins", "ls"),
                command("config", "validate", str(config)),
                *(process(argv) for argv in floor_argv.values()),
            ],
        )
        fixed, fixed_cpu = (
            FixedCost(v[0], v[1], v[2], v[3], Floors(**dict(zip(floor_argv, v[4:], strict=True))))
            for v in (medians, cpus)
        )
        for i in range(TASK_COUNT):
            task_id = f"ls{i}"
            tp("run", "-d", "--rootfs", str(rootfs), task_id, "/bin/sleep", "600")
            started.append(task_id)
            containerd.ctr_run(
                namespace, "run", "-d", "--rootfs", str(rootfs), task_id, "/bin/sleep", "600"
            )
        (full_tp, full_ctr), (full_tp_cpu, full_ctr_cpu) = interleaved(
            runs, [command("tasks", "ls"), ctr_ls]
        )
    finally:
        for task_id in started:
            subprocess.run(
                tp.argv("tasks", "rm", "--force", task_id), capture_output=True, env=PY_ENV
            )
            for argv in (("tasks", "rm", "-f", task_id), ("containers", "rm", task_id)):
                subprocess.run(containerd.ctr_argv(namespace, *argv), capture_output=True)
        containerd.stop()
        shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
    name = f"tasks ls, {TASK_COUNT} running tasks (vs ctr)"
    goal = f"<= {ms(TASKS_LS_50_TARGET)}"
    return Measured(
        fixed,
        fixed_cpu,
        Figure(name, full_tp, full_ctr, goal, full_tp <= TASKS_LS_50_TARGET),
        Figure(name, full_tp_cpu, full_ctr_cpu),
        tasks_50_verdict(full_tp, fixed.tasks_ls, TASKS_LS_50_TARGET),
    )


@attrs.frozen
class RunFigures:
    """``run --rm`` through one reference: taskplane's, ctr's and the minimal run's medians."""

    reference: Reference
    taskplane: float
    ctr: float
    minimal: float
    #: A process that only starts Python and imports what the minimal run imports.
    minimal_imports: float
    #: What the minimal runs left behind (tests/leaks.py's words); nothing, when they work.
    leaks: tuple[str, ...] = ()
    #: The minimal run importing :data:`DESIGN_CARD` first.
    minimal_design: float | None = None

    @property
    def limit(self) -> float:
        return RUN_TARGETS[self.reference.label]

    @property
    def name(self) -> str:
        return self.reference.label.split(" (")[0]

    def figures(self) -> list[Figure]:
        return [
            Figure(
                f"run --rm /bin/true vs ctr ({self.name})",
                self.taskplane,
                self.ctr,
                f"<= {self.limit:.1f}x",
                self.taskplane / self.ctr <= self.limit,
            ),
            Figure(f"  minimal Python run --rm vs ctr ({self.name})", self.minimal, self.ctr),
            Figure("    its Python start and imports alone", self.minimal_imports),
            *(
                []
                if self.minimal_design is None
                else [
                    Figure(
                        f"    the same importing {', '.join(DESIGN_CARD)} first",
                        self.minimal_design,
                        self.ctr,
                    )
                ]
            ),
        ]

    def verdict(self) -> str:
        line = run_verdict(
            self.name,
            self.taskplane,
            self.ctr,
            self.minimal,
            self.minimal_imports,
            self.limit,
            design=self.minimal_design,
        )
        if self.leaks:
            line += f" THE MINIMAL RUNS LEFT BEHIND: {'; '.join(self.leaks)}."
        return line


def minimal_run(
    reference: Reference,
    base: Path,
    namespace: str,
    rootfs: Path,
    spec: Path,
    *,
    prefix: str = "min",
    preload: Sequence[str] = (),
) -> Callable[[int], Sample]:
    """One timed ``bench/minimal_run.py`` process per call (task ``<prefix><i + 1>``), with
    ``reference``'s shim and runc, in ``namespace`` and the state dir ``base/state``,
    importing ``preload`` first."""
    upstream = reference.label == UPSTREAM.label
    argv = [
        PYTHON,
        str(MINIMAL_RUN),
        "--state", str(base / "state"),
        "--namespace", namespace,
        "--spec", str(spec),
        "--rootfs", str(rootfs),
        "--shim", reference.runtime if upstream else "containerd-shim-runc-v2",
        *(["--runc", reference.runc] if reference.runc else []),
        *(["--bootstrap"] if upstream else []),
        *(["--preload", ",".join(preload)] if preload else []),
    ]  # fmt: skip
    return lambda i: timed([*argv, f"{prefix}{i + 1}"], PY_ENV)


def left_behind(scope: leaks.Scope) -> tuple[str, ...]:
    """What ``scope``'s runs left behind (processes, shim sockets, bundles, runc state,
    cgroups, mounts), removed once found."""
    found = leaks.find_leaks(scope)
    leaks.clean(found, scope)
    return tuple(str(leak) for leak in found)


def run_figures(
    reference: Reference, base: Path, rootfs: Path, spec: Path, runs: int, tp: Taskplane
) -> tuple[RunFigures, RunFigures]:
    """``taskplane run --rm`` against ``ctr run --rm`` through ``reference``'s containerd and
    against the minimal Python run and its imports alone, interleaved: wall times, then CPU
    times."""
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
    minimal_base = base / "minimal"
    minimal_base.mkdir(parents=True)
    minimal_ns = f"bench-min-{uuid.uuid4().hex[:6]}"
    ids = {f"{prefix}{i}" for prefix in ("min", "dmin") for i in range(runs + 1)}
    scope = leaks.Scope(
        namespace=minimal_ns,
        base=minimal_base,
        grpc_address=str(minimal_base / "state" / "minimal.sock"),
        ids=ids,
        bundles={minimal_base / "state" / minimal_ns / i for i in ids},
    )
    try:
        containerd.start()
        ctr_env = containerd.env()

        def mine(i: int) -> Sample:
            return tp("run", "--rm", *extra, "--rootfs", str(rootfs), f"tp{i + 1}", "/bin/true")

        def theirs(i: int) -> Sample:
            argv = containerd.ctr_argv(
                namespace, "run", "--rm", "--rootfs", str(rootfs), f"ctr{i + 1}", "/bin/true"
            )
            return timed(argv, ctr_env)

        imports = [
            PYTHON,
            "-c",
            f"import sys; sys.path.insert(0, {str(HERE)!r}); import minimal_run",
        ]
        medians, cpus = interleaved(
            runs,
            [
                mine,
                theirs,
                minimal_run(reference, minimal_base, minimal_ns, rootfs, spec),
                lambda _: timed(imports, PY_ENV),
                minimal_run(
                    reference,
                    minimal_base,
                    minimal_ns,
                    rootfs,
                    spec,
                    prefix="dmin",
                    preload=DESIGN_CARD,
                ),
            ],
        )
    finally:
        containerd.stop()
        shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
    return (
        RunFigures(
            reference,
            *medians[:4],
            leaks=left_behind(scope),
            minimal_design=medians[4],
        ),
        RunFigures(reference, cpus[0], cpus[1], cpus[2], cpus[3], minimal_design=cpus[4]),
    )


def write_spec(path: Path, rootfs: Path) -> Path:
    """The OCI spec ``taskplane run --rootfs ROOTFS ID /bin/true`` uses (taskplane's oci
    module), for the minimal runs (each sets its own hostname and cgroup)."""
    path.write_bytes(spec_bytes(default_spec("minimal", rootfs=rootfs, args=["/bin/true"])))
    return path


def table(figures: Sequence[Figure], goals: bool = True) -> None:
    """Print ``figures`` as rows of the report's table (with their targets when ``goals``)."""
    print(
        f"{'measure':<52}{'taskplane':>11}{'other':>11}{'ratio':>8}" + ("  target" if goals else "")
    )
    for f in figures:
        other = f"{f.other:>11.4f}" if f.other is not None else f"{'':>11}"
        ratio = f"{f.ratio:>8.2f}" if f.ratio is not None else f"{'':>8}"
        mark = "" if f.met else "  MISSED"
        target = f"  {f.target}{mark}" if goals else ""
        print(f"{f.measure:<52}{f.taskplane:>11.4f}{other}{ratio}{target}")


def report(
    figures: Sequence[Figure],
    imports: Sequence[tuple[int, int, str]],
    verdicts: Sequence[str],
    cpu_figures: Sequence[Figure] = (),
    cpu_verdicts: Sequence[str] = (),
) -> bool:
    """Print the table, the imports, the verdicts and the same by CPU time; whether every goal
    was met (by wall time, as the goals are set)."""
    table(figures)
    print(f"(*) the dependency floor imports {', '.join(DEPENDENCIES)}")
    print("\nthe ten most expensive imports of 'taskplane tasks ls' (cumulative, self; ms):")
    for cumulative, own, name in imports:
        print(f"  {cumulative / 1000:>8.1f} {own / 1000:>8.1f}  {name.strip()}")
    print("\nthe goals of issue 13, against the floors measured in the same run:")
    for line in verdicts:
        print(f"- {line}")
    if cpu_figures:
        print(
            "\nCPU time (user + system of each process and the children it waited for) of the "
            "same runs, median: what is left when waiting for a core, the shim and runc is "
            "taken out:"
        )
        table(cpu_figures, goals=False)
    if cpu_verdicts:
        print("\nthe fixed-cost goals by CPU time:")
        for line in cpu_verdicts:
            print(f"- {line}")
    ok = all(f.met for f in figures)
    print("targets met" if ok else "TARGETS MISSED")
    return ok


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
        spec = write_spec(base / "spec.json", rootfs)
        tp = Taskplane(base / "r", base / "s", f"bench-{uuid.uuid4().hex[:6]}")
        ls = tasks_ls_figures(base / "ls", rootfs, config, args.runs, tp)
        figures = [*ls.fixed.figures(), ls.full]
        cpu_figures = [*ls.fixed_cpu.figures(), ls.full_cpu]
        verdicts = [*ls.fixed.verdicts(), ls.full_verdict]
        clean = True
        for i, reference in enumerate(references):
            run, run_cpu = run_figures(reference, base / f"c{i}", rootfs, spec, args.runs, tp)
            figures += run.figures()
            cpu_figures += run_cpu.figures()
            verdicts.append(run.verdict())
            clean = clean and not run.leaks
        met = report(figures, top_imports(tp), verdicts, cpu_figures, ls.fixed_cpu.verdicts())
        return 0 if met and clean else 1
    finally:
        subprocess.run(["umount", "-R", str(base)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
