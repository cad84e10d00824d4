"""The leak checker's finders that the probes (tests/*/leak_probe.py) do not reach: mounts,
container records, runc state in a private root, io dirs; and its cleanup."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.metadata import Container, ContainerStore
from tests.leaks import METADATA_DB, Scope, clean, find_leaks


@pytest.fixture
def scope() -> Iterator[Scope]:
    base = Path(tempfile.mkdtemp(prefix="tpl", dir="/tmp"))
    yield Scope(
        namespace=f"lk-{uuid.uuid4().hex[:10]}", base=base, state=base / "s", root=base / "r"
    )
    subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)


def _kinds(scope: Scope) -> list[str]:
    return sorted(str(leak) for leak in find_leaks(scope))


@pytest.mark.usefixtures("as_root")
def test_a_mount_under_the_base_dir_is_a_leak_and_is_unmounted(scope: Scope) -> None:
    point = scope.base / "m"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(point)], check=True)
    assert _kinds(scope) == [f"mount {point}"]
    clean(find_leaks(scope), scope)
    assert _kinds(scope) == []


def test_a_container_record_of_the_namespace_is_a_leak_and_is_deleted(scope: Scope) -> None:
    assert scope.root is not None
    store = ContainerStore(scope.root / METADATA_DB)
    store.create(scope.namespace, Container(id="web", runtime_name="io.containerd.runc.v2"))
    store.create("another", Container(id="web", runtime_name="io.containerd.runc.v2"))
    store.close()
    assert _kinds(scope) == [f"container record web in {scope.root / METADATA_DB}"]
    clean(find_leaks(scope), scope)
    assert _kinds(scope) == []
    reopened = ContainerStore(scope.root / METADATA_DB)
    assert [c.id for c in reopened.list("another")] == ["web"]  # not ours: kept
    reopened.close()


def test_runc_state_in_a_private_root_and_io_dirs_are_leaks(scope: Scope) -> None:
    assert scope.state is not None
    state = scope.state / "runc" / scope.namespace / "web"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"id": "web", "init_process_pid": 0}))
    io_dir = scope.state / "taskplane.io" / scope.namespace / "web"
    io_dir.mkdir(parents=True)
    assert _kinds(scope) == [f"io dir {io_dir}", f"runc state {state}"]
    clean(find_leaks(scope), scope)
    assert _kinds(scope) == []
