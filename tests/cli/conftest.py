"""Fixtures that drive ``taskplane`` as a user does: ``python -m taskplane`` in a subprocess.

Every test gets private, short root and state directories (``/tmp/tpXXXX``) and its own
namespace (``TASKPLANE_NAMESPACE`` in the runner's environment; ``Taskplane.other_namespace`` for
a second one). Integration tests (marker ``integration``) need root, runc,
containerd-shim-runc-v2 and busybox; without them they skip, unless
TASKPLANE_REQUIRE_INTEGRATION=1, which turns the skip into a failure. The leak checker
(:mod:`tests.leaks`) looks at both namespaces before any fixture cleanup: shim and container
processes, sockets, bundles, work and io dirs, records, runc state, mounts and cgroups.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import pytest

from tests.leaks import Scope, guarded
from tests.packages import pip_install_target

REPO = Path(__file__).resolve().parents[2]
TASK_STATE_DIR = "io.containerd.runtime.v2.task"


@attrs.frozen
class Taskplane:
    """Runs ``python -m taskplane --root R --state S ...`` and returns the CompletedProcess."""

    root: Path
    state: Path
    cwd: Path
    env: dict[str, str]
    #: The test's own namespace (the default of every command: TASKPLANE_NAMESPACE in ``env``).
    namespace: str = "default"
    #: A second namespace of the test's own, for tests about namespaces.
    other_namespace: str = "other"

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


@pytest.fixture
def private_dirs(request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path, str, str]]:
    """Short private root and state dirs under /tmp and two unique namespaces; the test fails
    if anything of them outlives it (checked before any fixture cleanup), then the dirs go."""
    base = Path(tempfile.mkdtemp(prefix="tp", dir="/tmp"))
    root, state = base / "r", base / "s"
    name = f"cli-{uuid.uuid4().hex[:10]}"
    namespaces = (name, f"{name}-b")
    scopes = [Scope(namespace=ns, base=base, state=state, root=root) for ns in namespaces]
    with guarded(request.node, *scopes, after=lambda: shutil.rmtree(base, ignore_errors=True)):
        yield root, state, *namespaces


@pytest.fixture
def taskplane(private_dirs: tuple[Path, Path, str, str], tmp_path: Path) -> Taskplane:
    """A :class:`Taskplane` runner with private dirs and namespaces; cwd is an empty temporary
    directory."""
    root, state, namespace, other = private_dirs
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**base_env(), "TASKPLANE_NAMESPACE": namespace}
    return Taskplane(
        root=root, state=state, cwd=cwd, env=env, namespace=namespace, other_namespace=other
    )


@pytest.fixture(scope="session")
def integration_ready(integration_prerequisites: None) -> None:
    """Skip (or fail, with TASKPLANE_REQUIRE_INTEGRATION=1) without the integration setup
    (``integration_prerequisites`` of tests/conftest.py)."""


@pytest.fixture
def runner(integration_ready: None, taskplane: Taskplane) -> Taskplane:
    """The runner of an integration test (the leak check comes with its private dirs)."""
    return taskplane


@pytest.fixture
def task_id() -> str:
    """A unique task id for this test (``<id>-N`` for more); the leak check covers it."""
    return f"tp-{uuid.uuid4().hex[:10]}"


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
    result = pip_install_target(source, target)
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


def run_example(
    runner: Taskplane, node: pytest.Item, example: str, namespace: str, rootfs: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<example>.py``'s ``main(rootfs, work)`` in a work dir of the test's (run as
    a script it makes its own in /tmp) and ``namespace`` (the test's own), leak-checked like
    every test; its exit code is main()'s result."""
    work = runner.state.parent / example
    scope = Scope(namespace=namespace, base=work, state=work / "state", root=work / "root")
    with guarded(node, scope):
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import asyncio, importlib, sys; sys.path.insert(0, sys.argv[1]); "
                "example = importlib.import_module(sys.argv[2]); "
                "sys.exit(asyncio.run(example.main(*sys.argv[3:])))",
                str(REPO / "examples"),
                example,
                str(rootfs),
                str(work),
                namespace,
            ],
            env=runner.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
