"""A mount, as containerd's ``mount.Mount`` (``core/mount/mount.go``): what a snapshotter
returns for a layer and the runtime passes to the shim as the task's rootfs.

A module of its own so that the class is built by the first layer's mounts
(:meth:`plugins.overlay.OverlaySnapshotter.mounts`), not by every command that boots the
snapshotter.
"""

from __future__ import annotations

import attrs

__all__ = ["Mount"]


@attrs.frozen
class Mount:
    """A mount as containerd's ``mount.Mount``: ``mount -t type -o options source target``."""

    type: str
    source: str
    options: tuple[str, ...] = ()
