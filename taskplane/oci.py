"""A default OCI runtime spec for a container, like the one ``ctr run`` generates.

:func:`default_spec` returns a plain ``dict`` (the JSON document runc reads as ``config.json``):
new pid/ipc/uts/mount/network namespaces, ``/proc``, a tmpfs ``/dev`` with devpts, shm and
mqueue, a read-only ``/sys``, containerd's default capability set, its masked and read-only
paths, and ``root.path`` pointing at the rootfs directory::

    spec = default_spec("web", rootfs="/srv/rootfs", args=["/bin/echo", "hi"])
    data = spec_bytes(spec)            # what CreateOpts.spec takes
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "MASKED_PATHS",
    "OCI_VERSION",
    "READONLY_PATHS",
    "SpecError",
    "default_spec",
    "load_spec",
    "process_spec",
    "spec_bytes",
]

#: The runtime-spec version written into generated specs (runc 1.1 understands it).
OCI_VERSION = "1.0.2"

#: containerd's default PATH for a container's process.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: containerd's default capability set (``oci.defaultUnixCaps``).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: Paths hidden from the container (bind-mounted over with /dev/null or an empty tmpfs).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
)

#: Paths the container may read but not write.
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_NAMESPACES = ("pid", "ipc", "uts", "mount", "network")


class SpecError(ValueError):
    """A spec file or an ``--env`` value is malformed; the message names it."""


def _mounts() -> list[dict[str, Any]]:
    def mount(destination: str, type_: str, source: str, *options: str) -> dict[str, Any]:
        return {
            "destination": destination,
            "type": type_,
            "source": source,
            "options": list(options),
        }

    return [
        mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ),
        mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        mount("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
    ]


def _environment(env: Sequence[str] | Mapping[str, str]) -> list[str]:
    """Return ``PATH=<default>`` followed by ``env``; a later value of the same key wins."""
    items = list(env.items()) if isinstance(env, Mapping) else [_split_env(e) for e in env]
    merged: dict[str, str] = {"PATH": DEFAULT_PATH}
    for key, value in items:
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _split_env(entry: str) -> tuple[str, str]:
    key, sep, value = entry.partition("=")
    if not sep or not key:
        raise SpecError(f"environment variable {entry!r} must have the form KEY=VALUE")
    return key, value


def process_spec(
    args: Sequence[str],
    *,
    env: Sequence[str] | Mapping[str, str] = (),
    cwd: str = "/",
    terminal: bool = False,
) -> dict[str, Any]:
    """Return an OCI ``process`` object: root user, default capabilities, PATH + ``env``."""
    if not args:
        raise SpecError("a command is required (give it after the task id, e.g. -- /bin/sh)")
    if not cwd.startswith("/"):
        raise SpecError(f"working directory {cwd!r} must be an absolute path")
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "terminal": terminal,
        "user": {"uid": 0, "gid": 0},
        "args": list(args),
        "env": _environment(env),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def default_spec(
    container_id: str,
    *,
    rootfs: str | os.PathLike[str],
    args: Sequence[str],
    env: Sequence[str] | Mapping[str, str] = (),
    cwd: str = "/",
    namespace: str = "default",
    terminal: bool = False,
) -> dict[str, Any]:
    """Return containerd's default Linux spec for ``container_id`` running ``args`` in ``rootfs``.

    ``rootfs`` is made absolute with symlinks resolved (runc resolves a relative ``root.path``
    against the bundle, not the caller's directory, and refuses a symlinked rootfs). The cgroup
    is ``/taskplane@<namespace>@<container_id>``: one directory with no parent of its own, so
    runc's delete leaves nothing (a ``/<namespace>/`` parent would stay forever on cgroup v1);
    :class:`taskplane.Client` adds the state dir's hash to make it unique per state dir.
    """
    return {
        "ociVersion": OCI_VERSION,
        "process": process_spec(args, env=env, cwd=cwd, terminal=terminal),
        "root": {"path": os.path.realpath(os.fspath(rootfs)), "readonly": False},
        "hostname": container_id,
        "mounts": _mounts(),
        "linux": {
            "cgroupsPath": f"/taskplane@{namespace}@{container_id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": ns} for ns in _NAMESPACES],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an OCI spec JSON file, raising :class:`SpecError` naming the file when it is bad."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SpecError(f"spec file {name!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {name!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {name!r}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {name!r} must hold a JSON object, not {type(data).__name__}")
    if not isinstance(data.get("process"), dict) or not data["process"].get("args"):
        raise SpecError(f"spec file {name!r} has no process.args")
    if not isinstance(data.get("root"), dict) or not data["root"].get("path"):
        raise SpecError(f"spec file {name!r} has no root.path")
    return data


def spec_bytes(spec: Mapping[str, Any]) -> bytes:
    """Serialise a spec to the JSON bytes written as ``config.json``."""
    return json.dumps(spec, separators=(",", ":")).encode()
