"""An overlay snapshotter (containerd's ``io.containerd.snapshotter.v1.overlayfs``), in miniature.

containerd's overlayfs snapshotter (``plugins/snapshots/overlay/overlay.go``) keeps each active
snapshot as ``<root>/snapshots/<n>/fs`` (the upper dir) and ``<root>/snapshots/<n>/work`` and
returns, for ``Prepare``, the mounts that put a writable layer over its parents. taskplane has no
image store, so the parent of a layer is a plain read-only directory (the ``--rootfs`` of
``taskplane run --overlay``)::

    snapshotter = OverlaySnapshotter("/var/lib/taskplane/io.containerd.snapshotter.v1.overlayfs")
    mounts = snapshotter.prepare("default/web", lower="/srv/busybox")
    # [Mount(type="overlay", source="overlay",
    #        options=("lowerdir=/srv/busybox", "upperdir=.../fs", "workdir=.../work"))]
    snapshotter.remove("default/web")

The mounts are plain values: the runtime passes them to the shim as the Create request's rootfs
mounts, and the shim mounts them at ``<bundle>/rootfs``, as with containerd. The lower directory
is only ever named in ``lowerdir=``: overlayfs writes go to the upper dir.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from plugins import errdefs, identifiers, securefs
from registry._lazy import export_lazily

if TYPE_CHECKING:
    from pathlib import Path

    from plugins.mount import Mount

__all__ = ["SNAPSHOTS_DIR", "Mount", "OverlaySnapshotter"]

#: Where the layers live under the snapshotter's root directory.
SNAPSHOTS_DIR = "snapshots"


# Mount (plugins.mount) is defined by the first layer's mounts (PEP 562): every command
# boots the snapshotter, few use a layer.
__getattr__ = export_lazily(__name__, {"Mount": "plugins.mount"})


def _split_key(key: str) -> tuple[str, str]:
    """A key is ``<namespace>/<name>``, both containerd identifiers (so no ``..`` or ``/``)."""
    namespace, sep, name = key.partition("/")
    if not sep:
        raise errdefs.InvalidArgument(f"snapshot key {key!r} must be NAMESPACE/NAME")
    identifiers.validate(namespace, what="namespace")
    identifiers.validate(name, what="snapshot name")
    return namespace, name


class OverlaySnapshotter:
    """Writable overlay layers over read-only directories, under ``root``.

    pathlib and the :class:`~plugins.mount.Mount` class are imported on the first use of a
    layer, not when the plugin boots: every command boots the snapshotter, few use it.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.fspath(root)

    @property
    def root(self) -> Path:
        """The snapshotter's persistent directory (the plugin's ``InitContext.root``)."""
        from pathlib import Path

        return Path(self._root)

    def path(self, key: str) -> Path:
        """The directory of layer ``key``: ``<root>/snapshots/<namespace>/<name>``."""
        namespace, name = _split_key(key)
        return self.root / SNAPSHOTS_DIR / namespace / name

    def mounts(self, key: str, lower: str | os.PathLike[str]) -> tuple[Mount, ...]:
        """The mounts of layer ``key`` over ``lower`` (the layer must exist)."""
        layer = self.path(key)
        if not layer.is_dir():
            raise errdefs.NotFound(f'no snapshot "{key}"')
        options = (
            f"lowerdir={os.fspath(lower)}",
            f"upperdir={layer / 'fs'}",
            f"workdir={layer / 'work'}",
        )
        for option in options:
            # mount(2) splits its data at commas; overlayfs takes ':' as a lowerdir separator.
            if "," in option or ":" in option.partition("=")[2]:
                raise errdefs.InvalidArgument(
                    f"cannot use {option.partition('=')[2]!r} in an overlay mount "
                    "(it contains ',' or ':')"
                )
        from plugins.mount import Mount

        return (Mount(type="overlay", source="overlay", options=options),)

    def prepare(self, key: str, lower: str | os.PathLike[str]) -> tuple[Mount, ...]:
        """Create layer ``key`` (empty upper and work dirs) and return its mounts over ``lower``.

        ``lower`` must be an absolute directory; an existing ``key`` is ``AlreadyExists``.
        """
        lower_path = os.fspath(lower)
        if not os.path.isabs(lower_path) or not os.path.isdir(lower_path):
            raise errdefs.InvalidArgument(f"overlay lower dir {lower_path!r} is not a directory")
        layer = self.path(key)
        securefs.make_dirs(layer.parent, 0o700)
        try:
            os.mkdir(layer, 0o700)
        except FileExistsError:
            raise errdefs.AlreadyExists(f'snapshot "{key}" already exists') from None
        try:
            # 0755 like containerd's upper dir: the container's root directory is its mode.
            securefs.make_dirs(layer / "fs", 0o755)
            securefs.make_dirs(layer / "work", 0o700)
            return self.mounts(key, lower_path)
        except BaseException:
            import shutil  # here: booting the snapshotter (every command) needs none of it

            shutil.rmtree(layer, ignore_errors=True)
            raise

    def remove(self, key: str) -> None:
        """Remove layer ``key`` and everything written to it (``NotFound`` when absent)."""
        layer = self.path(key)
        securefs.check_trusted(layer.parent)
        if not layer.is_dir():
            raise errdefs.NotFound(f'no snapshot "{key}"')
        # Renamed first, so a crash mid-removal never leaves a half layer under its key.
        doomed = layer.with_name(f".{layer.name}.removing")
        import shutil

        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(layer, doomed)
        shutil.rmtree(doomed)

    def exists(self, key: str) -> bool:
        """Whether layer ``key`` exists."""
        # :meth:`path` without pathlib: every ``run`` asks (its id must be free), few use a layer.
        namespace, name = _split_key(key)
        return os.path.isdir(os.path.join(self._root, SNAPSHOTS_DIR, namespace, name))

    def keys(self) -> list[str]:
        """Every layer, as ``<namespace>/<name>``, sorted."""
        base = self.root / SNAPSHOTS_DIR
        if not base.is_dir():
            return []
        return sorted(
            f"{ns.name}/{layer.name}"
            for ns in base.iterdir()
            if ns.is_dir()
            for layer in ns.iterdir()
            if layer.is_dir() and not layer.name.startswith(".")
        )
