"""Runtime name to shim binary (containerd's ``resolveRuntimePath`` and ``shim.BinaryName``).

A runtime is named like ``io.containerd.runc.v2`` (its shim binary is
``containerd-shim-runc-v2``) or by the absolute path of a shim binary. Lookup order for a name,
as containerd does it:

1. ``<cwd>/<binary>`` (containerd's working directory; a quirk kept for compatibility);
2. every directory of ``PATH``;
3. next to our own executable (the ``taskplane`` console script's directory and
   ``<sys.prefix>/bin``, where a virtualenv installs it).

Found paths are cached per binary name (the first writer wins); absolute paths are not cached.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import MutableMapping, Sequence

from runtime_v2 import errdefs

__all__ = [
    "RuntimePathResolver",
    "binary_name",
    "default_executable_dirs",
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


def _look_path(name: str, path_env: str, cwd: str) -> str | None:
    """``exec.LookPath``: the first executable regular file ``<dir>/<name>`` on ``path_env``.

    An empty PATH entry means the current directory, as in Go.
    """
    for directory in path_env.split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if not os.path.isabs(candidate):
            candidate = os.path.join(cwd, candidate)
        if _is_executable_file(candidate):
            return os.path.normpath(candidate)
    return None


def resolve_runtime_path(
    runtime: str,
    *,
    cache: MutableMapping[str, str] | None = None,
    path_env: str | None = None,
    cwd: str | None = None,
    executable_dirs: Sequence[str] | None = None,
) -> str:
    """Return the absolute path of the shim binary for ``runtime``.

    ``runtime`` is a runtime name (``io.containerd.runc.v2``) or an absolute binary path (returned
    unchanged after checking it exists; never cached). ``cache`` maps binary names to resolved
    paths and is filled here (first writer wins). ``path_env``, ``cwd`` and ``executable_dirs``
    default to ``$PATH``, ``os.getcwd()`` and :func:`default_executable_dirs`.

    Raises :class:`errdefs.InvalidArgument` for an empty or malformed name (a relative path is
    malformed) and :class:`errdefs.NotFound` when the binary is nowhere; that message lists every
    place it looked.
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
        return runtime
    name = binary_name(runtime)
    if "/" in runtime or name == "":
        raise errdefs.InvalidArgument(f"invalid runtime name {runtime}, {_FORMAT_HINT}")
    if cache is not None:
        cached = cache.get(name)
        if cached is not None:
            return cached

    cwd = os.getcwd() if cwd is None else cwd
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    dirs = default_executable_dirs() if executable_dirs is None else list(executable_dirs)

    found: str | None = None
    in_cwd = os.path.join(cwd, name)
    if os.path.exists(in_cwd):
        found = in_cwd
    if found is None:
        found = _look_path(name, path_env, cwd)
    if found is None:
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if os.path.exists(candidate):
                found = candidate
                break
    if found is None:
        path_dirs = ", ".join(d or "." for d in path_env.split(os.pathsep)) if path_env else ""
        raise errdefs.NotFound(
            f'runtime "{runtime}" binary not installed "{name}": looked in {cwd}, '
            f"PATH ({path_dirs}), {', '.join(dirs) if dirs else 'no executable dir'}"
        )
    found = os.path.abspath(found)
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
        cwd: str | None = None,
        executable_dirs: Sequence[str] | None = None,
    ) -> None:
        self.cache: dict[str, str] = {}
        self._path_env = path_env
        self._cwd = cwd
        self._executable_dirs = executable_dirs

    def resolve(self, runtime: str) -> str:
        """Resolve ``runtime`` (see :func:`resolve_runtime_path`), using and filling the cache."""
        return resolve_runtime_path(
            runtime,
            cache=self.cache,
            path_env=self._path_env,
            cwd=self._cwd,
            executable_dirs=self._executable_dirs,
        )
