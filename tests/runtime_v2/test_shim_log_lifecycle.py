"""The shim's ``log`` FIFO over a task's whole life: drained, reported in errors, then closed.

A fake runtime binary's ``start`` writes log lines into the bundle's FIFO and prints the address
of an in-process fake shim, so the real shim manager and task manager run end to end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _fake_shim import FakeShim, FakeTask

from plugins import errdefs
from plugins.events import Exchange
from runtime_v2 import CreateOpts, TaskManager
from runtime_v2.bundle import Bundle, new_bundle
from runtime_v2.shim_load import load_existing_shims
from runtime_v2.shim_log import SHIM_LOGGER
from runtime_v2.shim_manager import ShimManager

NS = "logns"
TIMEOUT = 10

# start: log what FAKE_LOG holds into the bundle's FIFO, announce the fake shim's address and
# task API v3 (what it serves).
# delete: print a DeleteResponse{pid: 7, exit_status: 137}.
FAKE_RUNTIME = """\
#!/bin/bash
for action; do :; done
case "$action" in
  start)
    if [ -n "$FAKE_LOG" ]; then printf '%s\\n' "$FAKE_LOG" > log; fi
    printf '{"version":3,"address":"%s","protocol":"ttrpc"}' "$FAKE_ADDRESS"
    ;;
  delete)
    cat > /dev/null
    printf '\\x08\\x07\\x10\\x89\\x01'
    ;;
esac
"""


@pytest.fixture
def runtime(base: Path) -> Path:
    script = base / "containerd-shim-logfake-v2"
    script.write_text(FAKE_RUNTIME)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _bundle_of(base: Path, runtime: Path, fake: FakeShim, task_id: str) -> Bundle:
    """A bundle whose shim is ``fake`` (task API v3), started by ``runtime``: what a shim's
    start leaves for restart recovery to load."""
    bundle = new_bundle(str(base / "root"), str(base / "state"), NS, task_id, b"{}")
    Path(bundle.path, "shim-binary-path").write_text(str(runtime))
    Path(bundle.path, "bootstrap.json").write_text(
        f'{{"version": 3, "address": "{fake.address}", "protocol": "ttrpc"}}'
    )
    return bundle


def _manager(base: Path, env: list[str]) -> ShimManager:
    return ShimManager(
        exchange=Exchange(),
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
        env=env,
    )


@pytest.fixture
async def fake(base: Path) -> AsyncIterator[FakeShim]:
    shim = await FakeShim(str(base / "fake.sock"), versions=(3,)).start()
    yield shim
    await shim.stop()


def _open_fds() -> dict[int, str]:
    """Our process's open file descriptors and what they point at."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used
    return fds


async def _lifecycle(tasks: TaskManager, runtime: Path, task_id: str) -> str:
    """create, start, kill, wait, delete; returns the bundle's log FIFO path."""
    task = await tasks.create(task_id, CreateOpts(spec=b"{}", runtime=str(runtime)), namespace=NS)
    log_path = os.path.join(task.shim.bundle.path, "log")
    await task.start()
    await task.kill(signal.SIGKILL)
    await task.wait()
    await tasks.delete(task_id, namespace=NS)
    await task.shim.client.wait_closed()  # its on-close callbacks have run
    return log_path


async def test_an_orderly_task_lifecycle_closes_the_shim_log_reader(
    base: Path, runtime: Path, fake: FakeShim
) -> None:
    manager = _manager(base, [f"FAKE_ADDRESS={fake.address}", "FAKE_LOG=level=info msg=up"])
    tasks = TaskManager(root=str(base / "root"), state=str(base / "state"), shims=manager)
    second: FakeShim | None = None
    try:
        async with asyncio.timeout(TIMEOUT):
            await _lifecycle(tasks, runtime, "warmup")  # lazily opened descriptors come into being
            await fake.stop()
            second = await FakeShim(fake.path, versions=(3,)).start()  # at the same address
            before = _open_fds()
            log_path = await _lifecycle(tasks, runtime, "counted")
            await second.stop()  # its end of the connection, too
            leaked = {fd: target for fd, target in _open_fds().items() if fd not in before}
    finally:
        await manager.aclose()
        if second is not None:
            await second.stop()
    assert not any(target.startswith(log_path) for target in _open_fds().values())
    assert leaked == {}


