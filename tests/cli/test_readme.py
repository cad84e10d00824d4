"""The README's examples are the code: generated blocks are current, runnable blocks run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskplane import gen_docs

from .conftest import REPO, base_env

README = REPO / "README.md"


def blocks(language: str) -> list[tuple[str | None, str]]:
    """(title, body) of every fenced ``language`` block of the README."""
    found = []
    for match in gen_docs.FENCE.finditer(README.read_text()):
        info = match["info"].strip()
        if info.split(" ", 1)[0] != language:
            continue
        title = re.search(r'title="([^"]+)"', info)
        found.append((title[1] if title else None, match["body"]))
    return found


def _host_platform_neutral(text: str) -> str:
    # The config reference was generated on linux/amd64; other hosts default to their own.
    return re.sub(r'"(linux|darwin|windows|freebsd)/[A-Za-z0-9_/]+"', '"<platform>"', text)


def test_readme_generated_blocks_are_current() -> None:
    current = README.read_text()
    fresh = gen_docs.render(current)
    assert _host_platform_neutral(fresh) == _host_platform_neutral(current), (
        "README.md is out of date: run .venv/bin/python -m taskplane.gen_docs"
    )


def test_readme_shows_the_embed_example_file() -> None:
    titles = [title for title, _ in blocks("python")]
    assert "examples/embed.py" in titles


def test_readme_file_blocks_name_existing_files() -> None:
    for language in ("python", "toml"):
        for title, _ in blocks(language):
            if title is not None and "/" in title:
                assert (REPO / title).is_file(), f"README block names missing file {title}"


@pytest.mark.parametrize(
    "title", [t for t, _ in blocks("python") if t is not None and not (REPO / t).is_file()]
)
def test_readme_python_example_runs(title: str, tmp_path: Path) -> None:
    body = dict(blocks("python"))[title]
    script = tmp_path / f"readme_example_{title}.py"  # not named like the module it imports
    script.write_text(body)
    # The examples make their dirs with tempfile.mkdtemp() and, being short, leave them: TMPDIR
    # puts those in this test's own temporary directory instead of /tmp.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**base_env(), "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert os.listdir(scratch), "the example made no temporary dir: is TMPDIR still needed?"
    shutil.rmtree(scratch)
