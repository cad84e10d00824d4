"""The shim plugin: config checks, the events service, dead-shim cleanup, -info caching."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import attrs
import pytest
from _fake_shim import FakeShim
from google.protobuf import empty_pb2

import plugins.builtin
import runtime_v2.builtin
from plugins.events import Exchange
from registry import ConfigError, boot_async
from registry.config import Config, decode_plugin_configs
from runtime_v2 import errdefs, shim_info, shim_manager, ttrpc, typeurl
from runtime_v2.api import (
    bootstrap_pb2,
    event_pb2,
    events_pb2,
    events_service_pb2,
    introspection_pb2,
    runc_options_pb2,
)
from runtime_v2.binary import ShimCommandError
from runtime_v2.bundle import new_bundle
from runtime_v2.runtime import Exit
from runtime_v2.shim import Shim
from runtime_v2.shim_cleanup import write_options
from runtime_v2.shim_config import ShimConfig
from runtime_v2.shim_manager import ShimManager
from runtime_v2.shim_socket import MAX_SOCKET_DIR_LEN, check_socket_dir, check_sun_path
from runtime_v2.start_protocol import BinaryProtocol

NS = "testns"
TIMEOUT = 10


@pytest.fixture
async def manager(base: Path) -> AsyncIterator[ShimManager]:
    exchange = Exchange()
    m = ShimManager(
        exchange=exchange,
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
    )
    await m.start_events_server()
    yield m
    await m.aclose()
    exchange.close()


def test_socket_dir_must_be_absolute() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="socket_dir must be an absolute path"):
        check_socket_dir("run/s")


def test_socket_dir_too_long_names_its_exact_length() -> None:
    long_dir = "/" + "d" * 50
    with pytest.raises(errdefs.InvalidArgument) as caught:
        check_socket_dir(long_dir)
    assert "is 51 characters long" in str(caught.value)
    assert f"no longer than {MAX_SOCKET_DIR_LEN} characters" in str(caught.value)
    assert check_socket_dir("/run/x/../s/") == "/run/s"


def test_sun_path_check_gives_the_exact_length() -> None:
    path = "/" + "p" * 110
    with pytest.raises(errdefs.InvalidArgument, match="is 111 bytes long"):
        check_sun_path(path, "ttrpc address")
    check_sun_path("/run/taskplane/taskplane.sock.ttrpc", "ttrpc address")


SHIM_URI = "io.containerd.shim.v1.manager"
TASK_URI = "io.containerd.runtime.v2.task"


def _decode(plugin_tables: dict[str, Any]) -> dict[str, object]:
    registrations = [
        *plugins.builtin.taskplane_registrations(),
        *runtime_v2.builtin.taskplane_registrations(),
    ]
    return decode_plugin_configs(
        Config.from_mapping({"version": 3, "plugins": plugin_tables}), registrations
    )


def _issues(plugin_tables: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        _decode(plugin_tables)
    return {issue.path: issue.message for issue in caught.value.issues}


def test_config_load_rejects_a_long_socket_dir_with_its_exact_length() -> None:
    long_dir = "/" + "s" * 60
    issues = _issues({SHIM_URI: {"socket_dir": long_dir}})
    message = issues[f'plugins."{SHIM_URI}".socket_dir']
    assert "is 61 characters long" in message
    assert f"no longer than {MAX_SOCKET_DIR_LEN} characters" in message
    # The init-time check (defense in depth) says exactly the same.
    with pytest.raises(errdefs.InvalidArgument) as at_init:
        check_socket_dir(long_dir)
    assert str(at_init.value) == message


def test_config_load_rejects_a_relative_socket_dir_and_bad_env_entries() -> None:
    issues = _issues({SHIM_URI: {"socket_dir": "run/s", "env": ["A=1", "NOEQUALS", "=x"]}})
    assert "socket_dir must be an absolute path" in issues[f'plugins."{SHIM_URI}".socket_dir']
    assert "'NOEQUALS' must have the form KEY=VALUE" in issues[f'plugins."{SHIM_URI}".env']


def test_config_load_names_a_bad_platform() -> None:
    issues = _issues({TASK_URI: {"platforms": ["linux/amd64", "linux/*"]}})
    message = issues[f'plugins."{TASK_URI}".platforms']
    assert 'invalid platform "linux/*"' in message


def test_config_load_accepts_good_values() -> None:
    decoded = _decode(
        {
            SHIM_URI: {
                "socket_dir": "/run/x/../s/",
                "env": ["SCHED_CORE=1"],
                "bootstrap_runtimes": ["io.containerd.runc.v2", "/opt/bin/containerd-shim-x-v1"],
            },
            TASK_URI: {"platforms": ["linux/amd64", "linux/arm64/v8"]},
        }
    )
    shim_config = decoded[SHIM_URI]
    assert isinstance(shim_config, ShimConfig)
    assert shim_config.bootstrap_runtimes == [
        "io.containerd.runc.v2",
        "/opt/bin/containerd-shim-x-v1",
    ]
    issues = _issues({SHIM_URI: {"bootstrap_runtimes": ["bin/shim", ""]}})
    assert "runtime name or an absolute path" in issues[f'plugins."{SHIM_URI}".bootstrap_runtimes']


async def test_init_checks_a_config_built_without_validation_the_same_way() -> None:
    long_dir = "/" + "s" * 60
    with attrs.validators.disabled():
        unchecked = ShimConfig(socket_dir=long_dir)
    with pytest.raises(errdefs.InvalidArgument) as at_init:
        await shim_manager.init(cast(Any, SimpleNamespace(config=unchecked)))
    assert (
        str(at_init.value)
        == _issues({SHIM_URI: {"socket_dir": long_dir}})[f'plugins."{SHIM_URI}".socket_dir']
    )


async def test_bad_socket_dir_fails_the_boot_at_config_load(base: Path) -> None:
    config = {"version": 3, "plugins": {SHIM_URI: {"socket_dir": "/" + "s" * 60}}}
    with pytest.raises(ConfigError, match="61 characters long"):
        await boot_async(
            config,
            builtins=[plugins.builtin, runtime_v2.builtin],
            autoload=False,
            root=str(base / "r"),
            state=str(base / "s"),
        )


async def test_state_dir_too_long_for_the_events_socket_fails_with_the_length(
    base: Path,
) -> None:
    deep = base / ("x" * 90)
    host = await boot_async(
        {},
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(base / "r"),
        state=str(deep),
    )
    try:
        status = next(s for s in host.statuses if s.uri == "io.containerd.shim.v1.manager")
        assert status.status == "failed"
        assert "bytes long; a unix socket path must be shorter than 108" in (status.reason or "")
    finally:
        await host.aclose()


async def test_forwarded_shim_events_reach_subscribers(manager: ShimManager) -> None:
    envelope = event_pb2.Envelope(
        namespace=NS, topic="/tasks/oom", event=typeurl.pack(events_pb2.TaskOOM(container_id="c1"))
    )
    envelope.timestamp.FromSeconds(1_700_000_000)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        async with await ttrpc.Client.connect(manager.ttrpc_address) as client:
            await client.call(
                "containerd.services.events.ttrpc.v1.Events",
                "Forward",
                events_service_pb2.ForwardRequest(envelope=envelope),
                empty_pb2.Empty,
                namespace=NS,
            )
            bad = event_pb2.Envelope(namespace=NS, topic="no-slash")
            bad.timestamp.FromSeconds(1)
            with pytest.raises(ttrpc.StatusError) as info:
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    events_service_pb2.ForwardRequest(envelope=bad),
                    empty_pb2.Empty,
                )
            assert type(errdefs.from_grpc(info.value)) is errdefs.InvalidArgument
        received = await events.get(timeout=TIMEOUT)
    assert received.topic == "/tasks/oom"
    assert received.unpack(events_pb2.TaskOOM).container_id == "c1"


async def test_only_one_process_serves_the_events_address_and_another_takes_over(
    manager: ShimManager, base: Path
) -> None:
    assert manager.serves_events
    second = ShimManager(
        exchange=Exchange(), grpc_address=str(base / "tp.sock"), ttrpc_address=manager.ttrpc_address
    )
    await second.start_events_server()
    try:
        assert not second.serves_events
        await manager.aclose()  # the owner goes away...
        async with asyncio.timeout(TIMEOUT):
            await second.events_served.wait()  # ...and the other process takes over
        assert second.serves_events
        envelope = event_pb2.Envelope(
            namespace=NS,
            topic="/tasks/oom",
            event=typeurl.pack(events_pb2.TaskOOM(container_id="c")),
        )
        envelope.timestamp.FromSeconds(1_700_000_000)
        async with second.exchange.subscribe(namespace=NS) as events:
            async with await ttrpc.Client.connect(manager.ttrpc_address) as client:
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    events_service_pb2.ForwardRequest(envelope=envelope),
                    empty_pb2.Empty,
                )
            assert (await events.get(timeout=TIMEOUT)).topic == "/tasks/oom"
    finally:
        await second.aclose()


async def test_a_closed_events_server_leaves_a_socket_that_refuses_at_once(
    manager: ShimManager,
) -> None:
    # Shims keep publishing after a daemonless taskplane process exits. A stale socket file
    # refuses them at once (ECONNREFUSED); a missing one makes the Go publisher retry on ENOENT
    # for seconds per event and delays the shim's exit by as much.
    await manager.aclose()
    assert stat.S_ISSOCK(os.stat(manager.ttrpc_address).st_mode)
    with pytest.raises(ttrpc.ConnectionRefused):
        await ttrpc.Client.connect(manager.ttrpc_address, timeout=TIMEOUT)


async def test_a_stale_events_socket_is_replaced(base: Path) -> None:
    import socket

    path = str(base / "stale.sock.ttrpc")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    m = ShimManager(exchange=Exchange(), grpc_address=str(base / "stale.sock"), ttrpc_address=path)
    await m.start_events_server()
    assert m.serves_events
    await m.aclose()


class FakeBinary:
    """Stands in for ShimBinary in the dead-shim cleanup."""

    def __init__(self, exit: Exit | None) -> None:
        self.exit = exit
        self.deleted = 0
        self.closed = 0
        self.options: list[Any] = []

    async def delete(self, options: Any = None, *, remove_bundle: bool = True) -> Exit:
        self.deleted += 1
        self.options.append(options)
        if self.exit is None:
            raise errdefs.Unknown("delete failed")
        return self.exit

    def close(self) -> None:
        self.closed += 1


async def _registered_shim(manager: ShimManager, base: Path, binary: Any) -> tuple[Shim, FakeShim]:
    fake = await FakeShim(str(base / "shim.sock"), versions=(2,)).start()
    bundle = new_bundle(str(base / "root"), str(base / "state"), NS, "dead", b"{}")
    client = await ttrpc.Client.connect(fake.address)
    shim = Shim(bundle, client, address=fake.address)
    manager.watch(shim, binary)
    await shim.negotiate()
    manager.shims.add(NS, "dead", shim)
    return shim, fake


@pytest.mark.parametrize(
    ("exit", "expected"),
    [(Exit(pid=42, status=137, timestamp=None), (42, 137)), (None, (0, 255))],
    ids=["delete-ok", "delete-failed"],
)
async def test_a_dead_shim_is_cleaned_up_and_reported(
    manager: ShimManager, base: Path, exit: Exit | None, expected: tuple[int, int]
) -> None:
    binary = FakeBinary(exit)
    shim, fake = await _registered_shim(manager, base, binary)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()  # the shim dies
        exit_event = await events.get(timeout=TIMEOUT)
        delete_event = await events.get(timeout=TIMEOUT)
    assert (exit_event.topic, delete_event.topic) == ("/tasks/exit", "/tasks/delete")
    task_exit = exit_event.unpack(events_pb2.TaskExit)
    task_delete = delete_event.unpack(events_pb2.TaskDelete)
    assert (task_exit.container_id, task_exit.id) == ("dead", "dead")
    assert (task_exit.pid, task_exit.exit_status) == expected
    assert (task_delete.pid, task_delete.exit_status) == expected
    assert task_exit.exited_at.seconds > 0
    assert binary.deleted == 1 and binary.closed >= 1
    assert not manager.shims.contains(NS, "dead")
    assert not os.path.exists(shim.bundle.path)


async def test_dead_shim_delete_gets_the_options_recorded_at_start(
    manager: ShimManager, base: Path
) -> None:
    binary = FakeBinary(Exit(pid=7, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    write_options(shim.bundle, options)
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()
        await events.get(timeout=TIMEOUT)
    assert binary.options == [options]


async def test_an_orderly_shutdown_publishes_nothing_and_runs_no_delete(
    manager: ShimManager, base: Path
) -> None:
    binary = FakeBinary(Exit(pid=1, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    shim.orderly_shutdown = True
    async with manager.exchange.subscribe("/tasks/*", namespace=NS) as events:
        await fake.stop()
        await shim.client.wait_closed()  # every on-close callback (the manager's) has returned
        # The barrier: an event published now comes after anything the manager published.
        await manager.exchange.publish(
            "/tasks/oom", events_pb2.TaskOOM(container_id="barrier"), namespace=NS
        )
        assert (await events.get(timeout=TIMEOUT)).topic == "/tasks/oom"
    assert binary.deleted == 0
    assert not manager.shims.contains(NS, "dead")


async def test_closing_the_manager_leaves_shims_alone(manager: ShimManager, base: Path) -> None:
    binary = FakeBinary(Exit(pid=1, status=0, timestamp=None))
    shim, fake = await _registered_shim(manager, base, binary)
    await manager.aclose()
    assert binary.deleted == 0
    assert os.path.exists(shim.bundle.path)
    assert not fake.shutdown_requested.is_set()
    assert manager.shims.get_all(all=True) == []
    await fake.stop()


def _info_script(base: Path, fail: bool = False) -> Path:
    info = introspection_pb2.RuntimeInfo(name="fake.runtime")
    (base / "info.out").write_bytes(info.SerializeToString())
    script = base / "containerd-shim-fake-v1"
    body = 'echo "no info" >&2; exit 3' if fail else f'cat "{base}/info.out"'
    script.write_text(f'#!/bin/sh\necho run >> "{base}/runs"\ncat > /dev/null\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _runs(base: Path) -> int:
    try:
        return len((base / "runs").read_text().split())
    except FileNotFoundError:
        return 0


async def test_info_results_are_cached_per_options(manager: ShimManager, base: Path) -> None:
    script = str(_info_script(base))
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    assert (await manager.runtime_info(script, None)).name == "fake.runtime"
    assert (await manager.runtime_info(script, None)).name == "fake.runtime"
    assert _runs(base) == 1
    await manager.runtime_info(script, options)
    assert _runs(base) == 2


async def test_info_failures_are_cached_and_raised_fresh_each_time(
    manager: ShimManager, base: Path
) -> None:
    script = str(_info_script(base, fail=True))
    caught = []
    for _ in range(3):
        with pytest.raises(ShimCommandError, match="no info") as excinfo:
            await manager.runtime_info(script, None)
        caught.append(excinfo.value)
    assert _runs(base) == 1
    first, second, third = caught
    assert type(first) is type(second) is type(third) is ShimCommandError
    assert str(first) == str(second) == str(third)
    assert second.exit_status == third.exit_status == 3
    assert first is not second and second is not third  # a new exception each time


async def test_touching_the_binary_runs_info_again(manager: ShimManager, base: Path) -> None:
    script = _info_script(base)
    await manager.runtime_info(str(script), None)
    await manager.runtime_info(str(script), None)
    assert _runs(base) == 1
    st = script.stat()
    os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    await manager.runtime_info(str(script), None)
    assert _runs(base) == 2
    await manager.runtime_info(str(script), None)
    assert _runs(base) == 2


async def test_replacing_the_runc_binary_the_options_name_runs_info_again(
    manager: ShimManager, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = str(_info_script(base))
    runc = base / "bin" / "runc"
    runc.parent.mkdir()
    runc.write_text("#!/bin/sh\n")
    runc.chmod(0o755)
    named = typeurl.pack(runc_options_pb2.Options(binary_name=str(runc)))
    monkeypatch.setenv("PATH", f"{runc.parent}:{os.environ['PATH']}")
    for options in (named, None):  # binary_name, or the shim's default "runc" found on PATH
        (base / "runs").unlink(missing_ok=True)
        await manager.runtime_info(script, options)
        await manager.runtime_info(script, options)
        assert _runs(base) == 1
        st = runc.stat()
        os.utime(runc, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        await manager.runtime_info(script, options)
        assert _runs(base) == 2


async def test_info_entries_expire_after_the_ttl(
    manager: ShimManager, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(shim_info, "_now", lambda: clock[0])
    monkeypatch.setattr(shim_info, "INFO_CACHE_TTL", 5.0)
    for fail in (False, True):  # results and failures alike
        (base / "runs").unlink(missing_ok=True)
        script = str(_info_script(base, fail=fail))

        async def info(script: str = script) -> None:
            with contextlib.suppress(ShimCommandError):
                await manager.runtime_info(script, None)

        await info()
        clock[0] += 4.9
        await info()
        assert _runs(base) == 1
        clock[0] += 0.2
        await info()
        assert _runs(base) == 2
        await info()
        assert _runs(base) == 2
        clock[0] += 100  # the next loop's script is new (other mtime or content)


def _gated(script: Path) -> Path:
    """Make the info ``script`` wait at a FIFO until :func:`_release` (instead of a sleep)."""
    gate = script.parent / "gate"
    os.mkfifo(gate)
    script.write_text(
        script.read_text().replace("cat > /dev/null", f'cat > /dev/null; read _ < "{gate}"')
    )
    return gate


async def _running(gate: Path) -> int:
    """Wait until a gated script runs (it opened the gate to read); the write end of it."""
    return await asyncio.to_thread(os.open, gate, os.O_WRONLY)


def _release(gate_fd: int) -> None:
    os.write(gate_fd, b"go\n")
    os.close(gate_fd)


async def test_concurrent_info_misses_share_one_run(manager: ShimManager, base: Path) -> None:
    script = _info_script(base)
    gate = _gated(script)
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    calls = asyncio.gather(
        manager.runtime_info(str(script), options),
        manager.runtime_info(str(script), options),
        manager.runtime_info(str(script), options),
    )
    async with asyncio.timeout(TIMEOUT):  # only to stop a hang (a second run waits forever)
        _release(await _running(gate))  # all three callers asked while the one run waited
        results = await calls
    assert [r.name for r in results] == ["fake.runtime"] * 3
    assert _runs(base) == 1
    results[0].name = "changed"  # every caller has its own copy
    assert results[1].name == "fake.runtime"


async def test_a_cancelled_caller_leaves_the_shared_info_run_to_the_others(
    manager: ShimManager, base: Path
) -> None:
    script = _info_script(base)
    gate = _gated(script)
    first = asyncio.ensure_future(manager.runtime_info(str(script), None))
    second = asyncio.ensure_future(manager.runtime_info(str(script), None))
    async with asyncio.timeout(TIMEOUT):  # only to stop a hang
        gate_fd = await _running(gate)  # the shared run has started
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)  # the cancellation is through
        _release(gate_fd)
        assert (await second).name == "fake.runtime"
    assert first.cancelled()
    assert _runs(base) == 1


async def test_unknown_runtime_for_info_is_not_found(manager: ShimManager) -> None:
    with pytest.raises(errdefs.NotFound):
        await manager.runtime_info("io.containerd.nosuch.v7", None)


def _recording_shim(base: Path, name: str, address: str) -> Path:
    """A shim binary whose ``start`` records its stdin and points at ``address`` (v3 ttrpc)."""
    result = bootstrap_pb2.BootstrapResult(version=3, address=address, protocol="ttrpc")
    (base / f"{name}.result").write_bytes(result.SerializeToString())
    script = base / "bin" / f"containerd-shim-{name}-v1"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        'for last in "$@"; do :; done\n'
        f'if [ "$last" = start ]; then cat > "{base}/{name}.stdin"; cat "{base}/{name}.result";\n'
        "else cat > /dev/null; fi\n"
    )
    script.chmod(0o755)
    return script


async def test_bootstrap_runtimes_get_bootstrap_params_and_others_the_options_any(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot_fake = await FakeShim(str(base / "boot.sock"), versions=(3,)).start()
    plain_fake = await FakeShim(str(base / "plain.sock"), versions=(3,)).start()
    _recording_shim(base, "boot", boot_fake.address)
    plain = _recording_shim(base, "plain", plain_fake.address)
    monkeypatch.setenv("PATH", f"{base / 'bin'}:{os.environ['PATH']}")
    exchange = Exchange()
    manager = ShimManager(
        exchange=exchange,
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
        socket_dir="/run/tp-test/s",
        bootstrap_runtimes=["io.containerd.boot.v1"],
    )
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    try:
        for task_id, runtime in (("booted", "io.containerd.boot.v1"), ("plain", str(plain))):
            bundle = new_bundle(str(base / "root"), str(base / "state"), NS, task_id, b"{}")
            task = await manager.start(bundle, runtime=runtime, options=options)
            await manager.abort(task.shim)
            bundle.delete()
    finally:
        await manager.aclose()
        exchange.close()
        await boot_fake.stop()
        await plain_fake.stop()

    params = bootstrap_pb2.BootstrapParams.FromString((base / "boot.stdin").read_bytes())
    assert (params.instance_id, params.namespace) == ("booted", NS)
    assert params.HasField("socket_dir") and params.socket_dir == "/run/tp-test/s"
    assert [e.value for e in params.extensions] == [options]  # the Any as is
    assert params.containerd_ttrpc_address == str(base / "tp.sock.ttrpc")
    assert (base / "plain.stdin").read_bytes() == options.SerializeToString()
    assert manager.uses_bootstrap(str(plain), str(plain)) is False
    by_path = ShimManager(
        exchange=exchange,
        grpc_address="g",
        ttrpc_address="t",
        socket_dir="/s",
        bootstrap_runtimes=[str(plain)],
    )
    assert by_path.uses_bootstrap("io.containerd.plain.v1", str(plain))


def _new_api_shim(base: Path, address: str) -> Path:
    """A shim binary whose ``start`` behaves like a containerd 2.3+ shim's (pkg/shim/compat.go):
    stdin must be BootstrapParams naming the command line's id and namespace, else it refuses
    with the deprecated-API message before starting anything. Each start's protocol is logged."""
    result = bootstrap_pb2.BootstrapResult(version=3, address=address, protocol="ttrpc")
    (base / "new.result").write_bytes(result.SerializeToString())
    script = base / "bin" / "containerd-shim-new-v2"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from runtime_v2.api import bootstrap_pb2\n"
        "args = sys.argv[1:]\n"
        "if args[-1] != 'start':\n"
        "    sys.stdin.buffer.read(); sys.exit(0)\n"
        "flags = dict(zip(args[:-1:2], args[1:-1:2]))\n"
        "data = sys.stdin.buffer.read()\n"
        "params = bootstrap_pb2.BootstrapParams()\n"
        "try:\n"
        "    params.ParseFromString(data)\n"
        "except Exception:\n"
        "    params = None\n"
        f"log = open({str(base / 'new.starts')!r}, 'a')\n"
        "if not data or params is None or params.instance_id != flags['-id'] "
        "or params.namespace != flags['-namespace']:\n"
        "    log.write('refused\\n')\n"
        "    print('io.containerd.new.v2: shim was started through the deprecated API but was '\n"
        "          'built against the new API; if you upgraded containerd, you may need to '\n"
        "          'restart the daemon')\n"
        "    sys.exit(1)\n"
        "log.write('bootstrap\\n')\n"
        f"sys.stdout.buffer.write(open({str(base / 'new.result')!r}, 'rb').read())\n"
    )
    script.chmod(0o755)
    return script