async def test_a_reattached_shim_has_its_log_drained(
    base: Path, runtime: Path, fake: FakeShim, caplog: pytest.LogCaptureFixture
) -> None:
    fake.tasks[(NS, "back/")] = FakeTask(4242)
    bundle = _bundle_of(base, runtime, fake, "back")
    log_path = os.path.join(bundle.path, "log")
    manager = _manager(base, [])
    caplog.set_level(logging.INFO, logger=SHIM_LOGGER.name)
    try:
        outcomes = await load_existing_shims(
            manager, state=str(base / "state"), root=str(base / "root")
        )
        assert [(o.id, o.outcome) for o in outcomes] == [("back", "reattached")]
        # Opening for writing without blocking works only while someone reads the FIFO.
        writer = os.open(log_path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            line = b"level=warning msg=" + b"y" * 1000 + b"\n"
            async with asyncio.timeout(TIMEOUT):
                # Far more than a pipe holds (64 KiB): a shim writing this would block forever
                # unless the FIFO is drained.
                for _ in range(300):
                    while True:
                        try:
                            os.write(writer, line)
                            break
                        except BlockingIOError:
                            await asyncio.sleep(0)  # let the reader callback run
        finally:
            os.close(writer)
        shim = manager.shims.get(NS, "back")
        assert shim.binary is not None
        assert shim.binary.log.tail().endswith("y" * 1000)
        assert any("y" * 1000 in r.getMessage() for r in caplog.records)
    finally:
        await manager.aclose()
    assert shim.binary.log.closed  # closing the manager stops draining
    # Now nobody reads the FIFO any more.
    with pytest.raises(OSError) as caught:
        os.open(log_path, os.O_WRONLY | os.O_NONBLOCK)
    assert caught.value.errno == 6  # ENXIO: no reader


async def test_a_shim_not_reattached_does_not_keep_its_log_open(
    base: Path, runtime: Path, fake: FakeShim
) -> None:
    # Alive but without the task: shut down and reaped.
    bundle = _bundle_of(base, runtime, fake, "leak")
    manager = _manager(base, [])
    # A bundle to load makes the manager serve the events address first: its fds are not the log's.
    await manager.start_events_server()
    before = _open_fds()
    try:
        outcomes = await load_existing_shims(
            manager, state=str(base / "state"), root=str(base / "root")
        )
        assert [(o.id, o.outcome) for o in outcomes] == [("leak", "reaped")]
        assert not any(t.startswith(bundle.path) for t in _open_fds().values())
        assert set(_open_fds()) <= set(before)
    finally:
        await manager.aclose()


async def test_a_failed_create_carries_the_shims_log_lines(
    base: Path, runtime: Path, fake: FakeShim
) -> None:
    fake.fail["Create"] = errdefs.InvalidArgument("rootfs is not a directory")
    manager = _manager(
        base,
        [
            f"FAKE_ADDRESS={fake.address}",
            'FAKE_LOG=time="t" level=info msg="starting"\n'
            'time="t" level=error msg="failed to mount rootfs component"',
        ],
    )
    tasks = TaskManager(root=str(base / "root"), state=str(base / "state"), shims=manager)
    try:
        with pytest.raises(errdefs.InvalidArgument) as caught:
            await tasks.create("broken", CreateOpts(spec=b"{}", runtime=str(runtime)), namespace=NS)
    finally:
        await manager.aclose()
    message = str(caught.value)
    assert message.startswith("failed to create shim task: rootfs is not a directory")
    assert message.endswith(
        '; shim log:\ntime="t" level=error msg="failed to mount rootfs component"'
    )
    assert "starting" not in message  # info lines are noise in an error
    assert os.listdir(base / "state" / NS) == []


async def test_a_cancelled_load_closes_the_shims_connection_and_log(
    base: Path, runtime: Path, fake: FakeShim
) -> None:
    # A load runs inside the caller's call (first use): a caller that gives up must not leave
    # the shim's connection or its log FIFO open.
    bundle = _bundle_of(base, runtime, fake, "slow")
    fake.hang.add("State")
    manager = _manager(base, [])
    await manager.start_events_server()
    before = _open_fds()
    try:
        load = asyncio.ensure_future(
            load_existing_shims(manager, state=str(base / "state"), root=str(base / "root"))
        )
        await fake.hanging.wait()
        load.cancel()
        with pytest.raises(asyncio.CancelledError):
            await load
        await fake.stop()  # the fake's own end of the connection (it is in this process) goes
        assert not any(t.startswith(bundle.path) for t in _open_fds().values())
        assert set(_open_fds()) <= set(before)
    finally:
        await manager.aclose()
