"""The ``taskplane.plugins`` entry points, cached per interpreter and keyed by what can change
them, so that a command does not import :mod:`importlib.metadata` and read every installed
distribution's metadata on every run.

The key is a text naming the interpreter (``sys.executable``, its version) and, for each
``sys.path`` entry in order: for a directory, the name and modification time of every
``*.dist-info``/``*.egg-info`` directory (of its ``entry_points.txt``), ``*.egg-link``,
``*.egg`` and ``*.pth`` in it; for a zip file, its modification time and size. An entry with
none of these (the current directory of ``python -m``, a missing directory) adds nothing, so
running from another directory keeps the key. Installing or
removing a distribution -- ``pip install``, ``pip install -e``, ``pip uninstall``, deleting a
directory by hand -- adds, removes or rewrites one of those, so the very next command misses
the cache and scans again. The key is stored and compared whole rather than hashed: no
collision can hide a change, and no command loads OpenSSL (``hashlib``) to read the cache.

The cache lives in the user's cache directory (``$XDG_CACHE_HOME/taskplane``, else
``~/.cache/taskplane``), one file per interpreter and layout (:func:`cache_path`), not under the
state root:
entry points belong to an interpreter and its environment, which differ between the peers that
share a state root, and the state root may not be writable by the user running
``plugins ls``. The directory is created with mode 0700; a file is written to a temporary
name and renamed over the old one (mode 0600). A cache that is not ours -- a directory or file
owned by another user, writable by others, a symbolic link, not a regular file -- is ignored;
one that does not parse is rebuilt. Without a usable cache directory every run scans.

The file holds a Python literal (``repr`` writes it, :func:`ast.literal_eval` reads it, which
evaluates nothing but literals), not JSON: :mod:`ast` is imported by attrs already, and
:mod:`json` (four modules and six regular expressions) is then imported by no command that
does not print JSON (``taskplane config validate``).
"""

from __future__ import annotations

import binascii
import os
import re
import stat
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from registry._lazy import export_lazily
from registry.log import get_logger

if TYPE_CHECKING:
    from registry._entry_point import PluginEntryPoint

__all__ = ["CACHE_VERSION", "PluginEntryPoint", "cache_dir", "cache_path", "cached", "fingerprint"]

log = get_logger(__name__)

#: Bumped when the file's layout changes; a file of another version is rebuilt (version 1
#: was JSON, in ``entry-points-*.json``).
CACHE_VERSION = 2

#: Directory entries whose appearance, disappearance or change can change the entry points.
_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".egg", ".pth")

#: The largest cache file read (a few hundred entry points fit in a few KiB).
_MAX_BYTES = 1 << 20


# PluginEntryPoint is defined on first use (PEP 562): by the first entry point read or
# scanned, so a command in an environment without third-party plugins builds no class.
__getattr__ = export_lazily(__name__, {"PluginEntryPoint": "registry._entry_point"})


def cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/taskplane``, else ``~/.cache/taskplane``; None without a home."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid and ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "taskplane")


def cache_path(layout: str | None = None) -> str | None:
    """The cache file of this interpreter and ``layout`` (default: this process's: the
    ``sys.path`` entries that hold distributions, in order; see :func:`fingerprint`). Commands
    with the same layout share a file, rewritten when a package is installed or removed;
    another layout (``python -m taskplane`` from a checkout whose ``*.egg-info`` is then on
    ``sys.path``, a ``PYTHONPATH`` with packages) has a file of its own, so alternating between
    them does not rescan every time."""
    directory = cache_dir()
    if directory is None:
        return None
    if layout is None:
        layout = _fingerprint(None)[1]
    # Two layouts whose checksums agree share a file, each rewriting the other's: never a
    # wrong answer, as the key inside names the interpreter and every entry.
    name = binascii.crc32(layout.encode(errors="surrogateescape"))
    return os.path.join(directory, f"entry-points-{name:08x}.txt")


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def fingerprint(paths: Iterable[str] | None = None) -> str:
    """The key of everything on ``paths`` (default ``sys.path``) that can change the
    installed distributions' entry points: one text, equal only when all of it is."""
    return _fingerprint(paths)[0]


