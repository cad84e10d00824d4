"""A missing prerequisite skips a test, saying what, and fails it when CI requires integration."""

from __future__ import annotations

import pytest

from tests.prerequisites import REQUIRE_INTEGRATION, need, require


def test_a_missing_prerequisite_skips_saying_what(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_INTEGRATION, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs: runc; root"):
        require(["runc", "root"], what="needs")


def test_a_missing_prerequisite_fails_when_integration_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_INTEGRATION, "1")
    with pytest.raises(pytest.fail.Exception, match=r"no shim \(TASKPLANE_REQUIRE_INTEGRATION=1\)"):
        need(False, "no shim")


def test_nothing_missing_runs_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_INTEGRATION, "1")
    need(True, "never said")
    require([])
