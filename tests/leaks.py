"""The one leak checker of every test that touches the system (integration, interop, CLI).

A test owns a :class:`Scope`: its own unique namespace, the base directory all its files live
under (root, state, bundles, runc roots), and the task ids and pids it recorded.
:func:`find_leaks` only looks; it runs BEFORE any fixture cleanup, so a task the test started and
never deleted is seen as what it is. :func:`clean` then removes what was found, as a safety net:
a test that needed it has already failed.

What counts as the test's (each finder's docstring says how it is recognized):

- processes: shims and anything else whose command line or cwd names the base dir or namespace,
  processes in a cgroup whose path names the namespace (the container's), recorded pids;
- shim sockets in /run/containerd/s of the tasks the scope knows of;
- bundles, work dirs, io dirs and overlay layers of the namespace; container records in the
  SQLite store;
- runc state in /run/containerd/runc/<ns> and in any runc root under the base dir;
- mounts under the base dir; cgroups whose name contains the namespace (every controller).

Importable from every test directory as ``tests.leaks`` (pytest puts the repository root on
``sys.path``, see ``[tool.pytest.ini_options]`` in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs
import pytest

SOCKET_DIR = Path("/run/containerd/s")
RUNC_ROOT = Path("/run/containerd/runc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
TASK_DIR = "io.containerd.runtime.v2.task"
IO_DIR = "taskplane.io"
METADATA_DB = Path("io.containerd.metadata.v1.sqlite") / "meta.db"
#: The overlay snapshotter's layers: ``<root>/<plugin>/snapshots/<ns>/<id>/{fs,work}``.
OVERLAY_LAYERS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"
GRPC_SOCKET = "taskplane.sock"
SHIM_NAME = b"containerd-shim"
#: How deep under /sys/fs/cgroup/<controller>/ a namespace's cgroups are looked for.
CGROUP_DEPTH = 3
#: How deep under the base dir runc state (``<root>/<id>/state.json``) is looked for.
RUNC_STATE_DEPTH = 6


@attrs.define
class Scope:
    """What belongs to one test: its namespace, its base dir and what it recorded.

    ``state``/``root`` are the taskplane (or plugin host) state and root dirs, when the test has
    them; ``grpc_address`` the address shims hash into their socket names (default
    ``<state>/taskplane.sock``). ``ids``, ``pids`` and ``bundles`` grow while the test runs.
    """

    namespace: str
    base: Path
    state: Path | None = None
    root: Path | None = None
    grpc_address: str | None = None
    ids: set[str] = attrs.field(factory=set)
    pids: set[int] = attrs.field(factory=set)
    #: Bundles the test made outside a state dir (interop tests lay them out themselves).
    bundles: set[Path] = attrs.field(factory=set)

    @property
    def address(self) -> str | None:
        """The grpc address shims of this scope hash into their socket path."""
        if self.grpc_address is not None:
            return self.grpc_address
        return str(self.state / GRPC_SOCKET) if self.state is not None else None


@attrs.frozen
class Leak:
    """One thing a test left behind, and how to remove it."""

    kind: str
    what: str
    remove: Callable[[], None] = attrs.field(eq=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.what}"


# -- processes ----------------------------------------------------------------------------------


def _pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None  # the process exited meanwhile


def _alive(pid: int) -> bool:
    """Running (a zombie is not: nobody can do anything about one whose parent is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] != b"Z"


def _kill(pid: int) -> Callable[[], None]:
    def remove() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    return remove


