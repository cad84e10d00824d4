"""The bundle: a task's directory on disk (containerd's ``core/runtime/v2/bundle.go``).

A bundle lives at ``STATE/<namespace>/<id>`` (mode 0700) and holds the OCI ``config.json``, an
empty ``rootfs`` mount point and a ``work`` symlink to a persistent work directory at
``ROOT/<namespace>/<id>``. Shims add their own files next to these (``log``, ``init.pid``,
``bootstrap.json``, ...).

Differences from containerd, on purpose:

- :func:`new_bundle` leaves nothing behind on *any* failure; containerd leaks the bundle directory
  when the user-namespace permission step fails.
- :meth:`Bundle.delete` is retriable: a hidden ``.<id>`` left by an interrupted delete is removed
  by the next one, also when it is in the way of the rename (a leftover ``.<id>`` never poisons
  the id). :func:`new_bundle` removes one too. Both run under the task's lock
  (:mod:`runtime_v2.locks`), which is what makes a leftover safe to remove.
- Directory modes are set with ``chmod`` after creation, so they do not depend on the umask, and
  the shared parents are created and checked by :mod:`plugins.securefs`.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from plugins import identifiers, securefs
from runtime_v2 import errdefs
from runtime_v2.crashpoint import crashpoint

__all__ = [
    "OCI_SPEC_TYPE_URL",
    "SHIM_BINARY_PATH_FILE",
    "Bundle",
    "load_bundle",
    "mounts_under",
    "new_bundle",
    "remapped_gid",
    "remove_all",
    "unmount_recursive",
    "write_file",
]

#: typeurl of a JSON OCI runtime spec (containerd registers ``specs.Spec`` under this URL).
OCI_SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"

#: The bundle file naming the shim binary that runs the task (containerd's ``shim-binary-path``).
SHIM_BINARY_PATH_FILE = "shim-binary-path"

_STATE_NS_MODE = 0o711
_BUNDLE_MODE = 0o700
_BUNDLE_REMAPPED_MODE = 0o710
_ROOT_NS_MODE = 0o711
_ROOTFS_MODE = 0o711
_WORK_MODE = 0o711
_CONFIG_MODE = 0o644


class _AnyLike(Protocol):
    """A ``google.protobuf.Any`` (or anything with its two fields)."""

    type_url: str
    value: bytes


@attrs.frozen
class Bundle:
    """A task bundle: ``path`` is ``STATE/<namespace>/<id>``.

    Build one with :func:`new_bundle` (creates it on disk) or :func:`load_bundle` (no I/O).
    """

    id: str
    namespace: str
    path: str

    @property
    def rootfs(self) -> str:
        """``<bundle>/rootfs``, the mount point of the container's root filesystem."""
        return os.path.join(self.path, "rootfs")

    @property
    def work_link(self) -> str:
        """``<bundle>/work``, the symlink to the persistent work directory."""
        return os.path.join(self.path, "work")

    def has_remains(self, root: str) -> bool:
        """Whether anything of the task is on disk for restart recovery to look at: the
        bundle, or its work dir under ``root`` (``ROOT/<ns>/<id>``, or ``ROOT/<ns>/.<id>``
        when half-deleted)."""
        work = os.path.join(root, self.namespace)
        return os.path.lexists(self.path) or any(
            os.path.lexists(os.path.join(work, entry)) for entry in (self.id, f".{self.id}")
        )

    def delete(self) -> None:
        """Remove the bundle and its work directory (containerd's ``Bundle.Delete``).

        Steps: read the ``work`` link; unmount everything under ``rootfs`` (deepest first);
        remove the now-empty ``rootfs`` (it is never removed recursively, so a mount that could not
        be removed keeps its contents safe); rename the bundle to ``.<id>`` and remove it; the same
        for the work directory. Deleting a bundle that is already gone is not an error.

        Raises :class:`OSError` naming the path when a step fails. When both the bundle and the
        work directory fail to be removed the message says so.
        """
        work = _readlink(self.work_link)
        if work is None:
            # An interrupted delete may have renamed the bundle already; its link still knows.
            work = _readlink(os.path.join(_hidden(self.path), "work"))
        rootfs = self.rootfs
        try:
            unmount_recursive(rootfs)
        except OSError as exc:
            raise OSError(exc.errno, f"unmount rootfs {rootfs}: {exc.strerror}") from exc
        try:
            os.rmdir(rootfs)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OSError(
                exc.errno, f"failed to remove bundle rootfs {rootfs}: {exc.strerror}"
            ) from exc
        try:
            _atomic_delete(self.path)
        except OSError as bundle_err:
            if work is None:
                raise
            try:
                _atomic_delete(work)
            except OSError as work_err:
                raise OSError(
                    bundle_err.errno,
                    f"failed to remove both bundle and workdir locations: {work_err}: {bundle_err}",
                ) from bundle_err
            raise
        if work is not None:
            _atomic_delete(work)


def load_bundle(state: str, namespace: str, task_id: str) -> Bundle:
    """Return the :class:`Bundle` for ``STATE/<namespace>/<task_id>`` without touching the disk."""
    return Bundle(id=task_id, namespace=namespace, path=os.path.join(state, namespace, task_id))


