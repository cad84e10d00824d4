"""NSMap: objects by namespace, then id."""

from __future__ import annotations

import pytest

from plugins import errdefs
from runtime_v2.nsmap import NSMap


def test_get_of_a_missing_entry_is_not_found_naming_both() -> None:
    m: NSMap[str] = NSMap()
    with pytest.raises(errdefs.NotFound, match='task "x" in namespace "ns"'):
        m.get("ns", "x")


def test_add_of_a_duplicate_is_already_exists() -> None:
    m: NSMap[str] = NSMap()
    m.add("ns", "x", "first")
    with pytest.raises(errdefs.AlreadyExists, match="x: already exists"):
        m.add("ns", "x", "second")
    assert m.get("ns", "x") == "first"


def test_same_id_in_two_namespaces_does_not_collide() -> None:
    m: NSMap[str] = NSMap()
    m.add("a", "x", "in a")
    m.add("b", "x", "in b")
    assert (m.get("a", "x"), m.get("b", "x")) == ("in a", "in b")
    assert m.get_all("a") == ["in a"]
    assert sorted(m.get_all(all=True)) == ["in a", "in b"]
    assert len(m) == 2


def test_delete_is_silent_and_returns_what_was_there() -> None:
    m: NSMap[str] = NSMap()
    assert m.delete("ns", "x") is None
    m.add("ns", "x", "obj")
    assert m.delete("ns", "x") == "obj"
    assert m.namespaces() == []
    assert not m.contains("ns", "x")


def test_is_current_compares_identity() -> None:
    m: NSMap[list[int]] = NSMap()
    obj = [1]
    m.add("ns", "x", obj)
    assert m.is_current("ns", "x", obj)
    assert not m.is_current("ns", "x", [1])


def test_delete_if_current_leaves_a_newer_object() -> None:
    m: NSMap[list[int]] = NSMap()
    old, new = [1], [1]
    m.add("ns", "x", old)
    assert m.delete_if_current("ns", "x", old)
    m.add("ns", "x", new)
    assert not m.delete_if_current("ns", "x", old)
    assert m.get("ns", "x") is new


def test_get_all_without_namespace_needs_all() -> None:
    with pytest.raises(errdefs.InvalidArgument):
        NSMap[str]().get_all()