def find_processes(scope: Scope) -> list[Leak]:
    """Live processes of the test: a command line or cwd naming the base dir, a shim whose
    command line names the namespace, a cgroup path naming the namespace (container
    processes), or a pid the test recorded. Not: the test process, its ancestors and its own
    children (the harness's, stopped by fixtures such as the CLI tests' events_process; what
    they started -- daemonized shims, containers -- is not exempt)."""
    me = os.getpid()
    skip = {me, *_ancestors()}
    base = str(scope.base).encode()
    ns = scope.namespace.encode()
    leaks = []
    for pid in sorted(set(_pids()) | scope.pids):
        if pid in skip or not _alive(pid) or _parent(pid) == me:
            continue
        cmdline = _read(f"/proc/{pid}/cmdline") or b""
        argv = cmdline.split(b"\0")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").encode()
        except OSError:
            cwd = b""
        cgroups = _read(f"/proc/{pid}/cgroup") or b""
        is_shim = SHIM_NAME in os.path.basename(argv[0])
        why = ""
        if base in cmdline or cwd == base or cwd.startswith(base + b"/"):
            why = "under the base dir"
        elif is_shim and ns in argv[1:]:
            why = "a shim of the namespace"
        elif any(ns in line.split(b":", 2)[-1] for line in cgroups.splitlines()):
            why = "in a cgroup of the namespace"
        elif pid in scope.pids:
            why = "recorded by the test"
        if why:
            shown = cmdline.replace(b"\0", b" ").strip().decode(errors="replace")
            leaks.append(Leak("process", f"{pid} ({why}): {shown[:200]}", _kill(pid)))
    return leaks


def _parent(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat")
    return int(stat[stat.rfind(b")") + 2 :].split()[1]) if stat else 0


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pid = _parent(pid)
        pids.add(pid)
    return pids


# -- files --------------------------------------------------------------------------------------


def _rm(path: Path) -> Callable[[], None]:
    def remove() -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()

    return remove


def _entries(kind: str, directory: Path | None) -> list[Leak]:
    if directory is None or not directory.is_dir():
        return []
    paths = [directory / e for e in sorted(os.listdir(directory))]
    return [Leak(kind, str(p), _rm(p)) for p in paths]


def known_ids(scope: Scope) -> set[str]:
    """Task ids of the scope: recorded, or seen in its bundles, work dirs, io dirs and runc
    state (a socket is named after the id, so these are the sockets that can be its)."""
    ids = set(scope.ids)
    for base in (scope.state, scope.root):
        if base is not None:
            for sub in (base / TASK_DIR / scope.namespace, base / IO_DIR / scope.namespace):
                if sub.is_dir():
                    ids.update(e for e in os.listdir(sub) if not e.startswith("."))
    ids.update(root.name for root in _runc_containers(scope))
    return ids


def socket_name(address: str, namespace: str, task_id: str) -> str:
    """The file name a runc-style shim gives its socket in /run/containerd/s."""
    key = os.path.normpath(os.path.join(address, namespace, task_id))
    return hashlib.sha256(key.encode()).hexdigest()


def find_sockets(scope: Scope) -> list[Leak]:
    """Shim sockets in /run/containerd/s of every task id the scope knows of."""
    address = scope.address
    if address is None:
        return []
    leaks = []
    for task_id in sorted(known_ids(scope)):
        path = SOCKET_DIR / socket_name(address, scope.namespace, task_id)
        if path.exists() or path.is_symlink():
            leaks.append(Leak("shim socket", f"{path} (task {task_id})", _rm(path)))
    return leaks


def find_dirs(scope: Scope) -> list[Leak]:
    """Bundles (``<state>/<task plugin>/<ns>/*`` and the scope's own), work dirs
    (``<root>/<task plugin>/<ns>/*``), io dirs (``<state>/taskplane.io/<ns>/*``) and overlay
    layers (``<root>/<overlay snapshotter>/snapshots/<ns>/*``) of the namespace."""
    state, root, ns = scope.state, scope.root, scope.namespace
    own = [Leak("bundle", str(b), _rm(b)) for b in sorted(scope.bundles) if b.exists()]
    return (
        own
        + _entries("bundle", state / TASK_DIR / ns if state else None)
        + _entries("work dir", root / TASK_DIR / ns if root else None)
        + _entries("io dir", state / IO_DIR / ns if state else None)
        + _entries("overlay layer", root / OVERLAY_LAYERS / ns if root else None)
    )


def find_records(scope: Scope) -> list[Leak]:
    """Container records of the namespace in the SQLite store (``<root>/…sqlite/meta.db``)."""
    if scope.root is None or not (scope.root / METADATA_DB).exists():
        return []
    db = scope.root / METADATA_DB
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT id FROM containers WHERE namespace = ? ORDER BY id", (scope.namespace,)
            ).fetchall()
    except sqlite3.Error:
        return []  # no table yet (or not a database: the test is about that)

    def remover(container_id: str) -> Callable[[], None]:
        def remove() -> None:
            with contextlib.closing(sqlite3.connect(db)) as conn, conn:
                conn.execute(
                    "DELETE FROM containers WHERE namespace = ? AND id = ?",
                    (scope.namespace, container_id),
                )

        return remove

    return [Leak("container record", f"{row[0]} in {db}", remover(row[0])) for row in rows]


