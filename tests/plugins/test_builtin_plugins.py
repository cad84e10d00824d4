"""plugins.builtin: the exchange and the SQLite store boot through the registry."""

from __future__ import annotations

import stat
from pathlib import Path

from google.protobuf import wrappers_pb2

import plugins.builtin
import registry
from plugins.events import Exchange
from plugins.metadata import Container, ContainerStore
from plugins.types import EVENT_PLUGIN, METADATA_PLUGIN


def test_hook_returns_the_exchange_sqlite_and_overlayfs_registrations() -> None:
    regs = plugins.builtin.taskplane_registrations()
    assert [r.uri for r in regs] == [
        "io.containerd.event.v1.exchange",
        "io.containerd.metadata.v1.sqlite",
        "io.containerd.snapshotter.v1.overlayfs",
    ]
    assert all(r.requires == () for r in regs)


async def test_builtins_boot_and_work(tmp_path: Path) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    host = await registry.boot_async(
        {"root": str(root), "state": str(state)}, builtins=[plugins.builtin], autoload=False
    )
    async with host:
        statuses = {s.uri: s.status for s in host.statuses}
        assert statuses == {
            "io.containerd.event.v1.exchange": "loaded",
            "io.containerd.metadata.v1.sqlite": "loaded",
            "io.containerd.snapshotter.v1.overlayfs": "loaded",
        }
        exchange = host.get(EVENT_PLUGIN, "exchange")
        store = host.get(METADATA_PLUGIN, "sqlite")
        assert isinstance(exchange, Exchange)
        assert isinstance(store, ContainerStore)

        plugin_root = root / "io.containerd.metadata.v1.sqlite"
        assert Path(store.path) == plugin_root / "meta.db"
        assert stat.S_IMODE(plugin_root.stat().st_mode) == 0o711
        store.create("default", Container(id="c1", runtime_name="io.containerd.runc.v2"))
        assert [c.id for c in store.list("default")] == ["c1"]

        async with exchange.subscribe("/tasks/*") as sub:
            await exchange.publish(
                "/tasks/oom", wrappers_pb2.StringValue(value="c1"), namespace="default"
            )
            assert (await sub.get(timeout=5)).topic == "/tasks/oom"
    # Closing the host closes both instances.
    assert exchange.closed
    assert store.closed


async def test_the_store_keeps_its_records_across_boots(tmp_path: Path) -> None:
    config = {"root": str(tmp_path / "root"), "state": str(tmp_path / "state")}
    async with await registry.boot_async(
        config, builtins=[plugins.builtin], autoload=False
    ) as host:
        host.get(METADATA_PLUGIN, "sqlite").create(
            "default", Container(id="c1", runtime_name="io.containerd.runc.v2")
        )
    async with await registry.boot_async(
        config, builtins=[plugins.builtin], autoload=False
    ) as host:
        assert host.get(METADATA_PLUGIN, "sqlite").get("default", "c1").id == "c1"


async def test_a_metadata_file_that_is_not_a_database_fails_the_plugin_at_boot(
    tmp_path: Path,
) -> None:
    # The store connects on first use, but a file SQLite cannot read still fails the boot's
    # status, naming the file, and the file is left as it was.
    db = tmp_path / "root" / "io.containerd.metadata.v1.sqlite" / "meta.db"
    db.parent.mkdir(parents=True, mode=0o711)
    db.write_bytes(b"not a database" * 10)
    config = {"root": str(tmp_path / "root"), "state": str(tmp_path / "state")}
    async with await registry.boot_async(
        config, builtins=[plugins.builtin], autoload=False
    ) as host:
        (status,) = [s for s in host.statuses if s.uri == "io.containerd.metadata.v1.sqlite"]
        assert status.status == "failed"
        assert status.reason is not None and "file is not a database" in status.reason
        assert str(db) in status.reason
    assert db.read_bytes() == b"not a database" * 10
