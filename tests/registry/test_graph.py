"""graph(): containerd's initialisation order, cycles, and the pre-init blocked check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import (
    Blocked,
    PluginCircularDependency,
    Registration,
    Registry,
)


def _init(ic: object) -> object:
    return object()


def reg(uri: str, *requires: str) -> Registration:
    type, _, id = uri.rpartition(".")
    return Registration(type, id, init=_init, requires=requires)


def uris(regs: list[Registration]) -> list[str]:
    return [r.uri for r in regs]


def containerd_like() -> Registry:
    return Registry(
        [
            reg("monitor.v1.cgroups"),
            reg("service.v1.tasks", "runtime.v2", "metadata.v1", "monitor.v1"),
            reg("service.v1.intro"),
            reg("grpc.v1.ns", "service.v1"),
            reg("runtime.v2.task", "metadata.v1", "shim.v1"),
            reg("grpc.v1.introspection", "*"),
            reg("shim.v1.manager", "event.v1", "metadata.v1"),
            reg("metadata.v1.bolt", "content.v1", "snapshotter.v1"),
            reg("snapshotter.v1.native"),
            reg("content.v1.content"),
            reg("event.v1.exchange"),
            reg("snapshotter.v1.overlay"),
        ]
    )


def test_graph_matches_containerd_order_worked_by_hand() -> None:
    # Walk (containerd's Graph): cgroups; tasks -> runtime.v2.task -> bolt -> content,
    # then every snapshotter (registration order), bolt; task -> shim.v1 -> manager ->
    # exchange, manager; task; tasks; intro; ns (services done); introspection last ("*").
    assert uris(containerd_like().graph()) == [
        "monitor.v1.cgroups",
        "content.v1.content",
        "snapshotter.v1.native",
        "snapshotter.v1.overlay",
        "metadata.v1.bolt",
        "event.v1.exchange",
        "shim.v1.manager",
        "runtime.v2.task",
        "service.v1.tasks",
        "service.v1.intro",
        "grpc.v1.ns",
        "grpc.v1.introspection",
    ]


def test_graph_is_registration_order_without_requirements() -> None:
    registry = Registry([reg("b.v1.x"), reg("a.v1.y"), reg("c.v1.z")])
    assert uris(registry.graph()) == ["b.v1.x", "a.v1.y", "c.v1.z"]


def test_wildcard_registered_first_still_comes_after_everything() -> None:
    registry = Registry(
        [
            reg("grpc.introspection", "*"),
            reg("service.container", "metadata"),
            reg("metadata.bolt"),
        ]
    )
    assert uris(registry.graph()) == ["metadata.bolt", "service.container", "grpc.introspection"]


def test_requirements_are_walked_in_requires_order() -> None:
    registry = Registry(
        [
            reg("metadata.bolt", "content", "snapshotter"),
            reg("snapshotter.overlayfs"),
            reg("content.content"),
        ]
    )
    assert uris(registry.graph()) == ["content.content", "snapshotter.overlayfs", "metadata.bolt"]


def test_every_provider_of_a_required_type_comes_first() -> None:
    registry = Registry(
        [
            reg("user.one", "snap"),
            reg("snap.a"),
            reg("other.x"),
            reg("snap.b"),
        ]
    )
    assert uris(registry.graph()) == ["snap.a", "snap.b", "user.one", "other.x"]


def test_disabled_plugins_are_left_out_by_uri() -> None:
    registry = Registry([reg("content.content"), reg("disable.disable")])
    assert uris(registry.graph(["disable.disable"])) == ["content.content"]


def test_disabled_plugins_are_left_out_by_predicate() -> None:
    registry = containerd_like()
    order = registry.graph(lambda r: r.type == "snapshotter.v1")
    assert "snapshotter.v1.native" not in uris(order)
    assert "snapshotter.v1.overlay" not in uris(order)
    assert len(order) == len(registry) - 2


def test_a_plugin_requiring_a_missing_type_is_still_ordered() -> None:
    # graph() only orders; the missing type is the blocked check's business.
    registry = Registry([reg("runtime.v2.task", "shim.v1")])
    assert uris(registry.graph()) == ["runtime.v2.task"]


def test_two_plugin_cycle_names_the_whole_cycle() -> None:
    registry = Registry([reg("x.a", "y"), reg("y.b", "x")])
    with pytest.raises(PluginCircularDependency) as info:
        registry.graph()
    assert str(info.value) == "circular plugin dependency: x.a -> y.b -> x.a"
    assert info.value.cycle == ("x.a", "y.b", "x.a")


def test_cycle_reached_through_a_tail_names_only_the_cycle() -> None:
    registry = Registry([reg("t.head", "a"), reg("a.1", "b"), reg("b.1", "c"), reg("c.1", "a")])
    with pytest.raises(PluginCircularDependency, match=r": a\.1 -> b\.1 -> c\.1 -> a\.1$"):
        registry.graph()


def test_two_wildcard_plugins_are_a_cycle() -> None:
    registry = Registry([reg("p.1", "*"), reg("q.2", "*")])
    with pytest.raises(PluginCircularDependency, match=r"p\.1 -> q\.2 -> p\.1"):
        registry.graph()


def test_disabling_a_cycle_member_breaks_the_cycle() -> None:
    registry = Registry([reg("x.a", "y"), reg("y.b", "x")])
    assert uris(registry.graph(["y.b"])) == ["x.a"]


def chain(n: int, *, cycle: bool) -> Registry:
    # p0 requires t1, p1 requires t2, ... ; the last requires t0 when it is a cycle.
    regs = []
    for i in range(n):
        nxt = i + 1 if i + 1 < n else (0 if cycle else None)
        regs.append(
            Registration(f"t{i}", "p", init=_init, requires=(f"t{nxt}",) if nxt is not None else ())
        )
    return Registry(regs)


def test_five_thousand_long_chain_needs_no_recursion() -> None:
    order = chain(5000, cycle=False).graph()
    assert uris(order) == [f"t{i}.p" for i in reversed(range(5000))]


def test_five_thousand_long_cycle_is_reported_whole() -> None:
    with pytest.raises(PluginCircularDependency) as info:
        chain(5000, cycle=True).graph()
    cycle = info.value.cycle
    assert len(cycle) == 5001
    assert cycle[0] == cycle[-1] == "t0.p"
    assert cycle[1:3] == ("t1.p", "t2.p")


def test_nothing_blocked_when_every_type_is_provided() -> None:
    assert containerd_like().blocked() == {}


def test_plugin_whose_type_nobody_provides_is_blocked() -> None:
    registry = Registry([reg("runtime.v2.task", "shim.v1")])
    assert registry.blocked() == {
        "runtime.v2.task": Blocked("requires shim.v1, which no plugin provides", "shim.v1"),
    }


def test_blocked_reason_names_the_disabled_provider() -> None:
    registry = Registry(
        [
            reg("io.containerd.runtime.v2.task", "io.containerd.shim.v1"),
            reg("io.containerd.shim.v1.manager"),
        ]
    )
    blocked = registry.blocked(["io.containerd.shim.v1.manager"])
    assert blocked["io.containerd.runtime.v2.task"].reason == (
        "requires io.containerd.shim.v1, which no plugin provides "
        "(io.containerd.shim.v1.manager is disabled)"
    )


def test_blocked_reason_names_several_disabled_providers() -> None:
    registry = Registry([reg("u.1", "s"), reg("s.a"), reg("s.b")])
    assert registry.blocked(["s.a", "s.b"])["u.1"].reason == (
        "requires s, which no plugin provides (s.a, s.b are disabled)"
    )


def test_one_enabled_provider_is_enough() -> None:
    registry = Registry([reg("u.1", "s"), reg("s.a"), reg("s.b")])
    assert registry.blocked(["s.a"]) == {}


def test_dependents_of_a_blocked_plugin_are_blocked_naming_it() -> None:
    registry = Registry(
        [
            reg("grpc.tasks", "runtime"),
            reg("runtime.task", "shim"),
            reg("shim.manager", "event"),
            reg("event.exchange"),
        ]
    )
    blocked = registry.blocked(["event.exchange"])
    assert set(blocked) == {"shim.manager", "runtime.task", "grpc.tasks"}
    assert blocked["runtime.task"] == Blocked(
        "requires shim; shim.manager is blocked: requires event, which no plugin provides "
        "(event.exchange is disabled)",
        "shim.manager",
        ("event.exchange",),
    )
    assert blocked["grpc.tasks"].dependency == "runtime.task"
    assert blocked["grpc.tasks"].reason.startswith("requires runtime; runtime.task is blocked: ")


def test_blocked_names_the_disabled_plugins_behind_it_transitively() -> None:
    registry = Registry(
        [
            reg("grpc.tasks", "runtime"),
            reg("runtime.task", "shim", "snap"),
            reg("shim.manager", "event"),
            reg("event.exchange"),
            reg("snap.native"),
            reg("other.x"),
        ]
    )
    blocked = registry.blocked(["event.exchange", "snap.native"])
    assert blocked["shim.manager"].disabled == ("event.exchange",)
    # Both unmet requirements count, although the reason names only the first.
    assert blocked["runtime.task"].disabled == ("event.exchange", "snap.native")
    assert blocked["runtime.task"].dependency == "shim.manager"
    assert blocked["grpc.tasks"].disabled == ("event.exchange", "snap.native")
    assert "other.x" not in blocked


def test_blocked_by_a_missing_type_nobody_disabled_names_no_disabled_plugin() -> None:
    registry = Registry([reg("u.1", "nobody"), reg("v.1", "u")])
    blocked = registry.blocked()
    assert blocked["u.1"].disabled == ()
    assert blocked["v.1"].disabled == ()


def test_wildcard_plugin_is_never_blocked() -> None:
    registry = Registry([reg("grpc.introspection", "*"), reg("u.1", "missing")])
    assert set(registry.blocked()) == {"u.1"}


def containerd_graph_reference(regs: list[Registration], disabled: set[str]) -> list[str]:
    """A direct, recursive transcription of containerd's Graph/children walk (small inputs
    only), to check the iterative implementation against."""
    handled = {r.uri for r in regs if r.uri in disabled}
    ordered: list[str] = []

    def children(stack: list[Registration]) -> None:
        reg = stack[-1]
        for t in reg.requires:
            for r in regs:
                if (t == "*" or r.type == t) and r is not reg and r.uri not in handled:
                    if r in stack[:-1]:
                        raise PluginCircularDependency([r.uri])
                    children([*stack, r])
                    handled.add(r.uri)
                    ordered.append(r.uri)

    for r in regs:
        if r.uri in handled:
            continue
        children([r])
        handled.add(r.uri)
        ordered.append(r.uri)
    return ordered


TYPES = ["a", "b", "c", "d", "e"]


@st.composite
def registries(draw: st.DrawFn) -> tuple[list[Registration], set[str]]:
    count = draw(st.integers(0, 9))
    regs: list[Registration] = []
    for i in range(count):
        type = draw(st.sampled_from(TYPES))
        if draw(st.integers(0, 9)) == 0:
            requires: tuple[str, ...] = ("*",)
        else:
            others = [t for t in TYPES if t != type]
            requires = tuple(draw(st.lists(st.sampled_from(others), max_size=3, unique=True)))
        regs.append(Registration(type, f"p{i}", init=_init, requires=requires))
    disabled = {r.uri for r in regs if draw(st.integers(0, 5)) == 0}
    return regs, disabled


@given(registries())
@settings(max_examples=300, deadline=None)
def test_graph_agrees_with_containerds_recursive_walk(
    case: tuple[list[Registration], set[str]],
) -> None:
    regs, disabled = case
    try:
        expected = containerd_graph_reference(regs, disabled)
    except PluginCircularDependency:
        with pytest.raises(PluginCircularDependency):
            Registry(regs).graph(disabled)
        return
    order = Registry(regs).graph(disabled)
    assert uris(order) == expected
    placed = {uri: n for n, uri in enumerate(expected)}
    for reg in order:
        for t in reg.requires:
            for other in regs:
                if other.uri in placed and other is not reg and (t == "*" or other.type == t):
                    assert placed[other.uri] < placed[reg.uri]