# -- runc state, mounts, cgroups ----------------------------------------------------------------


def _runc_containers(scope: Scope) -> list[Path]:
    """Container dirs (``<runc root>/<id>``) in /run/containerd/runc/<ns> and in any runc root
    under the base dir (a dir holding runc's ``state.json``)."""
    found = []
    shared = RUNC_ROOT / scope.namespace
    if shared.is_dir():
        found += [shared / e for e in sorted(os.listdir(shared))]
    base_depth = len(scope.base.parts)
    for dirpath, dirnames, filenames in os.walk(scope.base):
        if len(Path(dirpath).parts) - base_depth >= RUNC_STATE_DEPTH:
            dirnames.clear()
        if "state.json" in filenames and _is_runc_state(Path(dirpath) / "state.json"):
            found.append(Path(dirpath))
            dirnames.clear()
    return found


def _is_runc_state(path: Path) -> bool:
    try:
        return "init_process_pid" in json.loads(path.read_bytes())
    except (OSError, ValueError, TypeError):
        return False


def find_runc_state(scope: Scope) -> list[Leak]:
    """runc containers of the namespace (shared root) or under the base dir (private roots)."""

    def remover(container: Path) -> Callable[[], None]:
        def remove() -> None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    ["runc", "--root", str(container.parent), "delete", "--force", container.name],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            _rm(container)()

        return remove

    return [Leak("runc state", str(c), remover(c)) for c in _runc_containers(scope)]


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape")  # mountinfo writes \040 for a space etc.


def find_mounts(scope: Scope) -> list[Leak]:
    """Mounts at or under the base dir (deepest first, so they unmount in order)."""
    prefix = str(scope.base).rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split(" ")[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)

    def remover(point: str) -> Callable[[], None]:
        return lambda: subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

    return [Leak("mount", p, remover(p)) for p in sorted(points, key=len, reverse=True)]


def _cgroup_dirs(namespace: str) -> Iterator[Path]:
    """Dirs under /sys/fs/cgroup/<controller>/ (CGROUP_DEPTH deep) whose name contains the
    namespace, with everything below them, deepest first."""
    if not CGROUP_ROOT.is_dir():
        return
    for controller in sorted(CGROUP_ROOT.iterdir()):
        if not controller.is_dir() or controller.is_symlink():
            continue  # cpu,cpuacct style links name the same hierarchy twice
        top = len(controller.parts)
        for dirpath, dirnames, _ in os.walk(controller, topdown=True):
            path = Path(dirpath)
            if len(path.parts) - top >= CGROUP_DEPTH:
                dirnames.clear()
            matched = [d for d in dirnames if namespace in d]
            dirnames[:] = [d for d in dirnames if namespace not in d]
            for name in matched:
                below = [Path(p) for p, _, _ in os.walk(path / name)]
                yield from sorted(below, key=lambda p: len(p.parts), reverse=True)


def _procs(cgroup: Path) -> bool:
    try:
        return bool((cgroup / "cgroup.procs").read_text().strip())
    except OSError:
        return False


def find_cgroups(scope: Scope) -> list[Leak]:
    """Cgroups of the namespace in every controller.

    One kind is not a leak: an EMPTY dir right under a controller, the parent that a
    ``cgroupsPath`` of ``/<ns>/<id>`` makes runc create (runc removes only the leaf it made;
    containerd leaves these parents too). :func:`clean` removes them without failing the test.
    """
    return [
        Leak("cgroup", str(c), _rmdir(c))
        for c in _cgroup_dirs(scope.namespace)
        if not _is_namespace_parent(c)
    ]


