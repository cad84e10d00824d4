"""Bundle creation and deletion (containerd's bundle.go and its tests)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from runtime_v2 import errdefs
from runtime_v2.bundle import (
    OCI_SPEC_TYPE_URL,
    Bundle,
    load_bundle,
    mounts_under,
    new_bundle,
    remapped_gid,
    unmount_recursive,
)

NS = "ns1"
ID = "task1"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[str, str]:
    """(ROOT, STATE) directories of a task plugin, not yet created."""
    return str(tmp_path / "root"), str(tmp_path / "state")


def _spec(**linux: object) -> bytes:
    return json.dumps({"ociVersion": "1.0.2", "linux": linux}).encode()


def _leftovers(root: str, state: str) -> list[str]:
    """Every path under STATE/<ns> and ROOT/<ns> (the namespace dirs themselves are shared)."""
    found = []
    for base in (os.path.join(state, NS), os.path.join(root, NS)):
        for dirpath, dirnames, filenames in os.walk(base):
            found += [os.path.join(dirpath, n) for n in dirnames + filenames]
    return sorted(found)


def test_new_bundle_without_userns_is_0700_gid_0(dirs: tuple[str, str]) -> None:
    root, state = dirs
    old_umask = os.umask(0o077)  # modes must not depend on the umask
    try:
        b = new_bundle(root, state, NS, ID, _spec())
    finally:
        os.umask(old_umask)
    assert b == Bundle(id=ID, namespace=NS, path=os.path.join(state, NS, ID))
    st = os.stat(b.path)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_gid == 0
    assert stat.S_IMODE(os.stat(os.path.join(state, NS)).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(os.path.join(root, NS)).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(b.rootfs).st_mode) == 0o711
    work = os.path.join(root, NS, ID)
    assert os.readlink(b.work_link) == os.path.abspath(work)
    assert stat.S_IMODE(os.stat(work).st_mode) == 0o711
    config = os.path.join(b.path, "config.json")
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o644
    assert Path(config).read_bytes() == _spec()


def test_new_bundle_with_gid_mapping_is_0710_owned_by_the_host_gid(
    dirs: tuple[str, str],
) -> None:
    root, state = dirs
    spec = _spec(gidMappings=[{"containerID": 0, "hostID": 4200, "size": 65536}])
    b = new_bundle(root, state, NS, ID, spec)
    st = os.stat(b.path)
    assert stat.S_IMODE(st.st_mode) == 0o710
    assert st.st_gid == 4200
    assert st.st_uid == os.geteuid()


def test_new_bundle_from_an_oci_any_reads_gid_mappings(dirs: tuple[str, str]) -> None:
    from google.protobuf import any_pb2

    root, state = dirs
    value = _spec(gidMappings=[{"containerID": 0, "hostID": 4200, "size": 1}])
    b = new_bundle(root, state, NS, ID, any_pb2.Any(type_url=OCI_SPEC_TYPE_URL, value=value))
    assert os.stat(b.path).st_gid == 4200
    assert Path(b.path, "config.json").read_bytes() == value


def test_new_bundle_without_spec_writes_no_config(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, None)
    assert not os.path.exists(os.path.join(b.path, "config.json"))
    assert os.path.isdir(b.rootfs)


@pytest.mark.parametrize(
    ("spec", "gid"),
    [
        (None, 0),
        (b"", 0),
        (b"{}", 0),
        (json.dumps({"linux": {}}).encode(), 0),
        (_spec(gidMappings=[]), 0),
        (_spec(gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), 1000),
        (_spec(gidMappings=[{"containerID": 100, "hostID": 1000, "size": 1}]), 0),
        (
            _spec(
                gidMappings=[
                    {"containerID": 100, "hostID": 1000, "size": 1},
                    {"containerID": 0, "hostID": 2000, "size": 1},
                ]
            ),
            2000,
        ),
    ],
    ids=[
        "none",
        "empty",
        "empty-spec",
        "empty-linux",
        "empty-mappings",
        "0-to-1000",
        "100-to-1000-only",
        "second-entry",
    ],
)
def test_remapped_gid(spec: bytes | None, gid: int) -> None:
    assert remapped_gid(spec) == gid


@pytest.mark.parametrize(
    "spec",
    [
        b"{not json",
        b"[]",
        json.dumps({"linux": []}).encode(),
        _spec(gidMappings={"containerID": 0}),
        _spec(gidMappings=[{"containerID": "0", "hostID": 1}]),
        _spec(gidMappings=[{"containerID": 0, "hostID": -1}]),
    ],
)
def test_remapped_gid_rejects_malformed_specs(spec: bytes) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="invalid OCI runtime spec"):
        remapped_gid(spec)


@pytest.mark.parametrize(
    ("namespace", "task_id", "message"),
    [
        (NS, "../x", "invalid task id ../x"),
        (NS, "a/b", "invalid task id a/b"),
        (NS, "", "invalid task id"),
        ("a/b", ID, "invalid namespace a/b"),
        ("", ID, "namespace is required"),
    ],
)
def test_bad_ids_touch_nothing_on_disk(
    dirs: tuple[str, str], namespace: str, task_id: str, message: str
) -> None:
    root, state = dirs
    with pytest.raises(errdefs.InvalidArgument, match=message):
        new_bundle(root, state, namespace, task_id, _spec())
    assert not os.path.exists(root)
    assert not os.path.exists(state)


def test_existing_bundle_is_already_exists_and_left_alone(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    Path(b.path, "marker").write_text("keep")
    with pytest.raises(errdefs.AlreadyExists, match="already exists"):
        new_bundle(root, state, NS, ID, _spec())
    assert Path(b.path, "marker").read_text() == "keep"
    assert os.path.islink(b.work_link)


def test_stale_work_dir_is_recreated_empty(dirs: tuple[str, str]) -> None:
    root, state = dirs
    stale = Path(root, NS, ID)
    stale.mkdir(parents=True)
    (stale / "old").write_text("x")
    new_bundle(root, state, NS, ID, None)
    assert list(stale.iterdir()) == []


def test_a_leftover_hidden_bundle_and_work_dir_are_finished_by_new_bundle(
    dirs: tuple[str, str],
) -> None:
    """What a crash during removal left (``.<id>``, non-empty) never poisons the id."""
    root, state = dirs
    for base in (state, root):
        hidden = Path(base, NS, f".{ID}")
        hidden.mkdir(parents=True)
        (hidden / "f").write_text("left by a crash")
    b = new_bundle(root, state, NS, ID, _spec())
    b.delete()
    assert _leftovers(root, state) == []


def test_delete_replaces_a_leftover_hidden_bundle_in_the_way(dirs: tuple[str, str]) -> None:
    """A non-empty ``.<id>`` appearing after the bundle was made (an earlier delete of the id
    crashed) is removed, not an obstacle to the rename."""
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    for base in (state, root):
        hidden = Path(base, NS, f".{ID}")
        hidden.mkdir()
        (hidden / "f").write_text("left by a crash")
    b.delete()
    assert _leftovers(root, state) == []


def _fail(*_args: object, **_kwargs: object) -> None:
    raise OSError(5, "injected failure")


def _fail_for_config(real: object) -> object:
    """Wrap ``os.open`` so it fails only for config.json (rmtree needs os.open to clean up)."""

    def wrapper(path: str, *args: object, **kwargs: object) -> object:
        if str(path).endswith("config.json"):
            _fail()
        return real(path, *args, **kwargs)  # type: ignore[operator]

    return wrapper


@pytest.mark.parametrize(
    ("target", "spec"),
    [
        ("chown", _spec(gidMappings=[{"containerID": 0, "hostID": 4200, "size": 1}])),
        ("symlink", _spec()),
        ("open", _spec()),
        ("fchmod", _spec()),
        ("write", _spec()),
    ],
)
def test_failure_at_any_step_leaves_nothing_behind(
    dirs: tuple[str, str], monkeypatch: pytest.MonkeyPatch, target: str, spec: bytes
) -> None:
    root, state = dirs
    replacement = _fail_for_config(os.open) if target == "open" else _fail
    monkeypatch.setattr(os, target, replacement)
    with pytest.raises(OSError, match="injected failure"):
        new_bundle(root, state, NS, ID, spec)
    monkeypatch.undo()
    assert _leftovers(root, state) == []


@pytest.mark.parametrize("failing_mkdir", ["rootfs", ID])
def test_mkdir_failure_leaves_nothing_behind(
    dirs: tuple[str, str], monkeypatch: pytest.MonkeyPatch, failing_mkdir: str
) -> None:
    root, state = dirs
    real_mkdir = os.mkdir
    work = os.path.join(root, NS, ID)

    def mkdir(path: str, mode: int = 0o777) -> None:
        if path.endswith("/rootfs") if failing_mkdir == "rootfs" else path == work:
            raise OSError(28, "injected failure")
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(OSError, match="injected failure"):
        new_bundle(root, state, NS, ID, _spec())
    monkeypatch.undo()
    assert _leftovers(root, state) == []


def test_bad_spec_json_leaves_no_bundle_dir(dirs: tuple[str, str]) -> None:
    # containerd leaks the bundle dir here; we do not.
    root, state = dirs
    with pytest.raises(errdefs.InvalidArgument, match="invalid OCI runtime spec"):
        new_bundle(root, state, NS, ID, b"{oops")
    assert _leftovers(root, state) == []


def test_load_bundle_does_no_io(tmp_path: Path) -> None:
    b = load_bundle(str(tmp_path / "nowhere"), NS, ID)
    assert b.path == str(tmp_path / "nowhere" / NS / ID)
    assert not (tmp_path / "nowhere").exists()


def test_delete_removes_bundle_and_work_dir(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    Path(b.path, "log.json").write_text("")
    Path(root, NS, ID, "scratch").write_text("x")
    b.delete()
    assert _leftovers(root, state) == []


def test_delete_is_idempotent(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    b.delete()
    b.delete()
    load_bundle(state, "other", "never-created").delete()
    assert _leftovers(root, state) == []


def test_delete_finishes_an_interrupted_delete(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    # Simulate a crash after the rename: only the hidden copies remain.
    os.rename(b.path, os.path.join(state, NS, "." + ID))
    os.rename(os.path.join(root, NS, ID), os.path.join(root, NS, "." + ID))
    b.delete()
    assert _leftovers(root, state) == []


def test_delete_refuses_a_non_empty_rootfs(dirs: tuple[str, str]) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    Path(b.rootfs, "file").write_text("precious")
    with pytest.raises(OSError, match="failed to remove bundle rootfs"):
        b.delete()
    assert Path(b.rootfs, "file").read_text() == "precious"


def test_delete_reports_when_bundle_and_work_dir_both_fail(
    dirs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    monkeypatch.setattr(os, "rename", _fail)
    with pytest.raises(OSError, match="failed to remove both bundle and workdir locations"):
        b.delete()


def test_delete_returns_the_bundle_error_when_only_the_bundle_fails(
    dirs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        if src == b.path:
            raise OSError(16, "injected failure")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="injected failure") as info:
        b.delete()
    assert "both" not in str(info.value)
    assert not os.path.exists(os.path.join(root, NS, ID))


def test_mounts_under_parses_escapes_and_orders_deepest_first() -> None:
    info = "\n".join(
        [
            "22 1 0:21 / / rw - ext4 /dev/root rw",
            "30 22 0:30 / /b/rootfs rw - tmpfs tmpfs rw",
            "31 30 0:31 / /b/rootfs/a\\040dir rw - tmpfs tmpfs rw",
            "32 31 0:32 / /b/rootfs/a\\040dir/deep rw - tmpfs tmpfs rw",
            "33 30 0:33 / /b/rootfs rw - tmpfs tmpfs rw",
            "34 22 0:34 / /b/rootfs2 rw - tmpfs tmpfs rw",
        ]
    )
    assert mounts_under("/b/rootfs", info) == [
        "/b/rootfs/a dir/deep",
        "/b/rootfs/a dir",
        "/b/rootfs",
        "/b/rootfs",
    ]


def test_unmount_recursive_of_a_missing_path_is_fine(tmp_path: Path) -> None:
    unmount_recursive(str(tmp_path / "missing"))


@pytest.mark.usefixtures("as_root")  # to mount
def test_delete_unmounts_bind_mounts_inside_rootfs(dirs: tuple[str, str], tmp_path: Path) -> None:
    root, state = dirs
    b = new_bundle(root, state, NS, ID, _spec())
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "keep").write_text("must survive the delete")
    subprocess.run(["mount", "--bind", str(source), b.rootfs], check=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", os.path.join(b.rootfs, "sub")], check=True)
        assert len(mounts_under(b.rootfs)) == 2
        b.delete()
    finally:
        for point in mounts_under(str(tmp_path)):
            subprocess.run(["umount", "-l", point], check=False)
    assert mounts_under(str(tmp_path)) == []
    assert (source / "keep").read_text() == "must survive the delete"
    assert _leftovers(root, state) == []
