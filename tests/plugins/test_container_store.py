"""The SQLite container store: CRUD, errors, labels, persistence, threads and processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from plugins import metadata
from plugins.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from plugins.metadata import MAX_LABEL_SIZE, Container, ContainerStore

RUNC = "io.containerd.runc.v2"
SPEC = json.dumps({"ociVersion": "1.1.0", "process": {"args": ["sh"]}}).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContainerStore]:
    with ContainerStore(tmp_path / "root" / "meta.db") as s:
        yield s


def _container(cid: str = "web", **fields: object) -> Container:
    return Container(id=cid, runtime_name=RUNC, **fields)  # type: ignore[arg-type]


# -- CRUD ---------------------------------------------------------------------------------


def test_create_then_get_returns_every_field(store: ContainerStore) -> None:
    before = datetime.now(UTC)
    created = store.create(
        "default",
        _container(
            runtime_options=b"\x0a\x19containerd.runc.v1.Options",
            spec=SPEC,
            sandbox_id="pod1",
            labels={"tier": "front", "owner": "me"},
        ),
    )
    assert before <= created.created_at <= datetime.now(UTC)
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None
    got = store.get("default", "web")
    assert got == created
    assert got.runtime_name == RUNC
    assert got.runtime_options == b"\x0a\x19containerd.runc.v1.Options"
    assert got.spec == SPEC
    assert got.sandbox_id == "pod1"
    assert dict(got.labels) == {"tier": "front", "owner": "me"}


def test_create_ignores_given_timestamps(store: ContainerStore) -> None:
    old = datetime(2001, 1, 1, tzinfo=UTC)
    created = store.create("default", _container(created_at=old, updated_at=old))
    assert created.created_at > old


def test_optional_fields_round_trip_as_none_and_empty(store: ContainerStore) -> None:
    store.create("default", _container())
    got = store.get("default", "web")
    assert got.runtime_options is None
    assert got.spec is None
    assert got.sandbox_id == ""
    assert dict(got.labels) == {}


def test_create_of_an_existing_id_is_already_exists(store: ContainerStore) -> None:
    store.create("default", _container())
    with pytest.raises(AlreadyExists) as caught:
        store.create("default", _container())
    assert str(caught.value) == 'container "web" in namespace "default": already exists'


def test_get_of_a_missing_container_is_not_found(store: ContainerStore) -> None:
    with pytest.raises(NotFound) as caught:
        store.get("default", "nope")
    assert str(caught.value) == 'container "nope" in namespace "default": not found'


def test_delete_removes_the_container_and_a_second_delete_is_not_found(
    store: ContainerStore,
) -> None:
    store.create("default", _container())
    store.delete("default", "web")
    with pytest.raises(NotFound, match=re.escape('container "web" in namespace "default"')):
        store.get("default", "web")
    with pytest.raises(NotFound, match="not found"):
        store.delete("default", "web")


def test_namespaces_are_separate(store: ContainerStore) -> None:
    store.create("default", _container(labels={"ns": "default"}))
    store.create("k8s.io", _container(labels={"ns": "k8s"}))
    assert store.get("k8s.io", "web").labels["ns"] == "k8s"
    store.delete("default", "web")
    assert store.get("k8s.io", "web").labels["ns"] == "k8s"
    with pytest.raises(NotFound):
        store.get("default", "web")


def test_list_returns_one_namespace_ordered_by_id(store: ContainerStore) -> None:
    for cid in ("c", "a", "b"):
        store.create("default", _container(cid))
    store.create("other", _container("z"))
    assert [c.id for c in store.list("default")] == ["a", "b", "c"]
    assert [c.id for c in store.list("other")] == ["z"]
    assert store.list("empty") == []
    assert store.namespaces() == ["default", "other"]


# -- update -------------------------------------------------------------------------------


def test_update_without_fieldpaths_replaces_labels_and_spec(store: ContainerStore) -> None:
    created = store.create("default", _container(spec=SPEC, labels={"a": "1"}))
    new_spec = json.dumps({"ociVersion": "1.2.0"}).encode()
    updated = store.update(
        "default", attrs.evolve(created, labels={"b": "2"}, spec=new_spec, runtime_options=b"x")
    )
    assert dict(updated.labels) == {"b": "2"}
    assert updated.spec == new_spec
    assert updated.runtime_options is None  # not an updatable field, as in containerd
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert store.get("default", "web") == updated


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"runtime_name": "io.containerd.kata.v2"}, "cannot update the runtime name of"),
        ({"sandbox_id": "pod2"}, "cannot update the sandbox id of"),
    ],
)
def test_update_refuses_to_change_immutable_fields(
    store: ContainerStore, change: dict[str, Any], message: str
) -> None:
    created = store.create("default", _container(sandbox_id="pod1"))
    with pytest.raises(InvalidArgument, match=message + re.escape(' container "web"')):
        store.update("default", attrs.evolve(created, **change))
    assert store.get("default", "web") == created


def test_update_with_fieldpaths_changes_only_those_fields(store: ContainerStore) -> None:
    created = store.create("default", _container(spec=SPEC, labels={"keep": "1", "drop": "2"}))
    other_spec = json.dumps({"ociVersion": "9"}).encode()
    request = attrs.evolve(
        created, labels={"new": "3", "keep": "changed"}, spec=other_spec, runtime_name="other"
    )
    updated = store.update("default", request, fieldpaths=("labels.new", "labels.drop"))
    assert dict(updated.labels) == {"keep": "1", "new": "3"}
    assert updated.spec == SPEC
    assert updated.runtime_name == RUNC
    updated = store.update("default", request, fieldpaths=["spec"])
    assert updated.spec == other_spec
    updated = store.update("default", request, fieldpaths=["labels"])
    assert dict(updated.labels) == {"new": "3", "keep": "changed"}


def test_update_with_an_unknown_fieldpath_is_invalid(store: ContainerStore) -> None:
    created = store.create("default", _container())
    with pytest.raises(InvalidArgument, match=re.escape('cannot update field "runtime_name"')):
        store.update("default", created, fieldpaths=("runtime_name",))


def test_update_of_a_missing_container_is_not_found(store: ContainerStore) -> None:
    with pytest.raises(NotFound, match=re.escape('container "web" in namespace "default"')):
        store.update("default", _container())


def test_labels_with_empty_values_are_not_stored(store: ContainerStore) -> None:
    created = store.create("default", _container(labels={"a": "1", "gone": ""}))
    assert dict(created.labels) == {"a": "1"}
    assert dict(store.get("default", "web").labels) == {"a": "1"}
    updated = store.update("default", attrs.evolve(created, labels={"a": ""}), ["labels.a"])
    assert dict(updated.labels) == {}


def test_container_is_frozen_and_its_labels_read_only() -> None:
    container = _container(labels={"a": "1"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        container.id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        container.labels["a"] = "2"  # type: ignore[index]
    assert container == _container(labels={"a": "1"})


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "container", "message"),
    [
        ("bad ns", _container(), 'invalid namespace bad ns: identifier "bad ns" must match'),
        ("", _container(), "namespace is required: identifier must not be empty"),
        ("default", _container("-x"), 'invalid container id -x: identifier "-x" must match'),
        ("default", _container("x" * 77), "greater than maximum length (76 characters)"),
        ("default", Container(id="web", runtime_name=""), "must name a runtime"),
        ("default", _container(spec=b"{nope"), "spec of the container is not valid JSON"),
        ("default", _container(spec=b"[1]"), "spec of the container must be a JSON object"),
        ("default", _container(spec="{}"), "spec of the container must be bytes"),
        ("default", _container(runtime_options="x"), "runtime_options of the container must"),
        ("default", _container(labels={"": "v"}), "have an empty key"),
        (
            "default",
            _container(labels={"k": "v" * MAX_LABEL_SIZE}),
            'label "k" of the container is 4097 bytes long',
        ),
    ],
)
def test_create_rejects_invalid_input(
    store: ContainerStore, namespace: str, container: Container, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        store.create(namespace, container)
    assert store.namespaces() == []


def test_get_and_delete_reject_invalid_ids(store: ContainerStore) -> None:
    with pytest.raises(
        InvalidArgument, match=re.escape('invalid container id "": identifier must not be empty')
    ):
        store.get("default", "")
    with pytest.raises(
        InvalidArgument, match=re.escape('invalid container id a/b: identifier "a/b" must match')
    ):
        store.delete("default", "a/b")


def test_create_rejects_something_that_is_not_a_container(store: ContainerStore) -> None:
    with pytest.raises(InvalidArgument, match="expected a Container, not dict"):
        store.create("default", {"id": "x"})  # type: ignore[arg-type]


# -- the database -------------------------------------------------------------------------


def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    with ContainerStore(path) as first:
        created = first.create("default", _container(spec=SPEC, labels={"a": "1"}))
    with ContainerStore(path) as second:
        assert second.get("default", "web") == created


def test_database_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "meta.db"
    with ContainerStore(path) as store:
        store.create("default", _container())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o711
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "meta.db")
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(FailedPrecondition, match=r"container store \".*meta.db\" is closed"):
        store.list("default")


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    path.write_bytes(b"this is not an sqlite database, just some text" * 100)
    with pytest.raises(FailedPrecondition, match=r"cannot open container store \".*meta.db\": "):
        ContainerStore(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    ContainerStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(FailedPrecondition, match="schema version 99"):
        ContainerStore(path)


def test_threads_sharing_one_store_lose_no_writes(store: ContainerStore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(40):
                store.create("default", _container(f"t{n}-{i}"))
                if i % 2:
                    store.delete("default", f"t{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(store.list("default")) == 8 * 20


_WORKER = textwrap.dedent(
    """
    import json, sys
    from plugins.errdefs import AlreadyExists
    from plugins.metadata import Container, ContainerStore

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ContainerStore(path)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every worker at once
    won = []
    for i in range(count):
        store.create("ns", Container(id=f"{name}-{i}", runtime_name="r", labels={"by": name}))
        if i % 3 == 0:
            store.delete("ns", f"{name}-{i}")
        try:  # every worker races for the same shared ids
            store.create("ns", Container(id=f"shared-{i}", runtime_name="r", labels={"by": name}))
            won.append(i)
        except AlreadyExists:
            pass
    store.close()
    print(json.dumps(won), flush=True)
    """
)


def test_two_processes_writing_one_database_keep_it_consistent(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    count = 150
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("p1", "p2")
    }
    try:
        for proc in workers.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in workers.values():
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = {}
        for name, proc in workers.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results[name] = set(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # Each shared id went to exactly one worker.
    assert results["p1"] | results["p2"] == set(range(count))
    assert not results["p1"] & results["p2"]
    with ContainerStore(path) as store:
        by_id = {c.id: c for c in store.list("ns")}
    expected = {f"{name}-{i}" for name in workers for i in range(count) if i % 3}
    expected |= {f"shared-{i}" for i in range(count)}
    assert set(by_id) == expected
    for i in range(count):
        winner = "p1" if i in results["p1"] else "p2"
        assert by_id[f"shared-{i}"].labels["by"] == winner


def test_several_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Two ``taskplane`` commands on a fresh state dir open the store together: SQLite refuses
    one switch to WAL at once ("database is locked"); it must be retried, not reported.
    Threads with their own connections stand for the processes (each open is its own file
    lock holder); 60 rounds of 4 made the unretried version fail every time here."""
    failures: list[str] = []
    for round_ in range(60):
        path = tmp_path / f"r{round_}" / "meta.db"
        barrier = threading.Barrier(4)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                ContainerStore(path).close()
            except FailedPrecondition as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


