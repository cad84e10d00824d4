"""``bench/cli.py``'s report (no timing): every figure and every goal's verdict is printed, and a
missed goal names the floor measured in the same run that bounds it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cli", REPO / "bench" / "cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs resolves the classes' annotations through it
    spec.loader.exec_module(module)
    return module


cli = _load_bench()
#: interpreter 24 ms (10 without site), dependencies 70 ms: 50 without asyncio, 65 without attrs,
#: 45 without both.
FLOORS = cli.Floors(0.024, 0.010, 0.070, 0.050, 0.065, 0.045)


def test_a_goal_below_the_dependency_floor_says_so_and_what_is_taskplanes_own() -> None:
    line = cli.fixed_cost_verdict("tasks ls, no task", 0.095, 0.060, FLOORS)
    assert line.startswith("tasks ls, no task: 95 ms, goal <= 60 ms: MISSED, and below the floor")
    assert (
        "the dependency floor (asyncio, attrs, pluggy, argparse, logging, sqlite3) is 70 ms" in line
    )
    assert "asyncio costs 20 ms of it, attrs 5 ms" in line
    assert "the interpreter alone 24 ms (10 ms without site)" in line
    assert (
        "the floor is under the goal only without asyncio (50 ms) or without asyncio and attrs "
        "(45 ms)" in line
    )
    assert line.endswith("taskplane's own work above the floor: 25 ms.")


def test_a_goal_below_every_floor_says_so() -> None:
    floors = cli.Floors(0.030, 0.010, 0.120, 0.080, 0.090, 0.065)
    line = cli.fixed_cost_verdict("tasks ls, no task", 0.150, 0.060, floors)
    assert "; not even without asyncio and attrs (65 ms) is the floor under the goal." in line


def test_a_goal_above_the_dependency_floor_says_how_much_room_is_left() -> None:
    floors = cli.Floors(0.024, 0.010, 0.045, 0.030, 0.040, 0.025)
    line = cli.fixed_cost_verdict("plugins ls", 0.080, 0.060, floors)
    assert "plugins ls: 80 ms, goal <= 60 ms: MISSED, but above the floor" in line
    assert line.endswith("which leaves 15 ms for taskplane's own work; it takes 35 ms.")


def test_a_command_without_asyncio_is_held_to_the_floor_without_asyncio() -> None:
    line = cli.fixed_cost_verdict("config validate", 0.071, 0.060, FLOORS, asyncio=False)
    assert "config validate imports no asyncio, so its floor is the dependencies without " in line
    assert "asyncio, 50 ms, which leaves 10 ms for taskplane's own work; it takes 21 ms." in line


def test_config_validate_is_held_to_what_it_imports_when_that_was_measured() -> None:
    floors = cli.Floors(0.012, 0.010, 0.080, 0.055, 0.066, 0.042, config=0.050)
    line = cli.fixed_cost_verdict("config validate", 0.058, 0.060, floors, asyncio=False)
    assert line.endswith(
        "config validate imports no asyncio, so its floor is importing attrs, pluggy, argparse, "
        "tomllib, 50 ms)."
    )
    missed = cli.fixed_cost_verdict("config validate", 0.064, 0.060, floors, asyncio=False)
    assert missed.endswith("which leaves 10 ms for taskplane's own work; it takes 14 ms.")
    figure = cli.floor_figures(floors)[-1]
    assert (figure.measure, figure.taskplane) == (
        "  attrs, pluggy, argparse, tomllib (config validate's)",
        0.050,
    )


def test_plugins_ls_is_held_to_what_it_imports_when_that_was_measured() -> None:
    floors = cli.Floors(0.012, 0.010, 0.080, 0.055, 0.066, 0.042, plugins=0.075)
    line = cli.fixed_cost_verdict("plugins ls", 0.090, 0.060, floors, plugins=True)
    assert "; plugins ls imports no sqlite3, so its floor is importing asyncio, attrs, " in line
    assert line.endswith("taskplane's own work above the floor: 15 ms.")
    assert cli.floor_figures(floors)[-1].measure == (
        "  asyncio, attrs, pluggy, argparse, logging (plugins ls')"
    )


def test_a_command_without_asyncio_below_its_floor_is_not_offered_that_floor() -> None:
    floors = cli.Floors(0.024, 0.010, 0.090, 0.065, 0.067, 0.042)
    line = cli.fixed_cost_verdict("config validate", 0.071, 0.060, floors, asyncio=False)
    assert "MISSED, and below the floor" in line
    assert "the floor is under the goal only without asyncio and attrs (42 ms)" in line
    assert line.endswith("taskplane's own work above the floor: 6 ms.")


def test_a_met_goal_is_met() -> None:
    line = cli.fixed_cost_verdict(
        "config validate", 0.055, 0.060, cli.Floors(0.02, 0.01, 0.04, 0.03, 0.035, 0.025)
    )
    assert line.startswith("config validate: 55 ms, goal <= 60 ms: met (")
    assert "MISSED" not in line


@pytest.mark.parametrize(
    ("minimal", "expected"),
    [
        (
            0.110,
            "MISSED, and below the floor: the minimal Python run takes 110 ms, 1.10x ctr's "
            "(starting Python and importing what it uses: 50 ms; the rest, 60 ms, is the shim, "
            "runc and the protocol); taskplane's own work above it: 110 ms.",
        ),
        (
            0.090,
            "MISSED, but above the floor: the minimal Python run takes 90 ms, 0.90x ctr's "
            "(starting Python and importing what it uses: 50 ms; the rest, 40 ms, is the shim, "
            "runc and the protocol), which leaves 10 ms for taskplane's own work; it takes "
            "130 ms.",
        ),
    ],
)
def test_a_missed_run_goal_is_weighed_against_the_minimal_run(
    minimal: float, expected: str
) -> None:
    line = cli.run_verdict("containerd 1.6.20", 0.220, 0.100, minimal, 0.050, 1.0)
    assert line == (
        "run --rm vs ctr (containerd 1.6.20): 220 ms, 2.20x ctr's 100 ms, goal <= 1.0x (100 ms): "
        + expected
    )


def test_a_run_goal_below_the_design_cards_floor_says_so() -> None:
    line = cli.run_verdict("containerd 2.4", 0.220, 0.100, 0.120, 0.050, 1.3, design=0.140)
    assert line == (
        "run --rm vs ctr (containerd 2.4): 220 ms, 2.20x ctr's 100 ms, goal <= 1.3x (130 ms): "
        "MISSED, and below the floor of the design: the minimal Python run takes 120 ms, 1.20x "
        "ctr's (starting Python and importing what it uses: 50 ms; the rest, 70 ms, is the shim, "
        "runc and the protocol), and 140 ms, 1.40x ctr's, when it imports attrs, pluggy, sqlite3 "
        "first (the design card's values and plugin registry, and the SQLite store peers share "
        "records in); taskplane's own work above that: 80 ms."
    )
    room = cli.run_verdict("containerd 2.4", 0.220, 0.100, 0.120, 0.050, 1.3, design=0.125)
    assert "MISSED, but above the floor: " in room
    assert room.endswith("which leaves 5 ms for taskplane's own work; it takes 95 ms.")


def test_a_run_figure_shows_the_minimal_run_with_the_design_cards_imports() -> None:
    run = cli.RunFigures(cli.UPSTREAM, 0.22, 0.1, 0.11, 0.05, minimal_design=0.14)
    last = run.figures()[-1]
    assert last.measure == "    the same importing attrs, pluggy, sqlite3 first"
    assert (last.taskplane, last.other) == (0.14, 0.1)
    assert "below the floor of the design" in run.verdict()
    assert len(cli.RunFigures(cli.UPSTREAM, 0.22, 0.1, 0.11, 0.05).figures()) == 3


def test_a_met_run_goal_is_met() -> None:
    line = cli.run_verdict("containerd 2.4", 0.120, 0.100, 0.090, 0.050, 1.3)
    assert "goal <= 1.3x (130 ms): met (the minimal Python run takes 90 ms, 0.90x ctr's" in line
    assert "MISSED" not in line


def test_tasks_ls_with_running_tasks_is_weighed_against_tasks_ls_with_none() -> None:
    below = cli.tasks_50_verdict(0.237, 0.160, 0.150)
    assert below == (
        "tasks ls, 50 running tasks: 237 ms, goal <= 150 ms: MISSED, and below the floor: with no "
        "task it takes 160 ms, so the tasks cost 77 ms (1.5 ms each)."
    )
    room = cli.tasks_50_verdict(0.237, 0.100, 0.150)
    assert room.endswith("the goal leaves 1.0 ms per task.")


def test_the_report_prints_every_figure_and_every_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fixed = cli.FixedCost(0.095, 0.011, 0.120, 0.097, FLOORS)
    figures = [
        *fixed.figures(),
        cli.Figure("tasks ls, 50 running tasks (vs ctr)", 0.2, 0.02, "<= 150 ms", False),
    ]
    verdicts = [*fixed.verdicts(), "a run verdict"]
    imports = [(33900, 500, "taskplane.cli_tasks"), (23200, 500, "asyncio")]
    cpu_figures = [*cli.FixedCost(0.08, 0.002, 0.1, 0.09, FLOORS).figures()]
    cpu_verdicts = ["a CPU verdict"]
    assert cli.report(figures, imports, verdicts, cpu_figures, cpu_verdicts) is False
    out = capsys.readouterr().out.splitlines()
    cpu_at = next(i for i, line in enumerate(out) if line.startswith("CPU time"))
    assert out[cpu_at + 2].startswith("python -c pass (the floor)")
    assert (
        "tasks ls, no task (vs ctr tasks ls)                      0.0800     0.0020"
        in "\n".join(out[cpu_at:])
    )
    assert "- a CPU verdict" in out[cpu_at:]
    for figure in figures:
        assert any(line.startswith(figure.measure) for line in out), figure.measure
    for measure in (
        "python -c pass",
        "python -S -I -c pass",
        "dependency floor",
        "without asyncio",
        "without attrs",
        "without asyncio and attrs",
    ):
        assert any(measure in line for line in out), measure
    assert (
        "(*) the dependency floor imports asyncio, attrs, pluggy, argparse, logging, sqlite3" in out
    )
    assert "      33.9      0.5  taskplane.cli_tasks" in out
    for verdict in verdicts:
        assert f"- {verdict}" in out
    assert sum("MISSED" in line for line in out if line.startswith("- ")) == 3
    assert out[-1] == "TARGETS MISSED"


def test_what_the_minimal_runs_left_behind_is_in_their_verdict() -> None:
    clean = cli.RunFigures(cli.DEBIAN, 0.22, 0.1, 0.11, 0.05)
    assert "LEFT BEHIND" not in clean.verdict()
    leaked = cli.RunFigures(
        cli.DEBIAN, 0.22, 0.1, 0.11, 0.05, ("process 1: containerd-shim-runc-v2",)
    )
    assert leaked.verdict().endswith(
        " THE MINIMAL RUNS LEFT BEHIND: process 1: containerd-shim-runc-v2."
    )
    assert leaked.verdict().startswith("run --rm vs ctr (containerd 1.6.20): 220 ms")


def test_a_timed_process_has_its_cpu_time() -> None:
    sample = cli.timed([sys.executable, "-c", "sum(range(3_000_000))"])
    assert sample.cpu > 0
    assert sample.wall > 0
