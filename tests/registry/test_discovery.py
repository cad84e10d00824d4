"""discover(): built-ins then ``taskplane.plugins`` entry points, deterministically; broken
third-party entry points are reported, never fatal."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import (
    DiscoveryError,
    IDRegistered,
    LoadFailure,
    Registration,
    boot_async,
    discover,
    hookimpl,
)
from registry.discovery import AUTOLOAD_ENV, autoload_enabled


def _init(ic: object) -> object:
    return "instance"


class Builtin:
    """A built-in plugin module stand-in: any object with @hookimpl functions works."""

    def __init__(self, *uris: str) -> None:
        self.uris = uris

    @hookimpl
    def taskplane_registrations(self) -> list[Registration]:
        regs = []
        for uri in self.uris:
            type, _, id = uri.rpartition(".")
            regs.append(Registration(type, id, init=_init))
        return regs


class FakeDists:
    """Writes installed-distribution metadata (``*.dist-info``) plus modules into a directory
    on sys.path, so importlib.metadata finds real entry points."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]  # unique module names: sys.modules is process-wide
        self.modules: list[str] = []

    def module(self, name: str, source: str) -> str:
        full = f"{name}_{self.tag}"
        (self.root / f"{full}.py").write_text(textwrap.dedent(source))
        self.modules.append(full)
        return full

    def dist(self, name: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[taskplane.plugins]\n{lines}")


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = FakeDists(tmp_path)
    yield fake
    for name in fake.modules:
        sys.modules.pop(name, None)


PLUGIN_MODULE = """
from registry import Registration, hookimpl

@hookimpl
def taskplane_registrations():
    return [Registration({type!r}, {id!r}, init=lambda ic: {id!r})]
"""


def plugin_module(dists: FakeDists, name: str, uri: str) -> str:
    type, _, id = uri.rpartition(".")
    return dists.module(name, PLUGIN_MODULE.format(type=type, id=id))


def ours(uris: list[str], dists: FakeDists) -> list[str]:
    return [u for u in uris if dists.tag in u]


def test_builtins_register_in_the_order_given_not_pluggys_call_order() -> None:
    registry, failures = discover([Builtin("b.1", "b.2"), Builtin("a.1")], autoload=False)
    assert [r.uri for r in registry.registrations()] == ["b.1", "b.2", "a.1"]
    assert failures == []


def test_the_same_builtin_given_twice_registers_once() -> None:
    module = Builtin("a.1")
    registry, _ = discover([module, module], autoload=False)
    assert len(registry) == 1


def test_builtin_with_a_misspelt_hook_is_a_clear_error() -> None:
    class Misspelt:
        @hookimpl
        def taskplane_registration(self) -> list[Registration]:
            return []

    with pytest.raises(DiscoveryError, match="unknown hook 'taskplane_registration'"):
        discover([Misspelt()], autoload=False)


def test_builtin_without_hookimpl_marker_is_a_clear_error() -> None:
    class Unmarked:
        def taskplane_registrations(self) -> list[Registration]:
            return []

    with pytest.raises(DiscoveryError, match=r"missing the @registry\.hookimpl decorator"):
        discover([Unmarked()], autoload=False)


def test_builtin_duplicate_registration_raises() -> None:
    with pytest.raises(IDRegistered):
        discover([Builtin("a.1"), Builtin("a.1")], autoload=False)


def test_entry_points_load_after_builtins_sorted_by_distribution_then_name(
    dists: FakeDists,
) -> None:
    t = dists.tag
    dists.dist(
        "zeta-plugins",
        {
            "b": plugin_module(dists, "zeta_b", f"z{t}.b"),
            "a": plugin_module(dists, "zeta_a", f"z{t}.a"),
        },
    )
    dists.dist("alpha-plugins", {"only": plugin_module(dists, "alpha", f"a{t}.only")})
    registry, failures = discover([Builtin(f"builtin{t}.x")], autoload=True)
    assert ours([r.uri for r in registry.registrations()], dists) == [
        f"builtin{t}.x",
        f"a{t}.only",
        f"z{t}.a",
        f"z{t}.b",
    ]
    assert [f for f in failures if dists.tag in str(f)] == []


def test_autoload_off_ignores_entry_points(dists: FakeDists) -> None:
    dists.dist("some-plugins", {"p": plugin_module(dists, "some", f"s{dists.tag}.p")})
    registry, _ = discover([], autoload=False)
    assert ours([r.uri for r in registry], dists) == []


def test_env_var_turns_autoload_off(dists: FakeDists, monkeypatch: pytest.MonkeyPatch) -> None:
    dists.dist("some-plugins", {"p": plugin_module(dists, "some", f"s{dists.tag}.p")})
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert not autoload_enabled()
    registry, _ = discover([])
    assert ours([r.uri for r in registry], dists) == []
    monkeypatch.setenv(AUTOLOAD_ENV, "")
    registry, _ = discover([])
    assert ours([r.uri for r in registry], dists) == [f"s{dists.tag}.p"]


def test_explicit_autoload_wins_over_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert autoload_enabled(True)
    monkeypatch.delenv(AUTOLOAD_ENV)
    assert not autoload_enabled(False)
    assert autoload_enabled()


def failures_of(failures: list[LoadFailure], dist: str) -> list[LoadFailure]:
    return [f for f in failures if f.distribution == dist]


def test_entry_point_that_fails_to_import_is_reported_and_others_load(dists: FakeDists) -> None:
    broken = dists.module("broken", "import taskplane_no_such_module_xyz\n")
    dists.dist(
        "broken-plugins", {"bad": broken, "good": plugin_module(dists, "good", f"g{dists.tag}.ok")}
    )
    registry, failures = discover([], autoload=True)
    assert ours([r.uri for r in registry], dists) == [f"g{dists.tag}.ok"]
    (failure,) = failures_of(failures, "broken-plugins")
    assert failure.entry_point == "bad"
    assert isinstance(failure.error, ModuleNotFoundError)
    assert failure.message == (
        "plugin entry point 'bad' of broken-plugins could not be loaded: "
        "ModuleNotFoundError: No module named 'taskplane_no_such_module_xyz'"
    )


def test_entry_point_with_a_misspelt_hook_is_reported(dists: FakeDists) -> None:
    source = """
    from registry import hookimpl

    @hookimpl
    def taskplane_registration():
        return []
    """
    dists.dist("typo-plugins", {"typo": dists.module("typo", source)})
    _, failures = discover([], autoload=True)
    (failure,) = failures_of(failures, "typo-plugins")
    assert "unknown hook 'taskplane_registration'" in str(failure.error)


def test_entry_point_returning_garbage_is_reported(dists: FakeDists) -> None:
    source = """
    from registry import hookimpl

    @hookimpl
    def taskplane_registrations():
        return ["io.example.v1.nope"]
    """
    dists.dist("garbage-plugins", {"g": dists.module("garbage", source)})
    _, failures = discover([], autoload=True)
    (failure,) = failures_of(failures, "garbage-plugins")
    assert isinstance(failure.error, TypeError)
    assert "not a Registration" in str(failure.error)


def test_entry_point_clashing_with_a_builtin_is_reported_and_the_builtin_kept(
    dists: FakeDists,
) -> None:
    uri = f"c{dists.tag}.x"
    dists.dist("clash-plugins", {"c": plugin_module(dists, "clash", uri)})
    registry, failures = discover([Builtin(uri)], autoload=True)
    assert [r.uri for r in registry if r.uri == uri] == [uri]
    (failure,) = failures_of(failures, "clash-plugins")
    assert isinstance(failure.error, IDRegistered)


async def test_boot_discovers_and_keeps_load_failures(dists: FakeDists, tmp_path: Path) -> None:
    dists.dist("broken-plugins", {"bad": dists.module("broken", "raise RuntimeError('no')\n")})
    dists.dist("fine-plugins", {"p": plugin_module(dists, "fine", f"f{dists.tag}.p")})
    config = {"version": 3, "root": str(tmp_path / "r"), "state": str(tmp_path / "s")}
    async with await boot_async(
        config, builtins=[Builtin(f"b{dists.tag}.x")], autoload=True
    ) as host:
        assert host.get(f"f{dists.tag}", "p") == "p"
        assert host.get(f"b{dists.tag}", "x") == "instance"
        assert [f.entry_point for f in failures_of(host.load_failures, "broken-plugins")] == ["bad"]
