"""A ``taskplane`` command runs without the cycle collector until it boots, and with it from
then on (:mod:`taskplane.collector`): what may run long (a body that waits for a task) collects
its garbage; a command that never boots ends without it. Pinned without timing it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from taskplane import collector

from .conftest import Taskplane
from .test_listing_cost import run_probe

#: Runs the console script's ``main`` on the probe's arguments; prints whether the collector
#: was on at the boot (when it boots), in the command's body (the task lookup of ``tasks kill``,
#: the events server ``events`` starts) and when the process exits.
_PROBE = """
import gc, os, sys
seen = []
exit_ = os._exit

def leaving(code):
    print(seen + [("exit", gc.isenabled())], flush=True)
    exit_(code)

os._exit = leaving
from taskplane.__main__ import main
import taskplane
from taskplane.containers import Client
boot_async = taskplane.boot_async

async def booting(*args, **kwargs):
    seen.append(("boot", gc.isenabled()))
    return await boot_async(*args, **kwargs)

async def task(self, container_id):
    seen.append(("body", gc.isenabled()))
    raise LookupError(container_id)

taskplane.boot_async, Client.task = booting, task
from runtime_v2.shim_manager import ShimManager

async def serve(self):  # the first thing ``taskplane events`` does after its boot
    seen.append(("body", gc.isenabled()))
    raise LookupError("events")

ShimManager.start_events_server = serve
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    "command",
    [("tasks", "kill", "nosuch"), ("events",)],
    ids=["through-a-client", "events-boots-itself"],
)
def test_a_command_that_boots_runs_its_body_with_the_collector(
    taskplane: Taskplane, command: tuple[str, ...]
) -> None:
    result = run_probe(taskplane, _PROBE, *command)
    assert result.stdout.splitlines()[-1] == (
        "[('boot', False), ('body', True), ('exit', True)]"
    ), result


def test_a_command_that_never_boots_ends_without_the_collector(taskplane: Taskplane) -> None:
    result = run_probe(taskplane, _PROBE, "config", "default")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[('exit', False)]", result


@pytest.fixture
def fresh_collector() -> Iterator[None]:
    """The module's state as a new process has it, and the collector on, before and after."""
    gc.enable()
    collector._held, collector._depth, collector._restore = False, 0, False
    yield
    collector._held, collector._depth, collector._restore = False, 0, False
    gc.enable()


@pytest.mark.usefixtures("fresh_collector")
def test_hold_lasts_until_release() -> None:
    collector.hold()
    assert not gc.isenabled()
    collector.release()
    assert gc.isenabled()
    collector.release()  # nothing held: nothing to give back
    assert gc.isenabled()


@pytest.mark.usefixtures("fresh_collector")
def test_a_release_inside_a_block_waits_for_the_outermost_block() -> None:
    collector.hold()
    with collector.without_cycle_collection():
        with collector.without_cycle_collection():
            collector.release()  # a boot inside a listing
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("fresh_collector")
def test_a_block_gives_back_only_what_it_took() -> None:
    with collector.without_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # an embedder that runs without it
    with collector.without_cycle_collection():
        pass
    assert not gc.isenabled()
    collector.release()
    assert not gc.isenabled()
