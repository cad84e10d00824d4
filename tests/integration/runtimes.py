"""The shim x runc matrix of the integration tests.

Two runc shims -- Debian's containerd-shim-runc-v2 1.6.20 (legacy start protocol, task API v2)
and upstream containerd 2.4's (BootstrapParams, task API v3) -- times two runcs -- Debian's
1.1.5 and upstream 1.5 (``binary_name`` in ``containerd.runc.v1.Options``). The upstream
binaries live in ``../shared/upstream/bin`` from the repository root (see its README): on a
user's machine it is absent and those combinations skip; under TASKPLANE_REQUIRE_INTEGRATION=1
(CI) they fail instead.

Tests take the ``runtime`` fixture (parametrized over all four) or ``upstream`` (for tests that
only make sense with the upstream binaries, named by :data:`UPSTREAM_SHIM` and friends);
tests/integration/conftest.py imports both fixtures.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest

from runtime_v2.api import runc_options_pb2

REPO = Path(__file__).resolve().parents[2]
#: containerd 2.4 and runc 1.5 built from upstream source (../shared/upstream/README.md).
UPSTREAM_BIN = REPO.parent / "shared" / "upstream" / "bin"
UPSTREAM_SHIM = UPSTREAM_BIN / "containerd-shim-runc-v2"
UPSTREAM_RUNC = UPSTREAM_BIN / "runc"
UPSTREAM_CONTAINERD = UPSTREAM_BIN / "containerd"
UPSTREAM_CTR = UPSTREAM_BIN / "ctr"
#: The runtime name the Debian shim is found by (on PATH).
DEBIAN_RUNTIME = "io.containerd.runc.v2"


@attrs.frozen
class Runtime:
    """One shim x runc combination: ``shim`` is what ``CreateOpts.runtime`` names, ``runc`` the
    runc binary (None: the shim's default, Debian's ``runc`` on PATH); ``task_api`` and
    ``start_protocol`` are what taskplane must negotiate with this shim."""

    label: str
    shim: str
    runc: str | None
    task_api: int
    start_protocol: str
    upstream: bool

    def options(self) -> runc_options_pb2.Options | None:
        """The runtime options selecting :attr:`runc` (None for the default runc)."""
        return runc_options_pb2.Options(binary_name=self.runc) if self.runc else None

    def create_kw(self) -> dict[str, Any]:
        """``runtime`` and ``runtime_options`` for :class:`runtime_v2.CreateOpts`."""
        return {"runtime": self.shim, "runtime_options": self.options()}


def _debian_runc() -> str:
    return shutil.which("runc") or "/usr/sbin/runc"


MATRIX = (
    Runtime("shim1.6-runc1.1", DEBIAN_RUNTIME, None, 2, "legacy", False),
    Runtime("shim1.6-runc1.5", DEBIAN_RUNTIME, str(UPSTREAM_RUNC), 2, "legacy", True),
    Runtime("shim2.4-runc1.1", str(UPSTREAM_SHIM), _debian_runc(), 3, "bootstrap", True),
    Runtime("shim2.4-runc1.5", str(UPSTREAM_SHIM), str(UPSTREAM_RUNC), 3, "bootstrap", True),
)


def missing_upstream() -> list[str]:
    """What of ../shared/upstream is missing (empty when everything is there)."""
    needed = (UPSTREAM_SHIM, UPSTREAM_RUNC, UPSTREAM_CONTAINERD, UPSTREAM_CTR)
    return [
        f"{path} does not exist (see ../shared/upstream)" for path in needed if not path.exists()
    ]


def require_upstream(config: pytest.Config) -> None:
    """Skip the test without ../shared/upstream; fail it under TASKPLANE_REQUIRE_INTEGRATION=1
    (tests/conftest.py's ``require_integration``, found through pytest: that conftest is not
    importable as a module from here)."""
    root_conftest = config.pluginmanager.get_plugin(str(REPO / "tests" / "conftest.py"))
    root_conftest.require_integration(missing_upstream())


@pytest.fixture(params=MATRIX, ids=[r.label for r in MATRIX])
def runtime(request: pytest.FixtureRequest, integration_prerequisites: None) -> Runtime:
    """Each shim x runc combination in turn (upstream ones need ../shared/upstream)."""
    chosen: Runtime = request.param
    if chosen.upstream:
        require_upstream(request.config)
    return chosen


@pytest.fixture
def upstream(request: pytest.FixtureRequest, integration_prerequisites: None) -> None:
    """Require ../shared/upstream (skip without it; fail under TASKPLANE_REQUIRE_INTEGRATION=1)."""
    require_upstream(request.config)