def _starts(base: Path, name: str) -> list[str]:
    try:
        return (base / f"{name}.starts").read_text().split()
    except FileNotFoundError:
        return []


async def _start_and_abort(
    manager: ShimManager, base: Path, runtime: str, task_id: str, *, versions: tuple[int, ...]
) -> None:
    """Start ``runtime`` for a new task (its daemon: a FakeShim at ``base/fake.sock``), then
    abort it (which shuts the fake down)."""
    fake = await FakeShim(str(base / "fake.sock"), versions=versions).start()
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    bundle = new_bundle(str(base / "root"), str(base / "state"), NS, task_id, b"{}")
    try:
        task = await manager.start(bundle, runtime=runtime, options=options)
        await manager.abort(task.shim)
    finally:
        bundle.delete()
        await fake.stop()


def _manager(base: Path, **kw: Any) -> ShimManager:
    return ShimManager(
        exchange=Exchange(),
        grpc_address=str(base / "tp.sock"),
        ttrpc_address=str(base / "tp.sock.ttrpc"),
        socket_dir="/run/tp-test/s",
        state_dir=str(base / "shimstate"),
        **kw,
    )


async def test_a_new_api_shim_is_negotiated_once_and_remembered_across_processes(
    base: Path,
) -> None:
    script = str(_new_api_shim(base, f"unix://{base / 'fake.sock'}"))
    first = _manager(base)
    try:
        await _start_and_abort(first, base, script, "one", versions=(3,))
        assert _starts(base, "new") == ["refused", "bootstrap"]
        await _start_and_abort(first, base, script, "two", versions=(3,))  # remembered in memory
        assert _starts(base, "new")[2:] == ["bootstrap"]
        assert first.start_protocols.get(script) == BinaryProtocol(
            script, os.stat(script).st_mtime_ns, "bootstrap", 3
        )
    finally:
        await first.aclose()
    second = _manager(base)  # a later taskplane process on the same state dir
    try:
        await _start_and_abort(second, base, script, "three", versions=(3,))
        assert _starts(base, "new")[3:] == ["bootstrap"]
        st = os.stat(script)  # a replaced binary is negotiated again
        os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        await _start_and_abort(second, base, script, "four", versions=(3,))
        assert _starts(base, "new")[4:] == ["refused", "bootstrap"]
    finally:
        await second.aclose()


