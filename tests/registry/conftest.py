"""Fixtures shared by the registry tests (and reusable by the CLI tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "third_party_runtime"


def install_third_party_example(target: Path) -> Path:
    """pip-install examples/third_party_runtime into ``target`` (a directory to put on
    PYTHONPATH) without touching the venv or the source tree; returns ``target``."""
    source = target.parent / "third_party_runtime-src"
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in examples/.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


@pytest.fixture(scope="session")
def third_party_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example runtime package (put it on PYTHONPATH)."""
    return install_third_party_example(tmp_path_factory.mktemp("third_party") / "site")
