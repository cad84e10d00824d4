"""Where shims put their sockets, and what a socket path may be (containerd ``pkg/shim/util.go``).

A runc-style shim listens on ``unix://<socket dir>/<sha256 hex>`` of
``<grpc address>/<namespace>/<group>`` (containerd's ``SocketAddress``); the socket dir is
configurable (``socket_dir``) but 1.6 shims always use ``/run/containerd/s``. Unix socket paths
must fit ``sun_path`` (108 bytes with the terminating NUL), which bounds the socket dir to
:data:`MAX_SOCKET_DIR_LEN` bytes. This module holds that policy and the small socket-file chores
around it (a stale socket is one nobody listens on).
"""

from __future__ import annotations

import contextlib
import os

from runtime_v2 import errdefs

__all__ = [
    "DEFAULT_SOCKET_DIR",
    "MAX_SOCKET_DIR_LEN",
    "MAX_SUN_PATH",
    "check_socket_dir",
    "check_sun_path",
    "default_socket_dir",
    "expected_addresses",
    "group_of",
    "remove_stale_socket",
    "socket_path_of",
]

#: The sun_path limit on Linux (108 bytes including the terminating NUL).
MAX_SUN_PATH = 108
#: containerd's ``maxSocketDirLen`` on Linux: 108 - NUL - "/" - 64 hex characters.
MAX_SOCKET_DIR_LEN = MAX_SUN_PATH - 1 - 1 - 64
#: Where shims put their sockets when run as root (containerd's ``defaultSocketDir``).
DEFAULT_SOCKET_DIR = "/run/containerd/s"


def check_socket_dir(socket_dir: str) -> str:
    """Validate a configured ``socket_dir`` and return it cleaned.

    It must be absolute and at most :data:`MAX_SOCKET_DIR_LEN` bytes, so that
    ``<socket_dir>/<64 hex>`` fits sun_path; the error gives the exact length.
    """
    if not os.path.isabs(socket_dir):
        raise errdefs.InvalidArgument(f"socket_dir must be an absolute path: {socket_dir!r}")
    cleaned = os.path.normpath(socket_dir)
    length = len(os.fsencode(cleaned))
    if length > MAX_SOCKET_DIR_LEN:
        raise errdefs.InvalidArgument(
            f"socket_dir {cleaned!r} is {length} characters long; it must be no longer than "
            f"{MAX_SOCKET_DIR_LEN} characters (a shim socket path must fit in {MAX_SUN_PATH} bytes)"
        )
    return cleaned


def default_socket_dir() -> str:
    """containerd's default socket dir: ``/run/containerd/s`` for root, else the first usable
    candidate among ``$XDG_RUNTIME_DIR/containerd/s``, ``/run/<uid>/containerd/s`` and
    ``/tmp/containerd-s-<uid>``."""
    uid = os.geteuid()
    if uid == 0:
        return DEFAULT_SOCKET_DIR
    candidates = [DEFAULT_SOCKET_DIR]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        candidates.append(os.path.join(xdg, "containerd", "s"))
    candidates += [f"/run/{uid}/containerd/s", f"/tmp/containerd-s-{uid}"]
    for candidate in candidates:
        if len(os.fsencode(candidate)) > MAX_SOCKET_DIR_LEN:
            continue
        try:
            os.makedirs(candidate, 0o700, exist_ok=True)
            st = os.lstat(candidate)
            if not os.path.isdir(candidate) or os.path.islink(candidate) or st.st_uid != uid:
                continue
            os.chmod(candidate, 0o700)
        except OSError:
            continue
        return candidate
    raise errdefs.FailedPrecondition(
        "failed to find a suitable socket directory for shim, please configure one"
    )


def check_sun_path(path: str, what: str) -> None:
    """Raise InvalidArgument when ``path`` does not fit a unix socket address (108 bytes)."""
    length = len(os.fsencode(path))
    if length >= MAX_SUN_PATH:
        raise errdefs.InvalidArgument(
            f"{what} {path!r} is {length} bytes long; a unix socket path must be shorter than "
            f"{MAX_SUN_PATH} bytes (use a shorter state directory)"
        )


def socket_path_of(address: str) -> str | None:
    """The filesystem path of a ``unix://`` shim address (None for abstract or other kinds)."""
    if address.startswith("unix://"):
        return address[len("unix://") :]
    return None


def remove_stale_socket(address: str) -> bool:
    """Remove the socket file of ``address`` if nothing listens on it; True when removed.

    The probe is a non-blocking ``connect()``: a unix socket answers at once (refused, accepted
    or, with a full backlog, EAGAIN -- which means someone listens), so this never waits.
    """
    path = socket_path_of(address)
    if not path or not os.path.exists(path):
        return False
    import socket  # here: checking a config (shim_config imports this module) needs none

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(path)
    except ConnectionRefusedError:
        pass
    except OSError:
        return False  # a full backlog (live), or not a socket we may judge
    else:
        return False  # live: someone serves it (a grouped shim)
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        return True
    return False


def group_of(bundle_path: str, task_id: str) -> str:
    """The runc shim's grouping key of the task in ``bundle_path``: tasks with the same
    ``io.containerd.runc.v2.group`` (or ``io.kubernetes.cri.sandbox-id``) annotation share one
    shim; any other task is its own group (``task_id``)."""
    import json  # here: checking a config imports this module, and needs no json

    with contextlib.suppress(Exception), open(os.path.join(bundle_path, "config.json")) as f:
        annotations = json.load(f).get("annotations") or {}
        return str(
            annotations.get("io.containerd.runc.v2.group")
            or annotations.get("io.kubernetes.cri.sandbox-id")
            or task_id
        )
    return task_id


def expected_addresses(
    *, grpc_address: str, socket_dir: str, namespace: str, group: str
) -> list[str]:
    """Where a runc-style shim of ``group`` in ``namespace`` puts its socket: ``<dir>/<sha256
    hex>`` of ``<grpc address>/<namespace>/<group>``, in ``socket_dir`` and in
    ``/run/containerd/s`` (1.6 shims ignore the setting)."""
    import hashlib  # loads OpenSSL: only when a shim's socket is looked for

    key = os.path.normpath(os.path.join(grpc_address, namespace, group))
    name = hashlib.sha256(key.encode()).hexdigest()
    dirs = dict.fromkeys([socket_dir, DEFAULT_SOCKET_DIR])
    return [f"unix://{os.path.join(d, name)}" for d in dirs]