# -- async face ------------------------------------------------------------------------------


async def test_async_face_does_what_the_sync_methods_do(tmp_path: Path) -> None:
    store = await ContainerStore.aopen(tmp_path / "meta.db")
    created = await store.acreate("default", _container())
    assert await store.aget("default", "web") == created
    assert [c.id for c in await store.alist("default")] == ["web"]
    assert await store.anamespaces() == ["default"]
    updated = await store.aupdate(
        "default", attrs.evolve(created, labels={"tier": "front"}), fieldpaths=["labels"]
    )
    assert updated.labels == {"tier": "front"}
    await store.adelete("default", "web")
    with pytest.raises(NotFound):
        await store.aget("default", "web")
    await store.aclose()
    assert store.closed


async def test_a_write_waiting_for_another_writer_leaves_the_event_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's write transaction holds the lock; it is released by a callback on
    # this loop. Run on the loop, the store would wait out its busy timeout with the loop
    # frozen and never see the release.
    monkeypatch.setattr(metadata, "BUSY_TIMEOUT_MS", 3000)
    store = await ContainerStore.aopen(tmp_path / "meta.db")
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        creating = asyncio.ensure_future(store.acreate("default", _container()))
        asyncio.get_running_loop().call_soon(other.execute, "COMMIT")
        created = await creating
        assert created.id == "web"
        assert [c.id for c in await store.alist("default")] == ["web"]
    finally:
        other.close()
        await store.aclose()


