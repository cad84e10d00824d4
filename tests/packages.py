"""Installing a real distribution for a test: ``pip install --target`` of a source tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["pip_install_target"]


def pip_install_target(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """``pip install --no-deps --no-build-isolation --target target source`` with this
    interpreter (offline: the venv's setuptools builds it); the caller checks the result."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
