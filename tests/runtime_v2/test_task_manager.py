"""The task plugin: init, create's early failures, feature validation, plugin_info."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

import plugins.builtin
import runtime_v2.builtin
from plugins import errdefs
from registry import ConfigError, boot_async
from runtime_v2 import CreateOpts, TaskManager, task_manager, typeurl
from runtime_v2.api import introspection_pb2, mount_pb2
from runtime_v2.locks import lock_path
from runtime_v2.task_config import TaskConfig
from runtime_v2.task_manager import uses_idmap_mounts, validate_runtime_features

TASK_URI = "io.containerd.runtime.v2.task"


async def boot(base: Path, config: dict[str, Any] | None = None) -> Any:
    return await boot_async(
        config or {},
        builtins=[plugins.builtin, runtime_v2.builtin],
        autoload=False,
        root=str(base / "r"),
        state=str(base / "s"),
    )


@pytest.fixture
async def tasks(base: Path) -> AsyncIterator[TaskManager]:
    host = await boot(base)
    yield host.get("io.containerd.runtime.v2", "task")
    await host.aclose()


async def test_init_sets_platforms_exports_and_private_dirs(base: Path) -> None:
    host = await boot(base)
    try:
        status = next(s for s in host.statuses if s.uri == TASK_URI)
        assert status.status == "loaded"
        assert len(status.platforms) == 1 and status.platforms[0].startswith("linux/")
        assert status.exports["log-uri-schemes"] == "fifo,binary,binary-v2,file"
        for d in (base / "r" / TASK_URI, base / "s" / TASK_URI):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o711
        assert host.get("io.containerd.runtime.v2", "task").load_outcomes == []
    finally:
        await host.aclose()


async def test_init_keeps_the_mode_an_administrator_gave_existing_dirs(base: Path) -> None:
    # containerd's init only creates its dirs (0711); existing ones keep their mode.
    for d in (base / "r" / TASK_URI, base / "s" / TASK_URI):
        d.mkdir(parents=True)
        d.chmod(0o750)
    host = await boot(base)
    try:
        for d in (base / "r" / TASK_URI, base / "s" / TASK_URI):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    finally:
        await host.aclose()


async def test_an_invalid_platform_fails_the_config_load_naming_it(base: Path) -> None:
    config = {"version": 3, "plugins": {TASK_URI: {"platforms": ["linux/amd64", "not/a/real/x"]}}}
    with pytest.raises(ConfigError) as caught:
        await boot(base, config)
    (issue,) = caught.value.issues
    assert issue.path == f'plugins."{TASK_URI}".platforms'
    assert 'invalid platform "not/a/real/x"' in issue.message
    # Defense in depth: a config built in code without validation fails init the same way.
    with attrs.validators.disabled():
        unchecked = TaskConfig(platforms=["not/a/real/x"])
    ic: Any = SimpleNamespace(config=unchecked, meta=SimpleNamespace(platforms=[], exports={}))
    with pytest.raises(errdefs.InvalidArgument) as at_init:
        await task_manager.init(ic)
    assert issue.message in str(at_init.value)


async def test_configured_platforms_are_normalized(base: Path) -> None:
    host = await boot(base, {"version": 3, "plugins": {TASK_URI: {"platforms": ["linux/arm64"]}}})
    try:
        status = next(s for s in host.statuses if s.uri == TASK_URI)
        assert status.platforms[0].startswith("linux/arm64")
    finally:
        await host.aclose()


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "x" * 77, "", "naïve", ".dot"])
async def test_bad_ids_are_rejected_before_touching_the_disk(
    tasks: TaskManager, base: Path, bad_id: str
) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="invalid task id"):
        await tasks.create(bad_id, CreateOpts(spec=b"{}"), namespace="ns")
    assert os.listdir(tasks.state) == []


async def test_unknown_runtime_leaves_no_bundle(tasks: TaskManager) -> None:
    with pytest.raises(errdefs.NotFound) as caught:
        await tasks.create(
            "t", CreateOpts(spec=b"{}", runtime="io.containerd.nope.v1"), namespace="ns"
        )
    # containerd's words, which tools match, and the errdefs kind last.
    text = str(caught.value)
    assert text.startswith(
        "failed to start shim: failed to resolve runtime path: "
        'runtime "io.containerd.nope.v1" binary not installed "containerd-shim-nope-v1" ('
    )
    assert text.endswith("never the working directory): not found")
    assert os.listdir(os.path.join(tasks.state, "ns")) == []
    assert os.listdir(os.path.join(tasks.root, "ns")) == []


async def test_runtime_info_of_an_unknown_runtime_says_so_as_containerd_does(
    tasks: TaskManager,
) -> None:
    request = introspection_pb2.RuntimeRequest(runtime_path="io.containerd.nope.v1")
    with pytest.raises(errdefs.NotFound, match=r"^failed to resolve runtime path: runtime "):
        await tasks.plugin_info(request)
    spec = CreateOpts(spec=IDMAP_SPEC, runtime="io.containerd.nope.v1")
    with pytest.raises(errdefs.NotFound) as caught:
        await tasks.create("t", spec, namespace="ns")
    assert str(caught.value).startswith(
        "failed to validate OCI runtime features: runtime info: failed to resolve runtime path: "
        'runtime "io.containerd.nope.v1" binary not installed'
    )


async def test_get_and_delete_of_unknown_tasks_are_not_found(tasks: TaskManager) -> None:
    with pytest.raises(errdefs.NotFound):
        await tasks.get("missing", namespace="ns")
    with pytest.raises(errdefs.NotFound):
        await tasks.delete("missing", namespace="ns")
    assert await tasks.tasks(namespace="ns") == []
    assert await tasks.tasks(all=True) == []


async def test_plugin_info_needs_a_runtime_request(tasks: TaskManager) -> None:
    with pytest.raises(errdefs.NotImplemented, match="unknown request type"):
        await tasks.plugin_info(mount_pb2.Mount())


def test_create_opts_accept_a_spec_dict_and_mount_mappings() -> None:
    opts = CreateOpts(
        spec={"ociVersion": "1.0.2"},
        rootfs=[{"type": "bind", "source": "/a", "options": ["rbind"]}],
    )
    assert json.loads(opts.spec or b"") == {"ociVersion": "1.0.2"}
    assert opts.rootfs[0].type == "bind" and list(opts.rootfs[0].options) == ["rbind"]


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        ({"destination": "/a", "options": ["rbind"]}, False),
        ({"destination": "/a", "options": ["idmap"]}, True),
        ({"destination": "/a", "options": ["ridmap"]}, True),
        ({"destination": "/a", "uidMappings": []}, True),
        ({"destination": "/a", "gidMappings": [{"containerID": 0}]}, True),
    ],
)
def test_idmap_mounts_are_detected_like_containerd(mount: dict[str, Any], expected: bool) -> None:
    assert uses_idmap_mounts({"mounts": [mount]}) is expected


class InfoShims:
    """A shim manager stub answering runtime_info with given features."""

    def __init__(self, features: Any) -> None:
        self.features = features
        self.asked: list[Any] = []

    async def runtime_info(self, runtime: str, options: Any) -> introspection_pb2.RuntimeInfo:
        self.asked.append(options)
        info = introspection_pb2.RuntimeInfo(name="x")
        if self.features is not None:
            info.features.CopyFrom(self.features)
        return info


IDMAP_SPEC = json.dumps({"mounts": [{"destination": "/d", "options": ["idmap"]}]}).encode()


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"linux": {}}, "missing `mountExtensions.idmap` entry in `features` command"),
        ({}, "missing `mountExtensions.idmap` entry in `features` command"),
        (
            {"linux": {"mountExtensions": {"idmap": {"enabled": False}}}},
            "entry `mountExtensions.idmap.Enabled` in `features` command not present or disabled",
        ),
        # An idmap entry without `enabled`, or with anything but the boolean true, is no support.
        *(
            (
                {"linux": {"mountExtensions": {"idmap": idmap}}},
                "entry `mountExtensions.idmap.Enabled` in `features` command not present or "
                "disabled",
            )
            for idmap in ({}, {"enabled": None}, {"enabled": "true"}, {"supported": True})
        ),
    ],
)
async def test_features_without_idmap_are_rejected_with_containerds_text(
    features: dict[str, Any], message: str
) -> None:
    shims: Any = InfoShims(typeurl.pack_json("features/Features", features))
    with pytest.raises(errdefs.FailedPrecondition) as caught:
        await validate_runtime_features(shims, "rt", IDMAP_SPEC, None)
    assert str(caught.value) == (
        f"failed to validate OCI runtime features: idmap mounts not supported: {message}"
    )


async def test_features_with_idmap_enabled_pass_and_other_runtimes_are_left_alone() -> None:
    ok: Any = InfoShims(
        typeurl.pack_json(
            "features/Features", {"linux": {"mountExtensions": {"idmap": {"enabled": True}}}}
        )
    )
    await validate_runtime_features(ok, "rt", IDMAP_SPEC, None)
    other: Any = InfoShims(typeurl.pack(introspection_pb2.RuntimeVersion(version="1")))
    await validate_runtime_features(other, "rt", IDMAP_SPEC, None)


async def test_missing_features_fail_to_unmarshal() -> None:
    shims: Any = InfoShims(None)
    with pytest.raises(errdefs.FailedPrecondition, match="unmarshal runtime features"):
        await validate_runtime_features(shims, "rt", IDMAP_SPEC, None)


async def test_specs_without_idmap_mounts_never_ask_the_runtime() -> None:
    shims: Any = InfoShims(None)
    await validate_runtime_features(shims, "rt", b'{"mounts": [{"destination": "/x"}]}', None)
    await validate_runtime_features(shims, "rt", None, None)
    assert shims.asked == []


#: A peer process holding a task's lock until it is told to let go; an alarm kills it if it is
#: never told (a frozen event loop cannot tell it), so a broken test fails instead of hanging.
_HOLD_LOCK = """
import fcntl, os, signal, sys
signal.alarm(20)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
os.close(fd)
print("released", flush=True)
"""


async def test_create_waiting_for_a_peers_lock_leaves_the_event_loop_running(
    tasks: TaskManager,
) -> None:
    lock = lock_path(tasks.bundle("t", namespace="ns").path)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    peer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLD_LOCK,
        lock,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert peer.stdin is not None and peer.stdout is not None
    try:
        assert await peer.stdout.readline() == b"held\n"
        create = asyncio.ensure_future(
            tasks.create(
                "t", CreateOpts(spec=b"{}", runtime="io.containerd.nope.v1"), namespace="ns"
            )
        )
        # Other coroutines of this loop run while create waits for the peer's lock: were the
        # flock taken on the loop, the first yield would freeze it until the peer let go.
        for _ in range(100):
            await asyncio.sleep(0)
        assert not create.done()
        peer.stdin.write(b"let go\n")
        # The peer held the lock all along: it is the one letting go now, not its alarm.
        assert await peer.stdout.readline() == b"released\n"
        # With the lock, create goes on (and fails on the runtime, leaving nothing).
        with pytest.raises(errdefs.NotFound, match="failed to start shim"):
            await create
        assert os.listdir(os.path.join(tasks.state, "ns")) == []
    finally:
        if peer.returncode is None:
            peer.kill()
        await peer.wait()