async def test_an_old_shim_gets_the_options_any_in_one_start_and_that_is_remembered(
    base: Path,
) -> None:
    script = str(_recording_shim(base, "old", f"unix://{base / 'fake.sock'}"))
    manager = _manager(base)
    options = typeurl.pack(runc_options_pb2.Options(binary_name="crun"))
    try:
        await _start_and_abort(manager, base, script, "one", versions=(2,))
    finally:
        await manager.aclose()
    assert (base / "old.stdin").read_bytes() == options.SerializeToString()
    assert _manager(base).start_protocols.get(script) == BinaryProtocol(
        script, os.stat(script).st_mtime_ns, "legacy", 2
    )


async def test_another_start_failure_is_not_retried_with_bootstrap_params(base: Path) -> None:
    script = base / "bin" / "containerd-shim-broken-v2"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        'for last in "$@"; do :; done\n'
        f'[ "$last" = start ] && echo run >> "{base}/broken.starts"\n'
        "echo no such thing\nexit 1\n"
    )
    script.chmod(0o755)
    manager = _manager(base)
    try:
        with pytest.raises(ShimCommandError, match="no such thing"):
            await _start_and_abort(manager, base, str(script), "one", versions=(3,))
    finally:
        await manager.aclose()
    assert _starts(base, "broken") == ["run"]
    assert manager.start_protocols.get(str(script)) is None


async def test_bootstrap_runtimes_override_the_negotiation(base: Path) -> None:
    script = str(_new_api_shim(base, f"unix://{base / 'fake.sock'}"))
    manager = _manager(base, bootstrap_runtimes=[script])
    try:
        await _start_and_abort(manager, base, script, "one", versions=(3,))
    finally:
        await manager.aclose()
    assert _starts(base, "new") == ["bootstrap"]


async def test_a_wrong_legacy_record_is_corrected_by_the_shims_refusal(base: Path) -> None:
    script = str(_new_api_shim(base, f"unix://{base / 'fake.sock'}"))
    _manager(base).start_protocols.record(script, "legacy", 2)  # e.g. a hand-edited file
    manager = _manager(base)
    try:
        await _start_and_abort(manager, base, script, "one", versions=(3,))
    finally:
        await manager.aclose()
    assert _starts(base, "new") == ["refused", "bootstrap"]
    recorded = _manager(base).start_protocols.get(script)
    assert recorded is not None and recorded.start_protocol == "bootstrap"
