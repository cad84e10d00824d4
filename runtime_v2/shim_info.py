"""The ``<shim> -info`` cache: one ``RuntimeInfo`` per shim binary, options and runc binary.

containerd runs ``-info`` (``core/runtime/v2/shim_manager.go``, ``PluginInfo``) whenever it is
asked; taskplane asks before every create whose spec has idmap mounts, so results are cached by
(binary path, its mtime, the serialized options, the runc binary the options name and its
mtime) -- replacing either binary or changing the options is a miss. Results and failures are
kept for :data:`INFO_CACHE_TTL` seconds; concurrent misses for one key share a single run, and a
cached failure is raised as a new exception of the same class and message each time (never the
same instance, so tracebacks and ``__cause__`` chains do not pile up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

import attrs

from runtime_v2 import errdefs

if TYPE_CHECKING:
    from google.protobuf import any_pb2

    from runtime_v2.api import introspection_pb2

__all__ = ["INFO_CACHE_TTL", "InfoCache"]

#: How long a ``-info`` result (or failure) is reused.
INFO_CACHE_TTL = 10.0


def _now() -> float:
    """The clock of the cache (tests replace it)."""
    return time.monotonic()


@attrs.frozen
class _CachedError:
    """A cached failure: its class, message and attributes, re-raised fresh each time."""

    cls: type[BaseException]
    message: str
    attributes: dict[str, object]

    @classmethod
    def of(cls, exc: BaseException) -> _CachedError:
        return cls(type(exc), str(exc), dict(getattr(exc, "__dict__", {})))

    def fresh(self) -> BaseException:
        exc = self.cls.__new__(self.cls)
        exc.args = (self.message,)
        exc.__dict__.update(self.attributes)
        return exc


@attrs.frozen
class _Entry:
    expires: float
    info: introspection_pb2.RuntimeInfo | None
    error: _CachedError | None


#: (shim path, its mtime, serialized options, the runc binary the options name, its mtime).
_Key = tuple[str, int, bytes, str, int]


def _runc_binary_of(options: any_pb2.Any | None) -> str | None:
    """The runc binary a runc shim runs ``runc features`` with for ``options``: their
    ``binary_name``, else ``runc``; None for options of another type (not a runc shim's)."""
    if options is None:
        return "runc"
    from runtime_v2 import typeurl
    from runtime_v2.api import runc_options_pb2

    if not typeurl.is_(options, runc_options_pb2.Options):
        return None
    with contextlib.suppress(errdefs.ContainerdError):
        return typeurl.unpack_as(options, runc_options_pb2.Options).binary_name or "runc"
    return None


def _binary_stamp(name: str | None) -> tuple[str, int]:
    """(path, mtime) of the binary ``name`` as ``exec.LookPath`` finds it on our PATH (what a
    shim's ``-info`` inherits); ("", -1) for None and an mtime of -1 when it is not found."""
    if name is None:
        return "", -1
    if os.sep in name:
        path = name
    else:
        import shutil  # only for a bare name: not imported by every boot

        path = shutil.which(name) or name
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, -1


class InfoCache:
    """Runs ``-info`` through the cache (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[_Key, _Entry] = {}
        self._runs: dict[_Key, asyncio.Task[_Entry]] = {}

    async def get(self, path: str, options: any_pb2.Any | None) -> introspection_pb2.RuntimeInfo:
        """``<path> -info`` with ``options`` on stdin (``path`` is a resolved shim binary);
        NotFound when the binary is gone, else what the shim answered or failed with."""
        from runtime_v2.api import introspection_pb2

        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            raise errdefs.NotFound(f"runtime binary {path}: {exc.strerror}") from None
        serialized = options.SerializeToString() if options is not None else b""
        # The runc binary is part of the key: replacing runc changes what -info reports.
        key: _Key = (path, mtime, serialized, *_binary_stamp(_runc_binary_of(options)))
        entry = self._entries.get(key)
        if entry is None or entry.expires <= _now():
            run = self._runs.get(key)
            if run is None:
                run = asyncio.ensure_future(self._run(key, path, options))
                self._runs[key] = run
                run.add_done_callback(lambda _: self._runs.pop(key, None))
            # A caller that is cancelled leaves the shared run to the others.
            entry = await asyncio.shield(run)
        if entry.error is not None:
            raise entry.error.fresh()
        assert entry.info is not None
        result = introspection_pb2.RuntimeInfo()
        result.CopyFrom(entry.info)
        return result

    async def _run(self, key: _Key, path: str, options: any_pb2.Any | None) -> _Entry:
        from runtime_v2.binary import run_info

        try:
            info = await run_info(path, options)
        except Exception as exc:
            entry = _Entry(_now() + INFO_CACHE_TTL, None, _CachedError.of(exc))
        else:
            entry = _Entry(_now() + INFO_CACHE_TTL, info, None)
        now = _now()
        for stale in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[stale]
        self._entries[key] = entry
        return entry

    def cancel(self) -> None:
        """Cancel the runs in flight (the owner is closing)."""
        for run in list(self._runs.values()):
            run.cancel()