def new_bundle(
    root: str,
    state: str,
    namespace: str,
    task_id: str,
    spec: bytes | _AnyLike | None,
) -> Bundle:
    """Create the bundle of task ``task_id`` in ``namespace`` (containerd's ``NewBundle``).

    ``root`` and ``state`` are the task plugin's ROOT and STATE directories. ``spec`` is the OCI
    runtime spec as JSON bytes, a protobuf ``Any`` holding it, or None (some sandboxers have no
    spec). The ids are validated before anything touches the disk.

    On disk: ``STATE/<ns>`` (0711), the bundle ``STATE/<ns>/<id>`` (0700, or 0710 owned by the
    remapped gid when ``linux.gidMappings`` maps container gid 0), ``ROOT/<ns>`` (0711),
    ``<bundle>/rootfs`` (0711), the work dir ``ROOT/<ns>/<id>`` (0711, recreated when it exists),
    the ``<bundle>/work`` symlink to it and ``<bundle>/config.json`` (0644).

    Raises :class:`errdefs.InvalidArgument` for a bad id or an unparsable spec,
    :class:`errdefs.AlreadyExists` when the bundle directory exists, :class:`OSError` otherwise.
    On any failure nothing created by this call is left behind (``STATE/<ns>`` and ``ROOT/<ns>``
    are shared and stay).
    """
    identifiers.validate_task_id(task_id)
    identifiers.validate_namespace(namespace)
    spec_bytes, is_oci_spec = _spec_bytes(spec)

    state_ns = os.path.join(state, namespace)
    path = os.path.join(state_ns, task_id)
    work_dir = os.path.abspath(os.path.join(root, namespace, task_id))

    securefs.make_dirs(state_ns, _STATE_NS_MODE)
    # What an interrupted delete of an earlier task with this id left (the caller holds the
    # task's lock): finish removing it.
    remove_all(_hidden(path))
    remove_all(_hidden(work_dir))
    try:
        os.mkdir(path, _BUNDLE_MODE)
    except FileExistsError:
        raise errdefs.AlreadyExists(
            f'bundle "{path}" of task {task_id} in namespace {namespace}: already exists'
        ) from None

    bundle = Bundle(id=task_id, namespace=namespace, path=path)
    created_work = False
    try:
        os.chmod(path, _BUNDLE_MODE)
        if is_oci_spec:
            gid = remapped_gid(spec_bytes)
            if gid != 0:
                os.chown(path, -1, gid)
                os.chmod(path, _BUNDLE_REMAPPED_MODE)
        securefs.make_dirs(os.path.join(root, namespace), _ROOT_NS_MODE)
        os.mkdir(bundle.rootfs, _ROOTFS_MODE)
        os.chmod(bundle.rootfs, _ROOTFS_MODE)
        try:
            os.mkdir(work_dir, _WORK_MODE)
        except FileExistsError:
            # A stale work dir from an earlier task with this id: start afresh.
            import shutil  # rare: not imported by every command that loads bundles

            shutil.rmtree(work_dir)
            os.mkdir(work_dir, _WORK_MODE)
        created_work = True
        os.chmod(work_dir, _WORK_MODE)
        os.symlink(work_dir, bundle.work_link)
        if spec_bytes:
            write_file(os.path.join(path, "config.json"), spec_bytes, _CONFIG_MODE, exclusive=True)
    except BaseException:
        remove_all(path)
        if created_work:
            remove_all(work_dir)
        raise
    return bundle


