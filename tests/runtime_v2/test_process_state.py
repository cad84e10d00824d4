"""State and ProcessInfo: defined in runtime_v2.process_state, still the runtime contract's."""

from __future__ import annotations

import pytest

import runtime_v2
from runtime_v2 import process_state, runtime
from tests.fresh_imports import modules_after


def test_the_contract_re_exports_state_and_process_info() -> None:
    assert runtime.State is process_state.State
    assert runtime.ProcessInfo is process_state.ProcessInfo
    assert runtime_v2.State is process_state.State
    assert runtime_v2.ProcessInfo is process_state.ProcessInfo
    assert {"State", "ProcessInfo"} <= set(runtime.__all__)


def test_an_unknown_name_of_the_contract_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        runtime.NoSuchThing  # noqa: B018


def test_importing_the_contract_and_the_shim_builds_no_state_class() -> None:
    # A run imports both and asks no process for its state: the classes wait for first use.
    imported = modules_after("runtime_v2.runtime", "runtime_v2.shim", "runtime_v2.process")
    assert "runtime_v2.process_state" not in imported
