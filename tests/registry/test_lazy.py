"""``registry._lazy.export_lazily``: a name a module exports but another defines is imported
on first read and kept; any other name is an AttributeError."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from registry._lazy import export_lazily


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    made = types.ModuleType("tp_lazy_probe")
    made.__getattr__ = export_lazily("tp_lazy_probe", {"Wave_read": "wave"})  # type: ignore[attr-defined]
    sys.modules[made.__name__] = made
    yield made
    del sys.modules[made.__name__]


def test_a_name_is_imported_on_first_read_and_kept(module: types.ModuleType) -> None:
    sys.modules.pop("wave", None)
    assert "Wave_read" not in vars(module)
    from tp_lazy_probe import Wave_read  # type: ignore[import-not-found]

    assert Wave_read is sys.modules["wave"].Wave_read
    assert vars(module)["Wave_read"] is Wave_read  # later reads skip the hook


def test_another_name_is_an_attribute_error(module: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="module 'tp_lazy_probe' has no attribute 'nope'"):
        module.nope  # noqa: B018
