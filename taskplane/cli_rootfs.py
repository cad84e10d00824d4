"""``taskplane rootfs busybox DIR``: build the busybox root filesystem the examples use.

A thin command over :func:`taskplane.rootfs.build_busybox_rootfs` (Debian's ``busybox-static``
copied into ``DIR/bin`` with one link per applet); an existing complete rootfs is kept.
"""

from __future__ import annotations

import argparse

from taskplane import preflight
from taskplane.cli_common import Command, Options, add_commands
from taskplane.rootfs import build_busybox_rootfs

__all__ = ["busybox", "register", "register_busybox"]


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane rootfs COMMAND``."""
    add_commands(
        parser,
        [
            Command(
                "busybox",
                "taskplane.cli_rootfs:register_busybox",
                "build a busybox root filesystem in DIR (from Debian's busybox-static)",
            )
        ],
    )


def register_busybox(parser: argparse.ArgumentParser) -> None:
    """The argument of ``taskplane rootfs busybox``."""
    parser.add_argument("dir", metavar="DIR")
    parser.set_defaults(handler=busybox)


def busybox(opts: Options, args: argparse.Namespace) -> int:
    """Build (or keep) a busybox rootfs at ``args.dir`` and print its path."""
    del opts
    preflight.require_linux("taskplane rootfs busybox")
    print(build_busybox_rootfs(args.dir))
    return 0
