"""Real containers through the TaskManager: create, start, wait, kill, exec, pids, stats, pause,
delete -- each against every shim x runc combination of :mod:`.runtimes`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

from plugins import errdefs
from runtime_v2 import CreateOpts, Status
from tests.prerequisites import need

from .conftest import TIMEOUT, Dirs, spec_for
from .runtimes import Runtime


def _opts(
    dirs: Dirs, rootfs: Path, args: list[str], task_id: str, runtime: Runtime, **kw: Any
) -> CreateOpts:
    return CreateOpts(
        spec=spec_for(rootfs, args, task_id=task_id, namespace=dirs.namespace),
        **runtime.create_kw(),
        **kw,
    )


#: The metrics a runc shim reports: cgroup v1 or v2 (containerd/cgroups' stats protos).
_CGROUP_METRICS = ("io.containerd.cgroups.v1.Metrics", "io.containerd.cgroups.v2.Metrics")


def _fields(data: bytes) -> dict[int, Any]:
    """The top-level fields of a protobuf message we have no class for (number -> value)."""
    holder = empty_pb2.Empty()
    holder.ParseFromString(data)
    return {field.field_number: field.data for field in UnknownFieldSet(holder)}


def _pids_current(metrics: bytes) -> int:
    """``Metrics.pids.current``: field 2 (PidsStat) field 1 in both cgroup v1 and v2 metrics."""
    return int(_fields(_fields(metrics)[2])[1])


def _file_uri(dirs: Dirs, name: str) -> str:
    dirs.io.mkdir(exist_ok=True)
    return "file://" + str(dirs.io / name)


async def test_task_runs_to_completion_with_output_and_exit_status(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    out = _file_uri(dirs, "hello.out")
    opts = _opts(
        dirs,
        busybox_rootfs,
        ["/bin/sh", "-c", "echo hello; exit 3"],
        "hello",
        runtime,
        stdout=out,
        stderr=out,
    )
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("hello", opts, namespace=dirs.namespace)
        assert (await task.state()).status is Status.CREATED
        pid = await task.start()
        exit = await task.wait()
        assert exit.status == 3
        assert exit.pid == pid
        assert exit.timestamp is not None
        state = await task.state()
        assert state.status is Status.STOPPED
        assert state.exit_status == 3
        deleted = await task_manager.delete("hello", namespace=dirs.namespace)
    assert deleted.status == 3
    assert deleted.pid == pid
    assert (dirs.io / "hello.out").read_text() == "hello\n"
    assert await task_manager.tasks(namespace=dirs.namespace) == []
    with pytest.raises(errdefs.NotFound):
        await task_manager.get("hello", namespace=dirs.namespace)


async def test_output_through_fifos_the_containerd_way(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    dirs.io.mkdir()
    fds: list[int] = []
    readers = {}
    for name in ("stdout", "stderr"):
        fifo = dirs.io / name
        os.mkfifo(fifo, 0o600)
        readers[name] = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        fds.append(readers[name])
        fds.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # no EOF before the shim opens
    try:
        opts = _opts(
            dirs,
            busybox_rootfs,
            ["/bin/sh", "-c", "echo out; echo err >&2"],
            "fifo",
            runtime,
            stdout=str(dirs.io / "stdout"),
            stderr=str(dirs.io / "stderr"),
        )
        async with asyncio.timeout(TIMEOUT):
            task = await task_manager.create("fifo", opts, namespace=dirs.namespace)
            for fd in fds[1::2]:
                os.close(fd)
            fds = fds[0::2]
            await task.start()
            assert (await task.wait()).status == 0
            await task_manager.delete("fifo", namespace=dirs.namespace)
        output = {}
        for name, fd in readers.items():
            data = b""
            while chunk := os.read(fd, 4096):
                data += chunk
            output[name] = data
        assert output == {"stdout": b"out\n", "stderr": b"err\n"}
    finally:
        for fd in fds:
            os.close(fd)


async def test_kill_stops_a_sleeping_task(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(dirs, busybox_rootfs, ["/bin/sleep", "600"], "sleeper", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("sleeper", opts, namespace=dirs.namespace)
        await task.start()
        assert (await task.state()).status is Status.RUNNING
        with pytest.raises(errdefs.ContainerdError):
            await task_manager.delete("sleeper", namespace=dirs.namespace)  # still running
        assert [t.id for t in await task_manager.tasks(namespace=dirs.namespace)] == ["sleeper"]
        await task.kill(signal.SIGKILL)
        exit = await task.wait()
        assert exit.status == 128 + signal.SIGKILL
        await task_manager.delete("sleeper", namespace=dirs.namespace)


async def test_exec_runs_a_second_process_in_a_running_task(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    out = _file_uri(dirs, "exec.out")
    opts = _opts(dirs, busybox_rootfs, ["/bin/sleep", "600"], "host", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("host", opts, namespace=dirs.namespace)
        init_pid = await task.start()
        process = await task.exec(
            "probe",
            {
                "args": ["/bin/sh", "-c", "echo from exec; exit 7"],
                "cwd": "/",
                "env": ["PATH=/bin"],
                "user": {"uid": 0, "gid": 0},
            },
            stdout=out,
            stderr=out,
        )
        assert (await process.state()).status is Status.CREATED
        exec_pid = await process.start()
        assert exec_pid not in (0, init_pid)
        exit = await process.wait()
        assert exit.status == 7
        assert (await process.delete()).status == 7
        await task.kill(signal.SIGKILL)
        await task.wait()
        await task_manager.delete("host", namespace=dirs.namespace)
    assert (dirs.io / "exec.out").read_text() == "from exec\n"


async def test_pids_lists_the_processes_of_a_task(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(
        dirs, busybox_rootfs, ["/bin/sh", "-c", "sleep 600 & exec sleep 601"], "pids", runtime
    )
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("pids", opts, namespace=dirs.namespace)
        init_pid = await task.start()
        # The shell forks the background sleep right after start: ask until it shows up.
        while len(pids := await task.pids()) < 2:
            await asyncio.sleep(0.02)
        assert len(pids) == 2
        assert init_pid in {p.pid for p in pids}
        await task.kill(signal.SIGKILL, all=True)
        await task.wait()
        await task_manager.delete("pids", namespace=dirs.namespace)


async def test_twenty_tasks_at_once(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    async def lifecycle(i: int) -> int:
        task_id = f"many-{i}"
        opts = _opts(dirs, busybox_rootfs, ["/bin/sh", "-c", f"exit {i}"], task_id, runtime)
        task = await task_manager.create(task_id, opts, namespace=dirs.namespace)
        await task.start()
        status = (await task.wait()).status
        await task_manager.delete(task_id, namespace=dirs.namespace)
        return status

    async with asyncio.timeout(TIMEOUT * 2):
        statuses = await asyncio.gather(*(lifecycle(i) for i in range(20)))
    assert statuses == list(range(20))


async def test_same_id_in_two_namespaces_does_not_collide(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    other = dirs.namespace + "-b"
    async with asyncio.timeout(TIMEOUT):
        a = await task_manager.create(
            "same",
            _opts(dirs, busybox_rootfs, ["/bin/sh", "-c", "exit 1"], "same", runtime),
            namespace=dirs.namespace,
        )
        b = await task_manager.create(
            "same",
            CreateOpts(
                spec=spec_for(
                    busybox_rootfs, ["/bin/sh", "-c", "exit 2"], task_id="same", namespace=other
                ),
                **runtime.create_kw(),
            ),
            namespace=other,
        )
        try:
            assert a.bundle != b.bundle
            await a.start()
            await b.start()
            assert (await a.wait()).status == 1
            assert (await b.wait()).status == 2
            all_tasks = await task_manager.tasks(all=True)
            assert sorted((t.namespace, t.id) for t in all_tasks) == sorted(
                [(dirs.namespace, "same"), (other, "same")]
            )
        finally:
            await task_manager.delete("same", namespace=other)
            shutil.rmtree(f"/run/containerd/runc/{other}", ignore_errors=True)
        await task_manager.delete("same", namespace=dirs.namespace)


async def test_creating_an_existing_task_fails_and_keeps_the_first(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(dirs, busybox_rootfs, ["/bin/true"], "dup", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("dup", opts, namespace=dirs.namespace)
        with pytest.raises(errdefs.AlreadyExists):
            await task_manager.create("dup", opts, namespace=dirs.namespace)
        assert (dirs.bundles / "dup" / "config.json").exists()
        await task.start()
        await task.wait()
        await task_manager.delete("dup", namespace=dirs.namespace)


async def test_delete_of_an_unknown_task_is_not_found(dirs: Dirs, task_manager: Any) -> None:
    with pytest.raises(errdefs.NotFound):
        await task_manager.delete("nothing", namespace=dirs.namespace)


async def test_each_shim_gets_its_start_protocol_and_task_api_negotiated(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    """The 1.6 shim: options Any on stdin, task API v2 (it answers v3 with NotImplemented);
    the 2.4 shim: BootstrapParams (after refusing the Any), task API v3. No configuration."""
    opts = _opts(dirs, busybox_rootfs, ["/bin/true"], "proto", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("proto", opts, namespace=dirs.namespace)
        assert task.shim.version == runtime.task_api
        bootstrap = json.loads((dirs.bundles / "proto" / "bootstrap.json").read_text())
        assert (bootstrap["version"], bootstrap["protocol"]) == (runtime.task_api, "ttrpc")
        # The runc shims record the runc binary they run in <bundle>/runtime at Create.
        runc = (dirs.bundles / "proto" / "runtime").read_text()
        assert runc == (runtime.runc or "")  # "": the default, runc on PATH
        shim_path = (dirs.bundles / "proto" / "shim-binary-path").read_text()
        assert shim_path == task_manager.shims.resolve_runtime_path(runtime.shim)
        negotiated = task_manager.shims.negotiated(runtime.shim)
        assert (negotiated.start_protocol, negotiated.task_api) == (
            runtime.start_protocol,
            runtime.task_api,
        )
        await task.start()
        await task.wait()
        await task_manager.delete("proto", namespace=dirs.namespace)


async def test_stats_of_a_running_task_are_its_cgroup_metrics(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(dirs, busybox_rootfs, ["/bin/sleep", "600"], "stats", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("stats", opts, namespace=dirs.namespace)
        await task.start()
        try:
            stats = await task.stats()
            assert stats.type_url in _CGROUP_METRICS
            assert _pids_current(stats.value) >= 1  # the sleep itself
        finally:
            await task.kill(signal.SIGKILL)
            await task.wait()
            await task_manager.delete("stats", namespace=dirs.namespace)


def _cgroup_layout() -> str:
    """How this host could freeze a container (for the reason of a pause failure)."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return "cgroup v2: freezing needs cgroup.freeze (Linux >= 5.2) in a delegated subtree"
    if (root / "freezer").is_dir():
        return "cgroup v1 with the freezer controller at /sys/fs/cgroup/freezer"
    return "cgroup v1 without a freezer controller (no /sys/fs/cgroup/freezer)"


