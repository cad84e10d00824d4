"""mypy infers the class a typed lookup returns, so a misuse is a type error, not a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EMBEDDER = """
from registry import Host, InitContext


class ShimManager:
    def start(self) -> None: ...


def init(ic: InitContext) -> None:
    shims = ic.get_single("io.containerd.shim.v1", ShimManager)
    shims.strat()
    count: int = ic.get_by_id("io.containerd.shim.v1", "manager", ShimManager)


def use(host: Host) -> None:
    host.get("io.containerd.shim.v1", "manager", ShimManager).strat()
    host.get_single("io.containerd.shim.v1", ShimManager).strat()
"""


def test_mypy_flags_misuse_of_what_a_typed_lookup_returns(tmp_path: Path) -> None:
    source = tmp_path / "embedder.py"
    source.write_text(textwrap.dedent(EMBEDDER))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    errors = [
        line.split(": error: ", 1)[1] for line in result.stdout.splitlines() if ": error: " in line
    ]
    assert errors == [
        '"ShimManager" has no attribute "strat"; maybe "start"?  [attr-defined]',
        'Incompatible types in assignment (expression has type "ShimManager", variable has type'
        ' "int")  [assignment]',
        '"ShimManager" has no attribute "strat"; maybe "start"?  [attr-defined]',
        '"ShimManager" has no attribute "strat"; maybe "start"?  [attr-defined]',
    ], result.stdout
