"""What shims are given, checked with the real shims behind a recording wrapper.

The wrapper records each command's argv, environment and stdin, then runs the real shim
(Debian's 1.6.20 or containerd 2.4's, with every runc of the matrix); for ``start`` it may
rewrite the version the shim announces. Everything else -- the daemon, its socket, the task --
is the real shim's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime_v2 import CreateOpts
from runtime_v2.api import bootstrap_pb2
from runtime_v2.shim_log import SHIM_LOGGER

from .conftest import TIMEOUT, Dirs, spec_for
from .runtimes import UPSTREAM_SHIM, Runtime

_WRAPPER = """#!{python}
import base64, json, os, subprocess, sys
real, records = {real!r}, {records!r}
action = sys.argv[-1]
stdin = sys.stdin.buffer.read() if action in ("start", "delete") else b""
n = len(os.listdir(records))
with open(os.path.join(records, "%03d-%s.json" % (n, action)), "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ),
               "stdin": base64.b64encode(stdin).decode()}}, f)
if action != "start":
    os.execv(real, [real] + sys.argv[1:]) if not stdin else None
done = subprocess.run([real] + sys.argv[1:], input=stdin, capture_output=True)
out = done.stdout
announce = os.environ.get("WRAP_ANNOUNCE")
if action == "start" and done.returncode == 0 and announce:
    sys.path.insert(0, {repo!r})
    from runtime_v2.start_response import parse_start_response
    endpoint = parse_start_response(out)
    out = json.dumps({{"version": int(announce), "address": endpoint.address,
                      "protocol": endpoint.protocol}}).encode()
sys.stdout.buffer.write(out)
sys.stderr.buffer.write(done.stderr)
sys.exit(done.returncode)
"""


def _real_shim(runtime: Runtime) -> str:
    if os.path.isabs(runtime.shim):
        return runtime.shim
    found = shutil.which("containerd-shim-runc-v2")
    assert found, "containerd-shim-runc-v2 is not on PATH"
    return found


def _wrapper(dirs: Dirs, real: str) -> tuple[str, Path]:
    """A recording wrapper of ``real`` in the test's dir; returns (its path, the records dir)."""
    records = dirs.base / "records"
    records.mkdir()
    path = dirs.base / "bin" / "containerd-shim-recorded-v2"
    path.parent.mkdir()
    repo = str(Path(__file__).resolve().parents[2])
    path.write_text(
        _WRAPPER.format(python=sys.executable, real=real, records=str(records), repo=repo)
    )
    path.chmod(0o755)
    for d in (dirs.base, path.parent, records):  # root alone may change what root runs
        d.chmod(stat.S_IMODE(d.stat().st_mode) & ~0o022)
    return str(path), records


def _records(records: Path, action: str) -> list[dict[str, Any]]:
    found = []
    for name in sorted(os.listdir(records)):
        if name.endswith(f"-{action}.json"):
            data = json.loads((records / name).read_text())
            data["stdin"] = base64.b64decode(data["stdin"])
            found.append(data)
    return found


async def _run_once(
    dirs: Dirs, task_manager: Any, rootfs: Path, runtime: Runtime, shim: str
) -> Any:
    spec = spec_for(rootfs, ["true"], task_id="rec", namespace=dirs.namespace)
    opts = CreateOpts(spec=spec, runtime=shim, runtime_options=runtime.options())
    async with asyncio.timeout(TIMEOUT):
        task = await task_manager.create("rec", opts, namespace=dirs.namespace)
        version = task.shim.version
        bootstrap = json.loads((dirs.bundles / "rec" / "bootstrap.json").read_text())
        await task.start()
        await task.wait()
        await task_manager.delete("rec", namespace=dirs.namespace)
    return version, bootstrap


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "default"])
async def test_shims_get_taskplanes_log_level_an_unserved_address_and_an_accepted_version(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    runtime: Runtime,
    debug: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shim, records = _wrapper(dirs, _real_shim(runtime))
    caplog.set_level(logging.DEBUG if debug else logging.INFO, logger=SHIM_LOGGER.name)
    await _run_once(dirs, task_manager, busybox_rootfs, runtime, shim)

    starts = _records(records, "start")
    last = starts[-1]  # the one that started the daemon (after a refused legacy start)
    assert ("-debug" in last["argv"]) is debug
    address = last["argv"][last["argv"].index("-address") + 1]
    assert last["env"]["GRPC_ADDRESS"] == address == str(dirs.state / "taskplane.sock")
    assert not os.path.exists(address)  # nothing serves it: a shim dialling it fails at once
    if runtime.start_protocol == "bootstrap":
        params = bootstrap_pb2.BootstrapParams.FromString(last["stdin"])
        assert params.log_level == (bootstrap_pb2.DEBUG if debug else bootstrap_pb2.INFO)
        version, _, build = params.containerd_version.partition("+")
        assert version == "2.4.0" and build.startswith("taskplane.")
        assert params.containerd_grpc_address == address
    for delete in _records(records, "delete"):
        assert ("-debug" in delete["argv"]) is debug
    # The real shim logs at debug when asked to (its lines reach SHIM_LOGGER).
    shim_debug = [
        r for r in caplog.records if r.name == SHIM_LOGGER.name and r.levelno == logging.DEBUG
    ]
    assert bool(shim_debug) is debug


@pytest.mark.parametrize(("announced", "spoken"), [(3, 3), (2, 3)])
async def test_the_version_a_shim_announces_is_tried_first_and_its_bootstrap_json_kept(
    dirs: Dirs,
    busybox_rootfs: Path,
    task_manager: Any,
    upstream: None,
    announced: int,
    spoken: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """containerd trusts the version a shim announces, and so does taskplane; containerd 2.4's
    shim serves only v3, so one announcing v2 is spoken to over v3 (where containerd would
    fail), and bootstrap.json keeps what the shim said either way."""
    shim, _ = _wrapper(dirs, str(UPSTREAM_SHIM))
    monkeypatch.setenv("WRAP_ANNOUNCE", str(announced))
    runtime = Runtime("2.4", str(UPSTREAM_SHIM), None, 3, "bootstrap", True)
    version, bootstrap = await _run_once(dirs, task_manager, busybox_rootfs, runtime, shim)
    assert version == spoken
    assert bootstrap["version"] == announced
