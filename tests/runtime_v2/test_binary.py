"""Running shim binaries: start, delete and -info, with fake shims and the real runc shim."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import shutil
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from runtime_v2 import errdefs, ttrpc, typeurl
from runtime_v2.api import bootstrap_pb2, introspection_pb2, runc_options_pb2, task_v2_pb2
from runtime_v2.api import task_v3_pb2 as task_pb2
from runtime_v2.binary import (
    ShimBinary,
    ShimCommandError,
    run_info,
    shim_env,
)
from runtime_v2.bundle import Bundle, new_bundle
from runtime_v2.runtime import Exit
from runtime_v2.shim_log import LOG_TAIL_BYTES, SHIM_LOGGER, ShimLog
from runtime_v2.start_response import ShimEndpoint, read_bootstrap_json
from tests.prerequisites import need

NS = "testns"
TASK = "task1"
GRPC = "/run/taskplane-test/taskplane.sock"
TTRPC = GRPC + ".ttrpc"

# A fake shim: records how it was run, then does what the plan file says for its action.
FAKE_SHIM = """\
#!{python}
import base64, json, os, sys
args = sys.argv[1:]
action = "info" if "-info" in args else "version" if "-v" in args else args[-1]
stdin = sys.stdin.buffer.read() if action != "version" else b""
record = {{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
          "stdin": base64.b64encode(stdin).decode(), "pgid": os.getpgid(0), "pid": os.getpid()}}
with open(os.environ["FAKE_SHIM_RECORD"] + "." + action, "w") as f:
    json.dump(record, f)
with open(os.environ["FAKE_SHIM_PLAN"]) as f:
    plan = json.load(f).get(action, {{}})
if plan.get("log_lines"):
    with open("log", "w") as log:
        for line in plan["log_lines"]:
            log.write(line + "\\n")
sys.stdout.buffer.write(base64.b64decode(plan.get("stdout", "")))
sys.stdout.flush()
sys.stderr.write(plan.get("stderr", ""))
sys.exit(plan.get("exit", 0))
"""


class FakeShim:
    """A fake shim binary plus the plan it follows and what it recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bin" / "containerd-shim-fake-v2"
        self.path.parent.mkdir()
        self.path.write_text(FAKE_SHIM.format(python=sys.executable))
        self.path.chmod(0o755)
        self.plan_file = tmp_path / "plan.json"
        self.record_prefix = str(tmp_path / "record")
        self.plan({})

    def plan(self, plan: dict[str, dict[str, Any]]) -> None:
        for step in plan.values():
            if isinstance(step.get("stdout"), bytes):
                step["stdout"] = base64.b64encode(step["stdout"]).decode()
        self.plan_file.write_text(json.dumps(plan))

    def env(self) -> list[str]:
        return [f"FAKE_SHIM_PLAN={self.plan_file}", f"FAKE_SHIM_RECORD={self.record_prefix}"]

    def record(self, action: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(Path(f"{self.record_prefix}.{action}").read_text())
        data["stdin"] = base64.b64decode(data["stdin"])
        return data

    def ran(self, action: str) -> bool:
        return os.path.exists(f"{self.record_prefix}.{action}")


@pytest.fixture
def fake(tmp_path: Path) -> FakeShim:
    return FakeShim(tmp_path)


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Bundle]:
    b = new_bundle(str(tmp_path / "root"), str(tmp_path / "state"), NS, TASK, b"{}")
    yield b
    b.delete()


def _binary(fake: FakeShim, bundle: Bundle, **kwargs: Any) -> ShimBinary:
    return ShimBinary(
        str(fake.path),
        bundle=bundle,
        grpc_address=GRPC,
        ttrpc_address=TTRPC,
        env=fake.env() + kwargs.pop("env", []),
        **kwargs,
    )


V3 = bootstrap_pb2.BootstrapResult(version=3, address="unix:///run/x.sock", protocol="ttrpc")


# --- start ---------------------------------------------------------------------------------------


