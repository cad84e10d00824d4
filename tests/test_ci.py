"""CI (``.ci/run``) counts skipped tests, fails on any skip or on no tests, and lints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = "tests/ci_probes/skip_probe.py"


def _ci(pytest_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".ci" / "run")],
        cwd=REPO,
        env={**os.environ, "PYTEST_ARGS": f"-p no:cacheprovider {pytest_args}"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ci_counts_a_skip_and_fails_on_it() -> None:
    result = _ci(PROBE)
    assert "ci: 1 skipped test(s)" in result.stdout, result.stdout + result.stderr
    assert "the probe skips" in result.stdout
    assert "a skipped test is a failure in CI" in result.stderr
    assert result.returncode == 1


def test_ci_passes_without_skips() -> None:
    result = _ci(f"{PROBE}::test_passes")
    assert "ci: 0 skipped test(s)" in result.stdout, result.stdout + result.stderr
    assert "ci: lint passed" in result.stdout
    assert result.returncode == 0


def test_ci_fails_when_no_test_runs() -> None:
    result = _ci(f"{PROBE} -k no_such_test")
    assert "collected no tests (exit status 5)" in result.stderr, result.stdout + result.stderr
    assert result.returncode == 1
