"""Fixtures for real-container tests: runc + containerd-shim-runc-v2 + a busybox rootfs.

Every test gets its own namespace and a short root/state dir in /tmp (unix socket paths must fit
in 108 bytes) and a booted host with the built-in plugins. An autouse leak checker fails the test
when anything of it outlives it: a shim process, a shim socket created during the test, a
bundle, a work dir, runc state or a mount. It cleans up what it finds, so one broken test does
not break the next.

Without the prerequisites (root, runc, the shim, busybox) the tests skip; with
TASKPLANE_REQUIRE_INTEGRATION=1 they fail instead. ``integration_prerequisites``,
``busybox_rootfs`` and ``leak_report`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

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
    #: (namespace, id) of every bundle the test created (filled by the leak checker's hook).
    created: set[tuple[str, str]] = attrs.field(factory=set)

    @property
    def grpc_address(self) -> str:
        """The daemon identity shims hash into their socket path."""
        return str(self.state / "taskplane.sock")

    def socket_names(self) -> set[str]:
        """The socket file names the shims of the created tasks use in /run/containerd/s."""
        return {
            hashlib.sha256(os.path.join(self.grpc_address, ns, task_id).encode()).hexdigest()
            for ns, task_id in self.created
        }

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


def _sockets() -> set[str]:
    try:
        return set(os.listdir(SOCKET_DIR))
    except FileNotFoundError:
        return set()


def find_and_clean_leaks(leaks: Any, dirs: Dirs, sockets_before: set[str]) -> None:
    """Record in ``leaks`` (the ``leak_report`` fixture) everything of the test still around,
    removing it."""
    leaks.shim_processes(cwd_under=dirs.base, argv_has=[dirs.namespace])
    new_sockets = (_sockets() - sockets_before) & dirs.socket_names()
    leaks.files("shim socket", [SOCKET_DIR / name for name in sorted(new_sockets)])
    leaks.runc_state(dirs.namespace)
    leaks.mounts(dirs.base)
    leaks.entries("bundle", dirs.bundles)
    leaks.entries("work dir", dirs.work_dirs)


@pytest.fixture
def dirs(integration_prerequisites: None) -> Iterator[Dirs]:
    """A short base dir in /tmp (sun_path!) with root/ and state/, and a unique namespace."""
    base = Path(tempfile.mkdtemp(prefix="tp", dir="/tmp"))
    yield Dirs(
        base=base, root=base / "r", state=base / "s", namespace=f"it-{uuid.uuid4().hex[:10]}"
    )
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def leak_check(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, leak_report: Any
) -> Iterator[None]:
    """Fail the test if a shim, socket, bundle, work dir, runc state or mount outlives it.

    Sockets count when they belong to a task this test created (other tests may run shims at
    the same time), so bundle creation is observed to learn the ids.
    """
    if "dirs" not in request.fixturenames:
        yield
        return
    dirs: Dirs = request.getfixturevalue("dirs")
    before = _sockets()
    import runtime_v2.task_manager as task_manager_module

    real_new_bundle = task_manager_module.new_bundle

    def recording_new_bundle(root: str, state: str, namespace: str, task_id: str, spec: Any) -> Any:
        dirs.created.add((namespace, task_id))
        return real_new_bundle(root, state, namespace, task_id, spec)

    monkeypatch.setattr(task_manager_module, "new_bundle", recording_new_bundle)
    yield
    find_and_clean_leaks(leak_report, dirs, before)
    leak_report.fail_if_any()


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
async def host(dirs: Dirs, leak_check: None) -> AsyncIterator[Any]:
    """A booted host (exchange, metadata, shim manager, task manager) for the test."""
    h = await boot_host(dirs)
    try:
        yield h
    finally:
        # Tasks a failing test left behind: kill and delete them so the leak check is about
        # the code under test, not about an assertion that stopped the test early.
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
