"""Fixtures that drive ``taskplane`` as a user does: ``python -m taskplane`` in a subprocess.

Every test gets private, short root and state directories (``/tmp/tpXXXX``). Integration tests
(marker ``integration``) need root, runc, containerd-shim-runc-v2 and busybox; without them they
skip, unless TASKPLANE_REQUIRE_INTEGRATION=1, which turns the skip into a failure. After each
test the private state directory is checked for leaks: no process (a shim) whose command line or
working directory is under it, and no bundle left in the task manager's state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
TASK_STATE_DIR = "io.containerd.runtime.v2.task"
RUNTIME_BINARIES = ("runc", "containerd-shim-runc-v2")


@attrs.frozen
class Taskplane:
    """Runs ``python -m taskplane --root R --state S ...`` and returns the CompletedProcess."""

    root: Path
    state: Path
    cwd: Path
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``args`` (global options first)."""
        return [
            sys.executable,
            "-m",
            "taskplane",
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            *args,
        ]

    def __call__(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``taskplane args`` with piped stdout/stderr (for signal tests)."""
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def base_env() -> dict[str, str]:
    """The environment for a taskplane subprocess: ours, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("TASKPLANE_CONFIG", None)
    env.pop("TASKPLANE_NAMESPACE", None)
    return env


def processes_under(path: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose cwd or command line mentions ``path``."""
    needle = str(path)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                cwd = ""
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append((int(entry), cmdline.strip() or f"[cwd {cwd}]"))
    return found


def leaks_under(state: Path) -> list[str]:
    """What a finished test left running or on disk under its private state directory."""
    leaks = [f"process {pid}: {cmd}" for pid, cmd in processes_under(state)]
    tasks = state / TASK_STATE_DIR
    if tasks.is_dir():
        for ns in tasks.iterdir():
            if ns.is_dir() and not ns.name.startswith("."):
                leaks += [f"bundle {b}" for b in ns.iterdir() if not b.name.startswith(".")]
    # The state dir's runc root (runtime_v2.task_manager.RUNC_ROOT_DIR): <root>/<ns>/<id>.
    runc_root = tasks / ".runc"
    if runc_root.is_dir():
        leaks += [f"runc state {c}" for ns in runc_root.iterdir() for c in ns.iterdir()]
    return leaks


#: The overlay snapshotter's layers under the root dir: ``<root>/<uri>/snapshots/<ns>/<id>``.
OVERLAY_LAYERS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"


def layers_under(root: Path) -> list[str]:
    """The overlay layers (upper and work dirs) a finished test left under its root dir."""
    layers = root / OVERLAY_LAYERS
    if not layers.is_dir():
        return []
    return [f"overlay layer {layer}" for ns in layers.iterdir() for layer in ns.iterdir()]


def _kill_leftovers(state: Path) -> None:
    """Kill (by pid) the processes our test started under ``state`` so the next test is clean."""
    for pid, _ in processes_under(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def private_dirs() -> Iterator[tuple[Path, Path]]:
    """Short private root and state dirs under /tmp, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="tp", dir="/tmp"))
    root, state = base / "r", base / "s"
    yield root, state
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def taskplane(private_dirs: tuple[Path, Path], tmp_path: Path) -> Taskplane:
    """A :class:`Taskplane` runner with private dirs; cwd is an empty temporary directory."""
    root, state = private_dirs
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return Taskplane(root=root, state=state, cwd=cwd, env=base_env())


def missing_integration_prerequisites() -> list[str]:
    """Why integration tests cannot run here (empty when they can)."""
    from taskplane.rootfs import RootfsError, find_busybox

    missing = []
    if not sys.platform.startswith("linux"):
        missing.append(f"not Linux ({sys.platform})")
    if os.geteuid() != 0:
        missing.append("not running as root")
    for binary in RUNTIME_BINARIES:
        if shutil.which(binary) is None:
            missing.append(f"{binary} not found in PATH")
    try:
        find_busybox()
    except RootfsError as exc:
        missing.append(str(exc))
    return missing


@pytest.fixture(scope="session")
def integration_ready() -> None:
    """Skip (or fail, with TASKPLANE_REQUIRE_INTEGRATION=1) without the integration setup."""
    missing = missing_integration_prerequisites()
    if missing:
        reason = "integration prerequisites missing: " + "; ".join(missing)
        if os.environ.get("TASKPLANE_REQUIRE_INTEGRATION") == "1":
            pytest.fail(reason + " (TASKPLANE_REQUIRE_INTEGRATION=1)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def busybox_rootfs(integration_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem, built once per session."""
    from taskplane.rootfs import build_busybox_rootfs

    return build_busybox_rootfs(tmp_path_factory.mktemp("rootfs") / "busybox")


@pytest.fixture
def runner(integration_ready: None, taskplane: Taskplane) -> Iterator[Taskplane]:
    """The runner of an integration test; fails the test if a shim or bundle leaked."""
    yield taskplane
    # A shim exits after its last task is deleted, but only once its event publisher gives up
    # on events nobody received (seen up to ~10 s when concurrent taskplane processes took
    # turns serving the events socket): wait for it on a pidfd, bounded, before calling it a
    # leak.
    deadline = time.monotonic() + 30
    for pid, _ in processes_under(taskplane.state):
        _wait_exit(pid, timeout=max(0.0, deadline - time.monotonic()))
    leaks = leaks_under(taskplane.state) + layers_under(taskplane.root)
    if leaks:
        _kill_leftovers(taskplane.state)
        pytest.fail("the test leaked:\n" + "\n".join(leaks))


def _wait_exit(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` exits or ``timeout`` passes (pidfd + select, no polling)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


RUNC_STATE = Path("/run/containerd/runc")


@pytest.fixture
def task_id() -> Iterator[str]:
    """A unique task id for this test (``<id>-N`` for more); fails if runc state is left."""
    tid = f"tp-{uuid.uuid4().hex[:10]}"
    yield tid
    left = sorted(str(p) for p in RUNC_STATE.glob(f"*/{tid}*")) if RUNC_STATE.is_dir() else []
    assert not left, f"runc state left behind: {left}"


@pytest.fixture(scope="session")
def third_party_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """examples/third_party_runtime pip-installed into a temporary directory (for PYTHONPATH)."""
    target = tmp_path_factory.mktemp("third-party")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("third-party-src") / "third_party_runtime"
    shutil.copytree(
        REPO / "examples" / "third_party_runtime",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"pip install of examples/third_party_runtime failed:\n{result.stderr}")
    return str(target)


def lines(text: str) -> list[str]:
    """Non-empty lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]


def single_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one line on stderr and no traceback; return it."""
    assert result.returncode != 0, result
    err = lines(result.stderr)
    assert len(err) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert err[0].startswith("taskplane: "), err[0]
    return err[0]


def wait_for_line(stream: IO[str], timeout: float = 20) -> str:
    """Read one line from a Popen text pipe, failing the test after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            pytest.fail(f"no output within {timeout}s")
    return stream.readline()
