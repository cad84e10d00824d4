"""containerd's own ``config default`` output, from the real binaries, through ``taskplane``.

Debian's containerd 1.6.20 (``/usr/bin/containerd``) writes a version 2 config; containerd 2.4
(``../shared/upstream/bin/containerd``) writes version 4. Both must validate with warnings only
and boot the built-in plugins; one misspelt key in the task plugin's table plus one invented
top-level key must give exactly those two errors, together. A binary that is absent skips its
test, except under TASKPLANE_REQUIRE_INTEGRATION=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.prerequisites import need

from .conftest import REPO, Taskplane, lines

TASK_URI = "io.containerd.runtime.v2.task"
BUILTIN_URIS = (
    "io.containerd.event.v1.exchange",
    "io.containerd.metadata.v1.sqlite",
    "io.containerd.shim.v1.manager",
    TASK_URI,
)
CONTAINERDS = {
    "debian-1.6": Path("/usr/bin/containerd"),
    "upstream-2.4": REPO.parent / "shared" / "upstream" / "bin" / "containerd",
}
VERSIONS = {"debian-1.6": 2, "upstream-2.4": 4}


def config_default(which: str) -> str:
    """``containerd config default`` of the real binary (skipped, or failed in CI, if absent)."""
    binary = CONTAINERDS[which]
    need(os.access(binary, os.X_OK), f"{binary} is not installed")
    result = subprocess.run(
        [str(binary), "config", "default"], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


@pytest.fixture(params=sorted(CONTAINERDS))
def containerd_default(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The real ``config default`` output of one containerd, as ``c.toml``."""
    text = config_default(request.param)
    assert re.search(rf"^version = {VERSIONS[request.param]}$", text, re.M), text[:200]
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def with_two_mistakes(path: Path) -> tuple[Path, list[str]]:
    """The config with ``platforms`` misspelt in the task plugin's table and an invented
    top-level key; returns the new file and the two errors expected."""
    text = path.read_text()
    header = re.search(rf"^\s*\[plugins\.[\"']{re.escape(TASK_URI)}[\"']\]\n", text, re.M)
    assert header is not None
    body = text[header.end() :]
    misspelt = re.sub(r"^(\s*)platforms =", r"\1platfroms =", body, count=1, flags=re.M)
    assert misspelt != body
    bad = path.with_name("bad.toml")
    bad.write_text("invented_setting = true\n" + text[: header.end()] + misspelt)
    return bad, [
        f'{bad}: invented_setting: unknown key (valid keys: "disabled_plugins", "imports", '
        '"plugins", "required_plugins", "root", "state", "timeouts", "version")',
        f'{bad}: plugins."{TASK_URI}".platfroms: unknown key (did you mean "platforms"?)',
    ]


def test_config_default_of_containerd_validates_with_warnings_only(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    result = taskplane("config", "validate", str(containerd_default))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{containerd_default}: ok\n"
    diagnostics = lines(result.stderr)
    assert len(diagnostics) > 20  # containerd's gRPC, CRI, snapshotters, ... each named
    assert all(": warning: " in line and line.endswith(": ignored") for line in diagnostics)
    assert any(line.endswith(": plugins.\"io.containerd.grpc.v1.cri\": warning: containerd's cri "
                              "gRPC service; taskplane does not implement it: ignored")
               for line in diagnostics)  # fmt: skip


def test_config_default_of_containerd_fails_validate_strict(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    plain = lines(taskplane("config", "validate", str(containerd_default)).stderr)
    result = taskplane("config", "validate", "--strict", str(containerd_default))
    assert result.returncode == 1
    strict = lines(result.stderr)
    assert strict == [line.replace(": warning: ", ": ") for line in plain]
    assert result.stdout == ""


def test_config_default_of_containerd_boots_the_builtin_plugins(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    result = taskplane("--config", str(containerd_default), "plugins", "ls", "--json")
    assert result.returncode == 0, result.stderr
    status = {r["uri"]: r["status"] for r in json.loads(result.stdout)}
    assert {uri: status.get(uri) for uri in BUILTIN_URIS} == dict.fromkeys(BUILTIN_URIS, "ok")


def test_config_default_of_containerd_logs_its_warnings_once_at_boot(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    expected = lines(taskplane("config", "validate", str(containerd_default)).stderr)
    result = taskplane(
        "--config", str(containerd_default), "--log-level", "warning", "plugins", "ls"
    )
    assert result.returncode == 0, result.stderr
    marker = " taskplane.registry._boot: config: "  # the boot's logger (registry.log scheme)
    logged = [line for line in lines(result.stderr) if marker in line]
    assert [line.split(marker, 1)[1] for line in logged] == [
        line.removeprefix("taskplane: ") for line in expected
    ]


def test_a_misspelt_task_key_and_an_invented_key_are_exactly_two_errors(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    bad, expected = with_two_mistakes(containerd_default)
    result = taskplane("config", "validate", str(bad))
    assert result.returncode == 1
    errors = [e for e in lines(result.stderr) if ": warning: " not in e]
    assert errors == [f"taskplane: {e}" for e in expected]
    assert result.stdout == ""


def test_booting_with_the_two_mistakes_names_both_and_starts_nothing(
    taskplane: Taskplane, containerd_default: Path
) -> None:
    bad, expected = with_two_mistakes(containerd_default)
    result = taskplane("--config", str(bad), "plugins", "ls")
    assert result.returncode == 1
    assert lines(result.stderr) == [f"taskplane: {e}" for e in expected]
    assert result.stdout == ""
    assert not taskplane.state.exists() or not any(taskplane.state.iterdir())


def test_the_readme_shows_config_validate_as_it_is(taskplane: Taskplane) -> None:
    # The README's example is Debian's containerd 1.6.20 run through config validate: every
    # line it shows is in the real output, and its counts are right.
    text = (REPO / "README.md").read_text()
    start = text.index("$ containerd config default > c.toml\n")
    example = text[start : text.index("```", start)]
    first, strict = example.split("$ sed -i '1i invented = 1' c.toml", 1)
    (taskplane.cwd / "c.toml").write_text(config_default("debian-1.6"))

    result = taskplane("config", "validate", "c.toml")
    warnings = lines(result.stderr)
    shown = [line for line in first.splitlines() if line.startswith("taskplane: ")]
    assert shown and all(line in warnings for line in shown)
    assert f"... ({len(warnings)} warnings in all)" in first
    assert "\nc.toml: ok\n" in first and result.stdout == "c.toml: ok\n"

    path = taskplane.cwd / "c.toml"
    path.write_text("invented = 1\n" + path.read_text())
    result = taskplane("config", "validate", "--strict", "c.toml")
    assert result.returncode == 1 and strict.rstrip().endswith("\n1")
    errors = lines(result.stderr)
    assert errors[1:] == [w.replace(": warning: ", ": ") for w in warnings]
    assert [line for line in strict.splitlines() if line.startswith("taskplane: ")] == errors[:1]
