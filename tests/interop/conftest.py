"""Fixtures for proofs against the real Go peers (runc, containerd-shim-runc-v2, busybox).

Without the prerequisites (or without root) these tests skip, saying why; with
TASKPLANE_REQUIRE_INTEGRATION=1 they fail instead, so CI cannot silently skip them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskplane.rootfs import RootfsError, find_busybox

from .shimlib import (
    RUNC_BINARY,
    SHIM_BINARY,
    ShimBundle,
    find_and_clean_leaks,
    shim_env,
    unique_name,
)


def _missing_prerequisites() -> list[str]:
    missing = []
    path = shim_env("")["PATH"]
    for binary in (RUNC_BINARY, SHIM_BINARY):
        if shutil.which(binary, path=path) is None:
            missing.append(f"{binary} is not installed")
    try:
        find_busybox()
    except RootfsError as exc:
        missing.append(str(exc))
    if os.geteuid() != 0:
        missing.append("the tests must run as root")
    return missing


@pytest.fixture(scope="session")
def integration_prerequisites() -> None:
    """Skip (or, with TASKPLANE_REQUIRE_INTEGRATION=1, fail) when a real peer is unavailable."""
    missing = _missing_prerequisites()
    if not missing:
        return
    reason = "integration prerequisites missing: " + "; ".join(missing)
    if os.environ.get("TASKPLANE_REQUIRE_INTEGRATION") == "1":
        pytest.fail(reason + " (TASKPLANE_REQUIRE_INTEGRATION=1)")
    pytest.skip(reason)


@pytest.fixture
def shim_bundle(integration_prerequisites: None) -> Iterator[ShimBundle]:
    """A fresh namespace, id and short work dir; afterwards, asserts that nothing leaked.

    The leak check looks for a shim process of this id, its socket in /run/containerd/s, runc
    state in /run/containerd/runc/<ns>/<id>, mounts under the work dir and the bundle dir. It
    cleans up whatever it finds before failing, so one broken test does not break the next.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    bundle = ShimBundle(workdir=workdir, namespace=unique_name("tp"), id=unique_name("task"))
    yield bundle
    leaks = find_and_clean_leaks(bundle)
    if leaks:
        pytest.fail("the test leaked:\n" + "\n".join(leaks))


@pytest.fixture
async def prepared_bundle(shim_bundle: ShimBundle) -> AsyncIterator[ShimBundle]:
    """The bundle, prepared to run /bin/true, with containerd's reader on its `log` FIFO."""
    shim_bundle.prepare(["/bin/true"])
    loop = asyncio.get_running_loop()
    shim_bundle.open_log_reader(loop)
    yield shim_bundle
    shim_bundle.close_log_reader(loop)
