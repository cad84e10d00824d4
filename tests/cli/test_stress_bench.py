"""``bench/stress.py`` with small counts: the same code as the full bench, in ``make test``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.integration


def test_the_stress_bench_runs_clean_with_small_counts(integration_ready: None) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "stress.py"),
            *("--runs", "12", "--workers", "6", "--races", "2", "--kills", "6"),
            *("--kill-workers", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for line in lines:
        assert line.endswith("0 failures, 0 leaks"), result.stdout
