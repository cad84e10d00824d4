"""A default OCI runtime spec for a container, like the one ``ctr run`` generates.

:func:`default_spec` returns a plain ``dict`` (the JSON document runc reads as ``config.json``):
new pid/ipc/uts/mount/network namespaces, ``/proc``, a tmpfs ``/dev`` with devpts, shm and
mqueue, a read-only ``/sys``, containerd's default capability set, its masked and read-only
paths, and ``root.path`` pointing at the rootfs directory::

    spec = default_spec("web", rootfs="/srv/rootfs", args=["/bin/echo", "hi"])
    data = spec_bytes(spec)            # what CreateOpts.spec takes

The container options ``ctr run`` has flags for are keywords (see :class:`SpecOptions`)::

    spec = default_spec(
        "web", rootfs="/srv/rootfs", args=["/bin/sh"],
        mounts=[BindMount("/srv/data", "/data", read_only=True)],
        user=(1000, 1000), read_only=True, memory_limit=64 << 20, cpus=0.5, pids_limit=64,
    )

and :func:`apply_options` applies the same options to a spec read with :func:`load_spec`.
:mod:`taskplane.oci_text` turns the command line's text (``64m``, ``1000:1000``,
``type=bind,src=...,dst=...``) into those values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "CPU_PERIOD",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "HOST_NAME_MAX",
    "MASKED_PATHS",
    "MAX_SPEC_BYTES",
    "MAX_SPEC_NESTING",
    "OCI_VERSION",
    "READONLY_PATHS",
    "BindMount",
    "SpecError",
    "SpecOptions",
    "apply_options",
    "default_hostname",
    "default_spec",
    "load_spec",
    "process_spec",
    "read_bounded",
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

#: The longest hostname Linux accepts (``HOST_NAME_MAX``; ``sethostname`` fails with EINVAL).
HOST_NAME_MAX = 64


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
    mounts: Sequence[BindMount] = (),
    user: tuple[int, int] | None = None,
    read_only: bool = False,
    memory_limit: int | None = None,
    cpus: float | None = None,
    pids_limit: int | None = None,
    net_host: bool = False,
    hostname: str | None = None,
) -> dict[str, Any]:
    """Return containerd's default Linux spec for ``container_id`` running ``args`` in ``rootfs``.

    The keywords from ``mounts`` on are :class:`SpecOptions` (what each does is documented
    there); they are applied with :func:`apply_options`.

    ``rootfs`` is made absolute with symlinks resolved (runc resolves a relative ``root.path``
    against the bundle, not the caller's directory, and refuses a symlinked rootfs). The
    hostname is :func:`default_hostname` (the ID, at most 64 characters). The cgroup
    is ``/taskplane@<namespace>@<container_id>``: one directory with no parent of its own, so
    runc's delete leaves nothing (a ``/<namespace>/`` parent would stay forever on cgroup v1);
    :class:`taskplane.Client` adds the state dir's hash to make it unique per state dir.
    """
    options = SpecOptions(
        mounts=tuple(mounts),
        user=user,
        read_only=read_only,
        memory_limit=memory_limit,
        cpus=cpus,
        pids_limit=pids_limit,
        net_host=net_host,
        hostname=hostname,
    )
    spec = {
        "ociVersion": OCI_VERSION,
        "process": process_spec(args, env=env, cwd=cwd, terminal=terminal),
        "root": {"path": os.path.realpath(os.fspath(rootfs)), "readonly": False},
        "hostname": default_hostname(container_id),
        "mounts": _mounts(),
        "linux": {
            "cgroupsPath": f"/taskplane@{namespace}@{container_id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": ns} for ns in _NAMESPACES],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    return apply_options(spec, options)


#: The largest spec file read (containerd's generated specs are a few KiB).
MAX_SPEC_BYTES = 1 << 20
#: How deep objects and arrays may nest in a spec file.
MAX_SPEC_NESTING = 32

# The shape of the spec fields taskplane or runc read, checked before anything uses them (an
# OCI spec has many more fields; those are runc's to judge). A dict is an object with those
# keys, a one-item list an array of that, "*" any key of an object; a type is a JSON scalar.
_SPEC_SHAPE: dict[str, Any] = {
    "ociVersion": str,
    "hostname": str,
    "process": {
        "terminal": bool,
        "args": [str],
        "env": [str],
        "cwd": str,
        "user": {"uid": int, "gid": int, "umask": int, "additionalGids": [int]},
        "capabilities": {k: [str] for k in ("bounding", "effective", "permitted", "inheritable")},
        "rlimits": [{"type": str, "hard": int, "soft": int}],
        "noNewPrivileges": bool,
    },
    "root": {"path": str, "readonly": bool},
    "mounts": [{"destination": str, "type": str, "source": str, "options": [str]}],
    "annotations": {"*": str},
    "linux": {
        "cgroupsPath": str,
        "resources": {
            "memory": {"limit": int},
            "cpu": {"quota": int, "period": int},
            "pids": {"limit": int},
        },
        "namespaces": [{"type": str, "path": str}],
        "maskedPaths": [str],
        "readonlyPaths": [str],
        "uidMappings": [{"containerID": int, "hostID": int, "size": int}],
        "gidMappings": [{"containerID": int, "hostID": int, "size": int}],
    },
}
_JSON_TYPE = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object"}


def default_hostname(container_id: str) -> str:
    """The container's hostname: its ID, cut to the first :data:`HOST_NAME_MAX` characters.

    IDs may be 76 characters long but hostnames stop at 64; cutting (rather than refusing the
    ID) keeps every valid ID usable. IDs are ASCII, so characters are bytes.
    """
    return container_id[:HOST_NAME_MAX]


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an OCI spec JSON file, raising :class:`SpecError` naming the file when it is bad.

    Bad means: not a regular file, larger than :data:`MAX_SPEC_BYTES`, not UTF-8, not JSON,
    nested deeper than :data:`MAX_SPEC_NESTING`, no ``process.args`` or ``root.path``, or a
    value of the wrong type in a field taskplane or runc reads; the message names the JSON path.
    """
    from registry.config import nesting_depth

    name = os.fspath(path)
    raw = read_bounded(name, MAX_SPEC_BYTES, "spec file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec file {name!r} is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {name!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise SpecError(
            f"spec file {name!r} nests objects and arrays more than {MAX_SPEC_NESTING} deep"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {name!r} must hold a JSON object, not {_json_type(data)}")
    if nesting_depth(data, MAX_SPEC_NESTING) > MAX_SPEC_NESTING:
        raise SpecError(
            f"spec file {name!r} nests objects and arrays more than {MAX_SPEC_NESTING} deep"
        )
    problem = _shape_problem(data, _SPEC_SHAPE, "")
    if problem is not None:
        raise SpecError(f"spec file {name!r}: {problem}")
    if not data.get("process", {}).get("args"):
        raise SpecError(f"spec file {name!r} has no process.args")
    if not data.get("root", {}).get("path"):
        raise SpecError(f"spec file {name!r} has no root.path")
    hostname = data.get("hostname", "")
    if len(hostname.encode()) > HOST_NAME_MAX:
        raise SpecError(
            f"spec file {name!r}: hostname: longer than {HOST_NAME_MAX} bytes "
            "(the kernel's HOST_NAME_MAX; runc would fail in sethostname)"
        )
    return data


def read_bounded(name: str, limit: int, what: str) -> bytes:
    """The bytes of regular file ``name`` (at most ``limit``); SpecError "<what> '<name>' ..."."""
    from registry.config import NotARegularFile, read_regular_file

    try:
        return read_regular_file(name, limit)
    except FileNotFoundError:
        raise SpecError(f"{what} {name!r} does not exist") from None
    except NotARegularFile as exc:
        raise SpecError(f"{what} {name!r} {exc}") from None
    except OSError as exc:
        raise SpecError(f"cannot read {what} {name!r}: {exc.strerror}") from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, float):
        return "a number"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _shape_problem(value: object, shape: Any, where: str) -> str | None:
    """The first value in ``value`` that does not fit ``shape``, as "<path>: expected ...".

    ``where`` is the JSON path so far; nesting is bounded by the shape (and by the caller's
    depth check), so recursion is shallow.
    """
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or '(top)'}: expected an object, got {_json_type(value)}"
        for key, sub in value.items():
            inner = shape.get(key, shape.get("*"))
            if inner is not None:
                problem = _shape_problem(sub, inner, f"{where}.{key}" if where else key)
                if problem is not None:
                    return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where}: expected an array, got {_json_type(value)}"
        for i, item in enumerate(value):
            problem = _shape_problem(item, shape[0], f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    # bool is an int in Python, not in JSON.
    if not isinstance(value, shape) or (shape is int and isinstance(value, bool)):
        return f"{where}: expected {_JSON_TYPE[shape]}, got {_json_type(value)}"
    if isinstance(value, str) and "\0" in value:
        return f"{where}: contains a NUL character"
    return None


def spec_bytes(spec: Mapping[str, Any]) -> bytes:
    """Serialise a spec to the JSON bytes written as ``config.json``."""
    return json.dumps(spec, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------ options

#: The CFS period ``cpus`` is expressed in (containerd's ``WithCPUs``: quota = cpus * period).
CPU_PERIOD = 100_000


@attrs.frozen
class BindMount:
    """A bind mount of the host's ``source`` at ``destination`` in the container.

    ``options`` are the mount options (``rbind`` is added when neither ``bind`` nor ``rbind``
    is given); ``read_only`` adds ``ro``.
    """

    source: str
    destination: str
    options: tuple[str, ...] = ()
    read_only: bool = False

    def oci(self) -> dict[str, Any]:
        """The OCI ``mounts`` entry."""
        options = list(self.options)
        if not {"bind", "rbind"} & set(options):
            options.insert(0, "rbind")
        if self.read_only and "ro" not in options:
            options.append("ro")
        return {
            "destination": self.destination,
            "type": "bind",
            "source": self.source,
            "options": options,
        }


def _positive(what: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise SpecError(f"{what} must be greater than 0, not {value!r}")

    return check


def _check_user(_: object, attribute: attrs.Attribute[Any], value: tuple[int, int] | None) -> None:
    if value is not None and not all(0 <= part < 2**32 - 1 for part in value):
        raise SpecError(f"user {value!r}: uid and gid go from 0 to {2**32 - 2}")


def _check_hostname(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not 0 < len(value.encode()) <= HOST_NAME_MAX:
        raise SpecError(
            f"hostname {value!r} must be 1 to {HOST_NAME_MAX} bytes (the kernel's HOST_NAME_MAX)"
        )


@attrs.frozen
class SpecOptions:
    """The container options of ``ctr run``'s flags, as :func:`apply_options` applies them.

    - ``mounts``: bind mounts added to the spec's (one at the same destination is replaced);
    - ``user``: ``(uid, gid)`` of the process;
    - ``read_only``: the root filesystem is mounted read-only (``root.readonly``);
    - ``memory_limit``: bytes (``linux.resources.memory.limit``);
    - ``cpus``: CPUs of CFS quota (quota = cpus * :data:`CPU_PERIOD` per period);
    - ``pids_limit``: the most processes (``linux.resources.pids.limit``);
    - ``net_host``: the host's network namespace (the spec's network namespace is dropped);
    - ``hostname``: the container's hostname (at most :data:`HOST_NAME_MAX` bytes).

    ``None`` (or False, or empty) leaves the spec's value alone.
    """

    mounts: tuple[BindMount, ...] = ()
    user: tuple[int, int] | None = attrs.field(default=None, validator=_check_user)
    read_only: bool = False
    memory_limit: int | None = attrs.field(default=None, validator=_positive("memory limit"))
    cpus: float | None = attrs.field(default=None, validator=_positive("cpus"))
    pids_limit: int | None = attrs.field(default=None, validator=_positive("pids limit"))
    net_host: bool = False
    hostname: str | None = attrs.field(default=None, validator=_check_hostname)


def apply_options(spec: Mapping[str, Any], options: SpecOptions) -> dict[str, Any]:
    """Return a copy of ``spec`` with ``options`` applied (they win over the spec's values)."""
    out: dict[str, Any] = json.loads(json.dumps(spec))  # a deep copy; specs are JSON
    process = out.setdefault("process", {})
    linux = out.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    if options.mounts:
        added = [m.oci() for m in options.mounts]
        targets = {m["destination"] for m in added}
        kept = [m for m in out.get("mounts", []) if m.get("destination") not in targets]
        out["mounts"] = kept + added
    if options.user is not None:
        user = process.setdefault("user", {})
        user["uid"], user["gid"] = options.user
    if options.read_only:
        out.setdefault("root", {})["readonly"] = True
    if options.memory_limit is not None:
        resources.setdefault("memory", {})["limit"] = options.memory_limit
    if options.cpus is not None:
        cpu = resources.setdefault("cpu", {})
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = round(options.cpus * CPU_PERIOD)
    if options.pids_limit is not None:
        resources.setdefault("pids", {})["limit"] = options.pids_limit
    if options.net_host:
        linux["namespaces"] = [
            ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"
        ]
    if options.hostname is not None:
        out["hostname"] = options.hostname
    return out
