"""runtime_v2.runtime, the runtime contract: cheap to import, CreateOpts converts its inputs."""

from __future__ import annotations

import subprocess
import sys

from google.protobuf import any_pb2

from runtime_v2.api import mount_pb2
from runtime_v2.runtime import DEFAULT_RUNTIME, CreateOpts


def test_importing_the_contract_loads_no_protobuf() -> None:
    code = (
        "import sys, runtime_v2.runtime\n"
        "print(sorted(m for m in sys.modules if m.startswith('google.protobuf')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_create_opts_converts_spec_and_rootfs() -> None:
    opts = CreateOpts(spec={"ociVersion": "1.0.2"}, rootfs=[{"type": "bind", "source": "/x"}])
    assert opts.spec == b'{"ociVersion":"1.0.2"}'
    assert opts.rootfs == (mount_pb2.Mount(type="bind", source="/x"),)
    assert opts.runtime == DEFAULT_RUNTIME
    held = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}"
    )
    assert CreateOpts(spec=held).spec == b"{}"
    assert CreateOpts(spec="{}").spec == b"{}"
