"""The command line's text as spec values.

``64m``, ``0.5``, ``1000:1000``, ``HOST:CTR:ro``, ``type=bind,src=...,dst=...`` and env files,
each parsed into what :class:`taskplane.oci.SpecOptions` takes; a bad one raises
:class:`taskplane.oci.SpecError` with one sentence naming the text.
"""

from __future__ import annotations

import os
import re

from taskplane.oci import BindMount, SpecError, read_bounded

__all__ = [
    "MAX_ENV_FILE_BYTES",
    "parse_bytes",
    "parse_cpus",
    "parse_env_file",
    "parse_mount",
    "parse_user",
    "parse_volume",
]

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """``1048576``, ``512k``, ``64m``, ``1g`` (also ``64M``, ``64MiB``) as a number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise SpecError(f"memory limit {text!r} must be a number of bytes, or with k, m, g or t")
    value = int(match[1]) << (10 * " kmgt".index(match[2].lower() or " "))
    if value <= 0:
        raise SpecError(f"memory limit {text!r} must be greater than 0")
    return value


def parse_cpus(text: str) -> float:
    """``0.5``, ``2``: a number of CPUs greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"cpus {text!r} must be a number such as 0.5 or 2") from None
    if not 0 < value < 1e6:  # also refuses nan and inf
        raise SpecError(f"cpus {text!r} must be greater than 0")
    return value


def parse_user(text: str) -> tuple[int, int]:
    """``UID`` or ``UID:GID`` (numbers; the gid defaults to the uid's number, as ctr does)."""
    uid, sep, gid = text.partition(":")
    if not uid.isdigit() or (sep and not gid.isdigit()):
        raise SpecError(f"user {text!r} must be UID or UID:GID (numbers)")
    return int(uid), int(gid) if sep else int(uid)


def _mount_paths(source: str, destination: str, what: str) -> tuple[str, str]:
    if not source or not os.path.isabs(source):
        raise SpecError(f"{what}: the host path {source!r} must be absolute")
    if not os.path.exists(source):
        raise SpecError(f"{what}: the host path {source!r} does not exist")
    if not destination.startswith("/") or "\0" in destination:
        raise SpecError(f"{what}: the container path {destination!r} must be absolute")
    return os.path.realpath(source), os.path.normpath(destination)


def parse_volume(text: str) -> BindMount:
    """``HOST:CTR`` or ``HOST:CTR:ro`` (nerdctl's ``-v``): a bind mount of ``HOST`` at ``CTR``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise SpecError(f"volume {text!r} must be HOST:CTR or HOST:CTR:ro")
    source, destination = _mount_paths(parts[0], parts[1], f"volume {text!r}")
    return BindMount(source, destination, read_only=len(parts) == 3 and parts[2] == "ro")


def parse_mount(text: str) -> BindMount:
    """ctr's ``--mount type=bind,src=/a,dst=/b,options=rbind:ro`` (only bind mounts)."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = {"source": "src", "destination": "dst", "target": "dst"}.get(key, key)
        if not sep or key not in ("type", "src", "dst", "options") or key in fields:
            raise SpecError(
                f"mount {text!r} must be type=bind,src=HOST,dst=CTR[,options=OPT:OPT...]"
            )
        fields[key] = value
    if fields.get("type", "bind") != "bind":
        raise SpecError(f"mount {text!r}: only type=bind is supported")
    if "src" not in fields or "dst" not in fields:
        raise SpecError(f"mount {text!r} needs src=HOST and dst=CTR")
    source, destination = _mount_paths(fields["src"], fields["dst"], f"mount {text!r}")
    options = tuple(o for o in fields.get("options", "").split(":") if o)
    return BindMount(source, destination, options)


#: The largest env file read.
MAX_ENV_FILE_BYTES = 1 << 20


def parse_env_file(path: str | os.PathLike[str]) -> list[str]:
    """The ``KEY=VALUE`` lines of an env file (ctr's ``--env-file``): blank lines and lines
    starting with ``#`` are skipped; anything else without ``=`` is an error naming the line."""
    name = os.fspath(path)
    raw = read_bounded(name, MAX_ENV_FILE_BYTES, "env file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"env file {name!r} is not UTF-8 (at byte {exc.start})") from None
    env = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not sep or not key or "\0" in line:
            raise SpecError(f"env file {name!r} line {number}: expected KEY=VALUE")
        env.append(line)
    return env
