"""The values of a configuration that every config module shares: the issue and error types,
the catalogue of known-but-ignored settings, one file's layer, the config versions.

Private to the ``registry.config`` modules; :mod:`registry.config` is the public face.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_ROOT",
    "DEFAULT_STATE",
    "NOTHING_KNOWN",
    "SUPPORTED_VERSIONS",
    "UNVERSIONED",
    "ConfigError",
    "ConfigIssue",
    "ConfigLayer",
    "ConfigurablePlugin",
    "KnownSettings",
    "ignored",
]

#: The version taskplane writes and migrates older files to (version 4 is read as is).
CONFIG_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3, 4)
#: The version of a file without ``version`` (containerd 2: such a file is a 1.x config).
UNVERSIONED = 1
DEFAULT_ROOT = "/var/lib/taskplane"
DEFAULT_STATE = "/run/taskplane"


class ConfigurablePlugin(Protocol):
    """What config handling needs from a plugin registration (``registry.Registration``)."""

    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def config(self) -> builtins.type[Any] | None: ...
    @property
    def config_migration(self) -> Callable[[Mapping[str, Any], int], dict[str, Any]] | None: ...


@attrs.frozen
class ConfigIssue:
    """One problem in a config file: the file, the TOML path ("" for the whole file), what;
    ``warning`` for a setting that is ignored rather than wrong (``file: path: warning: ...``)."""

    file: str
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        message = f"warning: {self.message}" if self.warning else self.message
        if self.path:
            return f"{self.file}: {self.path}: {message}"
        return f"{self.file}: {message}"


class ConfigError(Exception):
    """Every error found in a configuration; ``str()`` is one line per issue.

    ``warnings`` holds what the same check found ignored (not part of ``str()``).
    """

    def __init__(self, issues: Iterable[ConfigIssue], warnings: Iterable[ConfigIssue] = ()) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        self.warnings: list[ConfigIssue] = list(warnings)
        super().__init__("\n".join(str(i) for i in self.issues))


def _identity(name: str) -> str:
    return name


@attrs.frozen
class KnownSettings:
    """Settings a config may hold that are known but not implemented: key -> explanation.

    Such a setting is a warning saying it is ignored (the explanation completes
    ``"<key>: <explanation>"``); an unknown setting not listed here stays an error. The registry
    knows no plugin types: taskplane passes ``plugins.containerd_config.CATALOGUE``, the
    catalogue of containerd's configuration surface.

    ``top_level``: top-level keys and tables (their content is not checked). ``plugins``:
    plugin URIs whose whole table is ignored (and whose ids may be disabled).
    ``plugin_keys``: uri -> key -> explanation, for keys in the tables of plugins that are
    registered. ``timeouts``: ``[timeouts]`` keys nothing uses. ``used_timeouts``: the
    ``[timeouts]`` keys plugins read (:meth:`Config.timeout`). ``rename_v1``: a version 1
    file's plugin name (a bare id such as ``cri``) -> its URI.
    """

    top_level: Mapping[str, str] = attrs.field(factory=dict)
    plugins: Mapping[str, str] = attrs.field(factory=dict)
    plugin_keys: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    timeouts: Mapping[str, str] = attrs.field(factory=dict)
    used_timeouts: frozenset[str] = frozenset()
    rename_v1: Callable[[str], str] = _identity


#: No catalogue: every unknown setting is an error.
NOTHING_KNOWN = KnownSettings()


@attrs.frozen
class ConfigLayer:
    """One loaded file's own ``plugins`` table and version, kept so migration is per file."""

    file: str
    version: int
    plugins: Mapping[str, Mapping[str, Any]]


def ignored(file: str, path: str, explanation: str) -> ConfigIssue:
    """The warning for a setting that is known but ignored."""
    return ConfigIssue(file, path, f"{explanation}: ignored", warning=True)
