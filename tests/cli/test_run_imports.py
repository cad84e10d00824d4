"""What ``taskplane run`` imports, and when (not timed).

A run imports only what running a task needs: not the other commands, not listing
(``taskplane.task_list``), not the terminal helpers without ``-t``, not what only ``-info``
(``introspection_pb2``) or writing a file through :mod:`tempfile` needs, nor a process's
State (``runtime_v2.process_state``: ``--rm`` does not ask an exited task for its status before
deleting it). What comes next is imported on a worker thread while the main thread waits: what
follows the claim of its id (:data:`taskplane.containers.CLAIM_MODULES`) while the claim waits
for the task's lock and the store, what creates the task
(:data:`taskplane.containers.CREATE_MODULES`) while SQLite writes its record,
what talks to its shim and deletes it (:data:`runtime_v2.binary.AFTER_START`) while the shim's
``start`` command runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime_v2.binary import AFTER_START
from taskplane.containers import CLAIM_MODULES, CREATE_MODULES
from tests.fresh_imports import modules_after
from tests.integration.runtimes import UPSTREAM_RUNC, UPSTREAM_SHIM, upstream  # noqa: F401 (a fixture)

from .conftest import Taskplane
from .test_imports import CLI_MODULES, NEVER, imported, run_importtime

#: The command modules a run imports (its own and the shared ones).
RUN_CLI = {
    "taskplane.cli_run",
    "taskplane.cli_attach",
    "taskplane.cli_client",
    "taskplane.cli_spec",
}
#: What a run without ``-t`` never needs: the tooling (as no command), listing, the terminal
#: helpers, what only ``-info`` and what only writing through tempfile (with random) need, a
#: process's State (``run --rm`` saw its task exit: it does not ask the shim for its status
#: before the delete, so runtime_v2.process_state's classes are not built), restart recovery
#: (a new id has no bundle or work dir to reattach or reap: the task manager does not build its
#: FirstUseLoader), pathlib with what it imports (a run's paths are strings: 3.5 ms), and
#: what only reading a detached task's logging pipes needs (termios).
NOT_ON_RUN = (NEVER - {"taskplane.oci", "taskplane.stdio"}) | {
    "ipaddress",
    "pathlib",
    "random",
    "runtime_v2.api.introspection_pb2",
    "runtime_v2.process_state",
    "runtime_v2.shim_load",
    "taskplane.task_list",
    "tempfile",
    "termios",
    "urllib.parse",
}

#: Runs ``taskplane`` in this process and prints, in order, what it asked to import meanwhile
#: (runtime_v2.preimport), when it wrote the container record, and when it spawned the shim's
#: ``start`` command; and whether the main thread imported runtime_v2.shim before that start,
#: or taskplane.stdio before the claim asked for it (each is imported after the wait that has
#: it imported meanwhile).
_PROBE = """
import asyncio, sys, threading
import importlib._bootstrap as bootstrap
from runtime_v2 import preimport

events = []
meanwhile = preimport.import_meanwhile

def recording(names):
    events.append(("import_meanwhile", tuple(names)))
    return meanwhile(names)

preimport.import_meanwhile = recording
spawn = asyncio.create_subprocess_exec

async def spawning(*argv, **kwargs):
    if "start" in argv:
        events.append(("spawn", "start"))
    return await spawn(*argv, **kwargs)

asyncio.create_subprocess_exec = spawning
find_and_load = bootstrap._find_and_load

def asked(name):
    return any(kind == "import_meanwhile" and name in what for kind, what in events)

# Each imported by the main thread only once the wait it is imported during has begun.
WAITS = {
    "runtime_v2.shim": lambda: ("spawn", "start") in events,
    "taskplane.stdio": lambda: asked("taskplane.stdio"),
}

