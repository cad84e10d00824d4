"""Migrating a loaded config to version 3, decoding each plugin's table into its attrs config
class, and writing configs back as TOML.

Version 2 files are migrated to version 3 by :func:`migrate`, which calls each registration's
``config_migration`` (pure) on each file's ``plugins`` table before the files are merged.
cattrs (:mod:`registry._config_convert`) is imported only when a table is decoded or a config
written: a config without plugin tables is checked without it.

Private to the ``registry.config`` modules; :mod:`registry.config` is the public face.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from registry import _config_text as _text
from registry._config_files import Config, merge_layers
from registry._config_model import (
    CONFIG_VERSION,
    DEFAULT_ROOT,
    DEFAULT_STATE,
    NOTHING_KNOWN,
    ConfigError,
    ConfigIssue,
    ConfigLayer,
    ConfigurablePlugin,
    KnownSettings,
    ignored,
)

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "decode",
    "decode_plugin_configs",
    "default_config",
    "effective_config_dict",
    "migrate",
    "to_toml",
]


@functools.cache
def _converter() -> cattrs.Converter:
    """The strict converter, built on first use (importing cattrs then)."""
    from registry import _config_convert

    return _config_convert.make_converter()


def migrate(config: Config, registrations: Iterable[ConfigurablePlugin]) -> Config:
    """Bring every file of *config* to version 3; pure (neither argument is changed).

    Each file's ``plugins`` table is passed through every registration's
    ``config_migration(plugins, from_version)``, in registration order, one version step at
    a time; then the files are merged again. Version 2 keys stay as they are unless a
    migration changes them. A failing migration is a :class:`ConfigError` naming the plugin.
    """
    layers = config.layers or (
        ConfigLayer(
            config.files[0] if config.files else "<config>", config.version, config.plugins
        ),
    )
    if config.version >= CONFIG_VERSION and all(x.version >= CONFIG_VERSION for x in layers):
        return config
    regs = list(registrations)
    issues: list[ConfigIssue] = []
    migrated: list[ConfigLayer] = []
    for layer in layers:
        plugins: dict[str, Any] = copy.deepcopy(dict(layer.plugins))
        for from_version in range(layer.version, CONFIG_VERSION):
            for reg in regs:
                migration = reg.config_migration
                if migration is None:
                    continue
                what = (
                    f"config migration of plugin {_text.quote(reg.uri)} from version {from_version}"
                )
                try:
                    result = migration(copy.deepcopy(plugins), from_version)
                except Exception as e:
                    issues.append(ConfigIssue(layer.file, "plugins", f"{what} failed: {e}"))
                    continue
                if not isinstance(result, Mapping):
                    issues.append(
                        ConfigIssue(
                            layer.file,
                            "plugins",
                            f"{what} returned {_text.describe_value(result)}, not a table",
                        )
                    )
                    continue
                plugins = dict(result)
        migrated.append(ConfigLayer(layer.file, CONFIG_VERSION, plugins))
    if issues:
        raise ConfigError(issues)
    return attrs.evolve(
        config,
        version=CONFIG_VERSION,
        plugins=merge_layers(migrated),
        layers=tuple(migrated),
    )


# -- decoding ----------------------------------------------------------------------------------


def decode_plugin_configs(
    config: Config,
    registrations: Iterable[ConfigurablePlugin],
    known: KnownSettings = NOTHING_KNOWN,
) -> dict[str, object]:
    """Decode every registered plugin's table into its attrs config class, strictly.

    Returns uri -> config instance in registration order: the default instance
    (``config()``) when the file has no table for the plugin, None for plugins without a
    config class. Migrates *config* first when it is older than version 3. Raises
    :class:`ConfigError` with every problem: unknown keys, wrong types, failing attrs
    validators, tables for unregistered plugins, unknown ids in ``disabled_plugins`` /
    ``required_plugins``. What *known* names is ignored (see :func:`check_config` for the
    warnings).
    """
    regs = list(registrations)
    decoded, issues, warnings = decode(migrate(config, regs), regs, known)
    if issues:
        raise ConfigError(issues, warnings)
    return decoded


def decode(
    config: Config, regs: Sequence[ConfigurablePlugin], known: KnownSettings
) -> tuple[dict[str, object], list[ConfigIssue], list[ConfigIssue]]:
    """(decoded, errors, warnings) of a migrated config."""
    by_uri = {r.uri: r for r in regs}
    names = [*by_uri, *(u for u in known.plugins if u not in by_uri)]
    issues: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []

    def add(path: Sequence[str | int], message: str, file: str | None = None) -> None:
        issues.append(ConfigIssue(file or config.file_for(path), _text.render_path(path), message))

    def ignore(path: Sequence[str | int], explanation: str, file: str | None = None) -> None:
        where = file or config.file_for(path)
        warnings.append(ignored(where, _text.render_path(path), explanation))

    for uri, table in config.plugins.items():
        if uri in by_uri:
            continue
        if uri in known.plugins:
            ignore(["plugins", uri], known.plugins[uri])
        else:
            add(["plugins", uri], _not_registered(uri, names, table))
    for name in ("disabled_plugins", "required_plugins"):
        for i, uri in enumerate(getattr(config, name)):
            file = config.file_for([name, i])
            if uri in by_uri:
                continue
            if uri not in known.plugins:
                add([name], _not_registered(uri, names), file)
            elif name == "disabled_plugins":
                ignore([name, i], f"{_text.quote(uri)} is {known.plugins[uri]}", file)
            else:
                add([name], f"plugin {_text.quote(uri)} cannot load: {known.plugins[uri]}", file)
    for i, uri in enumerate(config.required_plugins):
        if uri in config.disabled_plugins:
            add(
                ["required_plugins"],
                f"plugin {_text.quote(uri)} is both required and disabled",
                config.file_for(["required_plugins", i]),
            )

    decoded: dict[str, object] = {}
    for reg in regs:
        uri = reg.uri
        prefix = ("plugins", uri)
        raw = config.plugins.get(uri)
        unimplemented = known.plugin_keys.get(uri, {})
        if raw is not None and unimplemented:
            for key in [k for k in raw if k in unimplemented]:
                ignore((*prefix, key), unimplemented[key])
            raw = {k: v for k, v in raw.items() if k not in unimplemented}
        cls = reg.config
        if cls is None:
            decoded[uri] = None
            if raw:
                add(prefix, f"plugin {_text.quote(uri)} takes no configuration")
            continue
        if raw is None:
            decoded[uri] = cls()
            continue
        # Validators run field by field before the instance is built, so each failure gets its
        # own path; no process-wide switch (attrs.validators.disabled()) is flipped for it.
        from registry._config_convert import structure_config

        instance, found = structure_config(_converter(), raw, cls)
        for path, message in found:
            add((*prefix, *path), message)
        if not found:
            decoded[uri] = instance
    return decoded, issues, warnings


def _not_registered(uri: str, names: Sequence[str], table: object = None) -> str:
    message = f"no plugin {_text.quote(uri)} is registered"
    # [plugins.io.containerd.x.y] without quotes nests a table per dot: name the fix.
    for known in names:
        first, *rest = known.split(".")
        if first != uri or not rest:
            continue
        node: object = table
        for part in rest:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            return f'{message} (quote the plugin URI: [plugins."{known}"])'
    hint = _text.suggest(uri, names)
    return f"{message} (did you mean {_text.quote(hint)}?)" if hint else message


# -- writing -----------------------------------------------------------------------------------


def _unstructure(instance: object) -> dict[str, Any]:
    value = _text.to_toml_value(_converter().unstructure(instance))
    assert isinstance(value, dict)
    return value


def default_config(
    registrations: Iterable[ConfigurablePlugin],
    *,
    root: str = DEFAULT_ROOT,
    state: str = DEFAULT_STATE,
) -> dict[str, Any]:
    """The default configuration as a TOML-able dict: every plugin's default config.

    >>> print(to_toml(default_config([])))  # doctest: +NORMALIZE_WHITESPACE
    version = 3
    root = "/var/lib/taskplane"
    state = "/run/taskplane"
    disabled_plugins = []
    required_plugins = []
    <BLANKLINE>
    [plugins]
    """
    plugins: dict[str, Any] = {}
    for reg in registrations:
        cls = reg.config
        if cls is not None:
            plugins[reg.uri] = _unstructure(cls())
    return {
        "version": CONFIG_VERSION,
        "root": root,
        "state": state,
        "disabled_plugins": [],
        "required_plugins": [],
        "plugins": plugins,
    }


def effective_config_dict(config: Config, decoded: Mapping[str, object]) -> dict[str, Any]:
    """The configuration in effect (for ``config dump``): after imports and migrations,
    every plugin's decoded config with defaults filled in. *decoded* is the result of
    :func:`decode_plugin_configs`. ``imports`` are omitted: their content is merged in.
    """
    return {
        "version": CONFIG_VERSION,
        "root": config.root,
        "state": config.state,
        "disabled_plugins": list(config.disabled_plugins),
        "required_plugins": list(config.required_plugins),
        "plugins": {uri: _unstructure(inst) for uri, inst in decoded.items() if inst is not None},
    }


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialize a config dict to TOML (None values dropped, tuples written as arrays)."""
    value = _text.to_toml_value(data)
    assert isinstance(value, dict)
    import tomli_w  # only when a config is written (config default / dump)

    return tomli_w.dumps(value)
