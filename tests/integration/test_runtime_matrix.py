"""The shim x runc matrix itself: without ../shared/upstream its tests skip on a user's machine
and fail in CI (TASKPLANE_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from . import runtimes


def test_missing_upstream_binaries_skip_or_fail_under_required_integration(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runtimes, "UPSTREAM_SHIM", tmp_path / "containerd-shim-runc-v2")
    # The other upstream binaries are there (whether or not this checkout has ../shared/upstream).
    for name in ("UPSTREAM_RUNC", "UPSTREAM_CONTAINERD", "UPSTREAM_CTR"):
        monkeypatch.setattr(runtimes, name, Path(sys.executable))
    assert runtimes.missing_upstream() == [
        f"{tmp_path / 'containerd-shim-runc-v2'} does not exist (see ../shared/upstream)"
    ]
    monkeypatch.setenv("TASKPLANE_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="containerd-shim-runc-v2 does not exist"):
        runtimes.require_upstream(request.config)
    monkeypatch.delenv("TASKPLANE_REQUIRE_INTEGRATION")
    with pytest.raises(pytest.skip.Exception, match="containerd-shim-runc-v2 does not exist"):
        runtimes.require_upstream(request.config)
