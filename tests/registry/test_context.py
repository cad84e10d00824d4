"""Set, Plugin and InitContext lookups, with containerd's semantics."""

from __future__ import annotations

import pytest

from registry import (
    PROPERTY_ROOT,
    PROPERTY_STATE,
    InitContext,
    Meta,
    Plugin,
    PluginInitialized,
    PluginMultipleInstances,
    PluginNotFound,
    Registration,
    Set,
    UnexpectedInstance,
)


def _init(ic: object) -> object:
    return None


def plugin(type: str, id: str, error: BaseException | None = None) -> Plugin:
    reg = Registration(type, id, init=_init)
    return Plugin(reg, None, Meta(), None if error else f"{type}.{id}", error)


class OtherError(Exception):
    pass


@pytest.fixture
def ic() -> InitContext:
    plugins = Set()
    for p in [
        plugin("type1", "id1"),
        plugin("type3", "id4"),
        plugin("type4", "id5"),
        plugin("type4", "id6"),
        plugin("type5", "id7", OtherError("other error")),
        plugin("type6", "ok"),
        plugin("type6", "broken", OtherError("broken")),
    ]:
        plugins.add(p)
    return InitContext(Registration("me", "x", init=_init), plugins=plugins)


def test_set_keeps_initialisation_order() -> None:
    plugins = Set()
    plugins.add(plugin("b", "1"))
    plugins.add(plugin("a", "2"))
    assert [p.registration.uri for p in plugins] == ["b.1", "a.2"]
    assert len(plugins) == 2
    assert plugins.get("a", "2") is not None
    assert plugins.get("a", "9") is None
    assert plugins.get("zz", "2") is None


def test_set_rejects_a_second_plugin_with_the_same_type_and_id() -> None:
    plugins = Set()
    plugins.add(plugin("a", "1"))
    with pytest.raises(PluginInitialized, match=r"a\.1 is already initialised"):
        plugins.add(plugin("a", "1"))


def test_set_lookups_across_one_and_several_plugins_of_a_type() -> None:
    plugins = Set()
    first, second, third = plugin("t", "a"), plugin("t", "b"), plugin("t", "c")
    plugins.add(first)
    assert plugins.get("t", "a") is first and plugins.get("t", "b") is None
    assert plugins.by_type("t") == {"a": first}
    plugins.add(second)
    plugins.add(third)
    assert plugins.get("t", "b") is second
    assert list(plugins.by_type("t")) == ["a", "b", "c"]
    for dup in ("a", "c"):
        with pytest.raises(PluginInitialized):
            plugins.add(plugin("t", dup))
    assert [p.registration.id for p in plugins] == ["a", "b", "c"]
    assert [p.registration.id for p in reversed(plugins)] == ["c", "b", "a"]
    copy = plugins.by_type("t")
    copy.clear()
    assert len(plugins.by_type("t")) == 3


def test_set_rejects_a_duplicate_of_a_types_only_plugin() -> None:
    plugins = Set()
    only = plugin("t", "a")
    plugins.add(only)
    with pytest.raises(PluginInitialized):
        plugins.add(plugin("t", "a"))
    assert plugins.get("t", "a") is only and len(plugins) == 1


def test_plugin_instance_raises_the_init_error() -> None:
    err = OtherError("boom")
    failed = plugin("a", "1", err)
    assert not failed.loaded
    with pytest.raises(OtherError) as info:
        _ = failed.instance
    assert info.value is err


def test_get_single_returns_the_only_instance(ic: InitContext) -> None:
    assert ic.get_single("type1") == "type1.id1"


def test_get_single_of_an_absent_type_is_plugin_not_found(ic: InitContext) -> None:
    with pytest.raises(PluginNotFound, match="no plugins registered for type2"):
        ic.get_single("type2")


def test_get_single_with_several_loaded_is_multiple_instances(ic: InitContext) -> None:
    with pytest.raises(PluginMultipleInstances, match=r"type4\.id5, type4\.id6"):
        ic.get_single("type4")


def test_get_single_raises_the_init_error_when_the_only_one_failed(ic: InitContext) -> None:
    with pytest.raises(OtherError, match="other error"):
        ic.get_single("type5")


def test_get_single_refuses_two_plugins_of_the_type_even_when_one_failed(
    ic: InitContext,
) -> None:
    # containerd's GetSingle counts every initialised plugin of the type, loaded or not
    with pytest.raises(PluginMultipleInstances, match=r"several are registered: type6\.ok"):
        ic.get_single("type6")


def test_get_by_id(ic: InitContext) -> None:
    assert ic.get_by_id("type4", "id6") == "type4.id6"
    with pytest.raises(PluginNotFound, match=r"no plugins registered for type4\.id9"):
        ic.get_by_id("type4", "id9")
    with pytest.raises(OtherError):
        ic.get_by_id("type5", "id7")


def test_get_by_type_returns_plugins_by_id(ic: InitContext) -> None:
    found = ic.get_by_type("type4")
    assert list(found) == ["id5", "id6"]
    assert found["id5"].instance == "type4.id5"
    assert ic.get_by_type("type6")["broken"].error is not None
    with pytest.raises(PluginNotFound, match="no plugins registered for type2"):
        ic.get_by_type("type2")


def test_get_all_is_every_initialised_plugin(ic: InitContext) -> None:
    assert [p.registration.uri for p in ic.get_all()][:2] == ["type1.id1", "type3.id4"]
    assert len(ic.get_all()) == 7


def test_root_and_state_come_from_the_properties() -> None:
    ic = InitContext(
        Registration("t", "a", init=_init),
        properties={PROPERTY_ROOT: "/r/t.a", PROPERTY_STATE: "/s/t.a"},
    )
    assert (ic.root, ic.state) == ("/r/t.a", "/s/t.a")


def test_register_readiness_without_a_host_is_harmless() -> None:
    ic = InitContext(Registration("t", "a", init=_init))
    ready = ic.register_readiness()
    assert ic.registered_readiness
    ready()


def test_typed_get_single_returns_the_instance_as_the_class(ic: InitContext) -> None:
    found: str = ic.get_single("type1", str)
    assert found == "type1.id1"


def test_typed_get_single_of_another_class_names_the_plugin_and_both_classes(
    ic: InitContext,
) -> None:
    with pytest.raises(UnexpectedInstance) as info:
        ic.get_single("type1", int)
    assert str(info.value) == "plugin type1.id1 is a str, not a int"
    assert isinstance(info.value, TypeError)
    assert info.value.registration is not None and info.value.registration.uri == "me.x"


def test_typed_get_single_keeps_the_lookup_errors(ic: InitContext) -> None:
    with pytest.raises(PluginNotFound):
        ic.get_single("type2", str)
    with pytest.raises(PluginMultipleInstances):
        ic.get_single("type4", str)
    with pytest.raises(OtherError):
        ic.get_single("type5", str)


def test_typed_get_by_id(ic: InitContext) -> None:
    assert ic.get_by_id("type4", "id6", str) == "type4.id6"
    with pytest.raises(UnexpectedInstance, match=r"^plugin type4\.id6 is a str, not a bytes$"):
        ic.get_by_id("type4", "id6", bytes)
