"""Every user error is one clear line on stderr and a non-zero exit, never a traceback.

These need no container: they fail before one would start (or on an empty state directory).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prerequisites import need

from .conftest import Taskplane, single_error_line

#: Checks that come after "taskplane run needs root" can only be seen as root.
as_root = pytest.mark.usefixtures("as_root")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A directory that passes the rootfs check (nothing runs in these tests)."""
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


def test_run_rejects_an_invalid_id(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(taskplane("run", "--rootfs", str(rootfs), "bad/id", "--", "true"))
    assert "invalid task id bad/id" in line


def test_run_rejects_an_invalid_namespace(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(
        taskplane("--namespace", "no way", "run", "--rootfs", str(rootfs), "x", "--", "true")
    )
    assert "invalid namespace no way" in line


@as_root
def test_run_names_a_missing_rootfs(taskplane: Taskplane, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    line = single_error_line(taskplane("run", "--rootfs", str(missing), "x", "--", "true"))
    assert line == f"taskplane: rootfs {missing} does not exist"


@as_root
def test_run_without_rootfs_or_spec_says_what_is_needed(taskplane: Taskplane) -> None:
    line = single_error_line(taskplane("run", "x", "--", "true"))
    assert "--rootfs" in line


@as_root
def test_run_without_a_command_says_so(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(taskplane("run", "--rootfs", str(rootfs), "x"))
    assert "no command given" in line


@as_root
def test_run_names_the_runtime_binary_and_where_it_looked(
    taskplane: Taskplane, rootfs: Path
) -> None:
    line = single_error_line(
        taskplane(
            "run", "--runtime", "io.example.nothing.v7", "--rootfs", str(rootfs), "x", "--", "true"
        )
    )
    assert "containerd-shim-nothing-v7" in line
    assert (
        'failed to resolve runtime path: runtime "io.example.nothing.v7" binary not installed'
        in line
    )
    assert "PATH (" in line and "never the working directory): not found" in line
    assert str(taskplane.cwd) not in line


@as_root
def test_run_rejects_a_relative_runtime_path(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(
        taskplane(
            "run",
            "--runtime",
            "bin/containerd-shim-x-v1",
            "--rootfs",
            str(rootfs),
            "x",
            "--",
            "true",
        )
    )
    assert "invalid runtime name" in line


@as_root
def test_run_names_a_missing_runc_binary(taskplane: Taskplane, rootfs: Path) -> None:
    need(
        shutil.which("containerd-shim-runc-v2") is not None,
        "containerd-shim-runc-v2 is not installed",
    )
    line = single_error_line(
        taskplane(
            "run", "--runc-binary", "/nowhere/runc", "--rootfs", str(rootfs), "x", "--", "true"
        )
    )
    assert line == "taskplane: runc binary /nowhere/runc does not exist"


@as_root
def test_run_names_runc_missing_from_path(
    taskplane: Taskplane, rootfs: Path, tmp_path: Path
) -> None:
    shim = shutil.which("containerd-shim-runc-v2")
    need(shim is not None, "containerd-shim-runc-v2 is not installed")
    assert shim is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shim, bin_dir / "containerd-shim-runc-v2")
    line = single_error_line(
        taskplane("run", "--rootfs", str(rootfs), "x", "--", "true", env={"PATH": str(bin_dir)})
    )
    assert "runc is not installed" in line and str(bin_dir) in line


def test_run_rejects_rm_with_detach(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(
        taskplane("run", "--rm", "-d", "--rootfs", str(rootfs), "x", "--", "true")
    )
    assert "--rm" in line and "--detach" in line


@as_root
def test_run_names_a_bad_env_value(taskplane: Taskplane, rootfs: Path) -> None:
    line = single_error_line(
        taskplane("run", "--env", "NOEQUALS", "--rootfs", str(rootfs), "x", "--", "true")
    )
    assert "NOEQUALS" in line and "KEY=VALUE" in line


@as_root
def test_run_names_a_broken_spec_file(taskplane: Taskplane, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    line = single_error_line(taskplane("run", "--spec", str(spec), "x"))
    assert str(spec) in line and "not valid JSON" in line


def test_run_as_non_root_says_root_is_needed(taskplane: Taskplane, rootfs: Path) -> None:
    # The venv's interpreter may not be readable by an unprivileged user, so the command runs
    # as we are, with os.geteuid() reporting uid 1000: the check is what is under test.
    script = (
        "import os, sys; os.geteuid = lambda: 1000; "
        "from taskplane.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = taskplane.argv("run", "--rootfs", str(rootfs), "x", "--", "true")
    result = subprocess.run(
        [sys.executable, "-c", script, *argv[3:]],
        cwd=taskplane.cwd,
        env=taskplane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = single_error_line(result)
    assert "needs root" in line and "uid 1000" in line


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "kill", "ghost"],
        ["tasks", "wait", "ghost"],
        ["tasks", "logs", "ghost"],
        ["tasks", "rm", "ghost"],
        ["tasks", "exec", "--exec-id", "e1", "ghost", "--", "true"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_task_commands_name_an_unknown_id(taskplane: Taskplane, command: list[str]) -> None:
    line = single_error_line(taskplane(*command))
    assert '"ghost"' in line and f'namespace "{taskplane.namespace}"' in line


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "kill", "a/b"],
        ["tasks", "wait", ".."],
        ["tasks", "rm", "a..b"],
        ["tasks", "exec", "--exec-id", "bad id", "ok", "--", "true"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_task_commands_reject_invalid_ids(taskplane: Taskplane, command: list[str]) -> None:
    line = single_error_line(taskplane(*command))
    assert "invalid" in line and "id" in line


def test_kill_rejects_an_unknown_signal(taskplane: Taskplane) -> None:
    line = single_error_line(taskplane("tasks", "kill", "--signal", "SIGNOPE", "x"))
    assert "invalid signal SIGNOPE" in line


def test_runtime_info_names_a_missing_runtime(taskplane: Taskplane) -> None:
    line = single_error_line(taskplane("runtime", "info", "io.example.nothing.v7"))
    assert "containerd-shim-nothing-v7" in line


def test_runtime_info_of_a_shim_without_info_is_one_clear_line(taskplane: Taskplane) -> None:
    # Debian's containerd 1.6 shim, which predates -info (containerd 2.x shims answer it).
    shim = "/usr/bin/containerd-shim-runc-v2"
    need(os.access(shim, os.X_OK), f"{shim} (containerd 1.6, Debian) is not installed")
    result = taskplane("runtime", "info", shim)
    line = single_error_line(result)
    assert "containerd-shim-runc-v2" in line and "-info" in line


def test_demo_lists_what_is_missing(taskplane: Taskplane, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = taskplane("demo", env={"PATH": str(empty)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "containerd-shim-runc-v2" in result.stderr
    assert "runc is not installed" in result.stderr
    assert all(
        line.startswith("taskplane: demo cannot run: ")
        for line in result.stderr.splitlines()
        if line
    )


def test_python_dash_m_and_main_agree(taskplane: Taskplane) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from taskplane.__main__ import main; sys.exit(main(['--help']))",
        ],
        env=taskplane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout == taskplane("--help").stdout


FAKE_SHIM = '''#!{python}
"""A shim that only answers -info: a RuntimeInfo echoing the options it was given."""
import sys
from google.protobuf import any_pb2
from runtime_v2.api import introspection_pb2

if "-info" not in sys.argv:
    sys.exit("this fake shim only answers -info")
options = sys.stdin.buffer.read()
info = introspection_pb2.RuntimeInfo(name="io.example.fake.v1")
info.version.version = "9.9.9"
info.version.revision = "abc123"
info.annotations["io.example/answer"] = "42"
info.features.CopyFrom(any_pb2.Any(
    type_url="types.containerd.io/opencontainers/runtime-spec/1/features/Features",
    value=b'{{"ociVersionMin": "1.0.0"}}'))
if options:
    info.options.ParseFromString(options)
sys.stdout.buffer.write(info.SerializeToString())
'''


def test_runtime_info_prints_plugin_info_as_json(taskplane: Taskplane, tmp_path: Path) -> None:
    import json

    shim = tmp_path / "containerd-shim-fake-v1"
    shim.write_text(FAKE_SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    result = taskplane("runtime", "info", str(shim), "--runc-binary", sys.executable)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info == {
        "name": "io.example.fake.v1",
        "version": {"version": "9.9.9", "revision": "abc123"},
        "options": {"binary_name": sys.executable},
        "features": {"ociVersionMin": "1.0.0"},
        "annotations": {"io.example/answer": "42"},
        "start": {"protocol": None, "task_api": None},  # no task has run on this shim
    }
