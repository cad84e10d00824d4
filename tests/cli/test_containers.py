"""Running real containers with ``taskplane run`` / ``taskplane tasks ...`` (runc + its shim).

Each test uses private root/state dirs; the ``runner`` fixture fails the test if a shim process
or a bundle is left behind.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from .conftest import (
    Taskplane,
    lines,
    run_example,
    single_error_line,
    wait_for_line,
)

pytestmark = pytest.mark.integration


def rows(result_stdout: str) -> dict[str, list[str]]:
    """``tasks ls`` output as {task id: [pid, status]}."""
    out = {}
    for line in lines(result_stdout)[1:]:
        task, pid, status = line.split()
        out[task] = [pid, status]
    return out


def test_run_streams_output_and_exits_with_the_task_status(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    result = runner(
        "run",
        "--rm",
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "to-stdout\n"
    assert result.stderr == "to-stderr\n"
    assert rows(runner("tasks", "ls").stdout) == {}


def test_run_applies_env_and_cwd(runner: Taskplane, busybox_rootfs: Path, task_id: str) -> None:
    result = runner(
        "run",
        "--rm",
        "--env",
        "GREETING=hi there",
        "--cwd",
        "/tmp",
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "sh",
        "-c",
        'echo "$GREETING from $(pwd) as $(id -u) on $(hostname)"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hi there from /tmp as 0 on {task_id}\n"


def test_run_accepts_an_oci_spec_file(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    from taskplane import oci

    spec = oci.default_spec(task_id, rootfs=busybox_rootfs, args=["echo", "from a spec"])
    (tmp_path / "rootfs").symlink_to(busybox_rootfs)
    spec["root"]["path"] = "rootfs"  # relative to the spec file, as in an OCI bundle
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec))
    result = runner("run", "--rm", "--spec", str(path), task_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from a spec\n"


def test_a_command_that_cannot_start_leaves_nothing_behind(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    line = single_error_line(
        runner("run", "--rootfs", str(busybox_rootfs), task_id, "--", "/no/such/binary")
    )
    assert "/no/such/binary" in line
    assert rows(runner("tasks", "ls").stdout) == {}
    # The id is free again.
    again = runner("run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "true")
    assert again.returncode == 0, again.stderr


def test_a_task_run_without_rm_stays_stopped_until_removed(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    assert runner("run", "--rootfs", str(busybox_rootfs), task_id, "--", "true").returncode == 0
    assert rows(runner("tasks", "ls").stdout)[task_id][1] == "STOPPED"
    in_use = single_error_line(
        runner("run", "--rootfs", str(busybox_rootfs), task_id, "--", "true")
    )
    assert f'"{task_id}" is already in use' in in_use
    assert runner("tasks", "wait", task_id).stdout == "0\n"
    logged = runner("tasks", "logs", task_id)  # an attached task has a log too (empty here)
    assert (logged.returncode, logged.stdout, logged.stderr) == (0, "", "")
    removed = runner("tasks", "rm", task_id)
    assert removed.returncode == 0, removed.stderr
    assert rows(runner("tasks", "ls").stdout) == {}


def test_detached_task_lifecycle(runner: Taskplane, busybox_rootfs: Path, task_id: str) -> None:
    started = runner(
        "run",
        "-d",
        "--env",
        "ORIGIN=base",
        "--env",
        "MODE=run",
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "sh",
        "-c",
        "echo started; echo warned >&2; exec sleep 600",
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"{task_id}\n"

    listed = rows(runner("tasks", "ls").stdout)
    assert listed[task_id][1] == "RUNNING" and int(listed[task_id][0]) > 0

    executed = runner(
        "tasks",
        "exec",
        "--exec-id",
        "probe",
        task_id,
        "--",
        "sh",
        "-c",
        "echo exec-out; echo exec-err >&2; exit 5",
    )
    assert executed.returncode == 5, executed.stderr
    assert executed.stdout == "exec-out\n" and executed.stderr == "exec-err\n"

    env = runner(
        "tasks",
        "exec",
        "--exec-id",
        "env",
        "--env",
        "MODE=exec",
        "--cwd",
        "/tmp",
        task_id,
        "--",
        "sh",
        "-c",
        'echo "$MODE $ORIGIN $(pwd)"',
    )
    assert env.stdout == "exec base /tmp\n", env.stderr

    logs = runner("tasks", "logs", task_id)
    assert logs.returncode == 0, logs.stderr
    assert (logs.stdout, logs.stderr) == ("started\n", "warned\n")  # each to its own stream

    refused = single_error_line(runner("tasks", "rm", task_id))
    assert "running" in refused and "--force" in refused

    assert runner("tasks", "kill", "--all", "--signal", "KILL", task_id).returncode == 0
    waited = runner("tasks", "wait", task_id)
    assert waited.stdout == f"{128 + signal.SIGKILL}\n", waited.stderr
    assert runner("tasks", "rm", task_id).returncode == 0
    assert rows(runner("tasks", "ls").stdout) == {}


def test_rm_force_kills_a_running_task(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    assert (
        runner(
            "run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "600"
        ).returncode
        == 0
    )
    result = runner("tasks", "rm", "--force", task_id)
    assert result.returncode == 0, result.stderr
    assert rows(runner("tasks", "ls").stdout) == {}


def test_tasks_are_per_namespace(runner: Taskplane, busybox_rootfs: Path, task_id: str) -> None:
    assert (
        runner(
            "--namespace",
            runner.other_namespace,
            "run",
            "-d",
            "--rootfs",
            str(busybox_rootfs),
            task_id,
            "--",
            "sleep",
            "600",
        ).returncode
        == 0
    )
    try:
        assert rows(runner("tasks", "ls").stdout) == {}
        assert task_id in rows(runner("tasks", "ls", "--namespace", runner.other_namespace).stdout)
        single_error_line(runner("tasks", "kill", task_id))
    finally:
        assert runner("-n", runner.other_namespace, "tasks", "rm", "-f", task_id).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_run_forwards_the_signal_to_the_task(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, sig: signal.Signals
) -> None:
    name = sig.name.removeprefix("SIG")
    proc = runner.popen(
        "run",
        "--rm",
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "sh",
        "-c",
        f'trap "echo got-{name}; exit 7" {name}; echo ready; while :; do sleep 0.1; done',
    )
    try:
        assert proc.stdout is not None
        assert wait_for_line(proc.stdout) == "ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 7, err
    assert out == f"got-{name}\n"


def test_runc_binary_option_reaches_the_shim(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    import shutil

    runc = shutil.which("runc")
    assert runc is not None
    marker = tmp_path / "runc-was-called"
    wrapper = tmp_path / "my-runc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec {runc} "$@"\n')
    wrapper.chmod(0o755)
    result = runner(
        "run",
        "--rm",
        "--runc-binary",
        str(wrapper),
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "echo",
        "wrapped",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrapped\n"
    assert "create" in marker.read_text()


def test_demo_runs_a_container(runner: Taskplane, tmp_path: Path) -> None:
    result = runner("demo", env={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hello from taskplane\n" in result.stdout
    assert "io.containerd.runtime.v2" in result.stdout
    assert "lifecycle" in result.stdout


def test_embed_example_runs(
    runner: Taskplane, busybox_rootfs: Path, request: pytest.FixtureRequest
) -> None:
    result = run_example(runner, request.node, "embed", runner.namespace, busybox_rootfs)
    assert result.returncode == 0, result.stderr
    assert "hello from hello\n" in result.stdout
    assert "sleeper: exit status 137" in result.stdout


def test_run_with_an_absolute_runtime_path(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    import shutil

    shim = shutil.which("containerd-shim-runc-v2")
    assert shim is not None
    result = runner(
        "run",
        "--rm",
        "--runtime",
        shim,
        "--rootfs",
        str(busybox_rootfs),
        task_id,
        "--",
        "echo",
        "via path",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "via path\n"


def test_a_detached_task_that_cannot_start_leaves_nothing_behind(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    line = single_error_line(
        runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "/no/such/binary")
    )
    assert "/no/such/binary" in line
    assert rows(runner("tasks", "ls").stdout) == {}
    assert not (runner.state / "taskplane.io" / runner.namespace / task_id).exists()


def test_concurrent_invocations_do_not_disturb_each_other(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    procs = [
        runner.popen(
            "run",
            "--rm",
            "--rootfs",
            str(busybox_rootfs),
            f"{task_id}-{i}",
            "--",
            "sh",
            "-c",
            f"echo run-{i}",
        )
        for i in range(4)
    ]
    listing = runner.popen("tasks", "ls")
    results = [p.communicate(timeout=120) for p in procs]
    listing.communicate(timeout=120)
    for i, (p, (out, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, err
        assert out == f"run-{i}\n"
    assert listing.returncode == 0
    assert rows(runner("tasks", "ls").stdout) == {}


def test_signalling_or_exec_into_a_stopped_task_names_it(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    assert runner("run", "--rootfs", str(busybox_rootfs), task_id, "--", "true").returncode == 0
    try:
        killed = single_error_line(runner("tasks", "kill", task_id))
        assert f'cannot signal task "{task_id}"' in killed
        executed = single_error_line(
            runner("tasks", "exec", "--exec-id", "x", task_id, "--", "true")
        )
        assert f'cannot exec in task "{task_id}"' in executed
    finally:
        assert runner("tasks", "rm", task_id).returncode == 0


def test_run_into_a_closed_pipe_stops_the_task_like_sigpipe(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    proc = runner.popen("run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "yes")
    assert proc.stdout is not None and proc.stderr is not None
    assert wait_for_line(proc.stdout) == "y\n"
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        proc.stderr.close()
    assert proc.returncode == 141, err
    assert rows(runner("tasks", "ls").stdout) == {}
