"""Skips that cannot stay silent: a test that needs something this machine lacks skips, saying
what, unless ``TASKPLANE_REQUIRE_INTEGRATION=1`` (what CI sets): then it fails.

Importable from every test directory as ``tests.prerequisites``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

REQUIRE_INTEGRATION = "TASKPLANE_REQUIRE_INTEGRATION"


def require(missing: Iterable[str], *, what: str = "prerequisites missing") -> None:
    """Skip the test when anything is ``missing``; fail it under TASKPLANE_REQUIRE_INTEGRATION=1."""
    missing = list(missing)
    if not missing:
        return
    reason = f"{what}: " + "; ".join(missing)
    if os.environ.get(REQUIRE_INTEGRATION) == "1":
        pytest.fail(f"{reason} ({REQUIRE_INTEGRATION}=1)", pytrace=False)
    pytest.skip(reason)


def need(ok: bool, reason: str) -> None:
    """:func:`require` one condition: ``reason`` says what is missing when ``ok`` is false."""
    require([] if ok else [reason])


def need_root() -> None:
    """The test needs root (mounts, another uid, real containers)."""
    need(os.geteuid() == 0, "not running as root")
