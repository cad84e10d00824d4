"""Fixtures for proofs against the real Go peers (runc, containerd-shim-runc-v2, busybox).

Without the prerequisites (or without root) these tests skip, saying why; with
TASKPLANE_REQUIRE_INTEGRATION=1 they fail instead, so CI cannot silently skip them (the
``integration_prerequisites`` fixture comes from ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.leaks import Scope, guarded

from .shimlib import ShimBundle, unique_name


@pytest.fixture
def shim_bundle(
    integration_prerequisites: None, request: pytest.FixtureRequest
) -> Iterator[ShimBundle]:
    """A fresh namespace, id and short work dir; the test fails if anything of it outlives it.

    The leak checker (:mod:`tests.leaks`, run before any fixture cleanup) looks for the shim and
    container processes, the shim's socket in /run/containerd/s, runc state in
    /run/containerd/runc/<ns>, mounts under the work dir, the bundle dir and the namespace's
    cgroups.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    bundle = ShimBundle(workdir=workdir, namespace=unique_name("tp"), id=unique_name("task"))
    scope = Scope(
        namespace=bundle.namespace,
        base=workdir,
        grpc_address=bundle.grpc_address,
        ids={bundle.id},
        bundles={bundle.bundle},
    )
    with guarded(request.node, scope, after=lambda: shutil.rmtree(workdir, ignore_errors=True)):
        yield bundle


@pytest.fixture
async def prepared_bundle(shim_bundle: ShimBundle) -> AsyncIterator[ShimBundle]:
    """The bundle, prepared to run /bin/true, with containerd's reader on its `log` FIFO."""
    shim_bundle.prepare(["/bin/true"])
    loop = asyncio.get_running_loop()
    shim_bundle.open_log_reader(loop)
    yield shim_bundle
    shim_bundle.close_log_reader(loop)
