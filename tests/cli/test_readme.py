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

from .conftest import REPO, Taskplane, base_env

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


# ------------------------------------------------------------------------ console sessions


def sessions() -> list[str]:
    """Every ``console`` block of the README: ``$ command`` lines, each followed by its output."""
    return [body for _, body in blocks("console")]


def _expected(line: str) -> re.Pattern[str]:
    """A README output line as a pattern: columns may be spaced differently and numbers in a
    table (pids, byte counts) vary from run to run; a line that is one number (an exit status)
    must match exactly."""
    if line.strip().isdigit():
        return re.compile(re.escape(line.strip()))
    parts = [r"\d+" if token.isdigit() else re.escape(token) for token in line.split()]
    return re.compile(r"\s+".join(parts))


@pytest.mark.integration
@pytest.mark.parametrize("session", sessions(), ids=lambda s: s.split("\n", 1)[0][2:40])
def test_readme_console_session_runs_as_written(
    runner: Taskplane, busybox_rootfs: Path, session: str
) -> None:
    """Each ``$ taskplane ...`` line runs in a shell (``taskplane`` is the runner's, with its
    private dirs; ``/srv/busybox`` is the session's busybox rootfs, as ``taskplane rootfs
    busybox /srv/busybox`` would build it) and prints what the README shows after it."""
    taskplane_cmd = " ".join(runner.argv())
    steps: list[tuple[str, list[str]]] = []
    for line in session.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    assert steps, session
    for command, output in steps:
        shell = command.replace("/srv/busybox", str(busybox_rootfs)).replace(
            "taskplane ", f"{taskplane_cmd} "
        )
        result = subprocess.run(
            ["sh", "-c", shell],
            cwd=runner.cwd,
            env=runner.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        got = (result.stdout + result.stderr).splitlines()
        assert len(got) == len(output), (command, got, output)
        for shown, printed in zip(output, got, strict=True):
            assert _expected(shown).fullmatch(printed.strip()), (command, shown, printed)
