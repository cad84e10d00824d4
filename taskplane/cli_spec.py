"""The container options of ``taskplane run`` and ``taskplane oci spec`` (ctr's flag names).

:func:`add_spec_options` adds the flags to a parser; :func:`spec_from_args` turns parsed
arguments into an OCI spec: the default spec (or ``--spec FILE``) with the flags applied, flags
winning over the file. :func:`check_not_image` catches an image reference given where taskplane
wants an id or a command (``taskplane run docker.io/library/alpine:latest``).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from typing import Any

from taskplane import oci, oci_text, preflight
from taskplane.errors import CLIError

__all__ = ["add_spec_options", "check_not_image", "looks_like_image", "spec_from_args"]


@functools.cache
def _image() -> re.Pattern[str]:
    # ``[registry[:port]/]name[/name...][:tag][@digest]`` with a tag, a digest or a registry:
    # what containerd's reference parser accepts and a task id or a command would not look like.
    return re.compile(
        r"^(?:(?P<registry>[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?|localhost(?::\d+)?)/)?"
        r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
        r"(?P<tag>:[\w][\w.-]{0,127})?(?P<digest>@sha256:[0-9a-f]{64})?$"
    )


def looks_like_image(text: str) -> bool:
    """Whether ``text`` is an image reference (``name:tag``, ``registry/name``, ``...@sha256``)
    rather than a task id (no ``:``/``/``) or a command (a path or a bare name)."""
    if text[:1] in ("", "/", ".") or not any(c in text for c in ":/@"):
        # What every run checks (an id, ``/bin/sh``...) cannot be one: a reference starts
        # with a letter or digit, and its tag, digest or registry needs ``:``, ``@`` or ``/``
        # (so the pattern is not even compiled: 0.4 ms).
        return False
    match = _image().match(text)
    if match is None:
        return False
    return bool(match["tag"] or match["digest"] or match["registry"])


def check_not_image(container_id: str, command: list[str]) -> None:
    """Raise one sentence when the id or the command is an image reference."""
    for text in (container_id, *command[:1]):
        if looks_like_image(text):
            raise CLIError(
                f"{text!r} looks like an image reference: taskplane runs a root filesystem "
                "directory, not images; use --rootfs DIR (taskplane rootfs busybox DIR builds "
                "one) and give an id and a command"
            )


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--rootfs``, ``--env``, ``--cwd``, ``--spec`` and the container option flags."""
    add = parser.add_argument
    add("--rootfs", metavar="DIR", help="root filesystem directory")
    add("--env", metavar="K=V", action="append", default=[], help="set an environment variable")
    add("--env-file", metavar="FILE", action="append", default=[], help="read KEY=VALUE lines")
    add("--cwd", metavar="DIR", help="working directory (default: the spec's, else /)")
    add("--spec", metavar="FILE", help="OCI spec JSON to start from (the flags override it)")
    add(
        "--mount",
        metavar="type=bind,src=HOST,dst=CTR[,options=OPT:OPT]",
        action="append",
        default=[],
        help="bind mount a host path (options e.g. rbind:ro)",
    )
    add(
        "-v",
        "--volume",
        metavar="HOST:CTR[:ro]",
        action="append",
        default=[],
        help="bind mount a host path (nerdctl's -v)",
    )
    add("-u", "--user", metavar="UID[:GID]", help="user (and group) id of the process")
    add("--read-only", action="store_true", help="mount the root filesystem read-only")
    add("--memory-limit", metavar="BYTES", help="memory limit in bytes (or 64m, 1g ...)")
    add("--cpus", metavar="N.N", help="CPUs the container may use (e.g. 0.5)")
    add("--pids-limit", metavar="N", type=_positive_int, help="most processes in the container")
    add("--net-host", action="store_true", help="use the host's network namespace")
    add("--hostname", metavar="NAME", help="hostname in the container (default: the id)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number greater than 0")
    return int(text)


def _options(args: argparse.Namespace) -> oci.SpecOptions:
    mounts = [*map(oci_text.parse_mount, args.mount), *map(oci_text.parse_volume, args.volume)]
    return oci.SpecOptions(
        mounts=tuple(mounts),
        user=oci_text.parse_user(args.user) if args.user else None,
        read_only=args.read_only,
        memory_limit=oci_text.parse_bytes(args.memory_limit) if args.memory_limit else None,
        cpus=oci_text.parse_cpus(args.cpus) if args.cpus else None,
        pids_limit=args.pids_limit,
        net_host=args.net_host,
        hostname=args.hostname,
    )


def spec_from_args(
    args: argparse.Namespace, container_id: str, namespace: str, *, rootfs_required: bool = True
) -> dict[str, Any]:
    """The spec of ``args``: ``--spec FILE`` or the default spec, then every flag applied.

    With ``--spec``, ``--rootfs`` replaces ``root.path``, a command replaces ``process.args``,
    ``--env`` adds to (and overrides) the file's environment and ``--cwd`` replaces its cwd.
    """
    options = _options(args)
    env = [*(e for f in args.env_file for e in oci_text.parse_env_file(f)), *args.env]
    command = list(args.cmd)
    if args.spec:
        spec = oci.load_spec(args.spec)
        process = spec["process"]
        if command:
            process["args"] = command
        if env:
            # The file's environment, then the flags' (a later value of the same key wins).
            process["env"] = oci.process_spec(["-"], env=[*process.get("env", []), *env])["env"]
        # A spec without a hostname (``taskplane oci spec``) gets the default: the id.
        spec.setdefault("hostname", oci.default_hostname(container_id))
        if args.cwd is not None:
            process["cwd"] = oci.process_spec(["-"], cwd=args.cwd)["cwd"]
        if args.rootfs:
            spec["root"]["path"] = preflight.require_rootfs(args.rootfs)
        else:
            # As in an OCI bundle, a relative root.path is relative to the spec file's directory.
            root = os.path.join(os.path.dirname(os.path.abspath(args.spec)), spec["root"]["path"])
            spec["root"]["path"] = (
                preflight.require_rootfs(root) if rootfs_required else os.path.realpath(root)
            )
        return oci.apply_options(spec, options)
    if not args.rootfs and rootfs_required:
        raise CLIError("--rootfs DIR is required (or give an OCI spec with --spec)")
    if rootfs_required:
        rootfs = preflight.require_rootfs(args.rootfs)
        if not command:
            raise CLIError(
                f"no command given: taskplane run --rootfs {args.rootfs} {container_id} "
                "-- CMD [ARG...]"
            )
    else:  # taskplane oci spec: ctr's "rootfs" (the bundle's) unless --rootfs names one
        rootfs = args.rootfs or ""
        command = command or ["sh"]
    spec = oci.default_spec(
        container_id,
        rootfs=rootfs or "/",
        args=command,
        env=env,
        cwd=args.cwd or "/",
        namespace=namespace,
    )
    if not rootfs:
        spec["root"]["path"] = "rootfs"
    return oci.apply_options(spec, options)
