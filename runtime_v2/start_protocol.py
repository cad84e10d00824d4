"""Which ``start`` protocol a shim binary speaks, negotiated and remembered per binary.

Two protocols exist for a shim's ``start`` command (containerd's ``pkg/shim/util.go``
``Command`` and ``pkg/shim/compat.go``):

- :data:`LEGACY`: the runtime options ``Any`` (or nothing) on stdin, identity on the command
  line and in the environment. Shims up to containerd 2.2 speak it; 1.6 and 2.0-2.2 shims
  decode stdin as an ``Any`` only after forking their daemon (containerd 1.6's
  ``runtime/v2/runc/manager/manager_linux.go``), so BootstrapParams make them fail with
  ``type with url <id>: not found`` and kill the daemon they just started.
- :data:`BOOTSTRAP`: a protobuf ``BootstrapParams`` on stdin (containerd 2.3+ shims). Such a
  shim refuses the legacy protocol *before* it starts anything, with
  :data:`DEPRECATED_API_REFUSAL` (empty stdin, or options that do not decode as
  BootstrapParams naming the same id and namespace).

containerd 2.4 picks by the binary's name (BootstrapParams for all but ``*-shim-runc-v1`` and
``*-shim-runhcs-v1``), which breaks 2.0-2.2 shims; taskplane instead tries :data:`LEGACY` first
-- the refusal of a new shim is cheap and leaves nothing behind -- and retries with
:data:`BOOTSTRAP` on that refusal. The answer, and the task API version the shim then served,
is a :class:`BinaryProtocol` kept by :class:`StartProtocols` per (binary path, mtime): in
memory and in a small JSON file in the shim manager's state dir, so short-lived ``taskplane``
processes do not each pay the retry. A replaced binary (new mtime) is negotiated again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Literal

import attrs

from plugins import securefs
from registry.log import get_logger

__all__ = [
    "BOOTSTRAP",
    "DEPRECATED_API_REFUSAL",
    "LEGACY",
    "PROTOCOLS_FILE",
    "BinaryProtocol",
    "StartProtocol",
    "StartProtocols",
    "is_bootstrap_refusal",
]

log = get_logger(__name__)

StartProtocol = Literal["legacy", "bootstrap"]
#: The options ``Any`` (or nothing) on stdin: shims before containerd 2.3.
LEGACY: StartProtocol = "legacy"
#: Protobuf ``BootstrapParams`` on stdin: containerd 2.3+ shims.
BOOTSTRAP: StartProtocol = "bootstrap"

#: What a 2.3+ shim says when started with the legacy protocol (``errDeprecatedBootstrapAPI``).
DEPRECATED_API_REFUSAL = (
    "shim was started through the deprecated API but was built against the new API"
)

#: The file in the shim manager's state dir that remembers the answers.
PROTOCOLS_FILE = "start-protocols.json"
_FORMAT = 1


def is_bootstrap_refusal(output: str) -> bool:
    """Whether a failed ``start``'s output is a 2.3+ shim refusing the legacy protocol."""
    return DEPRECATED_API_REFUSAL in output


@attrs.frozen
class BinaryProtocol:
    """What one shim binary (``path`` as of ``mtime_ns``) speaks: its ``start_protocol`` and
    the task API version (``task_api``: 2 or 3; 0 while unknown) its daemon served."""

    path: str
    mtime_ns: int
    start_protocol: StartProtocol
    task_api: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "mtime_ns": self.mtime_ns,
            "start_protocol": self.start_protocol,
            "task_api": self.task_api,
        }

    @classmethod
    def from_json(cls, path: str, value: Any) -> BinaryProtocol | None:
        """The record of ``path`` in the file, or None when it is malformed."""
        if not isinstance(value, dict):
            return None
        mtime, protocol, task_api = (
            value.get("mtime_ns"),
            value.get("start_protocol"),
            value.get("task_api", 0),
        )
        if (
            not isinstance(mtime, int)
            or protocol not in (LEGACY, BOOTSTRAP)
            or not isinstance(task_api, int)
        ):
            return None
        return cls(path, mtime, protocol, task_api)


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class StartProtocols:
    """The negotiated start protocol of each shim binary, keyed by (path, mtime).

    ``state_dir`` is where :data:`PROTOCOLS_FILE` lives (None: memory only). The file is a
    cache shared by every process on the state dir: unreadable or malformed content is ignored
    and rewritten, writes are atomic (rename) under an flock, and a failure to write only costs
    the next process a retry.
    """

    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = state_dir
        self._known: dict[str, BinaryProtocol] = {}

    @property
    def file(self) -> str | None:
        """The JSON file, or None when the answers are kept in memory only."""
        return os.path.join(self.state_dir, PROTOCOLS_FILE) if self.state_dir else None

    def get(self, path: str) -> BinaryProtocol | None:
        """What ``path`` speaks as it is now on disk, or None when not (yet) known."""
        mtime = _mtime_ns(path)
        if mtime is None:
            return None
        known = self._known.get(path)
        if known is None or known.mtime_ns != mtime:
            known = self._read_file().get(path)
            if known is not None:
                self._known[path] = known
        return known if known is not None and known.mtime_ns == mtime else None

    def record(self, path: str, start_protocol: StartProtocol, task_api: int = 0) -> None:
        """Remember that ``path`` (as it is now on disk) speaks ``start_protocol`` and served
        task API ``task_api``; nothing is written when that is already what is known."""
        mtime = _mtime_ns(path)
        if mtime is None:
            return
        entry = BinaryProtocol(path, mtime, start_protocol, task_api)
        if self._known.get(path) == entry:
            return
        self._known[path] = entry
        try:
            self._write_file(entry)
        except OSError as exc:
            log.debug("cannot record the start protocol of %s in %s: %s", path, self.file, exc)

    def _read_file(self) -> dict[str, BinaryProtocol]:
        file = self.file
        if file is None:
            return {}
        try:
            with open(file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        binaries = data.get("binaries") if isinstance(data, dict) else None
        if not isinstance(binaries, dict) or data.get("format") != _FORMAT:
            return {}
        entries = {path: BinaryProtocol.from_json(path, value) for path, value in binaries.items()}
        return {path: entry for path, entry in entries.items() if entry is not None}

    def _write_file(self, entry: BinaryProtocol) -> None:
        file = self.file
        if file is None or self.state_dir is None:
            return
        securefs.make_dirs(self.state_dir, 0o711)
        lock_fd = securefs.open_file(file + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            entries = self._read_file()
            entries[entry.path] = entry
            # Drop binaries that are gone or replaced, so the file does not grow forever.
            current = {p: e for p, e in entries.items() if _mtime_ns(p) == e.mtime_ns}
            data = {"format": _FORMAT, "binaries": {p: e.to_json() for p, e in current.items()}}
            import tempfile  # only when a new shim binary is negotiated

            fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".start-protocols.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        finally:
            os.close(lock_fd)
