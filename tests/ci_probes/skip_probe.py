"""A probe for tests/test_ci.py, not collected by default: one test passes, one skips."""

import pytest


def test_passes() -> None:
    pass


def test_skips() -> None:
    pytest.skip("the probe skips")
