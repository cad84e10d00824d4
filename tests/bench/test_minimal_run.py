"""``bench/minimal_run.py``, the floor of ``run --rm`` in Python: it really runs the task with
the real shim and runc (its exit status comes back through Wait), fails in one line naming the
step, and leaves nothing behind either way (tests/leaks.py, checked before any cleanup)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from taskplane.oci import default_spec, spec_bytes
from tests.integration.runtimes import UPSTREAM_RUNC, UPSTREAM_SHIM, require_upstream
from tests.leaks import Scope, guarded

REPO = Path(__file__).resolve().parents[2]
MINIMAL_RUN = REPO / "bench" / "minimal_run.py"

pytestmark = pytest.mark.integration


@attrs.frozen
class Place:
    """A private state dir and namespace for minimal runs (the leak check covers them)."""

    base: Path
    namespace: str
    rootfs: Path

    def run(
        self, task_id: str, args: list[str], *extra: str, rootfs: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        spec = self.base / f"{task_id}.json"
        spec.write_bytes(spec_bytes(default_spec(task_id, rootfs=self.rootfs, args=args)))
        argv = [
            sys.executable,
            str(MINIMAL_RUN),
            *("--state", str(self.base / "state"), "--namespace", self.namespace),
            *("--spec", str(spec), "--rootfs", str(rootfs or self.rootfs), *extra, task_id),
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def place(busybox_rootfs: Path, request: pytest.FixtureRequest) -> Iterator[Place]:
    base = Path(tempfile.mkdtemp(prefix="tpm-", dir="/tmp"))
    namespace = f"tpmin-{uuid.uuid4().hex[:8]}"
    scope = Scope(
        namespace=namespace,
        base=base,
        grpc_address=str(base / "state" / "minimal.sock"),
        ids={"m1", "m2"},
        bundles={base / "state" / namespace / i for i in ("m1", "m2")},
    )
    with guarded(request.node, scope, after=lambda: shutil.rmtree(base, ignore_errors=True)):
        yield Place(base, namespace, busybox_rootfs)


def test_it_runs_the_task_through_the_debian_shim(place: Place) -> None:
    result = place.run("m1", ["/bin/sh", "-c", "exit 3"])
    assert result.returncode == 3, result.stderr
    assert result.stderr == "minimal run of m1: the task exited with status 3\n"
    assert place.run("m2", ["/bin/true"]).returncode == 0


def test_it_runs_the_task_through_the_upstream_shim_with_bootstrap_params(
    place: Place, request: pytest.FixtureRequest
) -> None:
    require_upstream(request.config)
    upstream = ("--shim", str(UPSTREAM_SHIM), "--runc", str(UPSTREAM_RUNC), "--bootstrap")
    result = place.run("m1", ["/bin/sh", "-c", "exit 3"], *upstream)
    assert result.returncode == 3, result.stderr
    assert place.run("m2", ["/bin/true"], *upstream).returncode == 0


def test_a_failed_create_is_one_line_naming_the_step(place: Place) -> None:
    result = place.run("m1", ["/bin/true"], rootfs=place.base / "missing")
    assert result.returncode == 1
    assert result.stderr.startswith("minimal run of m1: Create: "), result.stderr
    assert "missing" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
