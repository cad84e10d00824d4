"""Fixtures shared by every test directory.

- ``integration_prerequisites`` (session): skips a test that needs the real Go peers (root,
  runc, containerd-shim-runc-v2, a static busybox) when one is missing, saying which; with
  ``TASKPLANE_REQUIRE_INTEGRATION=1`` it fails instead, so CI cannot silently skip them.
- ``busybox_rootfs`` (session): a busybox root filesystem built once.
- ``third_party_install`` (session): ``examples/third_party_runtime`` pip-installed into a
  directory to put on PYTHONPATH (:func:`install_third_party_example`).

The leak checker itself is :mod:`tests.leaks` (importable: pytest puts the repository root on
``sys.path``); the ``pytest_runtest_teardown`` hook here runs it before any fixture cleanup.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.prerequisites import missing_integration_prerequisites, need_root, require

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY_EXAMPLE = REPO / "examples" / "third_party_runtime"

RUNC_ROOT = Path("/run/containerd/runc")


# -- prerequisites of the tests against real peers ---------------------------------------------


def require_integration(missing: Iterable[str]) -> None:
    """Skip the test when anything is ``missing``; fail it under TASKPLANE_REQUIRE_INTEGRATION=1."""
    require(missing, what="integration prerequisites missing")


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


@pytest.fixture
def as_root() -> None:
    """The test needs root: it skips without, or fails under TASKPLANE_REQUIRE_INTEGRATION=1."""
    need_root()


# -- leak checks ---------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before any fixture of the test is torn down, look for what it leaked (tests.leaks)."""
    from tests.leaks import check_before_teardown

    check_before_teardown(item)


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
