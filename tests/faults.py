"""Faults the real parts cannot be made to show on their own, injected around the real binaries.

Importable from every test directory as ``tests.faults``.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def runc_whose_init_dies_before_start(directory: Path) -> Path:
    """A runc wrapper: ``runc start`` finds the container's init dead (as if OOM-killed
    between create and start), so the real runc refuses to start it.

    runc checks the process path at create and only execve()s at start, but it reports an exec
    failure as the process's exit status, never as a start error (runc 1.1 and 1.5 alike): a
    process that is gone is what makes ``runc start`` itself fail.
    """
    runc = shutil.which("runc")
    assert runc is not None
    wrapper = directory / "runc-init-dies"
    wrapper.write_text(
        f"""#!/bin/sh
last=""; globals=""; is_start=""
for arg; do
  [ "$arg" = start ] && is_start=1
  [ -z "$is_start" ] && globals="$globals $arg"
  last="$arg"
done
if [ -n "$is_start" ]; then
  pid=$({runc} $globals state "$last" | sed -n 's/^ *"pid": \\([0-9]*\\),/\\1/p')
  kill -KILL "$pid"
  # until the shim has reaped it (runc start looks at /proc/PID)
  while [ -e /proc/"$pid" ] && [ "$(cut -d' ' -f3 /proc/"$pid"/stat 2>/dev/null)" != Z ]; do :; done
fi
exec {runc} "$@"
"""
    )
    wrapper.chmod(0o755)
    return wrapper
