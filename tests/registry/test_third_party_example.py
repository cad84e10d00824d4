"""The example third-party runtime, installed with pip, is discovered through its entry
point and boots next to a (stub) event plugin registered through the registry API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, sys
    from registry import Registration, boot, hookimpl

    class Stub:
        @hookimpl
        def taskplane_registrations(self):
            return [Registration("io.containerd.event.v1", "exchange",
                                 init=lambda ic: "stub exchange")]

    config = {"version": 3, "root": sys.argv[1] + "/root", "state": sys.argv[1] + "/state"}
    if sys.argv[2] == "on":  # config is strict: no table for a plugin that is not there
        config["plugins"] = {"io.containerd.runtime.v2.example": {"greeting": "hi there"}}
    autoload = {"on": True, "off": False, "env": None}[sys.argv[2]]
    with boot(config, builtins=[Stub()], autoload=autoload) as host:
        status = host.status("io.containerd.runtime.v2.example")
        out = {"status": status and status.status,
               "failures": [f.message for f in host.load_failures]}
        if status and status.status == "loaded":
            runtime = host.get("io.containerd.runtime.v2", "example")
            out.update(greeting=runtime.greeting, events=runtime.events, root=runtime.root,
                       exports=dict(status.exports), module=type(runtime).__module__)
    out["closed"] = status is not None and status.status == "loaded" and runtime.closed
    print(json.dumps(out))
""")


def run(site: Path, tmp_path: Path, autoload: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k != "TASKPLANE_DISABLE_PLUGIN_AUTOLOAD"}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), autoload],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_installed_example_runtime_is_discovered_configured_and_closed(
    third_party_install: Path, tmp_path: Path
) -> None:
    out = run(third_party_install, tmp_path, "on")
    assert out == {
        "status": "loaded",
        "failures": [],
        "greeting": "hi there",
        "events": "stub exchange",
        "root": f"{tmp_path}/root/io.containerd.runtime.v2.example",
        "exports": {"greeting": "hi there"},
        "module": "taskplane_example_runtime.plugin",
        "closed": True,
    }


def test_example_runtime_is_not_loaded_with_autoload_disabled(
    third_party_install: Path, tmp_path: Path
) -> None:
    assert run(third_party_install, tmp_path, "off")["status"] is None
    out = run(third_party_install, tmp_path, "env", TASKPLANE_DISABLE_PLUGIN_AUTOLOAD="1")
    assert out["status"] is None
