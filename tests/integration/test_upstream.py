"""Against current containerd: the upstream 2.4 shim, runc 1.5 and a private containerd 2.4.

What Debian's 1.6.20/1.1.5 cannot show: the start protocol negotiated with no configuration
(BootstrapParams after the 2.4 shim refuses the options Any), ``runtime info`` equal to the
shim's own ``-info``, a real idmapped bind mount with runc 1.5, the same spec refused with runc
1.1.5 before any shim starts, and reattaching to (and controlling) a task that containerd 2.4
itself created. The lifecycle tests of test_lifecycle.py run against these binaries too.

Every test needs ``../shared/upstream`` (the ``upstream`` or ``runtime`` fixture): it skips
without it and fails under TASKPLANE_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from interop.containerd import PrivateContainerd
from interop.shimlib import wait_process_exit

from plugins import errdefs
from runtime_v2 import CreateOpts, Status, typeurl
from runtime_v2.api import bootstrap_pb2, introspection_pb2, runc_options_pb2
from taskplane.cli_runtime import runtime_info_record
from tests.leaks import find_processes

from .conftest import TASK_PLUGIN_DIR, TIMEOUT, Dirs, boot_host, cleanup_tasks, spec_for
from .runtimes import (
    UPSTREAM_BIN,
    UPSTREAM_CONTAINERD,
    UPSTREAM_CTR,
    UPSTREAM_RUNC,
    UPSTREAM_SHIM,
)

pytestmark = pytest.mark.usefixtures("upstream")

DEBIAN_RUNC = "/usr/sbin/runc"
SHIM_URI = "io.containerd.shim.v1.manager"


def _taskplane(dirs: Dirs, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m taskplane`` with the default config on the test's root, state, namespace."""
    argv = [sys.executable, "-m", "taskplane", "--root", str(dirs.root), "--state"]
    argv += [str(dirs.state), "-n", dirs.namespace, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT * 2, check=False)


