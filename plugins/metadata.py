"""The metadata store: containerd's ``io.containerd.metadata.v1`` plugin, on SQLite.

containerd keeps container records in a bolt database (``meta.db``); taskplane keeps them in
``<plugin root>/meta.db`` with the standard library's :mod:`sqlite3`. Containers are stored per
namespace; an id is unique within its namespace.

Example::

    store = ContainerStore("/var/lib/taskplane/io.containerd.metadata.v1.sqlite/meta.db")
    store.create("default", Container(id="web", runtime_name="io.containerd.runc.v2"))
    store.update("default", attrs.evolve(c, labels={"tier": "front"}), fieldpaths=("labels",))
    store.delete("default", "web")

Concurrency: the database runs in WAL mode with a busy timeout (the switch to WAL, which SQLite
answers "locked" at once when two processes open a new database together, is retried), and
every write is one ``BEGIN IMMEDIATE`` transaction, so several threads (one connection,
serialised by a lock) and several processes (each with its own store) can use the same file at
once. The methods are synchronous: an uncontended query takes microseconds, but a write waits
up to the 30 s busy timeout while another process holds the write lock. Async code calls the
``a``-prefixed twins (:meth:`ContainerStore.aget`, ``acreate``, ...), which run the same method
in a worker thread, so one process's lock never freezes another's event loop; open a store from
async code with ``await ContainerStore.aopen(path)``.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import attrs

from plugins import identifiers, securefs
from plugins.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from plugins.identifiers import quote
from registry._lazy import export_lazily

if TYPE_CHECKING:
    import sqlite3

    from plugins.containers import Container

__all__ = [
    "DB_FILENAME",
    "MAX_LABEL_SIZE",
    "Container",
    "ContainerStore",
]

#: The database file name inside the plugin's root directory.
DB_FILENAME = "meta.db"

#: containerd's limit on ``len(key) + len(value)`` of one label, in bytes.
MAX_LABEL_SIZE = 4096

#: The first bytes of every SQLite database file (an empty file is a database with no tables).
SQLITE_HEADER = b"SQLite format 3\x00"

#: How long a connection waits for another writer before failing, in milliseconds.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA_VERSION = 1

P = ParamSpec("P")
R = TypeVar("R")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _set_labels(labels: Mapping[str, str]) -> dict[str, str]:
    # containerd never stores a label with an empty value: setting "" removes the label.
    return {key: value for key, value in labels.items() if value != ""}


# Container (plugins.containers) is defined by the first record read or written (PEP 562):
# every command boots the store, and a listing of tasks or plugins reads no record.
__getattr__ = export_lazily(__name__, {"Container": "plugins.containers"})


def _validate_namespace(namespace: object) -> str:
    identifiers.validate_namespace(namespace)
    assert isinstance(namespace, str)
    return namespace


def _validate_labels(labels: Mapping[str, str], where: str) -> None:
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument(f"labels of {where} must map strings to strings")
        if not key:
            raise InvalidArgument(f"labels of {where} have an empty key")
        size = len(key.encode()) + len(value.encode())
        if size > MAX_LABEL_SIZE:
            raise InvalidArgument(
                f"label {quote(key[:64])} of {where} is {size} bytes long (key and value);"
                f" the maximum is {MAX_LABEL_SIZE}"
            )


def _validate_container(container: Container, where: str) -> None:
    from plugins.containers import Container

    if not isinstance(container, Container):
        raise InvalidArgument(f"expected a Container, not {type(container).__name__}")
    identifiers.validate(container.id, what="container id")
    if not isinstance(container.runtime_name, str) or not container.runtime_name:
        raise InvalidArgument(f"{where} must name a runtime (runtime_name is empty)")
    if container.runtime_options is not None and not isinstance(container.runtime_options, bytes):
        raise InvalidArgument(f"runtime_options of {where} must be bytes (a marshalled Any)")
    if container.spec is not None:
        if not isinstance(container.spec, bytes):
            raise InvalidArgument(f"spec of {where} must be bytes (OCI JSON)")
        try:
            decoded = json.loads(container.spec)
        except ValueError as exc:
            raise InvalidArgument(f"spec of {where} is not valid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise InvalidArgument(f"spec of {where} must be a JSON object")
    if not isinstance(container.sandbox_id, str):
        raise InvalidArgument(f"sandbox_id of {where} must be a string")
    _validate_labels(container.labels, where)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another process does the same.

    Switching a new database to WAL needs its exclusive lock; two processes that open it at the
    same moment (two ``taskplane`` commands on a fresh state dir) both hold a shared lock, and
    SQLite answers one of them "database is locked" at once, without its busy handler (waiting
    could deadlock). The other finishes within milliseconds, so retrying is enough.
    """
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


