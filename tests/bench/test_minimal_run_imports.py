"""``bench/minimal_run.py`` is a floor only while it stays minimal: of taskplane it imports the
generated protobuf messages and nothing else (no registry, plugins, runtime, CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
OURS = ("registry", "plugins", "runtime_v2", "taskplane")
#: The package modules Python imports on the way to the messages (their __init__ are lazy).
PACKAGES = {"runtime_v2", "runtime_v2.api", "runtime_v2.ttrpc"}


def test_the_minimal_run_imports_only_generated_messages_of_taskplane() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import minimal_run; "
        f"print('\\n'.join(m for m in sys.modules if m.split('.')[0] in {OURS!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    ours = set(result.stdout.split())
    assert ours - PACKAGES, "the messages are imported"
    assert {m for m in ours - PACKAGES if not m.endswith("_pb2")} == set()


def refused(*args: str) -> str:
    """Run ``minimal_run.py ARGS``, which must refuse them (status 2, nothing made): its
    stderr."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "minimal_run.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert not Path("/nonexistent").exists()
    return result.stderr


def test_a_bad_command_line_is_one_line_with_the_usage() -> None:
    stderr = refused("--state", "/nonexistent", "m1")
    assert stderr.startswith("minimal run: missing namespace, spec, rootfs; usage: ")
    assert stderr.count("\n") == 1


def test_preload_imports_the_named_modules_first() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import minimal_run; "
        "minimal_run.preload('colorsys,,wave'); "
        "print('colorsys' in sys.modules, 'wave' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "True"]


def test_a_module_that_cannot_be_preloaded_is_one_line_naming_it() -> None:
    stderr = refused(
        *("--state", "/nonexistent", "--namespace", "n", "--spec", "s", "--rootfs", "r"),
        *("--preload", "no_such_module_tp", "m1"),
    )
    assert stderr.startswith("minimal run: cannot preload 'no_such_module_tp': ")
    assert stderr.count("\n") == 1
