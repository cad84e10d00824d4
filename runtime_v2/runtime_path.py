"""Runtime name to shim binary (containerd's ``resolveRuntimePath`` and ``shim.BinaryName``).

A runtime is named like ``io.containerd.runc.v2`` (its shim binary is
``containerd-shim-runc-v2``) or by the absolute path of a shim binary. Lookup order for a name:

1. every absolute directory of ``PATH``;
2. next to our own executable (the ``taskplane`` console script's directory and
   ``<sys.prefix>/bin``, where a virtualenv installs it).

Never the working directory: containerd looks there first (``resolveRuntimePath`` in
``core/runtime/v2/manager.go``), which is harmless for a daemon whose working directory is
``/``, but taskplane is a root command run from wherever its user stands, and a shim planted in
that directory would run as root. Empty and relative ``PATH`` entries (which mean the working
directory) are skipped for the same reason, as Go's ``exec.LookPath`` refuses them (``ErrDot``).

Found paths are cached per binary name (the first writer wins); absolute paths are not cached.
A binary found nowhere is NotFound in containerd's words (``runtime "<name>" binary not installed
"<binary>"``) followed by every place looked in, the errdefs kind last (``: not found``), where
containerd says ``: file does not exist``.

:func:`check_trusted_binary` is what a root caller runs before executing a shim or runc: the
binary must be owned by root and writable by nobody else, as sudo requires of its secure path.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import MutableMapping, Sequence

from google.protobuf import any_pb2

from plugins import securefs
from runtime_v2 import errdefs

__all__ = [
    "RuntimePathResolver",
    "binary_name",
    "check_runc_binary",
    "check_trusted_binary",
    "default_executable_dirs",
    "look_path",
    "resolve_runtime_path",
]

_FORMAT_HINT = (
    "correct runtime name should be either format like `io.containerd.runc.v2` "
    "or a full path to the binary"
)


def binary_name(runtime: str) -> str:
    """Return the shim binary name for a runtime name, or "" when the name has no valid form.

    ``io.containerd.runc.v2`` gives ``containerd-shim-runc-v2``; only the last two dot-separated
    parts count (``io.foo.bar.runc2.v2.baz`` gives ``containerd-shim-v2-baz``). There must be at
    least two parts and the first must not be empty.
    """
    parts = runtime.split(".")
    if len(parts) < 2 or parts[0] == "":
        return ""
    return f"containerd-shim-{parts[-2]}-{parts[-1]}"


def default_executable_dirs() -> list[str]:
    """Directories "next to our executable": the console script's directory and sys.prefix/bin."""
    dirs: list[str] = []
    argv0 = sys.argv[0] if sys.argv else ""
    # The console script's directory; not a module path (``python -m taskplane`` gives
    # ``.../taskplane/__main__.py``, whose directory holds no binaries).
    if os.sep in argv0 and not argv0.endswith(".py"):
        dirs.append(os.path.dirname(os.path.abspath(argv0)))
    dirs.append(os.path.join(sys.prefix, "bin"))
    return list(dict.fromkeys(dirs))


def _is_executable_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _look_path(name: str, path_env: str) -> str | None:
    """``exec.LookPath``: the first executable regular file ``<dir>/<name>`` on ``path_env``.

    Only absolute entries count: an empty or relative one would name the working directory.
    """
    for directory in path_env.split(os.pathsep):
        if not os.path.isabs(directory):
            continue
        candidate = os.path.join(directory, name)
        if _is_executable_file(candidate):
            return os.path.normpath(candidate)
    return None


def look_path(name: str, path_env: str | None = None) -> str | None:
    """Where ``name`` is found: itself when absolute, else the first hit on the absolute
    entries of ``path_env`` (default ``$PATH``); None when nowhere."""
    if os.path.isabs(name):
        return name if os.path.exists(name) else None
    if "/" in name:
        return None
    return _look_path(name, os.environ.get("PATH", "") if path_env is None else path_env)


def check_trusted_binary(path: str, what: str = "binary") -> None:
    """Refuse, when running as root, to execute ``path`` unless root alone can change it.

    The file and every directory on its real path must be owned by root and not writable by
    group or others (a sticky root-owned directory like ``/tmp`` is fine): otherwise another
    user could swap in their own program and have root run it. ``what`` names the binary in
    the error ("shim binary", "runc binary"). Not running as root, there is nothing to protect.
    Raises :class:`errdefs.PermissionDenied`, one sentence naming the file and the reason.
    """
    if os.geteuid() != 0:
        return
    try:
        securefs.check_trusted(path)
    except securefs.UnsafePath as exc:
        raise errdefs.PermissionDenied(
            f"refusing to run {what} {path} as root: {exc.detail}"
        ) from None


