"""``taskplane demo`` (what ``make demo`` runs): the whole stack in one command.

It builds a busybox rootfs in the cache directory, boots the registry on the embedded default
config with root and state in a private temporary directory, prints the plugin table, runs
``echo hello from taskplane`` in a container and prints its output and how long the container's
lifecycle (create, start, wait, delete) took. Where it cannot run, it lists everything that is
missing and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import attrs

from plugins.types import RUNTIME_RUNC_V2
from taskplane import oci, preflight
from taskplane.cli_common import Options
from taskplane.errors import CLIError, Missing

__all__ = ["DEMO_COMMAND", "cache_dir", "demo", "missing_prerequisites", "register"]

#: The command the demo container runs.
DEMO_COMMAND = ("echo", "hello from taskplane")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/taskplane`` (default ``~/.cache/taskplane``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "taskplane"


def missing_prerequisites(runtime: str = RUNTIME_RUNC_V2) -> list[str]:
    """Everything the demo needs that this machine lacks, one sentence each (empty: all there)."""
    from taskplane.rootfs import RootfsError, find_busybox

    problems: list[str] = []
    checks = [
        lambda: preflight.require_linux("taskplane demo"),
        lambda: preflight.require_root("taskplane demo"),
        lambda: preflight.resolve_runtime(runtime),
        lambda: preflight.find_runc(None),
        find_busybox,
    ]
    for check in checks:
        try:
            check()
        except (CLIError, RootfsError) as exc:
            problems.append(str(exc))
    return problems


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane demo`` has no arguments of its own."""
    parser.set_defaults(handler=demo)


def demo(opts: Options, args: argparse.Namespace) -> int:
    """Run the demo; see the module docstring."""
    problems = missing_prerequisites()
    if problems:
        raise Missing("\n".join(f"demo cannot run: {problem}" for problem in problems))

    from taskplane.rootfs import build_busybox_rootfs

    rootfs = build_busybox_rootfs(cache_dir() / "busybox-rootfs")
    private = tempfile.mkdtemp(prefix="tp-demo-", dir="/tmp")
    try:
        return asyncio.run(_demo(opts, rootfs, private))
    finally:
        shutil.rmtree(private, ignore_errors=True)


async def _demo(opts: Options, rootfs: Path, private: str) -> int:
    from taskplane.cli_plugins import render
    from taskplane.containers import Client

    root = opts.root or os.path.join(private, "root")
    state = opts.state or os.path.join(private, "state")
    # As every command boots (Options.boot_async: the log set up first, the cycle collector
    # given back after, events served from the first shim), on the demo's own dirs.
    host = await attrs.evolve(opts, root=root, state=state).boot_async()
    try:
        print(
            f"taskplane booted {len(host.statuses)} plugins in "
            f"{host.boot_time * 1000:.1f} ms (root {root}, state {state}):\n"
        )
        print(render(host))
        container_id = f"demo-{os.getpid()}"
        spec = oci.default_spec(
            container_id, rootfs=rootfs, args=list(DEMO_COMMAND), namespace=opts.namespace
        )
        print(
            f"\n$ taskplane run --rm --rootfs {rootfs} {container_id} -- "
            f"{DEMO_COMMAND[0]} '{DEMO_COMMAND[1]}'"
        )
        sys.stdout.flush()
        client = Client(host, opts.namespace)
        started = time.perf_counter()
        result = await client.run(container_id, spec)
        lifecycle_ms = (time.perf_counter() - started) * 1000
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.flush()
        print(
            f"\nexit status {result.exit_status}; container lifecycle (create, start, wait, "
            f"delete) took {lifecycle_ms:.0f} ms"
        )
        return result.exit_status
    finally:
        await host.aclose()