def remapped_gid(spec: bytes | Mapping[str, Any] | None) -> int:
    """Return the host gid that container gid 0 maps to in ``linux.gidMappings``, else 0.

    ``spec`` is the OCI spec as JSON bytes or a decoded mapping; empty or None means no spec.
    Raises :class:`errdefs.InvalidArgument` when the JSON or the mapping entries are malformed.
    """
    if spec is None or spec == b"":
        return 0
    if isinstance(spec, bytes | bytearray | memoryview):
        try:
            decoded = json.loads(bytes(spec))
        except (ValueError, UnicodeDecodeError) as exc:
            raise errdefs.InvalidArgument(f"invalid OCI runtime spec (config.json): {exc}") from exc
    else:
        decoded = spec
    if not isinstance(decoded, Mapping):
        raise errdefs.InvalidArgument("invalid OCI runtime spec (config.json): not a JSON object")
    linux = decoded.get("linux")
    if linux is None:
        return 0
    if not isinstance(linux, Mapping):
        raise errdefs.InvalidArgument('invalid OCI runtime spec: "linux" is not an object')
    mappings = linux.get("gidMappings") or []
    if not isinstance(mappings, list):
        raise errdefs.InvalidArgument('invalid OCI runtime spec: "linux.gidMappings" is not a list')
    for entry in mappings:
        if not isinstance(entry, Mapping):
            raise errdefs.InvalidArgument(
                f'invalid OCI runtime spec: "linux.gidMappings" entry {entry!r} is not an object'
            )
        container_id = entry.get("containerID", 0)
        host_id = entry.get("hostID", 0)
        for key, value in (("containerID", container_id), ("hostID", host_id)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                raise errdefs.InvalidArgument(
                    f'invalid OCI runtime spec: "linux.gidMappings" {key} {value!r} is not a uint32'
                )
        if container_id == 0:
            return int(host_id)
    return 0


def mounts_under(target: str, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below ``target`` from ``/proc/self/mountinfo``, deepest first.

    ``mountinfo`` is the file's text (read from /proc when None). A path mounted several times
    appears once per mount.
    """
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            mountinfo = f.read()
    target = os.path.normpath(target)
    prefix = target.rstrip("/") + "/"
    found: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape_mountinfo(fields[4])
        if point == target or point.startswith(prefix):
            found.append(point)
    # Deepest first; among equal depths, the later (upper) mount first.
    ranked = sorted(enumerate(found), key=lambda item: (item[1].count("/"), item[0]), reverse=True)
    return [point for _, point in ranked]


def unmount_recursive(target: str) -> None:
    """Unmount ``target`` and every mount below it, deepest first (``mount.UnmountRecursive``).

    A nonexistent ``target`` is fine. Each mount is unmounted with ``umount2``; EBUSY is retried
    50 times 50 ms apart, then it fails (containerd's ``mount.unmount``). "Not mounted" (EINVAL)
    and a vanished path (ENOENT) are ignored. Raises :class:`OSError` when a mount stays. It
    blocks (up to 2.5 s per busy mount): call it in a worker thread.
    """
    if not os.path.lexists(target):
        return
    target = os.path.realpath(target)
    # Stacked mounts need several rounds; each round removes at least one mount or raises.
    for _ in range(64):
        points = mounts_under(target)
        if not points:
            return
        for point in points:
            _umount(point)
    points = mounts_under(target)
    if points:
        raise OSError(errno.EBUSY, f"mounts remain under {target}: {', '.join(points)}")


# --- helpers -------------------------------------------------------------------------------------


def _spec_bytes(spec: bytes | _AnyLike | None) -> tuple[bytes, bool]:
    """Return (JSON bytes, whether they are an OCI spec to inspect for gid mappings)."""
    if spec is None:
        return b"", False
    if isinstance(spec, bytes | bytearray | memoryview):
        return bytes(spec), True
    type_url = getattr(spec, "type_url", None)
    value = getattr(spec, "value", None)
    if not isinstance(type_url, str) or not isinstance(value, bytes):
        raise errdefs.InvalidArgument(
            f"spec must be OCI JSON bytes or a protobuf Any, not {type(spec).__name__}"
        )
    return value, type_url == OCI_SPEC_TYPE_URL


def write_file(path: str, data: bytes, mode: int = 0o600, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with exactly ``mode`` (whatever the umask or an old file's
    mode), replacing any old content; ``exclusive``: FileExistsError when ``path`` exists.

    The one way files are written into a bundle (``config.json``, ``shim-binary-path``, the
    recorded runtime options).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    # O_NOFOLLOW: a symlink in the file's place is an error (ELOOP), never a redirection.
    fd = os.open(path, flags | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.filename is not None:
            raise
        # os.write names no file: "No space left on device" alone does not say where.
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)


def remove_all(path: str) -> None:
    """Go's ``os.RemoveAll``: remove ``path`` (a directory tree, or a file or symlink, which is
    not followed); a missing ``path`` is fine, other failures raise :class:`OSError`."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            import shutil  # only a directory needs it (and only on a delete)

            shutil.rmtree(path)
    except FileNotFoundError:
        pass


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _hidden(path: str) -> str:
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path))


def _atomic_delete(path: str) -> None:
    """Rename ``dir/name`` to ``dir/.name`` and remove that; a missing ``path`` is success.

    A ``.name`` left by an interrupted earlier delete is removed too.
    """
    hidden = _hidden(path)
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        if not os.path.lexists(hidden):
            return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        # A ``.name`` left by an interrupted delete is in the way (the caller holds the task's
        # lock, so it is ours to finish): remove it, then take its place.
        remove_all(hidden)
        os.rename(path, hidden)
    crashpoint("delete:bundle-removal")
    remove_all(hidden)


def _unescape_mountinfo(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for space, ``\\011``, ``\\012``, ``\\134``)."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 3 < len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


_libc: Any = None


def _umount2(path: str, flags: int) -> None:
    import ctypes  # only to unmount: not on the path of a command that only reads

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.umount2(os.fsencode(path), ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


#: containerd's ``mount.unmount``: a busy mount is retried this many times, this far apart.
UNMOUNT_RETRIES = 50
UNMOUNT_RETRY_INTERVAL = 0.05


def _umount(point: str) -> None:
    """Unmount ``point``, retrying EBUSY (containerd's 50 x 50 ms) and then failing: a busy
    mount is never detached lazily, which would report success while it is still in use."""
    for _ in range(UNMOUNT_RETRIES):
        try:
            _umount2(point, 0)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(UNMOUNT_RETRY_INTERVAL)  # always called in a worker thread
            continue
        return
    raise OSError(errno.EBUSY, f"failed to unmount target {point}: device or resource busy")
