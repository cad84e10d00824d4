"""Registry.register's rules: each bad registration raises its own PluginError subclass."""

from __future__ import annotations

import sys

import attrs
import pytest

from registry import (
    IDRegistered,
    InvalidRequires,
    NoPluginID,
    NoType,
    PluginError,
    Registration,
    Registry,
    RequiresOwnType,
    WildcardMixedRequires,
)


def _init(ic: object) -> object:
    return object()


def reg(type: str, id: str, *requires: str) -> Registration:
    return Registration(type, id, init=_init, requires=requires)


def test_uri_is_type_dot_id() -> None:
    assert reg("io.containerd.event.v1", "exchange").uri == "io.containerd.event.v1.exchange"


def test_registration_is_frozen() -> None:
    r = reg("a", "b")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.id = "c"  # type: ignore[misc]


def test_requires_is_stored_as_a_tuple() -> None:
    r = Registration("a", "b", init=_init, requires=["x", "y"])  # type: ignore[arg-type]
    assert r.requires == ("x", "y")


def test_requires_given_as_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not the string 'x'"):
        Registration("a", "b", init=_init, requires="x")  # type: ignore[arg-type]


def test_registrations_keep_registration_order() -> None:
    registry = Registry()
    registry.register(reg("z", "1"), reg("a", "2"))
    registry.register(reg("m", "3"))
    assert [r.uri for r in registry.registrations()] == ["z.1", "a.2", "m.3"]
    assert len(registry) == 3
    assert "a.2" in registry
    assert registry.get("m.3") == registry.registrations()[2]
    assert registry.get("nope") is None


def test_empty_type_is_rejected_with_no_type() -> None:
    bad = reg("", "x")
    with pytest.raises(NoType, match="id 'x' has no type") as info:
        Registry().register(bad)
    assert info.value.registration is bad
    assert isinstance(info.value, PluginError)


def test_empty_id_is_rejected_with_no_plugin_id() -> None:
    bad = reg("io.example.v1", "")
    with pytest.raises(NoPluginID, match=r"type 'io\.example\.v1' has no id") as info:
        Registry().register(bad)
    assert info.value.registration is bad


def test_duplicate_type_and_id_is_rejected_with_id_registered() -> None:
    registry = Registry([reg("io.example.v1", "a")])
    dup = reg("io.example.v1", "a", "other")
    with pytest.raises(IDRegistered, match=r"io\.example\.v1\.a is already registered") as info:
        registry.register(dup)
    assert info.value.registration is dup


def test_duplicate_within_one_call_is_rejected() -> None:
    with pytest.raises(IDRegistered):
        Registry().register(reg("t", "a"), reg("t", "a"))


def test_uniqueness_is_by_type_and_id_not_by_uri() -> None:
    # containerd's checkUnique compares type and id: these two share the URI "a.b.c"
    registry = Registry([reg("a.b", "c"), reg("a", "b.c")])
    assert [(r.type, r.id) for r in registry] == [("a.b", "c"), ("a", "b.c")]
    assert registry.get("a.b.c") is not None
    with pytest.raises(IDRegistered):
        registry.register(reg("a", "b.c"))


def test_same_id_with_another_type_is_allowed() -> None:
    registry = Registry([reg("t1", "a"), reg("t2", "a")])
    assert len(registry) == 2


def test_register_is_all_or_nothing() -> None:
    registry = Registry()
    with pytest.raises(NoPluginID):
        registry.register(reg("t", "ok"), reg("t", ""))
    assert registry.registrations() == ()


def test_wildcard_mixed_with_types_is_rejected() -> None:
    bad = reg("io.grpc.v1", "introspection", "*", "io.service.v1")
    with pytest.raises(WildcardMixedRequires, match=r"io\.grpc\.v1\.introspection mixes") as info:
        Registry().register(bad)
    assert info.value.registration is bad
    assert type(info.value) is WildcardMixedRequires
    assert isinstance(info.value, InvalidRequires)  # containerd's ErrInvalidRequires


def test_wildcard_alone_is_accepted() -> None:
    Registry().register(reg("io.grpc.v1", "introspection", "*"))


def test_requiring_its_own_type_is_rejected() -> None:
    bad = reg("io.service.v1", "a", "io.service.v1")
    with pytest.raises(RequiresOwnType, match=r"requires its own type io\.service\.v1") as info:
        Registry().register(bad)
    assert info.value.registration is bad
    assert type(info.value) is RequiresOwnType
    assert isinstance(info.value, InvalidRequires)


def test_the_two_requires_errors_are_distinct_classes() -> None:
    assert not issubclass(WildcardMixedRequires, RequiresOwnType)
    assert not issubclass(RequiresOwnType, WildcardMixedRequires)
    with pytest.raises(InvalidRequires) as info:
        Registry().register(reg("t", "a", "*", "t"))  # both wrong: the wildcard rule wins
    assert type(info.value) is WildcardMixedRequires


def test_requiring_an_empty_type_is_rejected() -> None:
    with pytest.raises(InvalidRequires, match="empty plugin type"):
        Registry().register(reg("t", "a", ""))


def test_registering_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected a Registration"):
        Registry().register("io.example.v1.a")  # type: ignore[arg-type]


def test_registration_interns_its_types_so_lookups_compare_by_identity() -> None:
    kind = "".join(["io.example", ".v1"])  # a fresh, non-interned string
    r = Registration(kind, "a", init=_init, requires=["".join(["io.other", ".v1"])])
    assert r.type is sys.intern("io.example.v1")
    assert r.requires[0] is sys.intern("io.other.v1")
    assert r == Registration("io.example.v1", "a", init=_init, requires=["io.other.v1"])


def test_registry_get_finds_by_uri() -> None:
    a, b = reg("t", "a"), reg("u", "b")
    registry = Registry([a, b])
    assert registry.get("u.b") is b
    assert registry.get("t.a") is a
    assert registry.get("t.zz") is None
    assert "t.a" in registry and "t.zz" not in registry
