"""A command imports only what it needs: not the other commands, not the tooling (not timed).

Each test runs ``python -X importtime -m taskplane ...`` on an empty state dir and reads the
modules it imported from the import-time report on stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskplane.cli import COMMANDS, build_parser
from taskplane.cli_common import Parser

from .conftest import Taskplane

#: Every command module of the CLI (a command imports its own and the shared ones only).
CLI_MODULES = {
    "taskplane.cli_attach",
    "taskplane.cli_client",
    "taskplane.cli_config",
    "taskplane.cli_containers",
    "taskplane.cli_demo",
    "taskplane.cli_events",
    "taskplane.cli_exec",
    "taskplane.cli_oci",
    "taskplane.cli_plugins",
    "taskplane.cli_rootfs",
    "taskplane.cli_run",
    "taskplane.cli_runtime",
    "taskplane.cli_spec",
    "taskplane.cli_tasks",
    "taskplane.cli_verbs",
}

#: What no listing or checking command needs: gRPC tooling, the OCI spec and terminal helpers,
#: attached I/O, metrics decoding, the demo's rootfs builder.
NEVER = {
    "grpc",
    "grpc_tools",
    "taskplane.gen_docs",
    "taskplane.metrics",
    "taskplane.oci",
    "taskplane.rootfs",
    "taskplane.stdio",
    "taskplane.terminal",
}

#: What a listing or checking command must not import although it boots the runtime, once the
#: entry points are cached (scanning them on the first run after a change needs more): the run
#: path (start, attach, wait, delete), what only unmounting (ctypes) or recording a new shim
#: binary's start protocol (tempfile) needs, containerd's event filter language (only a
#: subscription with a filter parses one), uuid (the exchange's origin is random hex),
#: shutil (argparse's formatter imports it for the terminal's width), hashlib (OpenSSL: the
#: entry point cache compares its key whole, a shim's socket path is hashed only when looked
#: for), the platform matchers (registry._platform_match: a boot formats platforms, matches
#: none), what only a plugin that does not load reports (registry._failures), the entry point
#: class (registry._entry_point: the tests' environment has no third-party plugin), what only
#: an event or a subscription needs (its envelope, protobuf, the subscriber's queue: the boot
#: of the exchange needs none) and, on a state dir without tasks, the runtime contract
#: (runtime_v2.runtime: a task created or reattached).
NOT_ON_BOOT = {
    "ctypes",
    "google.protobuf",
    "hashlib",
    "plugins.events_envelope",
    "plugins.events_subscription",
    "plugins.filters",
    "registry._entry_point",
    "registry._failures",
    "registry._platform_match",
    "runtime_v2.runtime",
    "shutil",
    "taskplane.task_run",
    "tempfile",
    "uuid",
}


def run_importtime(taskplane: Taskplane, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``taskplane args`` under ``-X importtime`` (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *taskplane.argv(*args)[1:]],
        cwd=taskplane.cwd,
        env=taskplane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def imported(taskplane: Taskplane, *args: str) -> set[str]:
    """The modules ``taskplane args`` imports (it must succeed)."""
    result = run_importtime(taskplane, *args)
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the report's header line
                names.add(name)
    assert "taskplane.cli" in names, result.stderr[-2000:]
    return names


#: The commands every process-cost test looks at: the listings and the config check.
CHEAP = pytest.mark.parametrize(
    "args",
    [("tasks", "ls"), ("plugins", "ls"), ("config", "validate", "{config}")],
    ids=["tasks-ls", "plugins-ls", "config-validate"],
)


def cached_argv(taskplane: Taskplane, tmp_path: Path, args: tuple[str, ...]) -> list[str]:
    """``args`` with ``{config}`` a ``version = 3`` file, run once (it caches the entry
    points: the first run after a change scans them, and imports more for it)."""
    config = tmp_path / "config.toml"
    config.write_text("version = 3\n")
    argv = [a.format(config=config) for a in args]
    assert taskplane(*argv).returncode == 0
    return argv


@pytest.mark.parametrize(
    ("args", "own"),
    [
        (("tasks", "ls"), {"taskplane.cli_tasks", "taskplane.cli_client"}),
        (("plugins", "ls"), {"taskplane.cli_plugins"}),
        (("config", "validate", "{config}"), {"taskplane.cli_config"}),
    ],
    ids=["tasks-ls", "plugins-ls", "config-validate"],
)
def test_a_cheap_command_imports_no_other_command_nor_tooling(
    taskplane: Taskplane, tmp_path: Path, args: tuple[str, ...], own: set[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("version = 3\n")
    names = imported(taskplane, *(a.format(config=config) for a in args))
    assert own <= names
    unexpected = ((CLI_MODULES - own) | NEVER) & names
    assert not unexpected, f"taskplane {' '.join(args)} imported {sorted(unexpected)}"


@CHEAP
def test_a_cheap_command_imports_nothing_only_running_or_unmounting_needs(
    taskplane: Taskplane, tmp_path: Path, args: tuple[str, ...]
) -> None:
    argv = cached_argv(taskplane, tmp_path, args)
    unexpected = NOT_ON_BOOT & imported(taskplane, *argv)
    assert not unexpected, f"taskplane {' '.join(args)} imported {sorted(unexpected)}"


#: What checking a config needs none of: every plugin's own module (the exchange and with it
#: asyncio and protobuf, the metadata store and sqlite3, the snapshotter and pathlib), the
#: boot's (the init context: the property keys have a module of their own), sockets (only
#: probing a shim's socket needs one) and json (the entry point cache is a Python literal, a
#: config problem quotes names itself); only the registrations and config types are read.
NOT_TO_CHECK_A_CONFIG = {
    "asyncio",
    "google.protobuf",
    "json",
    "pathlib",
    "plugins.errdefs",
    "plugins.events",
    "plugins.metadata",
    "plugins.overlay",
    "registry._boot",
    "registry._context",
    "runtime_v2.errdefs",
    "runtime_v2.shim_socket",
    "socket",
    "sqlite3",
}


def test_config_validate_imports_no_plugin_module(taskplane: Taskplane, tmp_path: Path) -> None:
    argv = cached_argv(taskplane, tmp_path, ("config", "validate", "{config}"))
    unexpected = NOT_TO_CHECK_A_CONFIG & imported(taskplane, *argv)
    assert not unexpected, f"taskplane config validate imported {sorted(unexpected)}"


#: What a command that logs nothing and fails at nothing needs none of: logging (the command
#: line's log is set up when logging is first used: taskplane.cli_log; tests/cli/test_log_setup.py
#: pins that records read as before) and traceback (only ``--debug`` prints one).
NOT_WITHOUT_A_RECORD = {"logging", "taskplane.cli_log", "traceback"}


@pytest.mark.parametrize(
    "args", [("config", "validate", "{config}"), ("--help",)], ids=["config-validate", "help"]
)
def test_a_command_that_logs_nothing_imports_no_logging(
    taskplane: Taskplane, tmp_path: Path, args: tuple[str, ...]
) -> None:
    argv = cached_argv(taskplane, tmp_path, args)
    unexpected = NOT_WITHOUT_A_RECORD & imported(taskplane, *argv)
    assert not unexpected, f"taskplane {' '.join(args)} imported {sorted(unexpected)}"


def test_plugins_ls_neither_connects_to_the_metadata_store_nor_loads_pathlib(
    taskplane: Taskplane,
) -> None:
    # The store connects on first use (plugins.metadata.ContainerStore, lazy) and the
    # snapshotter imports pathlib on its first layer: listing plugins uses neither.
    assert taskplane("plugins", "ls").returncode == 0  # caches the entry points
    unexpected = {"sqlite3", "pathlib"} & imported(taskplane, "plugins", "ls")
    assert not unexpected, f"taskplane plugins ls imported {sorted(unexpected)}"


def test_help_lists_every_command_without_importing_one(taskplane: Taskplane) -> None:
    result = run_importtime(taskplane, "--help")
    for command in COMMANDS:
        assert f"\n    {command.name}" in result.stdout, command.name
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not CLI_MODULES & names, sorted(CLI_MODULES & names)


def test_the_event_exchange_imports_no_protobuf_messages_until_an_event_is_decoded() -> None:
    # An embedder booting only the exchange (or a peer that does not serve shims' events) pays
    # for protobuf's descriptor pool on its first event, not on import.
    code = (
        "import sys, plugins.events;"
        "print(sorted(m for m in sys.modules if m.startswith('google.protobuf.')"
        " and m != 'google.protobuf.message'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("columns", [60, 140])
def test_help_is_as_wide_as_the_terminal_without_shutil(taskplane: Taskplane, columns: int) -> None:
    # argparse's own formatter would ask shutil; ours reads $COLUMNS as shutil does.
    result = taskplane("--help", env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    widest = max(len(line) for line in result.stdout.splitlines())
    assert columns - 12 < widest <= columns - 2, result.stdout


def test_the_interpreter_starts_without_an_import_finder_for_taskplane() -> None:
    # taskplane is installed (make venv: editable) as a path on sys.path, not with setuptools'
    # editable finder, whose .pth imports these on every start of every command (~12 ms).
    result = subprocess.run(
        [sys.executable, "-c", "import sys; print(*sorted(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    started = set(result.stdout.split())
    finders = {m for m in started if m.startswith("__editable__")}
    assert not finders, f"{sys.executable} starts with {sorted(finders)}"
    assert not {"pathlib", "urllib.parse", "fnmatch", "importlib.util"} & started, sorted(started)


def test_a_command_line_makes_the_parsers_of_the_commands_it_names_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not one per command of every table it passes: each is argparse's work and three
    # translation lookups (gettext, locale), on every run.
    made: list[str] = []
    make = Parser.__init__

    def counted(self: Parser, *args: object, **kwargs: object) -> None:
        make(self, *args, **kwargs)
        made.append(self.prog)

    monkeypatch.setattr(Parser, "__init__", counted)
    ns = build_parser().parse_args(["config", "validate", "c.toml"])
    assert ns.file == "c.toml"
    assert made == ["taskplane", "taskplane config", "taskplane config validate"]


#: Runs ``taskplane ARGS`` in this process, recording the classes attrs builds (attrs' own
#: class builder, counted: a count that does not wobble, unlike a time), into $CLASSES_OUT.
_COUNT_ATTRS_CLASSES = """
import os, sys
import attr._make
built = []
build = attr._make._ClassBuilder.build_class
def counted(self):
    cls = build(self)
    built.append(cls.__module__ + "." + cls.__qualname__)
    return cls