async def _in_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args)`` in the default executor's worker thread (asyncio imported on first use:
    the sync callers of this module never pay for it)."""
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


def _what(namespace: str, container_id: str) -> str:
    return f"container {quote(container_id)} in namespace {quote(namespace)}"


def _to_micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _now() -> datetime:
    return datetime.now(UTC)


_COLUMNS = "id, runtime_name, runtime_options, spec, sandbox_id, labels, created_at, updated_at"


def _labels_json(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True)


def _select(conn: sqlite3.Connection, namespace: str, container_id: str) -> Container | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? AND id = ?",
        (namespace, container_id),
    ).fetchone()
    return None if row is None else _row_to_container(row)


def _row_to_container(row: tuple[Any, ...]) -> Container:
    from plugins.containers import Container

    cid, runtime_name, runtime_options, spec, sandbox_id, labels, created, updated = row
    return Container(
        id=cid,
        runtime_name=runtime_name,
        runtime_options=runtime_options,
        spec=spec,
        sandbox_id=sandbox_id,
        labels=json.loads(labels),
        created_at=_from_micros(created),
        updated_at=_from_micros(updated),
    )


class ContainerStore:
    """Container records per namespace in an SQLite database at ``path``.

    Opening creates the file (mode 0600) and its parent directory (0711) when missing.
    Errors: :class:`~plugins.errdefs.NotFound`, :class:`~plugins.errdefs.AlreadyExists`,
    :class:`~plugins.errdefs.InvalidArgument` (bad ids, namespaces, fields),
    :class:`~plugins.errdefs.FailedPrecondition` (a file that is not a usable database, a
    newer schema, or use after :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike[str], *, lazy: bool = False) -> None:
        """Open the store at ``path``; with ``lazy``, create the file and check that it is an
        SQLite database (or empty) now, and connect and migrate the schema on first use.

        ``lazy`` is what the metadata plugin boots with: every command boots it and few use it,
        and connecting costs importing sqlite3, switching to WAL and the schema check. Deferring
        it is safe for peers and crashes: every peer has its own connection anyway (containerd
        opens its bolt file at init because one daemon owns it), the schema is created in one
        write transaction by whichever peer uses the store first, and a peer killed before
        then has written nothing. A file that is not a database still fails the boot, as
        before; what only connecting finds (a newer schema, a lock held past the busy timeout)
        is the first use's FailedPrecondition.
        """
        self.path: str = os.fspath(path)
        """The database file."""
        # Create the file ourselves so that it (and SQLite's -wal/-shm files, which copy
        # its mode) is private: specs may carry secrets in their environment.
        fd = securefs.open_file(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            header = os.read(fd, len(SQLITE_HEADER)) if lazy else b""
        finally:
            os.close(fd)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        if not lazy:
            self._open()
        elif header and header != SQLITE_HEADER:
            raise FailedPrecondition(
                f"cannot open container store {quote(self.path)}: file is not a database"
            )

    def _open(self) -> None:
        """Connect, switch to WAL and migrate the schema (under the lock, or in __init__)."""
        import sqlite3

        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise FailedPrecondition(
                f"cannot open container store {quote(self.path)}: {exc}"
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
            self._migrate()
        except sqlite3.Error as exc:
            self._conn = None
            conn.close()
            raise FailedPrecondition(
                f"cannot open container store {quote(self.path)}: {exc}"
            ) from exc
        except BaseException:
            self._conn = None
            conn.close()
            raise

    # -- plumbing ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The connection (opened now by a lazy store's first use); the caller holds the lock."""
        if self._closed:
            raise FailedPrecondition(f"container store {quote(self.path)} is closed")
        if self._conn is None:
            self._open()
        assert self._conn is not None
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking SQLite's write lock up front (no upgrade deadlocks)."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    def _migrate(self) -> None:
        with self._write() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > _SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"container store {quote(self.path)} has schema version {version}; this"
                    f" taskplane understands up to {_SCHEMA_VERSION}, so it is too old"
                )
            if version < 1:
                conn.execute(
                    """
                    CREATE TABLE IF NOT EXISTS containers (
                        namespace TEXT NOT NULL,
                        id TEXT NOT NULL,
                        runtime_name TEXT NOT NULL,
                        runtime_options BLOB,
                        spec BLOB,
                        sandbox_id TEXT NOT NULL DEFAULT '',
                        labels TEXT NOT NULL DEFAULT '{}',
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (namespace, id)
                    ) WITHOUT ROWID
                    """
                )
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    # -- API -------------------------------------------------------------------------------

    def create(self, namespace: str, container: Container) -> Container:
        """Store a new container and return it with its timestamps set.

        Raises AlreadyExists (``container "x" in namespace "ns": already exists``) when the id
        is taken in ``namespace``, and InvalidArgument for invalid fields.
        """
        namespace = _validate_namespace(namespace)
        _validate_container(container, "the container")
        now = _now()
        created = attrs.evolve(
            container, labels=_set_labels(container.labels), created_at=now, updated_at=now
        )
        import sqlite3  # imported by the connection this write opened, if not before

        with self._write() as conn:
            try:
                conn.execute(
                    f"INSERT INTO containers (namespace, {_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (namespace, *self._row(created)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"{_what(namespace, container.id)}: already exists") from None
        return created

    def get(self, namespace: str, container_id: str) -> Container:
        """Return the container ``container_id`` of ``namespace``, or raise NotFound."""
        namespace = _validate_namespace(namespace)
        identifiers.validate(container_id, what="container id")
        with self._read() as conn:
            found = _select(conn, namespace, container_id)
        if found is None:
            raise NotFound(f"{_what(namespace, container_id)}: not found")
        return found

    def list(self, namespace: str) -> list[Container]:
        """Return every container of ``namespace``, ordered by id."""
        namespace = _validate_namespace(namespace)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? ORDER BY id",
                (namespace,),
            ).fetchall()
        return [_row_to_container(row) for row in rows]

    def namespaces(self) -> builtins.list[str]:
        """Return the namespaces that hold at least one container, sorted."""
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT namespace FROM containers ORDER BY 1").fetchall()
        return [namespace for (namespace,) in rows]

    def update(
        self, namespace: str, container: Container, fieldpaths: Iterable[str] = ()
    ) -> Container:
        """Update the stored ``container.id`` from ``container`` and return the new record.

        As in containerd: with no ``fieldpaths`` the labels and spec are replaced, and a
        different ``runtime_name`` or ``sandbox_id`` is an error (they are immutable). With
        ``fieldpaths``, only those fields change: ``"labels"``, ``"labels.<key>"`` (set the
        key, or remove it when ``container.labels`` lacks it or maps it to ""), ``"spec"``.
        Raises NotFound, or InvalidArgument for an unknown field path or invalid fields.
        """
        from plugins.containers import Container

        namespace = _validate_namespace(namespace)
        if not isinstance(container, Container):
            raise InvalidArgument(f"expected a Container, not {type(container).__name__}")
        identifiers.validate(container.id, what="container id")
        paths = [fieldpaths] if isinstance(fieldpaths, str) else list(fieldpaths)
        what = _what(namespace, container.id)
        with self._write() as conn:
            current = _select(conn, namespace, container.id)
            if current is None:
                raise NotFound(f"{what}: not found")
            if not paths:
                if container.runtime_name != current.runtime_name:
                    raise InvalidArgument(
                        f"cannot update the runtime name of {what}: it is immutable"
                    )
                if container.sandbox_id != current.sandbox_id:
                    raise InvalidArgument(
                        f"cannot update the sandbox id of {what}: it is immutable"
                    )
                paths = ["labels", "spec"]
            labels = dict(current.labels)
            spec = current.spec
            for path in paths:
                if path.startswith("labels."):
                    key = path[len("labels.") :]
                    value = container.labels.get(key, "")
                    if value:
                        labels[key] = value
                    else:
                        labels.pop(key, None)
                elif path == "labels":
                    labels = _set_labels(container.labels)
                elif path == "spec":
                    spec = container.spec
                else:
                    raise InvalidArgument(
                        f"cannot update field {quote(path)} of {what};"
                        ' only "labels", "labels.<key>" and "spec" can change'
                    )
            updated = attrs.evolve(current, labels=labels, spec=spec, updated_at=_now())
            _validate_container(updated, what)
            conn.execute(
                "UPDATE containers SET labels = ?, spec = ?, updated_at = ?"
                " WHERE namespace = ? AND id = ?",
                (
                    _labels_json(updated.labels),
                    updated.spec,
                    _to_micros(updated.updated_at),
                    namespace,
                    container.id,
                ),
            )
        return updated

    def delete(self, namespace: str, container_id: str) -> None:
        """Delete the container ``container_id`` of ``namespace``, or raise NotFound."""
        namespace = _validate_namespace(namespace)
        identifiers.validate(container_id, what="container id")
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM containers WHERE namespace = ? AND id = ?", (namespace, container_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"{_what(namespace, container_id)}: not found")

    def close(self) -> None:
        """Close the database. Idempotent; later calls raise FailedPrecondition."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> ContainerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- async face: the same methods, run in a worker thread --------------------------------

    @classmethod
    async def aopen(cls, path: str | os.PathLike[str]) -> ContainerStore:
        """Open a store (as the constructor) in a worker thread."""
        return await _in_thread(cls, path)

    async def acreate(self, namespace: str, container: Container) -> Container:
        """:meth:`create` in a worker thread."""
        return await _in_thread(self.create, namespace, container)

    async def aget(self, namespace: str, container_id: str) -> Container:
        """:meth:`get` in a worker thread."""
        return await _in_thread(self.get, namespace, container_id)

    async def alist(self, namespace: str) -> builtins.list[Container]:
        """:meth:`list` in a worker thread."""
        return await _in_thread(self.list, namespace)

    async def anamespaces(self) -> builtins.list[str]:
        """:meth:`namespaces` in a worker thread."""
        return await _in_thread(self.namespaces)

    async def aupdate(
        self, namespace: str, container: Container, fieldpaths: Iterable[str] = ()
    ) -> Container:
        """:meth:`update` in a worker thread."""
        return await _in_thread(self.update, namespace, container, tuple(fieldpaths))

    async def adelete(self, namespace: str, container_id: str) -> None:
        """:meth:`delete` in a worker thread."""
        await _in_thread(self.delete, namespace, container_id)

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread (it waits for a query in progress); at once when
        the store never connected (a lazy store nobody used) and no thread is connecting it."""
        if self._lock.acquire(blocking=False):
            try:
                if self._conn is None:
                    self._closed = True
                    return
            finally:
                self._lock.release()
        await _in_thread(self.close)

    def __repr__(self) -> str:
        return f"<ContainerStore {self.path!r}{' closed' if self._closed else ''}>"

    @staticmethod
    def _row(container: Container) -> tuple[Any, ...]:
        return (
            container.id,
            container.runtime_name,
            container.runtime_options,
            container.spec,
            container.sandbox_id,
            _labels_json(container.labels),
            _to_micros(container.created_at),
            _to_micros(container.updated_at),
        )