def test_a_lazy_store_connects_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "meta" / "meta.db"
    store = ContainerStore(path, lazy=True)
    # The file is made (private) at once; SQLite has not touched it: no schema, no WAL yet.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 0
    assert not path.with_name("meta.db-wal").exists()
    assert not store.closed
    store.create("default", Container(id="c1", runtime_name=RUNC))
    assert path.with_name("meta.db-wal").exists()
    with ContainerStore(path) as other:  # a peer sees the record
        assert [c.id for c in other.list("default")] == ["c1"]
    store.close()


def test_a_lazy_store_closed_before_use_is_closed(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "meta.db", lazy=True)
    asyncio.run(store.aclose())
    assert store.closed
    with pytest.raises(FailedPrecondition, match=r"container store \".*meta.db\" is closed"):
        store.list("default")
    assert (tmp_path / "meta.db").stat().st_size == 0  # closing did not connect


def test_a_lazy_store_refuses_a_file_that_is_not_a_database_at_once(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    path.write_bytes(b"this is not an sqlite database, just some text" * 100)
    refused = r"cannot open container store \".*meta.db\": file is not a database"
    with pytest.raises(FailedPrecondition, match=refused):
        ContainerStore(path, lazy=True)
    assert path.read_bytes().startswith(b"this is not")  # nothing lost


def test_lazy_stores_of_two_processes_on_a_new_file_both_write(tmp_path: Path) -> None:
    # Two peers booted on a fresh state dir: whichever uses the store first creates the
    # schema, the other finds it; neither loses its record.
    path = tmp_path / "meta.db"
    code = textwrap.dedent(
        f"""
        import sys
        from plugins.metadata import Container, ContainerStore
        store = ContainerStore({str(path)!r}, lazy=True)
        sys.stdin.readline()
        store.create("default", Container(id=sys.argv[1], runtime_name={RUNC!r}))
        store.close()
        """
    )
    peers = [
        subprocess.Popen([sys.executable, "-c", code, name], stdin=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for peer in peers:
        assert peer.stdin is not None
        peer.stdin.write("go\n")
        peer.stdin.close()
    assert [peer.wait(timeout=60) for peer in peers] == [0, 0]
    with ContainerStore(path) as store:
        assert sorted(c.id for c in store.list("default")) == ["a", "b"]


async def test_closing_a_lazy_store_while_a_thread_holds_it_keeps_the_loop_running(
    tmp_path: Path,
) -> None:
    # A thread connecting the store (its first use) holds the store's lock, possibly for the
    # busy timeout: aclose waits for it in a worker thread, not on the event loop.
    store = ContainerStore(tmp_path / "meta.db", lazy=True)
    held, release = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def connecting() -> None:
        with store._lock:
            held.set()
            outcome.append(release.wait(timeout=30))  # set by the loop, unless it is blocked

    thread = threading.Thread(target=connecting)
    thread.start()
    held.wait()
    asyncio.get_running_loop().call_soon(release.set)
    await store.aclose()
    thread.join()
    assert outcome == [True]
    assert store.closed
