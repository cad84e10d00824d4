"""``taskplane rootfs busybox DIR``: build the busybox root filesystem the examples use.

A thin command over :func:`taskplane.rootfs.build_busybox_rootfs` (Debian's ``busybox-static``
copied into ``DIR/bin`` with one link per applet); an existing complete rootfs is kept.
"""

from __future__ import annotations

import argparse

from taskplane import preflight
from taskplane.cli import Options
from taskplane.rootfs import build_busybox_rootfs

__all__ = ["busybox"]


def busybox(opts: Options, args: argparse.Namespace) -> int:
    """Build (or keep) a busybox rootfs at ``args.dir`` and print its path."""
    del opts
    preflight.require_linux("taskplane rootfs busybox")
    print(build_busybox_rootfs(args.dir))
    return 0
