"""Fixtures shared by every test directory.

- ``integration_prerequisites`` (session): skips a test that needs the real Go peers (root,
  runc, containerd-shim-runc-v2, a static busybox) when one is missing, saying which; with
  ``TASKPLANE_REQUIRE_INTEGRATION=1`` it fails instead, so CI cannot silently skip them.
- ``busybox_rootfs`` (session): a busybox root filesystem built once.
- ``leak_report``: a :class:`LeakReport` that finds what a test left behind (shim processes,
  sockets, runc state, mounts, bundles), cleans it up and fails the test naming it.
- ``third_party_install`` (session): ``examples/third_party_runtime`` pip-installed into a
  directory to put on PYTHONPATH (:func:`install_third_party_example`).

There is deliberately no ``tests/__init__.py`` (``tests/registry`` would shadow the real
``registry`` package), so this module is not importable reliably: share things through
fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY_EXAMPLE = REPO / "examples" / "third_party_runtime"

SHIM_BINARY = "containerd-shim-runc-v2"
RUNC_BINARY = "runc"
RUNC_ROOT = Path("/run/containerd/runc")
REQUIRE_INTEGRATION = "TASKPLANE_REQUIRE_INTEGRATION"


# -- prerequisites of the tests against real peers ---------------------------------------------


def missing_integration_prerequisites(path: str | None = None) -> list[str]:
    """Why tests against the real runc shim cannot run here (empty when they can).

    ``path`` is the PATH to look for runc and the shim in (default: ours).
    """
    from taskplane.rootfs import RootfsError, find_busybox

    missing = []
    for binary in (RUNC_BINARY, SHIM_BINARY):
        if shutil.which(binary, path=path) is None:
            missing.append(f"{binary} is not installed (not on PATH)")
    try:
        find_busybox()
    except RootfsError as exc:
        missing.append(str(exc))
    if os.geteuid() != 0:
        missing.append("not running as root (real containers need root)")
    return missing


def require_integration(missing: Iterable[str]) -> None:
    """Skip the test when anything is ``missing``; fail it under TASKPLANE_REQUIRE_INTEGRATION=1."""
    missing = list(missing)
    if not missing:
        return
    reason = "integration prerequisites missing: " + "; ".join(missing)
    if os.environ.get(REQUIRE_INTEGRATION) == "1":
        pytest.fail(f"{reason} ({REQUIRE_INTEGRATION}=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def integration_prerequisites() -> None:
    """Skip (or, with TASKPLANE_REQUIRE_INTEGRATION=1, fail) when a real peer is unavailable."""
    require_integration(missing_integration_prerequisites())


@pytest.fixture(scope="session")
def busybox_rootfs(
    integration_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A busybox root filesystem shared by the session's containers (read-only in specs)."""
    from taskplane.rootfs import build_busybox_rootfs

    return build_busybox_rootfs(tmp_path_factory.mktemp("rootfs") / "busybox")


# -- leak checks -------------------------------------------------------------------------------


class LeakReport:
    """Collects what a test left behind, removing each thing as it is found.

    Call the finders that fit the test, then :meth:`fail_if_any`. Every finder cleans up what
    it reports, so one broken test does not break the next.
    """

    def __init__(self) -> None:
        #: One line per leaked thing.
        self.leaks: list[str] = []

    def shim_processes(self, *, cwd_under: Path, argv_has: Iterable[str] = ()) -> list[int]:
        """Kill runc-shim processes whose cwd is under ``cwd_under`` or whose argv holds one of
        ``argv_has`` (e.g. the test's namespace or task id); return their pids."""
        wanted = {arg.encode() for arg in argv_has}
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue  # exited meanwhile
            if not argv or SHIM_BINARY.encode() not in os.path.basename(argv[0]):
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                cwd = ""
            if cwd.startswith(str(cwd_under)) or wanted.intersection(argv[1:]):
                pids.append(int(entry))
        for pid in pids:
            self.leaks.append(f"shim process {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def files(self, kind: str, paths: Iterable[Path]) -> None:
        """Report and remove each of ``paths`` that exists (e.g. kind "shim socket")."""
        for path in paths:
            if path.exists() or path.is_symlink():
                self.leaks.append(f"{kind} {path}")
                with contextlib.suppress(OSError):
                    path.unlink()

    def runc_state(
        self,
        namespace: str,
        ids: Iterable[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Report and force-delete runc containers in the shim's runc root for ``namespace``:
        those of ``ids``, or all of them. The namespace dir goes too (once empty, with ids)."""
        root = RUNC_ROOT / namespace
        if not root.exists():
            return
        entries = sorted(os.listdir(root)) if ids is None else list(ids)
        for entry in entries:
            if not (root / entry).exists():
                continue
            self.leaks.append(f"runc state {root / entry}")
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    [RUNC_BINARY, "--root", str(root), "delete", "--force", entry],
                    capture_output=True,
                    timeout=10,
                    check=False,
                    env=dict(env) if env is not None else None,
                )
            shutil.rmtree(root / entry, ignore_errors=True)
        if ids is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                root.rmdir()

    def mounts(self, under: Path) -> None:
        """Report and lazily unmount every mount at or under ``under`` (deepest first)."""
        prefix = str(under).rstrip("/")
        points = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split(" ")[4].encode().decode("unicode_escape")  # \040 etc.
                if point == prefix or point.startswith(prefix + "/"):
                    points.append(point)
        for point in sorted(points, key=len, reverse=True):
            self.leaks.append(f"mount {point}")
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

    def present(self, kind: str, paths: Iterable[Path]) -> None:
        """Report each of ``paths`` that still exists (e.g. kind "bundle"); nothing is removed."""
        for path in paths:
            if path.exists() or path.is_symlink():
                self.leaks.append(f"{kind} {path}")

    def entries(self, kind: str, directory: Path) -> None:
        """Report every entry left in ``directory`` (e.g. kind "bundle"); nothing is removed."""
        if directory.is_dir():
            for entry in sorted(os.listdir(directory)):
                self.leaks.append(f"{kind} {directory / entry}")

    def fail_if_any(self) -> None:
        """Fail the running test, listing the leaks, when there are any."""
        if self.leaks:
            pytest.fail("the test leaked:\n  " + "\n  ".join(self.leaks))


@pytest.fixture
def leak_report() -> LeakReport:
    """A fresh :class:`LeakReport` for the test's own leak check."""
    return LeakReport()


# -- the third-party plugin example -----------------------------------------------------------


def install_third_party_example(target: Path) -> Path:
    """pip-install examples/third_party_runtime into ``target`` (a directory to put on
    PYTHONPATH) without touching the venv or the source tree; returns ``target``."""
    source = target.parent / "third_party_runtime-src"
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in examples/.
    shutil.copytree(
        THIRD_PARTY_EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


@pytest.fixture(scope="session")
def third_party_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example runtime package (put it on PYTHONPATH)."""
    return install_third_party_example(tmp_path_factory.mktemp("third_party") / "site")
