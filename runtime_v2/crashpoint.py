"""Test-only crash points: ``TASKPLANE_TEST_CRASH_AT=<name>`` makes the process SIGKILL itself.

The crash tests (``tests/cli/test_crash.py``) kill a ``taskplane`` process at each named step of
create, start and delete, deterministically, then check that one ``tasks rm --force`` leaves
nothing. Names: ``create:reserved``, ``create:bundle``, ``create:shim``, ``create:created``,
``start:started``, ``delete:deleted``, ``delete:bundle-removal``. Unset (always, outside tests)
it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "crashpoint"]

#: The environment variable naming the step to die at.
ENV = "TASKPLANE_TEST_CRASH_AT"


def crashpoint(name: str) -> None:
    """SIGKILL this process when ``TASKPLANE_TEST_CRASH_AT`` is ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