def _recording_wrapper(dirs: Dirs) -> tuple[str, Path]:
    """A script in front of the upstream shim that appends each command's action (``start``,
    ``delete``, ``-info``) to ``actions`` and keeps each ``start``'s stdin (start.1, start.2...)
    before running the real shim with it. Returns (its path, the recording dir)."""
    record = dirs.base / "record"
    record.mkdir()
    script = dirs.base / "containerd-shim-rec-v2"
    script.write_text(
        "#!/bin/bash\n"
        f"rec={record}\n"
        'if [ "$1" = -info ]; then action=-info; else action="${@: -1}"; fi\n'
        'echo "$action" >> "$rec/actions"\n'
        'n=$(grep -c . "$rec/actions")\n'
        'cat > "$rec/$action.$n"\n'
        f'exec {UPSTREAM_SHIM} "$@" < "$rec/$action.$n"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), record


def _actions(record: Path) -> list[str]:
    try:
        return (record / "actions").read_text().split()
    except FileNotFoundError:
        return []


# -- the default config with the 2.4 shim -------------------------------------------------------


def test_the_default_config_runs_a_full_lifecycle_with_the_2_4_shim(
    dirs: Dirs, busybox_rootfs: Path
) -> None:
    """The issue's reproducer: ``run --rm --runtime <2.4 shim>`` with no configuration."""
    dirs.scope.ids.add("first")
    result = _taskplane(
        dirs,
        "run", "--rm", "--runtime", str(UPSTREAM_SHIM), "--rootfs", str(busybox_rootfs),
        "first", "--", "/bin/sh", "-c", "echo hello from 2.4",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello from 2.4\n", "")
    # A later process knows what the shim speaks (the state dir remembers) and shows it.
    info = _taskplane(dirs, "runtime", "info", str(UPSTREAM_SHIM))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["start"] == {"protocol": "bootstrap", "task_api": 3}


def test_runtime_info_of_the_1_6_shim_names_its_start_protocol_once_a_task_ran(
    dirs: Dirs, busybox_rootfs: Path
) -> None:
    dirs.scope.ids.add("old")
    argv = ["run", "--rm", "--rootfs", str(busybox_rootfs), "old", "--", "/bin/true"]
    assert _taskplane(dirs, *argv).returncode == 0
    result = _taskplane(dirs, "runtime", "info", "io.containerd.runc.v2")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("taskplane: containerd-shim-runc-v2 (1.6.20")
    assert line.endswith(
        "does not support -info: shims before containerd 2.0 have no runtime info; use a newer "
        "shim to get runtime features; taskplane starts it with the legacy start protocol and "
        "speaks task API v2 to it"
    )


@pytest.mark.parametrize("runc", [DEBIAN_RUNC, str(UPSTREAM_RUNC)], ids=["runc1.1", "runc1.5"])
def test_runtime_info_is_the_shims_own_info(dirs: Dirs, runc: str) -> None:
    options = typeurl.pack(runc_options_pb2.Options(binary_name=runc))
    own = subprocess.run(
        [str(UPSTREAM_SHIM), "-info"],
        input=options.SerializeToString(),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    expected = runtime_info_record(introspection_pb2.RuntimeInfo.FromString(own.stdout))
    result = _taskplane(dirs, "runtime", "info", str(UPSTREAM_SHIM), "--runc-binary", runc)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed.pop("start") == {"protocol": None, "task_api": None}  # nothing started yet
    assert printed == expected
    idmap = (expected["features"]["linux"].get("mountExtensions") or {}).get("idmap") or {}
    assert idmap.get("enabled", False) is (runc != DEBIAN_RUNC)  # runc 1.2+ reports idmap


# -- idmapped mounts ----------------------------------------------------------------------------


def _idmap_spec(dirs: Dirs, rootfs: Path, task_id: str, args: list[str]) -> bytes:
    """A spec bind-mounting ``dirs.base/data`` at /data, idmapped host 0 -> uid 1000, gid 2000
    (what ``ls -n`` shows inside for a file root owns on the host)."""
    spec = json.loads(spec_for(rootfs, args, task_id=task_id, namespace=dirs.namespace))
    spec["mounts"].append(
        {
            "destination": "/data",
            "type": "bind",
            "source": str(dirs.base / "data"),
            "options": ["rbind"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}],
        }
    )
    return json.dumps(spec).encode()


async def test_an_idmapped_bind_mount_shows_the_mapped_owner_with_runc_1_5(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    data = dirs.base / "data"
    data.mkdir()
    (data / "file").write_text("x")
    os.chown(data / "file", 0, 0)
    dirs.io.mkdir()
    out = dirs.io / "idmap.out"
    opts = CreateOpts(
        spec=_idmap_spec(dirs, busybox_rootfs, "idmap", ["/bin/stat", "-c", "%u %g", "/data/file"]),
        runtime=str(UPSTREAM_SHIM),
        runtime_options=runc_options_pb2.Options(binary_name=str(UPSTREAM_RUNC)),
        stdout=f"file://{out}",
        stderr=f"file://{out}",
    )
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("idmap", opts, namespace=dirs.namespace)
        await task.start()
        assert (await task.wait()).status == 0
        await task_manager.delete("idmap", namespace=dirs.namespace)
    assert out.read_text() == "1000 2000\n"
    assert (os.stat(data / "file").st_uid, os.stat(data / "file").st_gid) == (0, 0)


async def test_an_idmap_spec_with_runc_1_1_is_refused_before_any_shim_starts(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    (dirs.base / "data").mkdir()
    wrapper, record = _recording_wrapper(dirs)
    opts = CreateOpts(
        spec=_idmap_spec(dirs, busybox_rootfs, "refused", ["/bin/true"]),
        runtime=wrapper,
        runtime_options=runc_options_pb2.Options(binary_name=DEBIAN_RUNC),
    )
    with pytest.raises(errdefs.FailedPrecondition) as caught:
        async with asyncio.timeout(TIMEOUT):
            await task_manager.create("refused", opts, namespace=dirs.namespace)
    assert str(caught.value) == (
        "failed to validate OCI runtime features: idmap mounts not supported: "
        "missing `mountExtensions.idmap` entry in `features` command"
    )
    assert _actions(record) == ["-info"]  # no start: no shim process was ever started
    assert find_processes(dirs.scope) == []
    assert not (dirs.bundles / "refused").exists()


# -- BootstrapParams ----------------------------------------------------------------------------


async def test_the_2_4_shim_accepts_bootstrap_params_after_refusing_the_options_any(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    wrapper, record = _recording_wrapper(dirs)
    options = runc_options_pb2.Options(binary_name=str(UPSTREAM_RUNC))
    for task_id in ("one", "two"):
        spec = spec_for(busybox_rootfs, ["/bin/true"], task_id=task_id, namespace=dirs.namespace)
        opts = CreateOpts(spec=spec, runtime=wrapper, runtime_options=options)
        async with asyncio.timeout(TIMEOUT):
            task = await task_manager.create(task_id, opts, namespace=dirs.namespace)
            assert task.shim.version == 3
            await task.start()
            await task.wait()
            await task_manager.delete(task_id, namespace=dirs.namespace)
    # One refused legacy start (the Any on stdin), then BootstrapParams; the second task is
    # started with BootstrapParams at once.
    assert _actions(record) == ["start", "start", "start"]
    # The effective options: the user's plus the state dir's own runc root.
    effective = runc_options_pb2.Options(
        binary_name=str(UPSTREAM_RUNC), root=task_manager.runc_root
    )
    assert (record / "start.1").read_bytes() == typeurl.pack(effective).SerializeToString()
    for n, task_id in ((2, "one"), (3, "two")):
        params = bootstrap_pb2.BootstrapParams.FromString((record / f"start.{n}").read_bytes())
        assert (params.instance_id, params.namespace) == (task_id, dirs.namespace)
        assert [e.value for e in params.extensions] == [typeurl.pack(effective)]


async def test_bootstrap_runtimes_starts_the_shim_with_bootstrap_params_at_once(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    wrapper, record = _recording_wrapper(dirs)
    host = await boot_host(
        dirs, {"version": 3, "plugins": {SHIM_URI: {"bootstrap_runtimes": [wrapper]}}}
    )
    tasks = host.get("io.containerd.runtime.v2", "task")
    try:
        spec = spec_for(busybox_rootfs, ["/bin/true"], task_id="forced", namespace=dirs.namespace)
        async with asyncio.timeout(TIMEOUT):
            task = await tasks.create(
                "forced", CreateOpts(spec=spec, runtime=wrapper), namespace=dirs.namespace
            )
            await task.start()
            await task.wait()
            await tasks.delete("forced", namespace=dirs.namespace)
    finally:
        await cleanup_tasks(tasks, dirs.namespace)
        await host.aclose()
    assert _actions(record) == ["start"]
    assert bootstrap_pb2.BootstrapParams.FromString((record / "start.1").read_bytes()).instance_id


# -- a task containerd 2.4 created --------------------------------------------------------------


async def test_reattach_to_a_task_containerd_2_4_created_and_control_it(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    """A private containerd 2.4 runs ``ctr run -d``; taskplane pointed at its --root/--state
    (the same ``io.containerd.runtime.v2.task/<ns>/<id>`` layout) reattaches to the shim and
    drives the task: state, exec, pause/resume, kill, wait, delete."""
    containerd = PrivateContainerd(
        dirs.base / "ctd",
        containerd=str(UPSTREAM_CONTAINERD),
        ctr=str(UPSTREAM_CTR),
        path_prefix=[str(UPSTREAM_BIN)],
    )
    bundles = containerd.state / TASK_PLUGIN_DIR / dirs.namespace
    host = None
    containerd.start()
    try:
        containerd.ctr_run(
            dirs.namespace, "run", "-d", "--rootfs", str(busybox_rootfs), "made-by-ctd",
            "/bin/sleep", "600",
        )  # fmt: skip
        assert (bundles / "made-by-ctd" / "bootstrap.json").exists()
        # taskplane on containerd's own --root and --state.
        host = await boot_host(attrs.evolve(dirs, root=containerd.root, state=containerd.state))
        tasks = host.get("io.containerd.runtime.v2", "task")
        await tasks.tasks(namespace=dirs.namespace)  # recovery runs at the first listing
        [outcome] = [o for o in tasks.load_outcomes if o.namespace == dirs.namespace]
        assert (outcome.id, outcome.outcome) == ("made-by-ctd", "reattached")
        async with asyncio.timeout(TIMEOUT):
            task = await tasks.get("made-by-ctd", namespace=dirs.namespace)
            assert task.shim.version == 3
            state = await task.state()
            assert state.status is Status.RUNNING and state.pid > 0
            dirs.io.mkdir()
            out = dirs.io / "exec.out"
            process = await task.exec(
                "probe",
                {"args": ["/bin/sh", "-c", "echo $((6 * 7))"], "cwd": "/", "env": ["PATH=/bin"]},
                stdout=f"file://{out}",
                stderr=f"file://{out}",
            )
            await process.start()
            assert (await process.wait()).status == 0
            await process.delete()
            assert out.read_text() == "42\n"
            await task.pause()
            assert (await task.state()).status is Status.PAUSED
            await task.resume()
            await task.kill(signal.SIGKILL)
            assert (await task.wait()).status == 128 + signal.SIGKILL
            shim_pid, socket = task.shim.shim_pid, task.shim.address.removeprefix("unix://")
            await tasks.delete("made-by-ctd", namespace=dirs.namespace)
            await wait_process_exit(shim_pid)  # the last task's delete shut the shim down
        assert not (bundles / "made-by-ctd").exists()
        assert not os.path.exists(socket)
    finally:
        if host is not None:
            await cleanup_tasks(host.get("io.containerd.runtime.v2", "task"), dirs.namespace)
            await host.aclose()
        containerd.stop()