def _is_namespace_parent(cgroup: Path) -> bool:
    return (
        len(cgroup.relative_to(CGROUP_ROOT).parts) == 2
        and not _procs(cgroup)
        and not _has_subdirs(cgroup)
    )


def _has_subdirs(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(e.is_dir() for e in entries)
    except OSError:
        return False


def _rmdir(path: Path) -> Callable[[], None]:
    def remove() -> None:
        with contextlib.suppress(OSError):
            path.rmdir()

    return remove


# -- the checker --------------------------------------------------------------------------------

FINDERS: tuple[Callable[[Scope], list[Leak]], ...] = (
    find_processes,
    find_sockets,
    find_runc_state,
    find_mounts,
    find_dirs,
    find_records,
    find_cgroups,
)


def find_leaks(scope: Scope) -> list[Leak]:
    """Everything of ``scope`` still around; nothing is changed."""
    return [leak for finder in FINDERS for leak in finder(scope)]


def clean(leaks: Iterable[Leak], scope: Scope) -> None:
    """Remove ``leaks`` (in finder order: processes die before their runc state, mounts and
    cgroups go), then whatever of ``scope`` is still there, and the namespace's cgroup parents."""
    for leak in leaks:
        leak.remove()
    for leak in find_leaks(scope):  # a killed shim's container, a dir a process held
        leak.remove()
    for cgroup in _cgroup_dirs(scope.namespace):  # deepest first: the parents, now empty
        _rmdir(cgroup)()
    shared = RUNC_ROOT / scope.namespace
    with contextlib.suppress(OSError):
        shared.rmdir()  # the shim makes the namespace's runc root; nothing removes it when empty


def report(leaks: Iterable[Leak]) -> str:
    """The failure message listing ``leaks``."""
    return "the test leaked (found before any fixture cleanup):\n  " + "\n  ".join(
        str(leak) for leak in leaks
    )


# -- the pytest side: check before fixture cleanup ---------------------------------------------

#: A file to append "<namespace> <base dir>" of every scope to, for counting what a whole run
#: left behind on a machine where other runs go on at the same time.
SCOPE_RECORD = "TASKPLANE_TEST_SCOPES"
#: The scopes a test registered (:func:`guarded`).
SCOPES = pytest.StashKey[list[Scope]]()
#: What the pytest_runtest_teardown hook (tests/conftest.py) found per scope (by ``id``),
#: before any fixture cleanup.
FOUND = pytest.StashKey[dict[int, list[Leak]]]()


def check_before_teardown(item: pytest.Item) -> None:
    """Run by the first pytest_runtest_teardown hook: look for leaks of every scope the test
    registered while its fixtures are all still in place."""
    item.stash[FOUND] = {id(s): find_leaks(s) for s in item.stash.get(SCOPES, [])}


@contextlib.contextmanager
def guarded(
    node: pytest.Item, *scopes: Scope, after: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Register ``scopes`` as the test's, for the check before teardown; when the fixture holding
    this ends: clean up what was found (the safety net), run ``after`` (e.g. remove the base
    dir) and fail the test naming the leaks."""
    node.stash.setdefault(SCOPES, []).extend(scopes)
    if record := os.environ.get(SCOPE_RECORD):
        with open(record, "a") as f:
            f.writelines(f"{s.namespace} {s.base}\n" for s in scopes)
    try:
        yield
    finally:
        found: dict[str, Leak] = {}  # scopes may share a base dir: a leak is listed once
        for scope in scopes:
            leaks = node.stash.get(FOUND, {}).get(id(scope))
            if leaks is None:  # checked in the test's body, before the teardown hook ran
                leaks = find_leaks(scope)
            found.update((str(leak), leak) for leak in leaks)
        clean(found.values(), scopes[0])
        for scope in scopes[1:]:
            clean([], scope)
        after()
    if found:
        pytest.fail(report(found.values()), pytrace=False)
