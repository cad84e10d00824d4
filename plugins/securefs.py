"""Creating and opening taskplane's files as root without trusting anyone else with the path.

taskplane runs as root from whatever directory and umask a user has; every directory and file
it creates goes through this module so that

- a created directory or file gets exactly the mode asked for, whatever the umask;
- every existing component of a path is *trusted*: owned by root (or by us), and a directory is
  not writable by group or others unless it is sticky and owned by root (``/tmp``). This is the
  check sudo applies to its secure path. Once every directory on the way is trusted, nobody else
  can plant or swap anything in it, so the checked path stays what it was when checked;
- a symlink met on the way is followed only when it is trusted itself (owned by root or by us,
  in a trusted directory); a symlink anyone else planted is refused, never followed;
- files are opened with ``O_NOFOLLOW``: a symlink in a file's place is refused.

Violations raise :class:`UnsafePath` (``errdefs.PermissionDenied``) naming the path and the
reason, one sentence::

    make_dirs("/run/taskplane/taskplane.io/default", 0o700)
    fd = open_file("/run/taskplane/x.lock", os.O_RDWR | os.O_CREAT, 0o600)

Pure standard library plus :mod:`plugins.errdefs`, so every layer (the metadata store, the
runtime, the command line) uses the same rules.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from plugins import errdefs

__all__ = [
    "UnsafePath",
    "check_trusted",
    "make_dirs",
    "open_file",
    "trusted_owner",
]

#: How many symlinks one path may go through (Linux's MAXSYMLINKS).
_MAX_SYMLINKS = 40


class UnsafePath(errdefs.PermissionDenied):
    """A path taskplane would use is not trustworthy; the message says which part and why.

    ``path`` is the path asked for, ``where`` the component at fault (``path`` itself or one
    of its parents or symlinks), ``reason`` why it cannot be trusted.
    """

    def __init__(self, path: str, where: str, reason: str) -> None:
        self.path, self.where, self.reason = path, where, reason
        super().__init__(f"refusing to use {path}: {self.detail}")

    @property
    def detail(self) -> str:
        """``reason``, prefixed with the component at fault when that is not ``path`` itself."""
        return self.reason if self.where == self.path else f"{self.where}: {self.reason}"


def trusted_owner(uid: int) -> bool:
    """Whether files owned by ``uid`` may be trusted: root's, or our own."""
    return uid == 0 or uid == os.geteuid()


def _problem(st: os.stat_result) -> str | None:
    """Why an existing file or directory with status ``st`` cannot be trusted, or None."""
    if not trusted_owner(st.st_uid):
        return f"it is owned by uid {st.st_uid}, not by root"
    if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode):
        sticky_root = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
        if not sticky_root:
            return f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _walk(path: str | os.PathLike[str], create_mode: int | None) -> str:
    """Resolve ``path`` component by component, checking each; return the real path.

    With ``create_mode``, missing directories are created with that mode; otherwise a missing
    component ends the walk (the rest of the path is appended unchecked: nothing is there).
    """
    given = os.path.abspath(os.fspath(path))
    pending = [c for c in given.split("/") if c and c != "."][::-1]
    current = "/"
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if create_mode is None:
                return os.path.join(candidate, *reversed(pending))
            _mkdir(candidate, create_mode)
            st = os.lstat(candidate)
        except NotADirectoryError:
            raise UnsafePath(given, current, "it is not a directory") from None
        problem = _problem(st)
        if problem is not None:
            kind = "symlink " if stat.S_ISLNK(st.st_mode) else ""
            raise UnsafePath(given, f"{kind}{candidate}", problem)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise UnsafePath(given, given, "too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extend(c for c in reversed(target.split("/")) if c and c != ".")
            continue
        if pending and not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(given, candidate, "it is not a directory")
        current = candidate
    return current


def _mkdir(path: str, mode: int) -> None:
    """Create directory ``path`` with exactly ``mode`` (chmod after mkdir: the umask is ours)."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return  # a peer made it first; the caller checks what is there now
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def check_trusted(path: str | os.PathLike[str]) -> str:
    """Return the real path of ``path`` after checking every existing component is trusted.

    A missing tail is fine (nothing is there to distrust). Raises :class:`UnsafePath`.
    """
    return _walk(path, None)


def make_dirs(path: str | os.PathLike[str], mode: int = 0o700) -> str:
    """``mkdir -p`` with exactly ``mode`` for each directory created, whatever the umask.

    Existing components are checked (see the module docstring) and keep their mode; the last
    one must be a directory. Returns the real path. Raises :class:`UnsafePath` or OSError.
    """
    real = _walk(path, mode)
    if not os.path.isdir(real):
        raise UnsafePath(os.fspath(path), os.fspath(path), "it is not a directory")
    return real


def open_file(
    path: str | os.PathLike[str], flags: int, mode: int = 0o600, *, parent_mode: int = 0o711
) -> int:
    """``os.open`` for a file under taskplane's directories: parents made (``parent_mode``) and
    checked, ``O_NOFOLLOW | O_CLOEXEC`` added, a new file's mode exactly ``mode``.

    A symlink in the file's place raises :class:`UnsafePath`; so does an existing file owned by
    someone else. Returns the descriptor.
    """
    name = os.fspath(path)
    parent = make_dirs(os.path.dirname(os.path.abspath(name)), parent_mode)
    target = os.path.join(parent, os.path.basename(name))
    try:
        fd = os.open(target, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(name, name, "it is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not trusted_owner(st.st_uid):
            raise UnsafePath(name, name, f"it is owned by uid {st.st_uid}, not by root")
        if flags & os.O_CREAT and stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.geteuid():
            os.fchmod(fd, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd
