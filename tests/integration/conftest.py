"""Fixtures for real-container tests: runc + containerd-shim-runc-v2 + a busybox rootfs.

Every test gets its own namespace and a short root/state dir in /tmp (unix socket paths must fit
in 108 bytes) and a booted host with the built-in plugins. The leak checker (:mod:`tests.leaks`)
looks at what the test left BEFORE any fixture cleans up (the ``host`` fixture kills and deletes
leftover tasks afterwards, as a safety net only): shim and container processes, shim sockets,
bundles, work and io dirs, records, runc state, mounts and cgroups of the namespace. Anything
found fails the test.

Without the prerequisites (root, runc, the shim, busybox) the tests skip; with
TASKPLANE_REQUIRE_INTEGRATION=1 they fail instead. ``integration_prerequisites`` and
``busybox_rootfs`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.leaks import Scope, guarded

SOCKET_DIR = Path("/run/containerd/s")
TASK_PLUGIN_DIR = "io.containerd.runtime.v2.task"
#: Upper bound for anything a test waits on.
TIMEOUT = 30.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this directory ``integration``."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@attrs.frozen
class Dirs:
    """One test's directories and namespace."""

    base: Path
    root: Path
    state: Path
    namespace: str
    #: What the leak checker looks at (task ids are added as bundles are created).
    scope: Scope

    @property
    def grpc_address(self) -> str:
        """The daemon identity shims hash into their socket path."""
        return str(self.state / "taskplane.sock")

    @property
    def bundles(self) -> Path:
        """STATE/<ns> of the task plugin."""
        return self.state / TASK_PLUGIN_DIR / self.namespace

    @property
    def work_dirs(self) -> Path:
        """ROOT/<ns> of the task plugin."""
        return self.root / TASK_PLUGIN_DIR / self.namespace

    @property
    def io(self) -> Path:
        """A directory for the test's stdio files."""
        return self.base / "io"


@pytest.fixture
def dirs(
    integration_prerequisites: None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Dirs]:
    """A short base dir in /tmp (sun_path!) with root/ and state/, and a unique namespace; the
    test fails if anything of the namespace outlives it (checked before any fixture cleanup)."""
    base = Path(tempfile.mkdtemp(prefix="tp", dir="/tmp"))
    namespace = f"it-{uuid.uuid4().hex[:10]}"
    scope = Scope(namespace=namespace, base=base, state=base / "s", root=base / "r")
    d = Dirs(base=base, root=base / "r", state=base / "s", namespace=namespace, scope=scope)
    import runtime_v2.bundle as bundle_module  # the task manager imports it at each create

    real_new_bundle = bundle_module.new_bundle

    def recording_new_bundle(root: str, state: str, namespace: str, task_id: str, spec: Any) -> Any:
        scope.ids.add(task_id)  # its shim's socket name derives from the id
        return real_new_bundle(root, state, namespace, task_id, spec)

    monkeypatch.setattr(bundle_module, "new_bundle", recording_new_bundle)
    with guarded(request.node, scope, after=lambda: shutil.rmtree(base, ignore_errors=True)):
        yield d


@pytest.fixture
def leak_check(dirs: Dirs) -> None:
    """The leak check of ``dirs`` (kept for tests that name it: ``dirs`` does the check)."""


async def boot_host(dirs: Dirs, config: dict[str, Any] | None = None) -> Any:
    """Boot the built-in plugins on the test's root and state."""
    import plugins.builtin
    import runtime_v2.builtin
    from registry import boot_async

    return await boot_async(
        config or {},
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(dirs.root),
        state=str(dirs.state),
    )


@pytest.fixture
async def host(dirs: Dirs) -> AsyncIterator[Any]:
    """A booted host (exchange, metadata, shim manager, task manager) for the test."""
    h = await boot_host(dirs)
    try:
        yield h
    finally:
        # The safety net: tasks the test left behind (already reported by the leak check,
        # which ran before this) are killed and deleted so the next test starts clean.
        tasks = h.get("io.containerd.runtime.v2", "task")
        await cleanup_tasks(tasks, dirs.namespace)
        await h.aclose()


async def cleanup_tasks(tasks: Any, namespace: str) -> None:
    """Kill and delete every task of ``namespace`` (best effort)."""
    for task in await tasks.tasks(namespace=namespace):
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await task.kill(signal.SIGKILL, all=True)
                await task.wait()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await tasks.delete(task.id, namespace=namespace)


@pytest.fixture
def task_manager(host: Any) -> Any:
    """The host's task manager (``io.containerd.runtime.v2.task``)."""
    return host.get("io.containerd.runtime.v2", "task")


def spec_for(rootfs: Path, args: list[str], *, task_id: str = "t", **kw: Any) -> bytes:
    """OCI spec JSON running ``args`` in the busybox rootfs."""
    from taskplane.oci import default_spec, spec_bytes

    return spec_bytes(default_spec(task_id, rootfs=str(rootfs), args=args, **kw))


# -- the shim x runc matrix (tests/integration/runtimes.py) -------------------------------------
from .runtimes import runtime, upstream  # noqa: E402, F401  (fixtures, registered by import)