def probe(name, import_):
    if name in WAITS and name not in sys.modules:
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and not WAITS[name]():
            events.append(("main thread imported too early", name))
    module = find_and_load(name, import_)
    if name == "plugins.metadata" and not hasattr(module.ContainerStore.acreate, "probed"):
        acreate = module.ContainerStore.acreate

        async def creating(self, *args, **kwargs):
            events.append(("acreate", ""))
            return await acreate(self, *args, **kwargs)

        creating.probed = True
        module.ContainerStore.acreate = creating
    return module

bootstrap._find_and_load = probe
from taskplane.cli import main
code = main(sys.argv[1:])
print(events)
sys.exit(code)
"""


def run_argv(busybox_rootfs: Path, task_id: str) -> tuple[str, ...]:
    return ("run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "/bin/true")


@pytest.mark.integration
def test_run_imports_no_other_command_nor_what_only_listing_or_info_needs(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    # The first run on a state dir records the shim binary's start protocol (which may need
    # tempfile); the second is every later run.
    assert runner(*run_argv(busybox_rootfs, task_id)).returncode == 0
    names = imported(runner, *run_argv(busybox_rootfs, task_id + "-2"))
    # (-X importtime reports the main thread's imports, not what is imported meanwhile)
    assert {"taskplane.cli_run", "taskplane.task_run", "taskplane.containers"} <= names
    unexpected = (
        (
            CLI_MODULES
            - {
                "taskplane.cli_run",
                "taskplane.cli_attach",
                "taskplane.cli_client",
                "taskplane.cli_spec",
            }
        )
        | NOT_ON_RUN
    ) & names
    assert not unexpected, f"taskplane run imported {sorted(unexpected)}"


@pytest.mark.integration
def test_run_imports_what_comes_next_while_sqlite_writes_and_while_the_shim_starts(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *runner.argv(*run_argv(busybox_rootfs, task_id))[3:]],
        cwd=runner.cwd,
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # What follows the claim is asked for as the claim begins (it waits for the task's lock and
    # the store); what the task's creation needs, just before the record is written; what its
    # life after the start needs, just before the shim's start is spawned (each on a worker
    # thread: tests/runtime_v2/test_preimport.py).
    assert result.stdout.strip() == str(
        [
            ("import_meanwhile", CLAIM_MODULES),
            ("import_meanwhile", CREATE_MODULES),
            ("acreate", ""),
            ("import_meanwhile", AFTER_START),
            ("spawn", "start"),
        ]
    ), result.stderr


def test_the_run_path_imports_no_shutil_before_a_task_starts() -> None:
    # shutil (with bz2, lzma) is for removing directories: a run imports it on a worker thread
    # while its shim starts (runtime_v2.binary.AFTER_START), not before.
    assert "shutil" not in modules_after(
        "taskplane.cli_run", "taskplane.task_run", "taskplane.stdio"
    )


@pytest.mark.integration
@pytest.mark.usefixtures("upstream")
def test_a_run_through_a_bootstrap_shim_imports_no_importlib_metadata(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    # A 2.3+ shim is given taskplane's version in BootstrapParams: read from the installed
    # metadata file (runtime_v2.binary.installed_version), not through importlib.metadata.
    shim = ("--runtime", str(UPSTREAM_SHIM), "--runc-binary", str(UPSTREAM_RUNC))
    argv = ("run", "--rm", *shim, "--rootfs", str(busybox_rootfs))
    assert runner(*argv, task_id, "/bin/true").returncode == 0  # records the start protocol
    report = run_importtime(runner, *argv, task_id + "-2", "/bin/true").stderr
    names = {line.rsplit("|", 1)[1].strip() for line in report.splitlines() if line.count("|") == 2}
    assert "importlib.metadata" not in names, report


def test_the_run_path_imports_no_pathlib_on_any_thread() -> None:
    # What the main thread imports is pinned above; this covers what a run imports on a worker
    # thread meanwhile (taskplane.stdio with the claim, the shim's client while it starts).
    loaded = modules_after(
        "taskplane.cli_run", "taskplane.task_run", *CLAIM_MODULES, *CREATE_MODULES, *AFTER_START
    )
    assert not {"pathlib", "urllib.parse", "ipaddress"} & loaded