def check_runc_binary(options: any_pb2.Any | None, path_env: str | None = None) -> None:
    """As root, check the runc that the runc shim will execute for a task with ``options``.

    That is ``binary_name`` of ``containerd.runc.v1.Options`` when set, else ``runc``, found
    on ``path_env`` (default ``$PATH``: the shim inherits ours) as the shim finds it. A binary
    found nowhere is left for the shim to report. Raises :class:`errdefs.PermissionDenied`.
    """
    from runtime_v2 import typeurl
    from runtime_v2.api import runc_options_pb2

    name = ""
    if options is not None and typeurl.is_(options, runc_options_pb2.Options):
        name = typeurl.unpack_as(options, runc_options_pb2.Options).binary_name
    found = look_path(name or "runc", path_env)
    if found is not None:
        check_trusted_binary(found, "runc binary")


def resolve_runtime_path(
    runtime: str,
    *,
    cache: MutableMapping[str, str] | None = None,
    path_env: str | None = None,
    executable_dirs: Sequence[str] | None = None,
) -> str:
    """Return the absolute path of the shim binary for ``runtime``.

    ``runtime`` is a runtime name (``io.containerd.runc.v2``) or an absolute binary path (returned
    unchanged after checking it exists; never cached). ``cache`` maps binary names to resolved
    paths and is filled here (first writer wins). ``path_env`` and ``executable_dirs`` default
    to ``$PATH`` and :func:`default_executable_dirs`. The working directory is never searched.

    Raises :class:`errdefs.InvalidArgument` for an empty or malformed name (a relative path is
    malformed), :class:`errdefs.NotFound` when the binary is nowhere (that message lists every
    place it looked) and :class:`errdefs.PermissionDenied` when, running as root, the binary
    found is not one root alone controls (:func:`check_trusted_binary`).
    """
    if runtime == "":
        raise errdefs.InvalidArgument("no runtime name")
    if os.path.isabs(runtime):
        try:
            os.stat(runtime)
        except FileNotFoundError as exc:
            raise errdefs.NotFound(
                f"invalid custom binary path: {runtime}: {exc.strerror}"
            ) from None
        except OSError as exc:
            raise errdefs.InvalidArgument(
                f"invalid custom binary path: {runtime}: {exc.strerror}"
            ) from None
        check_trusted_binary(runtime, "shim binary")
        return runtime
    name = binary_name(runtime)
    if "/" in runtime or name == "":
        raise errdefs.InvalidArgument(f"invalid runtime name {runtime}, {_FORMAT_HINT}")
    if cache is not None:
        cached = cache.get(name)
        if cached is not None:
            check_trusted_binary(cached, "shim binary")
            return cached

    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    dirs = default_executable_dirs() if executable_dirs is None else list(executable_dirs)

    found = _look_path(name, path_env)
    if found is None:
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if os.path.exists(candidate):
                found = candidate
                break
    if found is None:
        path_dirs = ", ".join(d for d in path_env.split(os.pathsep) if os.path.isabs(d))
        # containerd's words first (tools match them), where we looked, the errdefs kind last.
        raise errdefs.NotFound(
            f'runtime "{runtime}" binary not installed "{name}" (looked in '
            f"PATH ({path_dirs}), {', '.join(dirs) if dirs else 'no executable dir'}; "
            "never the working directory): not found"
        )
    found = os.path.abspath(found)
    check_trusted_binary(found, "shim binary")
    if cache is not None:
        found = cache.setdefault(name, found)
    return found


class RuntimePathResolver:
    """:func:`resolve_runtime_path` with its own cache (containerd's ``ShimManager.runtimePaths``).

    The lookup environment is fixed at construction (None means "look at the process's current
    value on each call").
    """

    def __init__(
        self,
        *,
        path_env: str | None = None,
        executable_dirs: Sequence[str] | None = None,
    ) -> None:
        self.cache: dict[str, str] = {}
        self._path_env = path_env
        self._executable_dirs = executable_dirs

    def resolve(self, runtime: str) -> str:
        """Resolve ``runtime`` (see :func:`resolve_runtime_path`), using and filling the cache."""
        return resolve_runtime_path(
            runtime,
            cache=self.cache,
            path_env=self._path_env,
            executable_dirs=self._executable_dirs,
        )
