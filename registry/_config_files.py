"""Loading a config: the root file and its imports, read within bounds, merged into a Config.

Loading follows containerd 2 (``LoadConfig``): the file's ``imports`` (globs allowed, relative
to the importing file) are loaded breadth-first after it, each file at most once; later files
override earlier ones, lists are unioned, and ``plugins`` tables are merged key by key (a
table in a later file changes only the keys it sets). A drop-in file may not have a higher
``version`` than the root file; a file without ``version`` is version 1, as in containerd 2.
An import is a glob only when it contains ``*``, and ``*`` matches dot-files as Go's
``filepath.Glob`` does.

A config is input, not trusted code: files are identified by their real path (a symlinked
directory cannot make imports grow without end), only regular files are read (a FIFO or
``/dev/zero`` is refused, not waited on or read forever), and :data:`MAX_CONFIG_BYTES`,
:data:`MAX_CONFIG_FILES`, :data:`MAX_IMPORT_DEPTH` and :data:`MAX_NESTING` bound the work; each
limit reached is one issue naming the file.

Private to the ``registry.config`` modules; :mod:`registry.config` is the public face.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from registry import _config_text as _text
from registry._config_model import (
    CONFIG_VERSION,
    DEFAULT_ROOT,
    DEFAULT_STATE,
    NOTHING_KNOWN,
    SUPPORTED_VERSIONS,
    UNVERSIONED,
    ConfigError,
    ConfigIssue,
    ConfigLayer,
    KnownSettings,
    ignored,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_FILES",
    "MAX_IMPORT_DEPTH",
    "MAX_NESTING",
    "Config",
    "ConfigSource",
    "NotARegularFile",
    "coerce",
    "coerce_config",
    "load_config",
    "merge_layers",
    "nesting_depth",
    "parse_duration",
    "read_regular_file",
]

#: The largest config file read (1 MiB; containerd's own configs are a few KiB).
MAX_CONFIG_BYTES = 1 << 20
#: How many files one config may load, itself and every import included.
MAX_CONFIG_FILES = 64
#: How deep imports may chain (the root file is depth 0).
MAX_IMPORT_DEPTH = 8
#: How deep tables and arrays may nest in one file (deeper is no config, just an attack).
MAX_NESTING = 64

_TOP_LEVEL_KEYS = (
    "version",
    "root",
    "state",
    "disabled_plugins",
    "required_plugins",
    "imports",
    "plugins",
    "timeouts",
)


@attrs.frozen
class Config:
    """A loaded configuration: the root file merged with its imports.

    ``plugins`` holds the raw tables (uri -> table); :func:`decode_plugin_configs` turns them
    into each plugin's attrs config. ``files`` lists the files in load order (root first);
    ``source`` maps TOML paths to the file that set them (see :meth:`file_for`).
    """

    version: int = CONFIG_VERSION
    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    disabled_plugins: tuple[str, ...] = ()
    required_plugins: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    plugins: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    timeouts: Mapping[str, float] = attrs.field(factory=dict)
    files: tuple[str, ...] = ()
    source: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)
    layers: tuple[ConfigLayer, ...] = attrs.field(default=(), eq=False, repr=False)
    warnings: tuple[ConfigIssue, ...] = attrs.field(default=(), eq=False, repr=False)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], file: str = "<dict>", known: KnownSettings = NOTHING_KNOWN
    ) -> Config:
        """Validate a config given as a mapping (as parsed TOML); *file* names it in errors.

        ``imports`` are followed relative to *file*'s directory, or the current directory
        when *file* is not a path (``<dict>``). Raises :class:`ConfigError`.
        """
        config, issues = _load_mapping(data, file, known)
        if issues:
            raise ConfigError(issues, config.warnings)
        return config

    def timeout(self, key: str, default: float) -> float:
        """``[timeouts]`` *key* in seconds (e.g. ``io.containerd.timeout.shim.cleanup``), or
        *default* when the file does not set it."""
        return self.timeouts.get(key, default)

    def file_for(self, path: str | Sequence[str | int]) -> str:
        """The file that set TOML *path* (or its nearest parent); the root file otherwise.

        *path* is rendered (``plugins."io.containerd.x"``) or a sequence of keys.
        """
        if isinstance(path, str):
            candidates = [path]
        else:
            parts = tuple(path)
            candidates = [_text.render_path(parts[:n]) for n in range(len(parts), 0, -1)]
        for candidate in candidates:
            if candidate in self.source:
                return self.source[candidate]
        return self.files[0] if self.files else "<config>"


ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | Config | None


def coerce_config(source: ConfigSource, known: KnownSettings = NOTHING_KNOWN) -> Config:
    """A :class:`Config` from a file path, a mapping shaped like the file, a Config (returned
    as is) or None (the defaults)."""
    config, issues = coerce(source, known)
    if issues:
        raise ConfigError(issues, config.warnings)
    return config


def load_config(path: str | os.PathLike[str], known: KnownSettings = NOTHING_KNOWN) -> Config:
    """Load a config file and its imports; raises :class:`ConfigError` listing every problem.

    A missing or unreadable file and invalid TOML are issues naming the file (and the line).
    """
    config, issues = _Loader(known).load(os.fspath(path), None)
    if issues:
        raise ConfigError(issues, config.warnings)
    return config


def _load_mapping(
    data: Mapping[str, Any], file: str, known: KnownSettings
) -> tuple[Config, list[ConfigIssue]]:
    if not isinstance(data, Mapping):
        issue = ConfigIssue(file, "", f"expected a table, got {_text.describe_value(data)}")
        return Config(), [issue]
    return _Loader(known).load(file, copy.deepcopy(dict(data)))


def coerce(source: ConfigSource, known: KnownSettings) -> tuple[Config, list[ConfigIssue]]:
    """The config and the errors found loading it (a Config as far as it could be read)."""
    if source is None:
        return Config(), []
    if isinstance(source, Config):
        return source, []
    if isinstance(source, str | os.PathLike):
        return _Loader(known).load(os.fspath(source), None)
    return _load_mapping(source, "<dict>", known)


class _FileValues:
    """What one file sets, filled in while the file is checked (scratch, not a value: a plain
    class, which every config check would otherwise pay attrs to build)."""

    __slots__ = (
        "bad_version",
        "disabled_plugins",
        "imports",
        "plugins",
        "required_plugins",
        "root",
        "state",
        "timeouts",
        "version",
    )

    def __init__(self) -> None:
        self.version: int | None = None
        self.root: str | None = None
        self.state: str | None = None
        self.disabled_plugins: list[str] = []
        self.required_plugins: list[str] = []
        self.imports: list[str] = []
        self.plugins: dict[str, dict[str, Any]] = {}
        self.timeouts: dict[str, float] = {}
        # Reported: the file is read as the root's version, not as 1.x.
        self.bad_version = False


class _Loader:
    def __init__(self, known: KnownSettings = NOTHING_KNOWN) -> None:
        self.known = known
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.timeouts: dict[str, float] = {}
        self.files: list[str] = []
        self.layers: list[ConfigLayer] = []
        self.source: dict[str, str] = {}
        self.root: str = DEFAULT_ROOT
        self.state: str = DEFAULT_STATE
        self.lists: dict[str, list[str]] = {
            "disabled_plugins": [],
            "required_plugins": [],
            "imports": [],
        }
        self.root_version: int | None = None

    def issue(self, file: str, path: Sequence[str | int] | str, message: str) -> None:
        rendered = path if isinstance(path, str) else _text.render_path(path)
        self.issues.append(ConfigIssue(file, rendered, message))

    def warn(self, file: str, path: Sequence[str | int], message: str) -> None:
        self.warnings.append(ignored(file, _text.render_path(path), message))

    def load(self, first: str, data: dict[str, Any] | None) -> tuple[Config, list[ConfigIssue]]:
        """The config as far as it could be read, and every error found reading it."""
        pending: deque[tuple[str, str | None, dict[str, Any] | None, int]] = deque(
            [(first, None, data, 0)]
        )
        seen: set[str] = set()
        while pending:
            file, importer, given, depth = pending.popleft()
            # The real path: a symlink to a directory must not make one file look like many.
            key = file if file.startswith("<") else os.path.realpath(file)
            if key in seen:  # import cycles and repeated imports load a file once
                continue
            seen.add(key)
            by = f" (imported by {importer})" if importer else ""
            if len(seen) > MAX_CONFIG_FILES:
                self.issue(file, "", f"too many config files: more than {MAX_CONFIG_FILES}{by}")
                break
            if depth > MAX_IMPORT_DEPTH:
                self.issue(file, "", f"imports nest more than {MAX_IMPORT_DEPTH} deep{by}")
                continue
            content = given if given is not None else self._read(file, by)
            if content is None:
                continue
            if nesting_depth(content) > MAX_NESTING:
                self.issue(file, "", f"tables and arrays nest more than {MAX_NESTING} deep")
                continue
            self.files.append(file)
            values = self._validate(file, content)
            self._merge(file, values, content)
            base = os.getcwd() if file.startswith("<") else os.path.dirname(file)
            for pattern in values.imports:
                for resolved in _resolve_import(base, pattern):
                    pending.append((resolved, file, None, depth + 1))
        if self.root == self.state and self.files:
            self.issue(
                self.source.get("state", self.files[0]),
                "state",
                f"must differ from root (both are {self.root})",
            )
        config = Config(
            version=self.root_version if self.root_version is not None else CONFIG_VERSION,
            root=self.root,
            state=self.state,
            disabled_plugins=tuple(self.lists["disabled_plugins"]),
            required_plugins=tuple(self.lists["required_plugins"]),
            imports=tuple(self.lists["imports"]),
            plugins=merge_layers(self.layers),
            files=tuple(self.files),
            timeouts=self.timeouts,
            source=self.source,
            layers=tuple(self.layers),
            warnings=tuple(self.warnings),
        )
        return config, self.issues

    def _read(self, file: str, by: str) -> dict[str, Any] | None:
        """Parse ``file``; None (and an issue) when it is no regular file, too big or bad TOML."""
        try:
            raw = read_regular_file(file, MAX_CONFIG_BYTES)
        except NotARegularFile as e:
            self.issue(file, "", f"{e}{by}")
            return None
        except OSError as e:
            self.issue(file, "", f"cannot read config file: {e.strerror or e}{by}")
            return None
        import tomllib  # only when a file is read: the defaults need no parser

        try:
            return tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            self.issue(file, "", f"invalid TOML: not UTF-8 ({e.reason} at byte {e.start}){by}")
        except tomllib.TOMLDecodeError as e:
            self.issue(file, "", f"invalid TOML: {e}{by}")
        except RecursionError:
            self.issue(file, "", f"tables and arrays nest more than {MAX_NESTING} deep{by}")
        return None

    def _validate(self, file: str, data: Mapping[str, Any]) -> _FileValues:
        values = _FileValues()
        known = self.known.top_level
        for key in data:
            if key in _TOP_LEVEL_KEYS:
                continue
            if key in known:
                self.warn(file, [key], known[key])
            else:
                hint = _text.suggest(key, [*_TOP_LEVEL_KEYS, *known])
                if hint is not None:
                    self.issue(file, [key], f"unknown key (did you mean {_text.quote(hint)}?)")
                else:
                    self.issue(file, [key], _text.unknown_key_message(key, _TOP_LEVEL_KEYS))

        if "version" in data:
            v = data["version"]
            if isinstance(v, bool) or not isinstance(v, int):
                self.issue(file, "version", f"expected an integer, got {_text.describe_value(v)}")
            elif v not in SUPPORTED_VERSIONS:
                supported = ", ".join(str(s) for s in SUPPORTED_VERSIONS)
                self.issue(
                    file,
                    "version",
                    f"unsupported config version {v} (supported: {supported})",
                )
            else:
                values.version = v
            values.bad_version = values.version is None

        for name in ("root", "state"):
            if name not in data:
                continue
            v = data[name]
            if not isinstance(v, str):
                self.issue(file, name, f"expected a string, got {_text.describe_value(v)}")
            elif not v:
                self.issue(file, name, "must not be empty")
            elif not os.path.isabs(v):
                self.issue(file, name, f"must be an absolute path, got {_text.quote(v)}")
            else:
                setattr(values, name, os.path.normpath(v))

        for name in ("disabled_plugins", "required_plugins", "imports"):
            if name not in data:
                continue
            v = data[name]
            if not isinstance(v, list | tuple):
                self.issue(file, name, f"expected a list of strings, got {_text.describe_value(v)}")
                continue
            items: list[str] = getattr(values, name)
            for i, item in enumerate(v):
                if isinstance(item, str) and item:
                    items.append(item)
                elif isinstance(item, str):
                    self.issue(file, [name, i], "must not be empty")
                else:
                    self.issue(
                        file, [name, i], f"expected a string, got {_text.describe_value(item)}"
                    )

        if "plugins" in data:
            plugins = data["plugins"]
            if not isinstance(plugins, Mapping):
                got = _text.describe_value(plugins)
                self.issue(file, "plugins", f"expected a table, got {got}")
            else:
                for uri, table in plugins.items():
                    if isinstance(table, Mapping):
                        values.plugins[uri] = dict(table)
                    else:
                        self.issue(
                            file,
                            ["plugins", uri],
                            f"expected a table, got {_text.describe_value(table)}",
                        )

        if "timeouts" in data:
            self._timeouts(file, data["timeouts"], values.timeouts)

        if values.version == 1 or (values.version is None and not values.bad_version):
            # containerd 2's version 1 migration: plugins were named by bare id ("cri").
            rename = self.known.rename_v1
            values.plugins = {rename(uri): table for uri, table in values.plugins.items()}
            values.disabled_plugins = [rename(uri) for uri in values.disabled_plugins]
            values.required_plugins = [rename(uri) for uri in values.required_plugins]
        return values

    def _timeouts(self, file: str, table: object, into: dict[str, float]) -> None:
        if not isinstance(table, Mapping):
            self.issue(file, "timeouts", f"expected a table, got {_text.describe_value(table)}")
            return
        used, ignored = self.known.used_timeouts, self.known.timeouts
        for key, value in table.items():
            path = ["timeouts", key]
            if key in used:
                try:
                    into[key] = parse_duration(value)
                except ValueError as e:
                    self.issue(file, path, str(e))
            elif key in ignored:
                self.warn(file, path, ignored[key])
            else:
                hint = _text.suggest(key, [*used, *ignored])
                fix = f" (did you mean {_text.quote(hint)}?)" if hint else ""
                self.issue(file, path, f"unknown timeout{fix}")

    def _merge(self, file: str, values: _FileValues, raw: Mapping[str, Any]) -> None:
        version = values.version if values.version is not None else UNVERSIONED
        if values.bad_version:
            version = self.root_version if self.root_version is not None else CONFIG_VERSION
        if self.root_version is None:
            self.root_version = version
        elif version > self.root_version:
            self.issue(
                file,
                "version",
                f"drop-in config version {version} is higher than the root config "
                f"version {self.root_version} ({self.files[0]})",
            )
        for name in ("version", "root", "state"):
            if name in raw:
                self.source[name] = file
        if values.root is not None:
            self.root = values.root
        if values.state is not None:
            self.state = values.state
        for name, merged in self.lists.items():
            if name in raw:
                self.source.setdefault(name, file)
            for item in getattr(values, name):
                if item not in merged:
                    self.source[_text.render_path([name, len(merged)])] = file
                    merged.append(item)
        if values.plugins:
            self.source["plugins"] = file
            _record_sources(self.source, ("plugins",), values.plugins, file)
        if values.timeouts:
            self.timeouts.update(values.timeouts)
            _record_sources(self.source, ("timeouts",), values.timeouts, file)
        self.layers.append(ConfigLayer(file, version, values.plugins))


def _record_sources(
    source: dict[str, str], prefix: tuple[str, ...], table: Mapping[str, Any], file: str
) -> None:
    for key, value in table.items():
        path = (*prefix, str(key))
        source[_text.render_path(path)] = file
        if isinstance(value, Mapping):
            _record_sources(source, path, value, file)


class NotARegularFile(ValueError):
    """A path that is no regular file of acceptable size; the message says what it is."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them (config and spec files).

    Opened non-blocking, so a FIFO is reported instead of waited on; the size is checked on the
    open descriptor and again while reading (a file may grow after ``fstat``). Raises
    :class:`NotARegularFile` (its message completes "<path> ...") or OSError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "a device")
            raise NotARegularFile(f"is {kind}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit or st.st_size > limit:
            raise NotARegularFile(f"is larger than {limit} bytes, the limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def nesting_depth(value: object, limit: int = MAX_NESTING) -> int:
    """How deep mappings and lists nest in ``value`` (0 for a scalar); iterative, and it stops
    at ``limit`` + 1 (enough to know it is too deep)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _resolve_import(base: str, pattern: str) -> list[str]:
    """containerd's ``resolveImports``: relative to the importing file's directory, a glob only
    when it contains ``*`` (``?`` and ``[`` alone are plain characters), and ``*`` matches
    dot-files as Go's ``filepath.Glob`` does."""
    path = os.path.normpath(pattern)
    if not os.path.isabs(path):
        path = os.path.join(base, path)
    if "*" in path:
        # One more than the file limit is enough to report it; a glob may match a whole disk.
        import glob  # only for a glob import

        matches = glob.iglob(path, include_hidden=True)
        return sorted(itertools.islice(matches, MAX_CONFIG_FILES + 1))
    return [path]


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0}
_DURATION_UNITS |= {"m": 60.0, "h": 3600.0}
#: Compiled by the first duration parsed (re caches it): most configs have none.
_DURATION_PART = r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)"


def parse_duration(value: object) -> float:
    """Seconds in a Go duration string (``"5s"``, ``"1m30s"``, ``"100ms"``, ``"0"``), as
    containerd's ``[timeouts]`` holds; a negative or malformed one is a ValueError."""
    if not isinstance(value, str):
        raise ValueError(
            f'expected a duration string such as "5s", got {_text.describe_value(value)}'
        )
    text = value[1:] if value[:1] == "+" else value
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    part = re.compile(_DURATION_PART)
    while pos < len(text):
        m = part.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(
            f"invalid duration {_text.quote(value)} (a number and a unit: ns, us, ms, s, m, h)"
        )
    return total


def _deep_merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _deep_merge(current, value)
        else:
            into[key] = copy.deepcopy(value)


def merge_layers(layers: Iterable[ConfigLayer]) -> dict[str, dict[str, Any]]:
    merged: dict[str, Any] = {}
    for layer in layers:
        _deep_merge(merged, layer.plugins)
    return merged
