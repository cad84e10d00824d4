"""Build a minimal busybox root filesystem for demos and tests.

Debian's ``busybox-static`` package installs a statically linked ``/bin/busybox``; copying it into
``<dest>/bin`` with one symlink per applet gives a rootfs that runc can run without any image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from plugins import securefs

__all__ = ["BUSYBOX_CANDIDATES", "RootfsError", "build_busybox_rootfs", "find_busybox"]

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var")


class RootfsError(Exception):
    """The rootfs could not be built (busybox missing or not static)."""


def find_busybox() -> str:
    """Return the path of a static busybox binary, or raise RootfsError naming where we looked."""
    for path in BUSYBOX_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise RootfsError(
        "busybox not found (looked for " + ", ".join(BUSYBOX_CANDIDATES) + "); "
        "install the Debian package busybox-static"
    )


def build_busybox_rootfs(dest: str | os.PathLike[str], *, busybox: str | None = None) -> Path:
    """Create (or refresh) a busybox rootfs at ``dest`` and return its path.

    The build is idempotent and atomic: the tree is assembled next to ``dest`` and renamed into
    place, so a concurrent reader never sees half a rootfs.
    """
    target = Path(dest)
    if (target / "bin" / "busybox").is_file() and (target / "bin" / "sh").exists():
        return target
    source = busybox or find_busybox()
    applets = subprocess.run(
        [source, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    # Explicit modes: the rootfs must not depend on the caller's umask.
    securefs.make_dirs(target.parent, 0o755)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in _DIRS:
        securefs.make_dirs(tmp / d, 0o755)
    os.chmod(tmp / "tmp", 0o1777)
    shutil.copy2(source, tmp / "bin" / "busybox")
    for applet in applets:
        link = tmp / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (tmp / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp / "etc" / "group").write_text("root:x:0:\n")
    (tmp / "etc" / "hostname").write_text("taskplane\n")
    for name in ("passwd", "group", "hostname"):
        os.chmod(tmp / "etc" / name, 0o644)
    try:
        os.rename(tmp, target)
    except OSError:
        # Someone else finished first (or target exists but is incomplete): keep theirs if good.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "bin" / "sh").exists():
            raise
    return target
