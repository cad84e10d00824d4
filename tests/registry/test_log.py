"""The project's loggers: logging's own from their first use, under the ``taskplane`` root."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from registry import log as project_log

REPO = Path(__file__).resolve().parents[2]


def test_a_logger_imports_logging_on_its_first_use_only() -> None:
    code = (
        "import sys\n"
        "from registry.log import get_logger\n"
        "log = get_logger('registry.x')\n"
        "print('logging' in sys.modules)\n"
        "log.debug('nothing to see')\n"
        "print('logging' in sys.modules, log.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    assert result.stdout == "False\nTrue taskplane.registry.x\n"


def test_an_embedders_configuration_of_the_taskplane_logger_gets_every_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = project_log.get_logger("plugins.example")  # made before the embedder's setup
    caplog.set_level(logging.WARNING, logger="taskplane")
    log.info("below the embedder's level")
    log.warning("reported from %s", "here")  # the line the record names
    (record,) = caplog.records
    assert record.name == "taskplane.plugins.example"
    assert record.getMessage() == "reported from here"
    assert (record.pathname, record.lineno) == (__file__, _line_of("reported from %s"))
    assert log.getChild("shim").name == "taskplane.plugins.example.shim"
    assert log.isEnabledFor(logging.WARNING) and not log.isEnabledFor(logging.INFO)


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "log.warning" in line)


def test_what_is_deferred_to_the_first_use_runs_once_before_it() -> None:
    ran: list[str] = []
    cancel = project_log.on_first_use(lambda: ran.append("set up"))
    dropped = project_log.on_first_use(lambda: ran.append("dropped"))
    dropped()
    try:
        log = project_log.get_logger("registry.y")
        log.debug("first")
        log.debug("second")
        project_log.first_use()
    finally:
        cancel()
    assert ran == ["set up"]


def test_a_deferred_setup_that_logs_does_not_wait_for_itself() -> None:
    log = project_log.get_logger("registry.z")
    seen: list[bool] = []
    project_log.on_first_use(lambda: seen.append(log.isEnabledFor(logging.CRITICAL)))
    log.debug("first use")
    assert seen == [True]