def _fingerprint(paths: Iterable[str] | None) -> tuple[str, str]:
    """:func:`fingerprint` and the layout it found: the interpreter and the entries that
    hold distributions, without their names and times (what names the cache file)."""
    key = [f"{CACHE_VERSION}\0{sys.executable}\0{sys.version}"]
    layout = [sys.executable]
    for entry in sys.path if paths is None else paths:
        where = entry or "."
        path = f"\0path\0{where}"
        try:
            st = os.stat(where)
        except OSError:
            continue  # holds no distribution; when it appears with one, the key changes
        if not stat.S_ISDIR(st.st_mode):
            key.append(path + _stamp(st))  # a zip file: its stamp covers it
            layout.append(where)
            continue
        # A directory's own mtime is left out: any file written there (the current directory
        # is on sys.path under ``python -m``) would miss the cache for nothing.
        try:
            names = sorted(
                e.name
                for e in os.scandir(where)
                if e.name.endswith(_METADATA_SUFFIXES) and not e.name.startswith(".")
            )
        except OSError:
            key.append(path + "\0unreadable")
            continue
        # A directory without distributions adds nothing, as it adds no entry point: the
        # current directory of ``python -m taskplane`` does not change the key from one
        # directory to the next (one cache file per interpreter would be rewritten each time).
        if names:
            key.append(path)
            layout.append(where)
        for name in names:
            full = os.path.join(where, name)
            if name.endswith((".dist-info", ".egg-info")):
                full = os.path.join(full, "entry_points.txt")
            try:
                key.append(f"\0{name}\0{_stamp(os.stat(full))}")
            except OSError:
                key.append(f"\0{name}\0-")
    return "".join(key), "\0".join(layout)


def _private_dir(directory: str, create: bool) -> bool:
    """Whether ``directory`` is ours alone (created 0700 when ``create``)."""
    if create:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            return False
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _read(path: str, key: str) -> list[PluginEntryPoint] | None:
    """The cached entry points when ``path`` is ours, well-formed and made for ``key``."""
    if not _private_dir(os.path.dirname(path), create=False):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size > _MAX_BYTES
        ):
            log.debug("ignoring plugin entry point cache %s: not a private regular file", path)
            return None
        import ast  # imported by attrs already (inspect): no cost

        data = ast.literal_eval(os.read(fd, _MAX_BYTES + 1).decode("utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("key") != key:
            return None
        entries = data["entry_points"]
        if not entries:
            return []
        from registry._entry_point import PluginEntryPoint

        return [PluginEntryPoint(str(dist), str(name), str(value)) for dist, name, value in entries]
    except (
        OSError,
        ValueError,  # UnicodeDecodeError too
        TypeError,
        KeyError,
        AttributeError,
        SyntaxError,
        RecursionError,
        MemoryError,
    ) as exc:
        log.debug("rebuilding plugin entry point cache %s: %s", path, exc)
        return None
    finally:
        os.close(fd)


def _write(path: str, key: str, found: list[PluginEntryPoint]) -> None:
    """Store ``found`` under ``key``: a private temporary file renamed over ``path``."""
    directory = os.path.dirname(path)
    if not _private_dir(directory, create=True):
        log.debug("not caching plugin entry points: %s is not a private directory", directory)
        return
    data = {
        "version": CACHE_VERSION,
        "key": key,
        "entry_points": [[ep.distribution, ep.name, ep.value] for ep in found],
    }
    import tempfile  # only when the cache is rewritten

    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".entry-points-")  # mode 0600
    except OSError as exc:
        log.debug("not caching plugin entry points: %s", exc)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(repr(data))
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("not caching plugin entry points: %s", exc)
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def scan(group: str) -> list[PluginEntryPoint]:
    """The entry points of ``group`` from the installed distributions (importlib.metadata),
    deduplicated and sorted by (distribution, name)."""
    import importlib.metadata

    from registry._entry_point import PluginEntryPoint

    seen: set[tuple[str, str]] = set()
    found: list[tuple[str, str, PluginEntryPoint]] = []
    for ep in importlib.metadata.entry_points(group=group):
        name = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        dist = _canonical(name) if ep.dist is not None else ""
        # The same distribution on sys.path twice yields the same entry point twice;
        # the first one (sys.path order) wins, as with imports.
        if (dist, ep.name) in seen:
            continue
        seen.add((dist, ep.name))
        found.append((dist, ep.name, PluginEntryPoint(name, ep.name, ep.value)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [ep for _, _, ep in found]


def cached(group: str) -> list[PluginEntryPoint]:
    """The entry points of ``group``: from the cache when its key still holds, else scanned
    (and the cache rewritten)."""
    fingerprinted, layout = _fingerprint(None)
    path = cache_path(layout)
    key = f"{group}\0{fingerprinted}"
    if path is not None:
        hit = _read(path, key)
        if hit is not None:
            return hit
    found = scan(group)
    if path is not None:
        _write(path, key, found)
    return found
