"""Skips that cannot stay silent: a test that needs something this machine lacks skips, saying
what, unless ``TASKPLANE_REQUIRE_INTEGRATION=1`` (what CI sets): then it fails.

Importable from every test directory as ``tests.prerequisites``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

import pytest

REQUIRE_INTEGRATION = "TASKPLANE_REQUIRE_INTEGRATION"
SHIM_BINARY = "containerd-shim-runc-v2"
RUNC_BINARY = "runc"


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


def missing_integration_prerequisites(path: str | None = None) -> list[str]:
    """Why tests against the real runc shim cannot run here (empty when they can).

    ``path`` is the PATH to look for runc and the shim in (default: ours).
    """
    from taskplane.rootfs import RootfsError, find_busybox

    missing = []
    for binary in (RUNC_BINARY, SHIM_BINARY):
        if shutil.which(binary, path=path) is None:
            missing.append(f"{binary} is not installed (not on PATH)")
    try:
        find_busybox()
    except RootfsError as exc:
        missing.append(str(exc))
    if os.geteuid() != 0:
        missing.append("not running as root (real containers need root)")
    return missing
