"""Fixtures for proofs against the real Go peers (runc, containerd-shim-runc-v2, busybox).

Without the prerequisites (or without root) these tests skip, saying why; with
TASKPLANE_REQUIRE_INTEGRATION=1 they fail instead, so CI cannot silently skip them (the
``integration_prerequisites`` and ``leak_report`` fixtures come from ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .shimlib import ShimBundle, shim_env, unique_name


@pytest.fixture
def shim_bundle(integration_prerequisites: None, leak_report: Any) -> Iterator[ShimBundle]:
    """A fresh namespace, id and short work dir; afterwards, asserts that nothing leaked.

    The leak check looks for a shim process of this id, its socket in /run/containerd/s, runc
    state in /run/containerd/runc/<ns>/<id>, mounts under the work dir and the bundle dir. It
    cleans up whatever it finds before failing, so one broken test does not break the next.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    bundle = ShimBundle(workdir=workdir, namespace=unique_name("tp"), id=unique_name("task"))
    yield bundle
    leak_report.shim_processes(cwd_under=bundle.workdir, argv_has=[bundle.id])
    leak_report.runc_state(bundle.namespace, [bundle.id], env=shim_env(bundle.ttrpc_address))
    leak_report.files("shim socket", [bundle.expected_socket])
    leak_report.mounts(bundle.workdir)
    leak_report.present("bundle", [bundle.bundle])
    try:
        shutil.rmtree(bundle.workdir)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            leak_report.leaks.append(f"cannot remove {bundle.workdir}: {exc}")
    leak_report.fail_if_any()


@pytest.fixture
async def prepared_bundle(shim_bundle: ShimBundle) -> AsyncIterator[ShimBundle]:
    """The bundle, prepared to run /bin/true, with containerd's reader on its `log` FIFO."""
    shim_bundle.prepare(["/bin/true"])
    loop = asyncio.get_running_loop()
    shim_bundle.open_log_reader(loop)
    yield shim_bundle
    shim_bundle.close_log_reader(loop)
