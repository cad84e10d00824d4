"""The overlay snapshotter's layers on disk (no mount: the integration tests mount them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import plugins.builtin
import registry
from plugins import errdefs
from plugins.overlay import Mount, OverlaySnapshotter
from plugins.types import SNAPSHOT_PLUGIN


def test_prepare_makes_an_upper_and_work_dir_and_returns_containerds_overlay_mount(
    tmp_path: Path,
) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    snapshotter = OverlaySnapshotter(tmp_path / "root")
    mounts = snapshotter.prepare("default/web", lower)
    layer = tmp_path / "root" / "snapshots" / "default" / "web"
    assert mounts == (
        Mount(
            type="overlay",
            source="overlay",
            options=(f"lowerdir={lower}", f"upperdir={layer}/fs", f"workdir={layer}/work"),
        ),
    )
    assert sorted(os.listdir(layer)) == ["fs", "work"]
    assert os.listdir(layer / "fs") == []
    assert snapshotter.keys() == ["default/web"]
    assert os.listdir(lower) == []


def test_remove_deletes_the_layer_and_what_was_written_to_it(tmp_path: Path) -> None:
    snapshotter = OverlaySnapshotter(tmp_path)
    snapshotter.prepare("ns/a", tmp_path)
    (snapshotter.path("ns/a") / "fs" / "written").write_text("x")
    snapshotter.remove("ns/a")
    assert not snapshotter.exists("ns/a")
    assert snapshotter.keys() == []
    with pytest.raises(errdefs.NotFound, match='no snapshot "ns/a"'):
        snapshotter.remove("ns/a")


def test_a_key_in_use_is_refused_and_the_existing_layer_kept(tmp_path: Path) -> None:
    snapshotter = OverlaySnapshotter(tmp_path / "root")
    snapshotter.prepare("ns/a", tmp_path)
    (snapshotter.path("ns/a") / "fs" / "kept").write_text("x")
    with pytest.raises(errdefs.AlreadyExists, match='snapshot "ns/a" already exists'):
        snapshotter.prepare("ns/a", tmp_path)
    assert (snapshotter.path("ns/a") / "fs" / "kept").exists()


@pytest.mark.parametrize("key", ["nons", "ns/../x", "../ns/x", "ns/a/b", "ns/"])
def test_bad_keys_are_refused_before_anything_is_created(tmp_path: Path, key: str) -> None:
    snapshotter = OverlaySnapshotter(tmp_path / "root")
    with pytest.raises(errdefs.InvalidArgument):
        snapshotter.prepare(key, tmp_path)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("name", ["a,b", "a:b"])
def test_a_lower_dir_overlayfs_cannot_name_is_refused_and_nothing_kept(
    tmp_path: Path, name: str
) -> None:
    lower = tmp_path / name
    lower.mkdir()
    snapshotter = OverlaySnapshotter(tmp_path / "root")
    with pytest.raises(errdefs.InvalidArgument, match="cannot use"):
        snapshotter.prepare("ns/a", lower)
    assert snapshotter.keys() == []


def test_a_lower_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="is not a directory"):
        OverlaySnapshotter(tmp_path).prepare("ns/a", tmp_path / "missing")


async def test_the_plugin_keeps_layers_under_its_root_or_root_path(tmp_path: Path) -> None:
    host = await registry.boot_async(
        {"root": str(tmp_path / "r"), "state": str(tmp_path / "s")},
        builtins=[plugins.builtin],
        autoload=False,
    )
    async with host:
        snapshotter = host.get(SNAPSHOT_PLUGIN, "overlayfs")
        assert snapshotter.root == tmp_path / "r" / "io.containerd.snapshotter.v1.overlayfs"
    custom = tmp_path / "layers"
    config = {
        "root": str(tmp_path / "r"),
        "state": str(tmp_path / "s"),
        "plugins": {"io.containerd.snapshotter.v1.overlayfs": {"root_path": str(custom)}},
    }
    async with await registry.boot_async(config, builtins=[plugins.builtin], autoload=False) as h:
        assert h.get(SNAPSHOT_PLUGIN, "overlayfs").root == custom
