"""taskplane's TOML configuration: containerd's ``config.toml``, validated strictly.

Loading follows containerd 2 (``LoadConfig``): the file's ``imports`` (globs allowed, relative
to the importing file) are loaded breadth-first after it, each file at most once; later files
override earlier ones, lists are unioned, and ``plugins`` tables are merged key by key (a
table in a later file changes only the keys it sets). A drop-in file may not have a higher
``version`` than the root file; a file without ``version`` is version 1, as in containerd 2.
Each file is migrated from its own version. An import is a glob only when it contains ``*``,
and ``*`` matches dot-files as Go's ``filepath.Glob`` does.

A config is input, not trusted code: files are identified by their real path (a symlinked
directory cannot make imports grow without end), only regular files are read (a FIFO or
``/dev/zero`` is refused, not waited on or read forever), and :data:`MAX_CONFIG_BYTES`,
:data:`MAX_CONFIG_FILES`, :data:`MAX_IMPORT_DEPTH` and :data:`MAX_NESTING` bound the work; each
limit reached is one issue naming the file.

Unlike containerd, nothing unknown is ignored: unknown keys, wrong types, tables for plugins
nobody registered and unknown ids in ``disabled_plugins`` / ``required_plugins`` are errors
naming the file, the TOML path and a likely fix, and all of them are reported at once in one
:class:`ConfigError`::

    config = load_config("/etc/taskplane/config.toml")
    decoded = decode_plugin_configs(config, registry.registrations())  # uri -> attrs config

Version 2 files are migrated to version 3 by :func:`migrate`, which calls each registration's
``config_migration`` (pure) on each file's ``plugins`` table before the files are merged.

This module is the public face; the work is done in ``registry._config_files`` (loading, imports
and bounds), ``registry._config_decode`` (migration, decoding, writing) and
``registry._config_model`` (the shared values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from registry._config_decode import (
    decode,
    decode_plugin_configs,
    default_config,
    effective_config_dict,
    migrate,
    to_toml,
)
from registry._config_files import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_FILES,
    MAX_IMPORT_DEPTH,
    MAX_NESTING,
    Config,
    ConfigSource,
    NotARegularFile,
    coerce,
    coerce_config,
    load_config,
    nesting_depth,
    parse_duration,
    read_regular_file,
)
from registry._config_model import (
    CONFIG_VERSION,
    DEFAULT_ROOT,
    DEFAULT_STATE,
    NOTHING_KNOWN,
    SUPPORTED_VERSIONS,
    ConfigError,
    ConfigIssue,
    ConfigLayer,
    ConfigurablePlugin,
    KnownSettings,
)

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_ROOT",
    "DEFAULT_STATE",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_FILES",
    "MAX_IMPORT_DEPTH",
    "MAX_NESTING",
    "NOTHING_KNOWN",
    "SUPPORTED_VERSIONS",
    "CheckedConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "ConfigLayer",
    "ConfigSource",
    "ConfigurablePlugin",
    "KnownSettings",
    "NotARegularFile",
    "check_config",
    "coerce_config",
    "decode_plugin_configs",
    "default_config",
    "effective_config_dict",
    "load_config",
    "migrate",
    "nesting_depth",
    "parse_duration",
    "read_regular_file",
    "to_toml",
]


@attrs.frozen
class CheckedConfig:
    """A config checked in full: loaded, migrated and every plugin's table decoded.

    ``decoded`` maps uri -> config instance (see :func:`decode_plugin_configs`); ``warnings``
    lists every ignored setting, in file order.
    """

    config: Config
    decoded: Mapping[str, object]
    warnings: tuple[ConfigIssue, ...]


def check_config(
    source: ConfigSource,
    registrations: Iterable[ConfigurablePlugin],
    known: KnownSettings = NOTHING_KNOWN,
) -> CheckedConfig:
    """Load, migrate and decode *source* (see :func:`coerce_config`), reporting every problem
    of every phase at once: raises :class:`ConfigError` with all the errors (its ``warnings``
    too) when there is any. A file with invalid TOML is skipped, so the rest is still checked.
    """
    regs = list(registrations)
    config, issues = coerce(source, known)
    warnings = list(config.warnings)
    try:
        config = migrate(config, regs)
    except ConfigError as e:
        issues.extend(e.issues)
    decoded, found, ignored = decode(config, regs, known)
    issues.extend(found)
    warnings.extend(ignored)
    if issues:
        raise ConfigError(issues, warnings)
    return CheckedConfig(config, decoded, tuple(warnings))
