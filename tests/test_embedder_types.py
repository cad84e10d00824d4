"""The embedding API is typed: ``mypy --strict`` flags an embedder's misuse, line by line, and
accepts correct use (tests/typing/embedder_misuse.py and embedder_ok.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TYPING = REPO / "tests" / "typing"
#: ``file.py:LINE: error: ... [code]`` in mypy's output.
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
#: ``# error: code`` at the end of a line the misuse file expects mypy to flag.
_EXPECTED = re.compile(r"# error: (?P<code>[a-z-]+)$")


def mypy_errors(*files: Path) -> set[tuple[str, int, str]]:
    """(file name, line, code) of every error ``mypy --strict`` reports on ``files``."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(REPO / ".mypy_cache" / "embedder"),
            *map(str, files),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    errors = set()
    for line in result.stdout.splitlines():
        match = _REPORTED.match(line)
        assert match is not None or not line.strip(), line
        if match is not None:
            errors.add((Path(match["file"]).name, int(match["line"]), match["code"]))
    return errors


def test_mypy_strict_flags_each_misuse_of_the_embedding_api_by_line() -> None:
    misuse = TYPING / "embedder_misuse.py"
    expected = {
        (misuse.name, number, match["code"])
        for number, text in enumerate(misuse.read_text().splitlines(), start=1)
        if (match := _EXPECTED.search(text)) is not None
    }
    assert len(expected) >= 8
    assert mypy_errors(misuse) == expected


def test_mypy_strict_accepts_an_embedder_using_the_api_as_documented() -> None:
    assert mypy_errors(TYPING / "embedder_ok.py") == set()
