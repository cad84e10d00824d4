"""A failed create leaves nothing: no bundle, no work dir, no shim process, no socket.

Every failure point of TaskManager.create is provoked with the real shim where it can be and
with a wrapper runtime (a script in front of the real shim) where it cannot. The autouse leak
checker proves that no shim, socket, runc state or mount is left; the tests check the bundle and
work dirs themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2
from interop.shimlib import wait_process_exit

from plugins import errdefs
from runtime_v2 import CreateOpts, typeurl
from runtime_v2.api import introspection_pb2, runc_options_pb2

from .conftest import TIMEOUT, Dirs, boot_host, spec_for


def assert_nothing_left(dirs: Dirs, task_id: str) -> None:
    assert not (dirs.bundles / task_id).exists()
    assert not (dirs.work_dirs / task_id).exists()
    hidden = [p.name for p in dirs.bundles.glob(".*")] if dirs.bundles.exists() else []
    assert hidden == []


def wrapper_runtime(
    dirs: Dirs, info: introspection_pb2.RuntimeInfo | None = None, start_fails: str | None = None
) -> tuple[str, Path]:
    """A shim wrapper that records each command's stdin and answers ``-info`` itself.

    Returns (absolute runtime path, the directory with the recordings).
    """
    record = dirs.base / "record"
    record.mkdir(exist_ok=True)
    if info is not None:
        (record / "info.out").write_bytes(info.SerializeToString())
    real = shutil.which("containerd-shim-runc-v2")
    script = dirs.base / "containerd-shim-wrap-v2"
    fail = (
        f'if [ "$action" = start ]; then printf %s {json.dumps(start_fails)}; exit 1; fi\n'
        if start_fails
        else ""
    )
    script.write_text(
        "#!/bin/bash\n"
        f"rec={record}\n"
        'action="${@: -1}"\n'
        'if [ "$1" = "-info" ]; then cat > "$rec/info.stdin"; '
        'if [ -f "$rec/info.out" ]; then cat "$rec/info.out"; exit 0; fi; '
        'echo "flag provided but not defined: -info" >&2; exit 2; fi\n'
        'cat > "$rec/$action.stdin"\n'
        f"{fail}"
        f'exec {real} "$@" < "$rec/$action.stdin"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), record


def idmap_spec(dirs: Dirs, rootfs: Path, task_id: str) -> bytes:
    spec = json.loads(spec_for(rootfs, ["/bin/true"], task_id=task_id, namespace=dirs.namespace))
    spec["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}
    )
    return json.dumps(spec).encode()


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "x" * 77, "", "tâche", ".hidden"])
async def test_bad_task_id_is_rejected_before_touching_the_disk(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, bad_id: str
) -> None:
    opts = CreateOpts(spec=spec_for(busybox_rootfs, ["/bin/true"], namespace=dirs.namespace))
    with pytest.raises(errdefs.InvalidArgument, match="invalid task id"):
        await task_manager.create(bad_id, opts, namespace=dirs.namespace)
    assert not dirs.bundles.exists()
    assert not dirs.work_dirs.exists()


async def test_bad_namespace_is_rejected_before_touching_the_disk(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    opts = CreateOpts(spec=spec_for(busybox_rootfs, ["/bin/true"]))
    with pytest.raises(errdefs.InvalidArgument, match="namespace"):
        await task_manager.create("ok", opts, namespace="../etc")
    assert list((dirs.state / "io.containerd.runtime.v2.task").iterdir()) == []


async def test_bundle_error_leaves_nothing(dirs: Dirs, task_manager: Any) -> None:
    bad_spec = b'{"linux": {"gidMappings": "not a list"}}'
    with pytest.raises(errdefs.InvalidArgument):
        await task_manager.create("badspec", CreateOpts(spec=bad_spec), namespace=dirs.namespace)
    assert_nothing_left(dirs, "badspec")


async def test_unknown_runtime_leaves_nothing(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    opts = CreateOpts(
        spec=spec_for(busybox_rootfs, ["/bin/true"], namespace=dirs.namespace),
        runtime="io.containerd.nosuch.v9",
    )
    with pytest.raises(errdefs.NotFound, match="containerd-shim-nosuch-v9"):
        await task_manager.create("noruntime", opts, namespace=dirs.namespace)
    assert_nothing_left(dirs, "noruntime")


async def test_failing_shim_start_leaves_nothing_and_reports_its_output(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    runtime, _ = wrapper_runtime(dirs, start_fails="wrapper: refusing to start")
    opts = CreateOpts(
        spec=spec_for(busybox_rootfs, ["/bin/true"], namespace=dirs.namespace), runtime=runtime
    )
    with pytest.raises(errdefs.ContainerdError, match=r"failed to start shim.*refusing to start"):
        await task_manager.create("nostart", opts, namespace=dirs.namespace)
    assert_nothing_left(dirs, "nostart")


async def test_rejected_runtime_features_shut_the_started_shim_down(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    # Debian's 1.6 shim has no -info at all: idmap mounts cannot be validated, so they fail.
    opts = CreateOpts(spec=idmap_spec(dirs, busybox_rootfs, "idmap"))
    with pytest.raises(errdefs.ContainerdError, match="failed to validate OCI runtime features"):
        await task_manager.create("idmap", opts, namespace=dirs.namespace)
    assert_nothing_left(dirs, "idmap")


async def test_features_without_idmap_give_containerds_error(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    info = introspection_pb2.RuntimeInfo(
        name="io.containerd.runc.v2",
        features=typeurl.pack_json("features/Features", {"ociVersionMin": "1.0.0", "linux": {}}),
    )
    runtime, _ = wrapper_runtime(dirs, info)
    opts = CreateOpts(spec=idmap_spec(dirs, busybox_rootfs, "noidmap"), runtime=runtime)
    with pytest.raises(errdefs.FailedPrecondition) as caught:
        await task_manager.create("noidmap", opts, namespace=dirs.namespace)
    assert str(caught.value) == (
        "failed to validate OCI runtime features: idmap mounts not supported: "
        "missing `mountExtensions.idmap` entry in `features` command"
    )
    assert_nothing_left(dirs, "noidmap")


async def test_failing_create_rpc_leaves_nothing(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any
) -> None:
    spec = json.loads(spec_for(busybox_rootfs, ["/bin/true"], namespace=dirs.namespace))
    spec["root"]["path"] = str(dirs.base / "no-such-rootfs")
    with pytest.raises(errdefs.ContainerdError, match="failed to create shim task"):
        async with asyncio.timeout(TIMEOUT):
            await task_manager.create(
                "norootfs", CreateOpts(spec=json.dumps(spec).encode()), namespace=dirs.namespace
            )
    assert_nothing_left(dirs, "norootfs")


class Gate:
    """Two FIFOs that hold a wrapped binary at one point of a create: the wrapper writes to
    ``reached`` (the test is told, without polling) and then blocks reading a line from
    ``gate`` until :meth:`release` writes it (or until it is killed)."""

    def __init__(self, base: Path) -> None:
        self.reached_path, self.gate_path = base / "reached", base / "gate"
        os.mkfifo(self.reached_path, 0o600)
        os.mkfifo(self.gate_path, 0o600)
        # Non-blocking: no writer yet. Linux reports a FIFO readable only once a writer came.
        self._reached = os.open(self.reached_path, os.O_RDONLY | os.O_NONBLOCK)
        # Held open for writing (O_RDWR does not wait for a reader): the wrapper's open never
        # blocks, and a line written before it reads stays in the FIFO for it.
        self._gate = os.open(self.gate_path, os.O_RDWR)

    def shell(self) -> str:
        """The shell lines a wrapper runs at the gated point."""
        return f"printf x > {self.reached_path}; read -r _ < {self.gate_path}\n"

    async def wait(self, creating: asyncio.Task[Any]) -> None:
        """Return once the wrapper reached the gate; fail if the create ended first."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self._reached, lambda: None if arrived.done() else arrived.set_result(None))
        try:
            done, _ = await asyncio.wait({arrived, creating}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_reader(self._reached)
        assert arrived in done, f"the create ended before the gate: {creating}"

    def release(self) -> None:
        """Let the wrapper go on, whether it is already reading the gate or about to."""
        os.write(self._gate, b"go\n")

    def close(self) -> None:
        os.close(self._reached)
        os.close(self._gate)


def gated(dirs: Dirs, gate: Gate, binary: str, action: str, after: bool) -> dict[str, Any]:
    """CreateOpts arguments running the runc shim (``binary`` "shim") or runc ("runc") through
    a wrapper that stops at ``gate`` when it runs ``action`` -- before the real binary, or
    after it returned (its output and status are passed on once released)."""
    real = shutil.which("containerd-shim-runc-v2" if binary == "shim" else "runc")
    assert real is not None
    script = dirs.base / ("containerd-shim-gate-v2" if binary == "shim" else "runc-gate")
    if after and binary == "shim":  # start's output (the address) is held with it
        stop = f'out=$({real} "$@"); status=$?\n{gate.shell()}printf %s "$out"; exit $status\n'
    elif after:  # runc's stdio is the container's: left alone
        stop = f'{real} "$@"; status=$?\n{gate.shell()}exit $status\n'
    else:
        stop = gate.shell()
    # The shim's action is its last argument; runc's is the word among its flags.
    is_action = (
        '[ "${@: -1}" = ' + action + " ]"
        if binary == "shim"
        else (f'printf "%s\\n" "$@" | grep -qx {action}')
    )
    script.write_text(f'#!/bin/bash\nif {is_action}; then\n{stop}fi\nexec {real} "$@"\n')
    script.chmod(0o700)
    if binary == "shim":
        return {"runtime": str(script)}
    return {"runtime_options": runc_options_pb2.Options(binary_name=str(script))}


#: Where a create is cancelled: (wrapped binary, its action, stop after it ran, the bundle file
#: that shows the create got that far).
CANCEL_POINTS = {
    "shim-starting": ("shim", "start", False, "log"),
    "daemon-started": ("shim", "start", True, "address"),
    "shim-started": ("runc", "create", False, "bootstrap.json"),
    "container-creating": ("runc", "create", True, "init.pid"),
}


@pytest.mark.parametrize("point", CANCEL_POINTS)
async def test_cancelled_create_leaves_nothing(
    dirs: Dirs, busybox_rootfs: Path, task_manager: Any, point: str
) -> None:
    binary, action, after, marker = CANCEL_POINTS[point]
    gate = Gate(dirs.base)
    opts = CreateOpts(
        spec=spec_for(busybox_rootfs, ["/bin/true"], namespace=dirs.namespace),
        **gated(dirs, gate, binary, action, after),
    )
    creating = asyncio.create_task(task_manager.create("cancel", opts, namespace=dirs.namespace))
    try:
        async with asyncio.timeout(TIMEOUT):
            await gate.wait(creating)
        assert (dirs.bundles / "cancel" / marker).exists(), f"the create is not at {point}"
        # Cancelled while the wrapped binary is held: the create cannot have finished. A held
        # shim `start` stays held (the cancelled create kills it); a held runc is let go at
        # once, as the cleanup waits (bounded) for the shim's answer to Create.
        creating.cancel()
        if binary == "runc":
            gate.release()
        with pytest.raises(asyncio.CancelledError):
            await creating
    finally:
        gate.close()
    assert_nothing_left(dirs, "cancel")
    assert await task_manager.tasks(namespace=dirs.namespace) == []


async def test_effective_options_reach_start_info_create_and_delete(
    dirs: Dirs, busybox_rootfs: Path, host: Any
) -> None:
    """The seed bug: task options setting only io_uid/io_gid must not lose binary_name."""
    tasks = host.get("io.containerd.runtime.v2", "task")
    runc = shutil.which("runc")
    assert runc is not None
    info = introspection_pb2.RuntimeInfo(
        name="io.containerd.runc.v2",
        features=typeurl.pack_json(
            "features/Features",
            {"linux": {"mountExtensions": {"idmap": {"enabled": False}}}},
        ),
    )
    runtime, record = wrapper_runtime(dirs, info)
    runtime_options = runc_options_pb2.Options(binary_name=runc)
    task_options = runc_options_pb2.Options(io_uid=1000, io_gid=1000)
    # Plus the state dir's own runc root (runtime_v2.options.with_runc_root).
    expected = runc_options_pb2.Options(
        binary_name=runc, io_uid=1000, io_gid=1000, root=tasks.runc_root
    )

    def recorded(name: str) -> runc_options_pb2.Options:
        any_ = any_pb2.Any.FromString((record / f"{name}.stdin").read_bytes())
        return typeurl.unpack_as(any_, runc_options_pb2.Options)

    # -info (feature validation of an idmap spec; the wrapper says idmap is disabled).
    with pytest.raises(errdefs.FailedPrecondition, match="not present or disabled"):
        await tasks.create(
            "info",
            CreateOpts(
                spec=idmap_spec(dirs, busybox_rootfs, "info"),
                runtime=runtime,
                runtime_options=runtime_options,
                task_options=task_options,
            ),
            namespace=dirs.namespace,
        )
    assert recorded("info") == expected
    # PluginInfo goes through the same cache and runs -info with the options it is given.
    request = introspection_pb2.RuntimeRequest(runtime_path=runtime)
    request.options.CopyFrom(typeurl.pack(expected))
    assert (await tasks.plugin_info(request)).name == "io.containerd.runc.v2"

    # start and Create (the 1.6 shim writes binary_name into <bundle>/runtime at Create).
    spec = spec_for(busybox_rootfs, ["/bin/sleep", "600"], task_id="opts", namespace=dirs.namespace)
    async with asyncio.timeout(TIMEOUT):
        task = await tasks.create(
            "opts",
            CreateOpts(
                spec=spec,
                runtime=runtime,
                runtime_options=runtime_options,
                task_options=task_options,
            ),
            namespace=dirs.namespace,
        )
        assert recorded("start") == expected
        assert (Path(task.bundle) / "runtime").read_text() == runc
        await task.start()
        # delete: the shim binary's delete command runs when the shim dies.
        exchange = host.get("io.containerd.event.v1", "exchange")
        async with exchange.subscribe("/tasks/delete", namespace=dirs.namespace) as events:
            os.kill(task.shim.shim_pid, signal.SIGKILL)
            await events.get()
    assert recorded("delete") == expected
    assert_nothing_left(dirs, "opts")


async def test_a_shim_reaped_at_the_next_boot_gets_the_same_options_on_delete(
    dirs: Dirs, busybox_rootfs: Path, leak_check: None
) -> None:
    runc = shutil.which("runc")
    assert runc is not None
    runtime, record = wrapper_runtime(dirs)
    expected = runc_options_pb2.Options(
        binary_name=runc,
        io_uid=1000,
        io_gid=1000,
        root=str(dirs.state / "io.containerd.runtime.v2.task" / ".runc"),
    )
    first = await boot_host(dirs)
    try:
        tasks = first.get("io.containerd.runtime.v2", "task")
        spec = spec_for(
            busybox_rootfs, ["/bin/sleep", "600"], task_id="later", namespace=dirs.namespace
        )
        async with asyncio.timeout(TIMEOUT):
            task = await tasks.create(
                "later",
                CreateOpts(
                    spec=spec,
                    runtime=runtime,
                    runtime_options=runc_options_pb2.Options(binary_name=runc),
                    task_options=runc_options_pb2.Options(io_uid=1000, io_gid=1000),
                ),
                namespace=dirs.namespace,
            )
            await task.start()
        shim_pid = task.shim.shim_pid
    finally:
        await first.aclose()
    os.kill(shim_pid, signal.SIGKILL)
    await wait_process_exit(shim_pid)
    second = await boot_host(dirs)
    try:
        # Recovery runs at the namespace's first listing.
        await second.get("io.containerd.runtime.v2", "task").tasks(namespace=dirs.namespace)
        outcomes = {
            o.id: o.outcome for o in second.get("io.containerd.runtime.v2", "task").load_outcomes
        }
        assert outcomes == {"later": "reaped"}
    finally:
        await second.aclose()
    recorded = typeurl.unpack_as(
        any_pb2.Any.FromString((record / "delete.stdin").read_bytes()),
        runc_options_pb2.Options,
    )
    assert recorded == expected
    assert_nothing_left(dirs, "later")
