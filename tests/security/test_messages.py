"""Messages users see under attack or bad luck (issue 9, case 6): a full disk names the file;
a logged exception is one line on the stderr of a command that succeeds."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_v2.bundle import write_file
from taskplane.errors import report
from tests.prerequisites import need_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: a real device with no space left."""
    need_root()  # to mount a tmpfs
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        with contextlib.suppress(Exception):
            libc.umount2(os.fsencode(mnt), 2)


def test_no_space_left_names_the_file(full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = full_disk / "config.json"
    with pytest.raises(OSError) as info:
        write_file(str(target), b"x" * (1 << 20))
    report(info.value)
    assert capsys.readouterr().err == f"taskplane: {target}: No space left on device\n"


_BENIGN_RACE = """
import logging, sys
import taskplane.cli as cli, taskplane.cli_tasks as tasks

def logs(opts, args):
    try:
        raise ProcessLookupError(3, "No such process")
    except ProcessLookupError:
        logging.getLogger("runtime_v2.shim").exception("benign race while %s", "reaping")
    return 0

tasks.logs = logs
sys.exit(cli.main([*sys.argv[1:], "tasks", "logs", "x"]))
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_logged_exception_is_one_line_unless_debug(debug: bool) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BENIGN_RACE, *(["--debug"] if debug else [])],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    if debug:
        assert "Traceback" in result.stderr
        return
    assert result.stderr == (
        "taskplane: ERROR runtime_v2.shim: benign race while reaping "
        "(ProcessLookupError: [Errno 3] No such process)\n"
    )
