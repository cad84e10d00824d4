"""ttrpc is a library of its own: it imports nothing else of taskplane, owns its wire messages,
and those messages are byte for byte what they were when they lived in runtime_v2/api."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from google.protobuf import any_pb2

from runtime_v2.ttrpc import rpc_status_pb2, ttrpc_pb2

PACKAGE = Path(__file__).resolve().parents[2] / "runtime_v2" / "ttrpc"
REPO_PACKAGES = ("registry", "plugins", "runtime_v2", "taskplane")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_ttrpc_module_imports_the_rest_of_the_repository() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 5
    outside = {
        f"{path.name}: {name}"
        for path in sources
        for name in _imported_modules(path)
        if name.split(".")[0] in REPO_PACKAGES and not name.startswith("runtime_v2.ttrpc")
    }
    assert not outside, f"ttrpc imports the rest of taskplane: {sorted(outside)}"


def test_loading_every_ttrpc_name_loads_no_other_taskplane_module() -> None:
    code = (
        "import sys, runtime_v2.ttrpc as t\n"
        "for name in t.__all__: getattr(t, name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {REPO_PACKAGES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = eval(result.stdout)  # a list literal printed by the child
    # runtime_v2 itself is the (lazy, import-free) parent package.
    assert [m for m in loaded if not m.startswith("runtime_v2.ttrpc")] == ["runtime_v2"]


def test_wire_messages_keep_their_proto_names() -> None:
    assert ttrpc_pb2.Request.DESCRIPTOR.full_name == "ttrpc.Request"
    assert ttrpc_pb2.Response.DESCRIPTOR.full_name == "ttrpc.Response"
    assert ttrpc_pb2.KeyValue.DESCRIPTOR.full_name == "ttrpc.KeyValue"
    assert ttrpc_pb2.StringList.DESCRIPTOR.full_name == "ttrpc.StringList"
    assert rpc_status_pb2.Status.DESCRIPTOR.full_name == "taskplane.rpc.Status"


def test_wire_bytes_are_the_same_as_before_the_move() -> None:
    # Encoded by runtime_v2.api.ttrpc_pb2 / rpc_status_pb2 before they moved into the package.
    request = ttrpc_pb2.Request(
        service="containerd.task.v3.Task",
        method="State",
        payload=b"\x0a\x02t1",
        timeout_nano=2_000_000_000,
        metadata=[ttrpc_pb2.KeyValue(key="containerd-namespace-ttrpc", value="default")],
    )
    assert request.SerializeToString().hex() == (
        "0a17636f6e7461696e6572642e7461736b2e76332e5461736b120553746174651a040a0274312080a8d6b9"
        "072a250a1a636f6e7461696e6572642d6e616d6573706163652d7474727063120764656661756c74"
    )
    response = ttrpc_pb2.Response(
        status=rpc_status_pb2.Status(
            code=5,
            message="x: not found",
            details=[any_pb2.Any(type_url="t/x", value=b"\x01")],
        ),
        payload=b"pp",
    )
    assert response.SerializeToString().hex() == (
        "0a1a0805120c783a206e6f7420666f756e641a080a03742f7812010112027070"
    )
    assert ttrpc_pb2.StringList(list=["a", "b"]).SerializeToString().hex() == "0a01610a0162"


def test_names_load_on_first_use() -> None:
    code = (
        "import sys\n"
        "from runtime_v2 import ttrpc\n"
        "ttrpc.Closed, ttrpc.Code\n"
        "print(sorted(m for m in sys.modules if m.startswith('runtime_v2.ttrpc.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert eval(result.stdout) == ["runtime_v2.ttrpc._errors"]