def _cannot_pause(exc: BaseException) -> None:
    """Skip the pause test where the runtime cannot pause, or fail when integration is required.

    The only expected reason is a host without a usable freezer cgroup; in CI
    (TASKPLANE_REQUIRE_INTEGRATION=1) a pause failure is a failure.
    """
    need(False, f"the runtime cannot pause here ({_cgroup_layout()}): {type(exc).__name__}: {exc}")


def test_pause_failure_fails_when_integration_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exc = errdefs.Unknown("runc did not terminate successfully: exit status 1: freezer")
    monkeypatch.setenv("TASKPLANE_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match=r"cannot pause here .*freezer"):
        _cannot_pause(exc)
    monkeypatch.delenv("TASKPLANE_REQUIRE_INTEGRATION")
    with pytest.raises(pytest.skip.Exception, match=r"cannot pause here \(cgroup"):
        _cannot_pause(exc)


async def test_pause_and_resume_a_running_task(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, runtime: Runtime
) -> None:
    opts = _opts(dirs, busybox_rootfs, ["/bin/sleep", "600"], "pause", runtime)
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("pause", opts, namespace=dirs.namespace)
        await task.start()
        try:
            try:
                await task.pause()
            except errdefs.ContainerdError as exc:  # e.g. no usable freezer cgroup
                _cannot_pause(exc)
            assert (await task.state()).status is Status.PAUSED
            await task.resume()
            assert (await task.state()).status is Status.RUNNING
        finally:
            await task.kill(signal.SIGKILL)
            await task.wait()
            await task_manager.delete("pause", namespace=dirs.namespace)