attr._make._ClassBuilder.build_class = counted
from taskplane import cli
code = cli.main(sys.argv[1:])
with open(os.environ["CLASSES_OUT"], "w") as out:
    out.write("\\n".join(built))
sys.exit(code)
"""


def attrs_classes_built(taskplane: Taskplane, tmp_path: Path, *args: str) -> set[str]:
    """The attrs classes ``taskplane args`` builds (it must succeed)."""
    out = tmp_path / "classes.txt"
    result = subprocess.run(
        [sys.executable, "-c", _COUNT_ATTRS_CLASSES, *taskplane.argv(*args)[3:]],
        cwd=taskplane.cwd,
        env={**taskplane.env, "CLASSES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(out.read_text().split("\n"))


#: Value classes a command does not use, so does not build (attrs takes about 0.4 ms a class,
#: on every run): each lives in a module of its own, imported on first use.
NOT_BUILT = {
    "plugins.containers.Container",  # the first record read or written (plugins.metadata)
    "plugins.events_record.Record",  # the first event appended or read (plugins.events_journal)
    "plugins.mount.Mount",  # the first layer's mounts (plugins.overlay)
    "registry._entry_point.PluginEntryPoint",  # the first entry point (none in the tests)
}


@CHEAP
def test_a_cheap_command_builds_no_value_class_it_does_not_use(
    taskplane: Taskplane, tmp_path: Path, args: tuple[str, ...]
) -> None:
    argv = cached_argv(taskplane, tmp_path, args)
    built = attrs_classes_built(taskplane, tmp_path, *argv)
    assert "taskplane.cli_common.Options" in built  # the count sees the command's classes
    unexpected = NOT_BUILT & built
    assert not unexpected, f"taskplane {' '.join(args)} built {sorted(unexpected)}"


def test_checking_a_config_builds_no_class_for_its_scratch_values(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    # What one file sets is mutable scratch while it is checked (registry._config_files):
    # a plain class, not one attrs builds on every run.
    argv = cached_argv(taskplane, tmp_path, ("config", "validate", "{config}"))
    built = attrs_classes_built(taskplane, tmp_path, *argv)
    assert "registry._config_files.Config" in built
    assert "registry._config_files._FileValues" not in built
