"""What ``taskplane run`` imports, and when (not timed).

A run imports only what running a task needs: not the other commands, not listing
(``taskplane.task_list``), not the terminal helpers without ``-t``, not what only ``-info``
(``introspection_pb2``) or writing a file through :mod:`tempfile` needs, nor a process's
State (``runtime_v2.process_state``: ``--rm`` does not ask an exited task for its status before
deleting it). What talks to the shim (:data:`runtime_v2.binary.AFTER_START`) is imported
on a worker thread while the shim's ``start`` command runs, so the two overlap.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runtime_v2 import binary

from .conftest import Taskplane
from .test_imports import CLI_MODULES, NEVER, imported

#: The command modules a run imports (its own and the shared ones).
RUN_CLI = {
    "taskplane.cli_run",
    "taskplane.cli_attach",
    "taskplane.cli_client",
    "taskplane.cli_spec",
}
#: What a run without ``-t`` never needs: the tooling (as no command), listing, the terminal
#: helpers, what only ``-info`` and what only writing through tempfile (with random) need, and
#: a process's State (``run --rm`` saw its task exit: it does not ask the shim for its status
#: before the delete, so runtime_v2.process_state's classes are not built).
NOT_ON_RUN = (NEVER - {"taskplane.oci", "taskplane.stdio"}) | {
    "random",
    "runtime_v2.api.introspection_pb2",
    "runtime_v2.process_state",
    "taskplane.task_list",
    "tempfile",
}

#: Runs ``taskplane`` in this process and prints, for the shim modules of AFTER_START, whether
#: the main thread imported each and whether the shim's ``start`` had been spawned by then (not
#: shutil: a command that scans the installed distributions imports it early, with zipfile).
_PROBE = """
import asyncio, sys, threading
import importlib._bootstrap as bootstrap

WATCHED = {"runtime_v2.shim", "runtime_v2.ttrpc._client"}
seen, spawned = {}, []
find_and_load = bootstrap._find_and_load

def probe(name, import_):
    if name in WATCHED and name not in sys.modules and name not in seen:
        seen[name] = (threading.current_thread() is threading.main_thread(), bool(spawned))
    return find_and_load(name, import_)

bootstrap._find_and_load = probe
exec_ = asyncio.create_subprocess_exec

async def spawn(*argv, **kwargs):
    spawned.extend(a for a in argv if a == "start")
    return await exec_(*argv, **kwargs)

asyncio.create_subprocess_exec = spawn
from taskplane.cli import main
code = main(sys.argv[1:])
print(sorted(seen.items()))
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
    # (-X importtime reports the main thread's imports: not runtime_v2.shim, see below)
    assert {"taskplane.cli_run", "taskplane.task_run", "runtime_v2.binary"} <= names
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
def test_run_imports_what_talks_to_the_shim_while_the_shim_starts(
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
    # (module, (imported by the main thread, after the shim's start was spawned))
    assert result.stdout.strip() == str(
        [("runtime_v2.shim", (False, True)), ("runtime_v2.ttrpc._client", (False, True))]
    ), result.stderr


def test_the_run_path_imports_no_shutil_before_a_delete() -> None:
    # shutil (with bz2, lzma) is for removing directories: a run imports it on a worker thread
    # while its shim starts (runtime_v2.binary.AFTER_START), never before.
    code = (
        "import sys, taskplane.cli_run, taskplane.task_run, taskplane.stdio;"
        "print('shutil' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_import_meanwhile_imports_on_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tp_meanwhile_probe.py").write_text(
        "import threading\nTHREAD = threading.current_thread()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tp_meanwhile_probe", raising=False)

    async def main() -> None:
        future = binary.import_meanwhile(["tp_meanwhile_probe", "asyncio"])
        assert future is not None
        await future
        assert binary.import_meanwhile(["tp_meanwhile_probe", "asyncio"]) is None  # all done

    asyncio.run(main())
    assert sys.modules["tp_meanwhile_probe"].THREAD is not threading.main_thread()


def test_import_meanwhile_leaves_a_failing_import_to_the_importer(tmp_path: Path) -> None:
    async def main() -> None:
        future = binary.import_meanwhile(["tp_no_such_module_anywhere"])
        assert future is not None
        with pytest.raises(ModuleNotFoundError):
            await future

    asyncio.run(main())


def test_import_meanwhile_without_an_executor_leaves_the_import_to_the_importer() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().shutdown_default_executor()
        assert binary.import_meanwhile(["tp_never_imported_module"]) is None
        assert "tp_never_imported_module" not in sys.modules

    asyncio.run(main())
