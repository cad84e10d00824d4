"""The command line's log is set up when logging is first used, and reads as it always did.

A command that logs nothing does not import :mod:`logging` (tests/cli/test_imports.py pins
it); these pin that a record logged on such a command's path by a project logger still comes
out as one ``taskplane: LEVEL logger: message`` line, at the level ``--log-level`` sets (error
by default), never through logging's last-resort handler (bare messages, warnings included).
A third-party plugin that logs as it is imported: tests/cli/test_plugins_and_config.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import REPO

#: ``taskplane config validate FILE`` whose handler logs through project loggers, first
#: checking that nothing imported logging before.
_LOGS_ON_FIRST_USE = """
import sys
from taskplane import cli, cli_config
from registry.log import get_logger

def validate(opts, args):
    assert "logging" not in sys.modules, "logging imported before the first record"
    log = get_logger("acme")
    log.warning("below the default level: %s", "not shown")
    log.error("shown %s", 1)
    try:
        raise ValueError("bad value")
    except ValueError:
        get_logger("taskplane.acme.child").exception("failed")
    return 0

cli_config.validate = validate
sys.exit(cli.main([*sys.argv[1:], "config", "validate", "unused.toml"]))
"""


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_project_logger_first_used_by_a_command_logs_one_line_at_the_default_level() -> None:
    result = run_script(_LOGS_ON_FIRST_USE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "taskplane: ERROR taskplane.acme: shown 1\n"
        "taskplane: ERROR taskplane.acme.child: failed (ValueError: bad value)\n"
    )


def test_log_level_still_sets_the_level_of_a_logger_first_used_by_a_command() -> None:
    result = run_script(
        _LOGS_ON_FIRST_USE.replace('assert "logging"', "pass  #"), "--log-level", "warning"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "taskplane: WARNING taskplane.acme: below the default level: not shown"
    )
