"""The committed *_pb2.py / *_pb2.pyi files are exactly what `make protos` generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.prerequisites import need


@pytest.fixture(autouse=True)
def grpc_tools() -> None:
    """grpcio-tools is a dev dependency: without it the test skips, or fails in CI."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        need(False, "grpcio-tools (a dev dependency) is not installed")


REPO = Path(__file__).resolve().parents[2]
#: Where the protos live: the runtime's API, and ttrpc's own wire messages.
PROTO_DIRS = [REPO / "runtime_v2" / "api", REPO / "runtime_v2" / "ttrpc"]


def _generated_names(protos: list[Path]) -> set[str]:
    return {f"{p.stem}_pb2{ext}" for p in protos for ext in (".py", ".pyi")}


@pytest.mark.parametrize("proto_dir", PROTO_DIRS, ids=lambda p: p.name)
def test_committed_generated_code_matches_protoc_output(tmp_path: Path, proto_dir: Path) -> None:
    protos = sorted(proto_dir.glob("*.proto"))
    assert protos, f"no .proto files in {proto_dir}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *(str(p.relative_to(REPO)) for p in protos),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed: {result.stderr}"
    generated = tmp_path / proto_dir.relative_to(REPO)
    problems = []
    for name in sorted(_generated_names(protos)):
        committed = proto_dir / name
        if not committed.exists():
            problems.append(f"{committed.relative_to(REPO)} is missing (run `make protos`)")
        elif committed.read_bytes() != (generated / name).read_bytes():
            problems.append(f"{committed.relative_to(REPO)} is stale (run `make protos`)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("proto_dir", PROTO_DIRS, ids=lambda p: p.name)
def test_no_generated_module_without_its_proto(proto_dir: Path) -> None:
    expected = _generated_names(sorted(proto_dir.glob("*.proto")))
    orphans = sorted(
        p.name
        for p in proto_dir.iterdir()
        if p.name.endswith(("_pb2.py", "_pb2.pyi")) and p.name not in expected
    )
    assert not orphans, f"generated files without a .proto in {proto_dir}: {', '.join(orphans)}"


def test_make_protos_regenerates_every_proto_dir() -> None:
    makefile = (REPO / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("PROTOS :="))
    for proto_dir in PROTO_DIRS:
        assert f"{proto_dir.relative_to(REPO)}/*.proto" in line, line
