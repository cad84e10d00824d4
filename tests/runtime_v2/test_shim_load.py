"""Restart recovery against fake shims: one outcome per bundle, bounded and with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _fake_shim import FakeShim, FakeTask

from plugins.events import Exchange
from runtime_v2 import shim_load
from runtime_v2.bundle import new_bundle
from runtime_v2.locks import lock_path, read_step
from runtime_v2.shim import ShimTask
from runtime_v2.shim_cleanup import SHIM_PID_FILE
from runtime_v2.shim_load import load_existing_shims
from runtime_v2.shim_manager import ShimManager
from runtime_v2.task_manager import TaskManager

NS = "loadns"


@pytest.fixture
async def manager(base: Path) -> AsyncIterator[ShimManager]:
    m = ShimManager(
        exchange=Exchange(),
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
    )
    yield m
    await m.aclose()


@pytest.fixture
def fake_runtime(base: Path) -> Path:
    """A shim binary whose ``delete`` records its argv and prints a DeleteResponse."""
    script = base / "containerd-shim-fake-v2"
    script.write_text(
        f'#!/bin/bash\necho "$*" >> "{base}/deletes"\nprintf \'\\x08\\x07\\x10\\x89\\x01\'\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def make_bundle(
    base: Path,
    task_id: str,
    runtime: Path | None,
    *,
    address: str | None = None,
    address_file: bool = False,
) -> Path:
    bundle = new_bundle(str(base / "root"), str(base / "state"), NS, task_id, b"{}")
    path = Path(bundle.path)
    if runtime is not None:
        (path / "shim-binary-path").write_text(str(runtime))
    if address is not None:
        if address_file:
            (path / "address").write_text(address)
        else:
            (path / "bootstrap.json").write_text(
                json.dumps({"version": 2, "address": address, "protocol": "ttrpc"})
            )
    return path


@contextlib.contextmanager
def peer_holds_lock(bundle: Path, *, step: str) -> Iterator[None]:
    """A peer process's flock on ``bundle``'s task lock (another open file description), with
    ``step`` recorded in it."""
    Path(lock_path(str(bundle))).write_text(step)
    fd = os.open(lock_path(str(bundle)), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def deletes(base: Path) -> list[str]:
    try:
        return (base / "deletes").read_text().splitlines()
    except FileNotFoundError:
        return []


async def live_shims(
    base: Path, runtime: Path, *ids: str, kind: type[FakeShim] = FakeShim
) -> list[FakeShim]:
    """A bundle for each of ``ids`` whose fake shim (a ``kind``) runs its task (pid 10); the
    caller stops them."""
    fakes = []
    for task_id in ids:
        fake = await kind(str(base / f"{task_id}.sock"), versions=(2,)).start()
        fake.tasks[(NS, f"{task_id}/")] = FakeTask(10)
        make_bundle(base, task_id, runtime, address=fake.address)
        fakes.append(fake)
    return fakes


async def load(manager: ShimManager, base: Path, **kw: float) -> dict[str, tuple[str, str]]:
    outcomes = await load_existing_shims(
        manager,
        state=str(base / "state"),
        root=str(base / "root"),
        **kw,  # type: ignore[arg-type]
    )
    return {o.id: (o.outcome, o.reason) for o in outcomes}


async def test_a_live_shim_with_its_task_is_reattached(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    fake = await FakeShim(str(base / "live.sock"), versions=(2,)).start()
    fake.tasks[(NS, "live/")] = FakeTask(4242)
    make_bundle(base, "live", fake_runtime, address=fake.address)
    try:
        outcomes = await load(manager, base)
        assert outcomes["live"][0] == "reattached"
        shim = manager.shims.get(NS, "live")
        assert shim.version == 2 and shim.task_pid == 4242
        assert deletes(base) == []
    finally:
        await manager.aclose()
        await fake.stop()


async def test_a_1_6_address_file_is_migrated_to_bootstrap_json(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    fake = await FakeShim(str(base / "old.sock"), versions=(2,)).start()
    fake.tasks[(NS, "old/")] = FakeTask(1)
    path = make_bundle(base, "old", fake_runtime, address=fake.address, address_file=True)
    try:
        assert (await load(manager, base))["old"][0] == "reattached"
        assert json.loads((path / "bootstrap.json").read_text())["address"] == fake.address
    finally:
        await manager.aclose()
        await fake.stop()


async def test_a_dead_shim_is_reaped_with_its_delete_command(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    path = make_bundle(base, "dead", fake_runtime, address="unix://" + str(base / "gone.sock"))
    outcomes = await load(manager, base)
    assert outcomes["dead"][0] == "reaped"
    assert "shim is dead" in outcomes["dead"][1]
    assert len(deletes(base)) == 1 and deletes(base)[0].endswith(f"-bundle {path} delete")
    assert not path.exists()
    assert not (base / "root" / NS / "dead").exists()


async def test_a_live_shim_without_its_task_is_shut_down_and_reaped(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    fake = await FakeShim(str(base / "leak.sock"), versions=(2,)).start()
    path = make_bundle(base, "leak", fake_runtime, address=fake.address)
    try:
        outcomes = await load(manager, base)
        assert outcomes["leak"] == (
            "reaped",
            "shim is alive but has no task (leaked shim); shut it down",
        )
        assert fake.shutdown_requested.is_set()
        assert not path.exists()
        assert not manager.shims.contains(NS, "leak")
    finally:
        await fake.stop()


async def test_a_wedged_shim_is_skipped_within_the_deadline_and_left_in_place(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    fake = await FakeShim(str(base / "wedged.sock"), versions=(2, 3)).start()
    fake.hang.add("Connect")
    path = make_bundle(base, "wedged", fake_runtime, address=fake.address)
    try:
        async with asyncio.timeout(30):  # only to stop a hang: the deadline is what is tested
            outcomes = await load(manager, base, timeout=0.3)
        assert outcomes["wedged"] == (
            "skipped",
            "shim did not answer within 0.3 s; left in place",
        )
        assert path.exists() and (base / "root" / NS / "wedged").exists()
        assert deletes(base) == []
    finally:
        await fake.stop()


async def test_bundles_load_in_parallel_but_bounded(
    manager: ShimManager, base: Path, fake_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await FakeShim(str(base / "many.sock"), versions=(2, 3)).start()
    fake.hang.add("Connect")
    running, peak, opened = [0], [0], asyncio.Event()
    real_load_bundle = shim_load._load_bundle

    async def counted(*args: Any) -> Any:
        # The 8th concurrent load opens the gate: with no parallelism it never comes (a hang,
        # stopped below), without a bound the other 12 pile up before the first 8 go on.
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        if running[0] == 8:
            opened.set()
        try:
            await opened.wait()
            return await real_load_bundle(*args)
        finally:
            running[0] -= 1

    monkeypatch.setattr(shim_load, "_load_bundle", counted)
    for i in range(20):
        make_bundle(base, f"b{i}", fake_runtime, address=fake.address)
    try:
        async with asyncio.timeout(30):  # only to stop a hang (no parallelism never opens)
            outcomes = await load(manager, base, timeout=0.2, parallelism=8)
        assert {o for o, _ in outcomes.values()} == {"skipped"}
        # 20 bundles, 8 at a time: 8 load at once, never more.
        assert peak == [8]
        assert len([m for m in fake.methods() if m == "Connect"]) == 20
    finally:
        await fake.stop()


async def test_empty_and_runtime_less_bundles_are_removed_and_others_left_alone(
    manager: ShimManager, base: Path
) -> None:
    ns_dir = base / "state" / NS
    (ns_dir / "empty").mkdir(parents=True)
    orphan = make_bundle(base, "orphan", None)
    (ns_dir / ".hidden").mkdir()
    (ns_dir / "file").write_text("x")
    (base / "state" / ".hiddenns").mkdir()
    stray = base / "root" / NS / "stray"
    stray.mkdir(parents=True)
    outcomes = await load(manager, base)
    assert outcomes["empty"] == ("removed", "empty bundle")
    assert outcomes["orphan"][0] == "removed"
    assert set(outcomes) == {"empty", "orphan"}
    assert not orphan.exists() and not (ns_dir / "empty").exists() and not stray.exists()
    assert (ns_dir / ".hidden").exists() and (ns_dir / "file").exists()


async def test_a_bundle_without_an_address_is_removed(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    path = make_bundle(base, "noaddr", fake_runtime)
    outcomes = await load(manager, base)
    assert outcomes["noaddr"][0] == "removed"
    assert "no shim address" in outcomes["noaddr"][1]
    assert not path.exists()


async def test_no_state_dir_means_nothing_to_load(manager: ShimManager, base: Path) -> None:
    assert (
        await load_existing_shims(manager, state=str(base / "nothing"), root=str(base / "r")) == []
    )
    assert not os.path.exists(base / "nothing")


async def test_a_bundle_whose_lock_a_peer_holds_is_left_alone(
    manager: ShimManager, base: Path
) -> None:
    path = make_bundle(base, "young", None)  # no shim yet: looks like an orphan
    # A peer process's flock: another open file description on the task's lock file.
    fd = os.open(lock_path(str(path)), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        outcomes = await load(manager, base)
    finally:
        os.close(fd)
    assert outcomes["young"] == ("skipped", "another process is working on it (its lock is held)")
    assert path.exists()
    os.unlink(lock_path(str(path)))
    await load(manager, base)  # the lock is free now: removed (no shim)
    assert not path.exists()


async def test_a_lock_left_by_a_dead_creator_does_not_protect_its_bundle(
    manager: ShimManager, base: Path
) -> None:
    path = make_bundle(base, "crashed", None)
    Path(lock_path(str(path))).write_text("creating")  # nobody holds it
    outcomes = await load(manager, base)
    assert outcomes["crashed"][0] == "removed"
    assert not path.exists()
    # The task is gone with its bundle: so is its step (and the lock file).
    assert read_step(lock_path(str(path))) == ""
    assert not os.path.exists(lock_path(str(path)))


async def test_an_unexpected_error_on_one_bundle_is_reported_and_the_others_still_load(
    manager: ShimManager, base: Path, fake_runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await FakeShim(str(base / "ok.sock"), versions=(2,)).start()
    fake.tasks[(NS, "ok/")] = FakeTask(7)
    make_bundle(base, "ok", fake_runtime, address=fake.address)
    corrupt = make_bundle(base, "corrupt", None)
    (corrupt / "shim-binary-path").mkdir()  # cannot be read: IsADirectoryError
    try:
        outcomes = await load(manager, base)
        assert outcomes["ok"][0] == "reattached"
        assert outcomes["corrupt"][0] == "skipped"
        assert outcomes["corrupt"][1].startswith("unexpected error: [Errno 21] Is a directory")
        assert corrupt.exists()  # left alone for a person to look at
        assert f"task {NS}/corrupt: restart recovery failed" in caplog.text
    finally:
        await manager.aclose()
        await fake.stop()


async def test_a_work_dir_whose_task_is_locked_by_a_peer_stays(
    manager: ShimManager, base: Path
) -> None:
    work = base / "root" / NS / "newcomer"
    work.mkdir(parents=True)
    lock = lock_path(str(base / "state" / NS / "newcomer"))
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a peer is creating "newcomer" (no bundle yet)
        await load(manager, base)
        assert work.exists()
    finally:
        os.close(fd)
    await load(manager, base)
    assert not work.exists()


async def test_a_stopped_shim_is_skipped_at_once_not_after_the_deadline(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    # A stopped shim's socket still accepts connections, so only its process tells: the pid
    # it gave at start (recorded in the bundle) names a process in state T.
    fake = await FakeShim(str(base / "stopped.sock"), versions=(2,)).start()
    fake.hang.add("Connect")
    stand_in = base / "containerd-shim-stopped-v2"
    shutil.copy("/bin/sleep", stand_in)
    process = subprocess.Popen([str(stand_in), "600"])
    path = make_bundle(base, "stopped", fake_runtime, address=fake.address)
    (path / SHIM_PID_FILE).write_text(str(process.pid))
    try:
        os.kill(process.pid, signal.SIGSTOP)
        os.waitpid(process.pid, os.WUNTRACED)  # returns once it is stopped (it is our child)
        # The deadline is far beyond the hang-stopper: only the stopped check ends the load.
        async with asyncio.timeout(30):
            outcomes = await load(manager, base, timeout=600)
        assert outcomes["stopped"] == (
            "skipped",
            f"shim process {process.pid} is stopped; left in place",
        )
        assert path.exists() and deletes(base) == []
        assert "Connect" not in fake.methods()
    finally:
        process.kill()
        process.wait()
        await fake.stop()


async def test_a_running_task_is_reattached_without_its_lock(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    """Its recorded step says nothing is pending: a peer holding its lock (for an exec, say)
    does not make recovery skip it, and nothing waits for the lock."""
    fake = await FakeShim(str(base / "busy.sock"), versions=(2,)).start()
    fake.tasks[(NS, "busy/")] = FakeTask(99)
    path = make_bundle(base, "busy", fake_runtime, address=fake.address)
    try:
        with peer_holds_lock(path, step="running"):
            async with asyncio.timeout(30):  # only to stop a hang
                outcomes = await load(manager, base)
        assert outcomes["busy"][0] == "reattached"
        assert manager.has(NS, "busy")
    finally:
        await manager.aclose()
        await fake.stop()


async def test_a_dead_shim_of_a_running_task_is_reaped_under_its_lock(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    """Reattaching went without the lock; reaping does not: a peer holding it keeps the task."""
    path = make_bundle(base, "held", fake_runtime, address="unix://" + str(base / "gone.sock"))
    with peer_holds_lock(path, step="running"):
        outcomes = await load(manager, base)
    assert outcomes["held"] == ("skipped", "another process is working on it (its lock is held)")
    assert path.exists() and deletes(base) == []
    assert (await load(manager, base))["held"][0] == "reaped"
    assert not path.exists()


async def test_task_states_are_asked_of_every_shim_at_once_and_a_silent_one_is_none(
    manager: ShimManager, base: Path, fake_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = await live_shims(base, fake_runtime, "a", "b", "c")
    try:
        assert {o for o, _ in (await load(manager, base)).values()} == {"reattached"}
        tasks = TaskManager(root=str(base / "root"), state=str(base / "state"), shims=manager)
        fakes[2].hang.add("State")  # "c" no longer answers
        real_state = ShimTask.state
        asking, all_asked = [0], asyncio.Event()

        async def gated_state(self: ShimTask) -> Any:
            # Each answer waits until all three are being asked: one at a time never gets there.
            asking[0] += 1
            if asking[0] == 3:
                all_asked.set()
            await all_asked.wait()
            return await real_state(self)

        monkeypatch.setattr(ShimTask, "state", gated_state)
        async with asyncio.timeout(30):  # only to stop a hang
            states = await tasks.states(namespace=NS, timeout=0.2)
        assert sorted(states) == ["a", "b", "c"]
        assert states["c"] is None
        assert states["a"] is not None and states["a"].pid == 10
    finally:
        await manager.aclose()
        for fake in fakes:
            await fake.stop()


async def test_a_reattached_shim_is_queried_without_serving_events_and_acted_on_after(
    manager: ShimManager, base: Path, fake_runtime: Path
) -> None:
    """Reattaching and the queries (a listing's State, ps's Pids, metrics' Stats) leave the
    events address alone; the first call that acts on the shim (here Kill) serves it before
    the call reaches the shim."""
    served_at_kill: list[bool] = []

    class Observed(FakeShim):
        async def _Kill(self, r: Any, ns: str) -> Any:
            served_at_kill.append(manager.serves_events)
            return await super()._Kill(r, ns)

    (fake,) = await live_shims(base, fake_runtime, "acted", kind=Observed)
    try:
        assert (await load(manager, base))["acted"][0] == "reattached"
        task = ShimTask(manager.shims.get(NS, "acted"))
        await task.state()
        await task.pids()
        await task.stats()
        assert not manager.events_started
        assert not Path(manager.ttrpc_address).exists()  # nothing bound
        await task.kill(signal.SIGKILL)
        assert served_at_kill == [True]
    finally:
        await manager.aclose()
        await fake.stop()


async def test_an_events_server_that_cannot_start_fails_the_act_and_the_shim_never_sees_it(
    manager: ShimManager, base: Path, fake_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serving error is the acting caller's, not swallowed: the listing lists the task
    (it does not serve), the kill fails with the error before the shim is asked."""
    (fake,) = await live_shims(base, fake_runtime, "refused")

    async def refused() -> None:
        raise OSError("cannot bind the events address")

    monkeypatch.setattr(manager, "start_events_server", refused)
    try:
        tasks = TaskManager(root=str(base / "root"), state=str(base / "state"), shims=manager)
        states = await tasks.states(namespace=NS, timeout=5)
        assert states["refused"] is not None and states["refused"].pid == 10
        task = await tasks.get("refused", namespace=NS)
        with pytest.raises(OSError, match="cannot bind the events address"):
            await task.kill(signal.SIGKILL)
        assert "Kill" not in fake.methods()
    finally:
        await manager.aclose()
        await fake.stop()


async def test_a_pass_resolves_a_shim_binary_once_however_many_bundles_name_it(
    manager: ShimManager, base: Path, fake_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = await live_shims(base, fake_runtime, "a", "b", "c")
    resolved: list[str] = []
    resolve = manager.resolve_runtime_path

    def counted(runtime: str) -> str:
        resolved.append(runtime)
        return resolve(runtime)

    monkeypatch.setattr(manager, "resolve_runtime_path", counted)
    try:
        assert {o for o, _ in (await load(manager, base)).values()} == {"reattached"}
        assert resolved == [str(fake_runtime)]
        assert {manager.shims.get(NS, i).binary.runtime_path for i in "abc"} == {  # type: ignore[union-attr]
            str(fake_runtime)
        }
    finally:
        await manager.aclose()
        for fake in fakes:
            await fake.stop()
