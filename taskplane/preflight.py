"""Checks that run before a command boots anything, so a missing prerequisite reads as one
sentence saying exactly what is missing and where taskplane looked.
"""

from __future__ import annotations

import os
import sys

from plugins.types import RUNTIME_RUNC_V2
from taskplane.errors import CLIError, Missing

__all__ = [
    "RUNC_SHIM_BINARY",
    "find_runc",
    "require_linux",
    "require_root",
    "require_rootfs",
    "resolve_runtime",
    "uses_runc",
]

#: The shim binary of the default runtime, io.containerd.runc.v2.
RUNC_SHIM_BINARY = "containerd-shim-runc-v2"


def require_linux(action: str) -> None:
    """Raise :class:`Missing` unless this is Linux (runc and its shim are Linux-only)."""
    if not sys.platform.startswith("linux"):
        raise Missing(f"{action} needs Linux (runc containers); this is {sys.platform}")


def require_root(action: str) -> None:
    """Raise :class:`Missing` unless running as root (runc creates namespaces and mounts)."""
    if os.geteuid() != 0:
        raise Missing(
            f"{action} needs root (runc creates namespaces, cgroups and mounts); "
            f"run it as root, e.g. with sudo (running as uid {os.geteuid()})"
        )


def require_rootfs(path: str) -> str:
    """Return ``path`` absolute with symlinks resolved (runc refuses a symlinked rootfs);
    raise :class:`CLIError` when it is not a directory."""
    absolute = os.path.abspath(path)
    if not os.path.exists(absolute):
        raise CLIError(f"rootfs {absolute} does not exist")
    if not os.path.isdir(absolute):
        raise CLIError(f"rootfs {absolute} is not a directory")
    return os.path.realpath(absolute)


def _search_path() -> list[str]:
    return [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if os.path.isabs(p)]


def resolve_runtime(runtime: str) -> str:
    """Return the shim binary ``runtime`` names, resolved exactly as the shim manager will.

    Raises :class:`Missing` naming the binary and every place looked (PATH, next to
    taskplane) in containerd's words (``failed to resolve runtime path: runtime "<name>"
    binary not installed "<binary>" ...``), or :class:`CLIError` for a malformed name.
    """
    from plugins import errdefs
    from runtime_v2.runtime_path import binary_name, resolve_runtime_path

    try:
        return resolve_runtime_path(runtime)
    except errdefs.NotFound as exc:
        hint = ""
        if binary_name(runtime) == RUNC_SHIM_BINARY or runtime.endswith("/" + RUNC_SHIM_BINARY):
            hint = " (Debian: apt-get install containerd)"
        # containerd's words when the shim manager cannot find it (core/runtime/v2/binary.go).
        raise Missing(f"failed to resolve runtime path: {exc}{hint}") from None
    except errdefs.InvalidArgument as exc:
        raise CLIError(str(exc)) from None


def uses_runc(runtime: str) -> bool:
    """Tell whether ``runtime`` is the runc shim (which needs a runc binary)."""
    if os.path.isabs(runtime):
        return os.path.basename(runtime) == RUNC_SHIM_BINARY
    return runtime == RUNTIME_RUNC_V2


def find_runc(binary: str | None = None) -> str:
    """Return the runc binary the runc shim will run (``binary`` or ``runc`` on PATH).

    A relative path is refused: the shim runs in the bundle, not in our working directory, and
    the working directory is never searched. As root, a binary anyone but root could change is
    refused too (:func:`runtime_v2.runtime_path.check_trusted_binary`).

    Raises :class:`Missing` naming the binary and where it was looked for.
    """
    from runtime_v2.runtime_path import check_trusted_binary, look_path

    name = binary or "runc"
    if os.sep in name and not os.path.isabs(name):
        raise CLIError(f"runc binary {name} must be an absolute path or a name to look up in PATH")
    if os.path.isabs(name):
        if not os.path.exists(name):
            raise Missing(f"runc binary {name} does not exist")
        if not os.access(name, os.X_OK):
            raise Missing(f"runc binary {name} is not executable")
    found = look_path(name)
    if found:
        check_trusted_binary(found, "runc binary")
        return found
    raise Missing(
        f"runc is not installed: {name} not found in PATH ({os.pathsep.join(_search_path())}); "
        "install it (Debian: apt-get install runc) or pass --runc-binary PATH"
    )