async def test_start_runs_the_shim_like_containerd(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan({"start": {"stdout": V3.SerializeToString()}})
    binary = _binary(fake, bundle, env=["SCHED_CORE=1", "GOMAXPROCS=7"])
    try:
        endpoint = await binary.start()
    finally:
        binary.close()
    assert endpoint == ShimEndpoint(3, "unix:///run/x.sock", "ttrpc")
    rec = fake.record("start")
    assert rec["argv"] == [
        str(fake.path),
        "-namespace", NS,
        "-address", GRPC,
        "-publish-binary", sys.executable,
        "-id", TASK,
        "start",
    ]  # fmt: skip
    assert rec["cwd"] == bundle.path
    env = rec["env"]
    assert env["MAX_SHIM_VERSION"] == "2"
    assert env["TTRPC_ADDRESS"] == TTRPC
    assert env["GRPC_ADDRESS"] == GRPC
    assert env["NAMESPACE"] == NS
    assert env["SCHED_CORE"] == "1"
    assert env["GOMAXPROCS"] == "7"  # configured entries come last and win
    assert env["PATH"] == os.environ["PATH"]  # our environment is inherited
    assert rec["stdin"] == b""
    assert rec["pgid"] == rec["pid"]  # its own process group


async def test_start_sends_the_options_any_on_stdin(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan({"start": {"stdout": V3.SerializeToString()}})
    options = typeurl.pack(runc_options_pb2.Options(binary_name="/usr/sbin/runc"))
    binary = _binary(fake, bundle, debug=True)
    try:
        await binary.start(options)
    finally:
        binary.close()
    rec = fake.record("start")
    assert rec["stdin"] == options.SerializeToString()
    assert rec["argv"][-2:] == ["-debug", "start"]


async def test_start_with_bootstrap_sends_bootstrap_params(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan({"start": {"stdout": V3.SerializeToString()}})
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    binary = _binary(fake, bundle, socket_dir="/run/containerd/s", publish_binary="/usr/bin/tp")
    try:
        await binary.start(options, bootstrap=True)
    finally:
        binary.close()
    params = bootstrap_pb2.BootstrapParams()
    params.ParseFromString(fake.record("start")["stdin"])
    assert params.instance_id == TASK
    assert params.namespace == NS
    assert params.log_level == bootstrap_pb2.INFO
    # A semver of the containerd whose protocol we speak, ours as build metadata.
    version, _, build = params.containerd_version.partition("+")
    assert version == "2.4.0" and build.startswith("taskplane.")
    assert params.containerd_ttrpc_address == TTRPC
    assert params.containerd_grpc_address == GRPC
    assert params.containerd_binary == "/usr/bin/tp"
    assert params.HasField("socket_dir")
    assert params.socket_dir == "/run/containerd/s"
    assert len(params.extensions) == 1
    assert params.extensions[0].value == options  # not wrapped twice


async def test_bootstrap_params_log_at_debug_with_debug(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan({"start": {"stdout": V3.SerializeToString()}})
    binary = _binary(fake, bundle, debug=True)
    try:
        await binary.start(None, bootstrap=True)
    finally:
        binary.close()
    params = bootstrap_pb2.BootstrapParams.FromString(fake.record("start")["stdin"])
    assert params.log_level == bootstrap_pb2.DEBUG
    assert fake.record("start")["argv"][-2:] == ["-debug", "start"]


async def test_start_writes_shim_binary_path_and_bootstrap_json(
    fake: FakeShim, bundle: Bundle
) -> None:
    fake.plan({"start": {"stdout": b'{"version":3,"address":"unix:///x","protocol":"ttrpc"}\n'}})
    binary = _binary(fake, bundle)
    try:
        await binary.start()
    finally:
        binary.close()
    path_file = Path(bundle.path, "shim-binary-path")
    assert path_file.read_bytes() == str(fake.path).encode()  # no newline
    assert stat.S_IMODE(path_file.stat().st_mode) == 0o600
    assert read_bootstrap_json(bundle.path) == ShimEndpoint(3, "unix:///x", "ttrpc")
    log_fifo = Path(bundle.path, "log")
    assert stat.S_ISFIFO(log_fifo.stat().st_mode)
    assert stat.S_IMODE(log_fifo.stat().st_mode) == 0o700


async def test_plain_text_output_of_a_1_6_shim(fake: FakeShim, bundle: Bundle) -> None:
    address = "unix:///run/containerd/s/" + "ab" * 32
    fake.plan({"start": {"stdout": address.encode()}})
    binary = _binary(fake, bundle)
    try:
        assert await binary.start() == ShimEndpoint(2, address, "ttrpc")
    finally:
        binary.close()


async def test_failed_start_names_the_binary_with_output_exit_status_and_log(
    fake: FakeShim, bundle: Bundle
) -> None:
    fake.plan(
        {
            "start": {
                "log_lines": ['time="t" level=error msg="cannot create cgroup"'],
                "stdout": b"partial output\n",
                "stderr": "io.containerd.fake.v2: shim namespace cannot be empty",
                "exit": 1,
            }
        }
    )
    binary = _binary(fake, bundle)
    with pytest.raises(ShimCommandError) as info:
        await binary.start()
    message = str(info.value)
    assert message.startswith(f"{fake.path} start failed: partial output\n")
    assert "shim namespace cannot be empty: exit status 1" in message
    assert 'last shim log lines:\ntime="t" level=error msg="cannot create cgroup"' in message
    assert info.value.exit_status == 1
    assert isinstance(info.value, errdefs.Unknown)
    assert binary.log.closed
    assert not Path(bundle.path, "shim-binary-path").exists()


async def test_start_of_a_missing_binary_is_not_found(bundle: Bundle, tmp_path: Path) -> None:
    binary = ShimBinary(
        str(tmp_path / "nope"), bundle=bundle, grpc_address=GRPC, ttrpc_address=TTRPC
    )
    with pytest.raises(errdefs.NotFound, match=r"failed to run .*nope"):
        await binary.start()
    assert binary.log.closed


async def test_unusable_start_output_reaps_the_shim_with_delete(
    fake: FakeShim, bundle: Bundle
) -> None:
    fake.plan({"start": {"stdout": b'{"version":4,"address":"unix:///x","protocol":"ttrpc"}'}})
    binary = _binary(fake, bundle)
    with pytest.raises(errdefs.NotImplemented, match=r"unsupported shim version \(4\)"):
        await binary.start()
    assert fake.ran("delete")
    assert os.path.isdir(bundle.path)  # the bundle is the caller's
    assert binary.log.closed


async def test_cancelled_start_kills_the_start_process(
    fake: FakeShim, bundle: Bundle, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    hang = fake.path.with_name("containerd-shim-hang-v2")
    hang.write_text(
        f"#!{sys.executable}\nimport time\n"
        f"with open({str(ready)!r}, 'w') as f:\n    f.write('started')\n"
        "time.sleep(60)\n"
    )
    hang.chmod(0o755)
    reader = os.open(ready, os.O_RDONLY | os.O_NONBLOCK)
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(reader, started.set)
    binary = ShimBinary(str(hang), bundle=bundle, grpc_address=GRPC, ttrpc_address=TTRPC)
    task = asyncio.create_task(binary.start())
    try:
        async with asyncio.timeout(10):
            await started.wait()
    finally:
        loop.remove_reader(reader)
        os.close(reader)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert binary.log.closed
    # No process runs the hanging script any more.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(hang).encode() not in cmdline


# --- the log FIFO --------------------------------------------------------------------------------


async def test_shim_log_lines_go_to_the_logger_with_their_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shim_log = ShimLog(str(tmp_path / "log"), namespace=NS, task_id=TASK)
    shim_log.open()
    caplog.set_level(logging.DEBUG, logger=SHIM_LOGGER.name)
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b'time="x" level=warning msg="low memory"\nplain line\npart')
    os.write(fd, b"ial\nlevel=debug msg=hi\nno newline at end")
    os.close(fd)
    shim_log.close()
    records = [(r.levelno, r.getMessage(), r.task_id) for r in caplog.records]  # type: ignore[attr-defined]
    assert records == [
        (logging.WARNING, f'shim {NS}/{TASK}: time="x" level=warning msg="low memory"', TASK),
        (logging.INFO, f"shim {NS}/{TASK}: plain line", TASK),
        (logging.INFO, f"shim {NS}/{TASK}: partial", TASK),
        (logging.DEBUG, f"shim {NS}/{TASK}: level=debug msg=hi", TASK),
        (logging.INFO, f"shim {NS}/{TASK}: no newline at end", TASK),
    ]
    assert shim_log.closed
    shim_log.close()  # idempotent


async def test_shim_log_problems_are_its_warning_error_and_unlevelled_lines(
    tmp_path: Path,
) -> None:
    shim_log = ShimLog(str(tmp_path / "log"), namespace=NS, task_id=TASK)
    shim_log.open()
    try:
        fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"level=info msg=a\nlevel=warning msg=b\nplain\nlevel=debug msg=c\n")
        os.write(fd, b"level=trace msg=d\nlevel=error msg=e\n")
        os.close(fd)
        assert shim_log.problems() == "level=warning msg=b\nplain\nlevel=error msg=e"
    finally:
        shim_log.close()


async def test_shim_log_is_drained_as_it_arrives(tmp_path: Path) -> None:
    shim_log = ShimLog(str(tmp_path / "log"), namespace=NS, task_id=TASK)
    shim_log.open()
    try:
        writer = os.open(tmp_path / "log", os.O_WRONLY | os.O_NONBLOCK)
        big = b"x" * 1000 + b"\n"
        # Far more than a pipe buffer (64 KiB): only a drained FIFO accepts it all.
        for _ in range(500):
            while True:
                try:
                    os.write(writer, big)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0)  # let the reader run
        os.close(writer)
        tail = shim_log.tail()
        assert len(tail) <= LOG_TAIL_BYTES
        assert tail.endswith("x" * 1000)
    finally:
        shim_log.close()


async def test_shim_log_refuses_a_non_fifo(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("regular file")
    shim_log = ShimLog(str(tmp_path / "log"), namespace=NS, task_id=TASK)
    with pytest.raises(errdefs.AlreadyExists, match="is not a FIFO"):
        shim_log.open()


# --- delete --------------------------------------------------------------------------------------


def _delete_response(pid: int, status: int, seconds: int) -> bytes:
    return task_pb2.DeleteResponse(
        pid=pid, exit_status=status, exited_at=timestamp_pb2.Timestamp(seconds=seconds, nanos=5000)
    ).SerializeToString()


async def test_delete_runs_the_delete_command_and_removes_the_bundle(
    fake: FakeShim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = new_bundle(str(tmp_path / "root"), str(tmp_path / "state"), NS, TASK, b"{}")
    fake.plan(
        {
            "delete": {
                "stdout": _delete_response(18874, 137, 1795880404),
                "stderr": 'time="t" level=info msg="starting signal loop"\n',
            }
        }
    )
    binary = _binary(fake, b, debug=True)
    exit = await binary.delete()
    assert exit == Exit(
        pid=18874,
        status=137,
        timestamp=dt.datetime.fromtimestamp(1795880404, dt.UTC) + dt.timedelta(microseconds=5),
    )
    rec = fake.record("delete")
    assert rec["argv"][1:] == [
        "-namespace", NS,
        "-address", GRPC,
        "-publish-binary", sys.executable,
        "-id", TASK,
        "-bundle", b.path,
        "-debug",
        "delete",
    ]  # fmt: skip
    assert rec["cwd"] == b.path
    assert rec["stdin"] == b""
    assert rec["env"]["NAMESPACE"] == NS
    assert "warnings while cleaning up dead shim" in caplog.text
    assert not os.path.exists(b.path)
    assert not os.path.exists(tmp_path / "root" / NS / TASK)


async def test_delete_sends_the_options_any_on_stdin(fake: FakeShim, bundle: Bundle) -> None:
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun", io_uid=1000))
    exit = await _binary(fake, bundle).delete(options, remove_bundle=False)
    assert exit == Exit(pid=0, status=0, timestamp=None)
    assert fake.record("delete")["stdin"] == options.SerializeToString()
    await _binary(fake, bundle).delete(remove_bundle=False)
    assert fake.record("delete")["stdin"] == b""  # /dev/null without options


async def test_unusable_start_output_reaps_with_the_start_options(
    fake: FakeShim, bundle: Bundle
) -> None:
    fake.plan({"start": {"stdout": b'{"version":4,"address":"unix:///x","protocol":"ttrpc"}'}})
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    binary = _binary(fake, bundle)
    with pytest.raises(errdefs.NotImplemented):
        await binary.start(options)
    assert fake.record("delete")["stdin"] == options.SerializeToString()
    assert binary.log.closed


async def test_real_1_6_20_delete_output_decodes(fake: FakeShim, bundle: Bundle) -> None:
    observed = bytes.fromhex("08ba93011089011a0b08d4ebabd80610d0b9ea54")
    fake.plan({"delete": {"stdout": observed}})
    exit = await _binary(fake, bundle).delete(remove_bundle=False)
    assert (exit.pid, exit.status) == (18874, 137)
    assert exit.timestamp is not None
    assert int(exit.timestamp.timestamp()) == 1795880404


async def test_failed_delete_carries_the_shim_stderr(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan(
        {
            "delete": {
                "stderr": "io.containerd.runc.v2: open /x/runtime: no such file or directory",
                "exit": 1,
            }
        }
    )
    with pytest.raises(ShimCommandError) as info:
        await _binary(fake, bundle).delete()
    assert str(info.value) == (
        f"{fake.path} delete failed: io.containerd.runc.v2: open /x/runtime: "
        "no such file or directory: exit status 1"
    )
    assert os.path.isdir(bundle.path)  # kept: the shim could not clean up


async def test_delete_output_that_is_not_a_delete_response(fake: FakeShim, bundle: Bundle) -> None:
    fake.plan({"delete": {"stdout": b"not protobuf at all"}})
    with pytest.raises(errdefs.Unknown, match="is not a DeleteResponse"):
        await _binary(fake, bundle).delete(remove_bundle=False)


async def test_delete_without_a_bundle_is_not_found(fake: FakeShim, tmp_path: Path) -> None:
    from runtime_v2.bundle import load_bundle

    binary = _binary(fake, load_bundle(str(tmp_path / "state"), NS, TASK))
    with pytest.raises(errdefs.NotFound, match="does not exist"):
        await binary.delete()
    assert not fake.ran("delete")


async def test_delete_with_empty_output_gives_a_zero_exit(fake: FakeShim, bundle: Bundle) -> None:
    exit = await _binary(fake, bundle).delete(remove_bundle=False)
    assert exit == Exit(pid=0, status=0, timestamp=None)


# --- -info ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_env(fake: FakeShim, monkeypatch: pytest.MonkeyPatch) -> FakeShim:
    for entry in fake.env():
        key, _, value = entry.partition("=")
        monkeypatch.setenv(key, value)
    return fake


async def test_info_sends_options_on_stdin_and_decodes_runtime_info(fake_env: FakeShim) -> None:
    info = introspection_pb2.RuntimeInfo(
        name="io.containerd.fake.v2", version=introspection_pb2.RuntimeVersion(version="2.4.0")
    )
    fake_env.plan({"info": {"stdout": info.SerializeToString()}})
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun", io_uid=1000))
    assert await run_info(str(fake_env.path), options) == info
    assert fake_env.record("info")["stdin"] == options.SerializeToString()
    assert fake_env.record("info")["argv"][1:] == ["-info"]
    await run_info(str(fake_env.path))
    assert fake_env.record("info")["stdin"] == b""


async def test_info_failure_names_the_command_and_stderr(fake_env: FakeShim) -> None:
    fake_env.plan({"info": {"stderr": "boom", "exit": 3}})
    with pytest.raises(ShimCommandError) as info:
        await run_info(str(fake_env.path))
    assert (
        str(info.value) == f"failed to run [{fake_env.path} -info]: exit status 3 (stderr: 'boom')"
    )


async def test_info_output_that_is_not_runtime_info(fake_env: FakeShim) -> None:
    fake_env.plan({"info": {"stdout": b"\x0f"}})
    with pytest.raises(errdefs.Unknown, match=r"into \*types.RuntimeInfo"):
        await run_info(str(fake_env.path))


async def test_info_of_a_shim_without_the_flag_is_not_implemented_with_its_version(
    fake_env: FakeShim,
) -> None:
    fake_env.plan(
        {
            "info": {"stderr": "flag provided but not defined: -info\nUsage of ...", "exit": 2},
            "version": {"stdout": b"containerd-shim-fake-v2:\n  Version:  1.6.20~ds1\n"},
        }
    )
    with pytest.raises(errdefs.NotImplemented) as info:
        await run_info(str(fake_env.path))
    assert str(info.value).startswith("containerd-shim-fake-v2 (1.6.20~ds1) does not support -info")


def test_shim_env_rejects_malformed_entries() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="KEY=VALUE"):
        shim_env(grpc_address=GRPC, ttrpc_address=TTRPC, namespace=NS, extra=["NOEQUALS"])


# --- the real containerd-shim-runc-v2 -----------------------------------------------------------

REAL_SHIM = shutil.which("containerd-shim-runc-v2") or "/usr/bin/containerd-shim-runc-v2"


def _require_real_shim() -> None:
    need(os.path.exists(REAL_SHIM) and os.geteuid() == 0, f"{REAL_SHIM} is missing or not root")


def _daemon_pids(bundle_path: str) -> list[int]:
    """PIDs of shim daemons whose cwd is the bundle."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != bundle_path:
                continue
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if os.path.basename(exe).startswith("containerd-shim"):
            pids.append(int(entry))
    return pids


async def _wait_exit(pid: int, timeout: float) -> None:
    """Wait until ``pid`` exits, on a pidfd (no polling)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    try:
        async with asyncio.timeout(timeout):
            await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


@pytest.mark.integration
async def test_real_runc_shim_starts_and_is_cleaned_up(tmp_path: Path) -> None:
    _require_real_shim()
    grpc_address = str(tmp_path / "taskplane.sock")
    b = new_bundle(
        str(tmp_path / "root"),
        str(tmp_path / "state"),
        NS,
        "real-shim1",
        json.dumps({"ociVersion": "1.0.2", "annotations": {}}).encode(),
    )
    binary = ShimBinary(
        REAL_SHIM,
        bundle=b,
        grpc_address=grpc_address,
        ttrpc_address=grpc_address + ".ttrpc",
        publish_binary="/usr/bin/containerd",
    )
    socket_path = None
    try:
        endpoint = await binary.start()
        assert endpoint.version == 2
        assert endpoint.protocol == "ttrpc"
        prefix = "unix:///run/containerd/s/"
        assert endpoint.address.startswith(prefix)
        digest = endpoint.address[len(prefix) :]
        assert len(digest) == 64
        assert int(digest, 16) >= 0
        socket_path = endpoint.address.removeprefix("unix://")
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
        assert Path(b.path, "shim-binary-path").read_text() == REAL_SHIM
        assert read_bootstrap_json(b.path) == endpoint
        # The daemon answers over ttrpc (so it has set up its signal handling, too).
        async with asyncio.timeout(10):
            client = await ttrpc.Client.connect(endpoint.address)
            try:
                connected = await client.call(
                    "containerd.task.v2.Task",
                    "Connect",
                    task_v2_pb2.ConnectRequest(id=b.id),
                    task_v2_pb2.ConnectResponse,
                    namespace=NS,
                )
            finally:
                await client.close()
        assert _daemon_pids(b.path) == [connected.shim_pid]
    finally:
        pids = _daemon_pids(b.path)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        for pid in pids:
            await _wait_exit(pid, 10)
        # The 1.6 shim's delete needs the `runtime` file a Create would have written.
        with pytest.raises(ShimCommandError, match="runtime: no such file or directory"):
            await binary.delete()
        binary.close()
        b.delete()
    assert _daemon_pids(b.path) == []
    assert socket_path is not None
    assert not os.path.exists(socket_path)
    assert not os.path.exists(b.path)
