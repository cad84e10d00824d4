"""registry/__init__ is the public face: it exports the contract's names and nothing else
needs importing from the private modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import registry

REPO = Path(__file__).resolve().parents[2]

CONTRACT = {
    "Registration",
    "Registry",
    "InitContext",
    "Plugin",
    "Set",
    "Meta",
    "PluginStatus",
    "Host",
    "boot",
    "boot_async",
    "hookimpl",
    "hookspec",
    "ENTRY_POINT_GROUP",
    "PROPERTY_ROOT",
    "PROPERTY_STATE",
    "PROPERTY_GRPC_ADDRESS",
    "PROPERTY_TTRPC_ADDRESS",
    "PluginError",
    "NoType",
    "NoPluginID",
    "IDRegistered",
    "InvalidRequires",
    "WildcardMixedRequires",
    "RequiresOwnType",
    "SkipPlugin",
    "PluginInitialized",
    "PluginNotFound",
    "PluginMultipleInstances",
    "PluginCircularDependency",
    "BootError",
    "ConfigError",
    "platforms",
}


def test_every_contract_name_is_exported() -> None:
    assert CONTRACT <= set(registry.__all__)
    for name in registry.__all__:
        assert hasattr(registry, name), name


def test_property_keys_and_entry_point_group_have_containerds_values() -> None:
    assert registry.ENTRY_POINT_GROUP == "taskplane.plugins"
    assert registry.PROPERTY_ROOT == "io.containerd.plugin.root"
    assert registry.PROPERTY_STATE == "io.containerd.plugin.state"
    assert registry.PROPERTY_GRPC_ADDRESS == "io.containerd.plugin.grpc.address"
    assert registry.PROPERTY_TTRPC_ADDRESS == "io.containerd.plugin.ttrpc.address"


def test_every_registry_error_is_a_plugin_error() -> None:
    for name in (
        "NoType",
        "NoPluginID",
        "IDRegistered",
        "InvalidRequires",
        "WildcardMixedRequires",
        "RequiresOwnType",
        "SkipPlugin",
        "PluginInitialized",
        "PluginNotFound",
        "PluginMultipleInstances",
        "PluginCircularDependency",
        "BootError",
        "DiscoveryError",
    ):
        assert issubclass(getattr(registry, name), registry.PluginError), name


def test_requires_errors_share_containerds_invalid_requires_parent() -> None:
    for name in ("WildcardMixedRequires", "RequiresOwnType"):
        cls = getattr(registry, name)
        assert issubclass(cls, registry.InvalidRequires), name
        assert cls is not registry.InvalidRequires


def test_public_callables_have_docstrings() -> None:
    for name in registry.__all__:
        obj = getattr(registry, name)
        if callable(obj):
            assert obj.__doc__, name


def test_importing_registry_registers_nothing_globally() -> None:
    # No import-time registration: a fresh Registry is empty.
    assert registry.Registry().registrations() == ()


def test_every_exported_name_is_loaded_lazily_from_its_module() -> None:
    assert set(registry._EXPORTS) == set(registry.__all__)
    for name, module in registry._EXPORTS.items():
        loaded = importlib.import_module(module)
        expected = loaded if module == f"registry.{name}" else getattr(loaded, name)
        assert getattr(registry, name) is expected, name
    with pytest.raises(AttributeError, match="module 'registry' has no attribute 'nothing'"):
        registry.nothing  # noqa: B018


def test_declaring_plugins_does_not_import_the_boot_the_config_reader_or_asyncio() -> None:
    # What a plugin module needs to declare itself must stay cheap: every command imports
    # the built-in plugin modules before it knows whether it boots anything.
    code = (
        "import sys\n"
        "from registry import PROPERTY_ROOT, ConfigError, InitContext, Registration, hookimpl\n"
        "import plugins.types\n"
        "heavy = ('asyncio', 'cattrs', 'importlib.metadata', 'registry._boot', "
        "'registry.config', 'registry.platforms', 'registry.discovery', 'tomli_w')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.split() == []


def test_a_boot_without_plugin_tables_imports_neither_cattrs_nor_a_toml_writer(
    tmp_path: Path,
) -> None:
    # cattrs converts plugin tables and tomli_w writes configs; a boot with neither to do
    # (what every command does without a config file) must not pay for them.
    code = (
        "import sys\n"
        "from registry import Registration, Registry, boot\n"
        "regs = Registry([Registration('t', 'a', init=lambda ic: 1)])\n"
        "boot(registry=regs, root=sys.argv[1], state=sys.argv[2]).close()\n"
        "heavy = ('cattrs', 'tomli_w', 'tomllib', 'importlib.metadata', 'registry.platforms')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r"), str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.split() == []
