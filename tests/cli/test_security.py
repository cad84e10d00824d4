"""issue 9 as a hostile local user tries it: root runs taskplane, "nobody" prepares the ground.

The attacker side runs through ``setpriv --reuid 65534 --regid 65534 --clear-groups``; the
root side runs the real CLI under ``umask 000`` where the case is about modes. Each test checks
that the attack did nothing (no file written as root, no target changed) and that nothing
leaked (the ``runner`` fixture).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from .conftest import Taskplane, single_error_line, wait_for_line

pytestmark = pytest.mark.integration

NOBODY = 65534
SETPRIV = ("setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups")
IO_DIR = "taskplane.io"


def as_nobody(script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` as uid/gid 65534 with no supplementary groups."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to act as another user")
    return subprocess.run(
        [*SETPRIV, "sh", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def under_umask_000(runner: Taskplane, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskplane args`` as root, started from a shell that set umask 000."""
    return subprocess.run(
        ["sh", "-c", 'umask 000; exec "$@"', "sh", *runner.argv(*args)],
        cwd=runner.cwd,
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def playground() -> Iterator[Path]:
    """A directory under /tmp that belongs to nobody (the attacker's own ground)."""
    base = Path(tempfile.mkdtemp(prefix="tpatk", dir="/tmp"))
    os.chown(base, NOBODY, NOBODY)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def reachable(runner: Taskplane) -> Taskplane:
    """``runner`` whose private base dir other users may traverse (0711, like /run): what stops
    the attacker must be the modes taskplane gives its own directories."""
    os.chmod(runner.state.parent, 0o711)
    return runner


@pytest.fixture
def victim_file(tmp_path: Path) -> Path:
    """A root-owned file the attacker would like root to append to."""
    target = tmp_path / "victim" / "file"
    target.parent.mkdir()
    os.chmod(target.parent, 0o755)
    target.write_text("original\n")
    return target


def modes_under(*dirs: Path) -> dict[str, str]:
    """``{path: 'd0711'}`` for everything under ``dirs`` (not into a mounted rootfs)."""
    found: dict[str, str] = {}
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            if os.path.ismount(dirpath):
                dirnames[:] = []
            for name in [*dirnames, *filenames]:
                st = os.lstat(os.path.join(dirpath, name))
                kind = stat.filemode(st.st_mode)[0]
                found[os.path.join(dirpath, name)] = f"{kind}{stat.S_IMODE(st.st_mode):04o}"
    return found


# -- case 1: a shim in the working directory ----------------------------------------------------


def test_a_shim_planted_in_the_working_directory_is_not_run(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, playground: Path
) -> None:
    pwned = playground / "pwned"
    planted = as_nobody(
        f"printf '#!/bin/sh\\nid>{pwned}\\n' > containerd-shim-runc-v2 && "
        "chmod +x containerd-shim-runc-v2",
        cwd=playground,
    )
    assert planted.returncode == 0, planted.stderr
    from_there = attrs.evolve(runner, cwd=playground)
    result = from_there("run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "true")
    assert result.returncode == 0, result.stderr
    assert not pwned.exists(), pwned.read_text()


def test_a_shim_owned_by_another_user_is_refused_by_absolute_path(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, playground: Path
) -> None:
    pwned = playground / "pwned"
    shim = playground / "containerd-shim-runc-v2"
    as_nobody(f"printf '#!/bin/sh\\nid>{pwned}\\n' > {shim} && chmod 755 {shim}")
    line = single_error_line(
        runner(
            "run", "--runtime", str(shim), "--rootfs", str(busybox_rootfs), task_id, "--", "true"
        )
    )
    assert line == (
        f"taskplane: refusing to run shim binary {shim} as root: "
        f"{playground}: it is owned by uid {NOBODY}, not by root"
    )
    assert not pwned.exists()


def test_a_runc_binary_others_can_write_is_refused(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    runc = tmp_path / "runc"
    shutil.copy(shutil.which("runc") or "/usr/sbin/runc", runc)
    os.chmod(runc, 0o777)
    line = single_error_line(
        runner(
            "run",
            "--runc-binary",
            str(runc),
            "--rootfs",
            str(busybox_rootfs),
            task_id,
            "--",
            "true",
        )
    )
    assert line == (
        f"taskplane: refusing to run runc binary {runc} as root: "
        "it is writable by group or others (mode 0777)"
    )


# -- case 2: umask 000 and planted symlinks ------------------------------------------------------


def test_under_umask_000_nothing_taskplane_creates_is_writable_by_others(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    seen: dict[str, str] = {}
    started = under_umask_000(
        runner, "run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "echo", "hello"
    )
    assert started.returncode == 0, started.stderr
    seen.update(modes_under(runner.root, runner.state))
    logs = under_umask_000(runner, "tasks", "logs", task_id)
    assert logs.stdout == "hello\n", logs.stderr
    seen.update(modes_under(runner.root, runner.state))
    removed = under_umask_000(runner, "tasks", "rm", task_id)
    assert removed.returncode == 0, removed.stderr
    seen.update(modes_under(runner.root, runner.state))
    loose = {p: m for p, m in seen.items() if not m.startswith("l") and int(m[1:], 8) & 0o022}
    assert loose == {}
    assert seen[str(runner.state / IO_DIR)] == "d0711"
    assert seen[str(runner.state / IO_DIR / runner.namespace / task_id)] == "d0700"


def test_a_user_cannot_plant_a_symlink_in_the_io_directories(
    reachable: Taskplane, busybox_rootfs: Path, task_id: str, victim_file: Path
) -> None:
    first = under_umask_000(
        reachable, "run", "--rm", "--rootfs", str(busybox_rootfs), task_id, "--", "true"
    )
    assert first.returncode == 0, first.stderr
    for directory in (
        reachable.state / IO_DIR / reachable.namespace,
        reachable.state,
        reachable.root,
    ):
        planted = as_nobody(f"ln -s {victim_file.parent} {directory}/{task_id}-2")
        assert planted.returncode != 0
        assert "Permission denied" in planted.stderr


@pytest.mark.parametrize(
    "world_writable_parent",
    [IO_DIR, "io.containerd.runtime.v2.task"],
)
def test_a_symlink_planted_in_a_world_writable_state_dir_is_never_followed(
    reachable: Taskplane,
    busybox_rootfs: Path,
    task_id: str,
    victim_file: Path,
    playground: Path,
    world_writable_parent: str,
) -> None:
    # What an older taskplane left under umask 000: a world-writable namespace directory.
    world_writable = f"{world_writable_parent}/{reachable.namespace}"
    assert reachable("tasks", "ls").returncode == 0  # the plugins' own directories exist
    for made in (IO_DIR, f"{IO_DIR}/{reachable.namespace}", world_writable):
        (reachable.state / made).mkdir(exist_ok=True)
        os.chmod(reachable.state / made, 0o711)
    shared = reachable.state / world_writable
    os.chmod(shared, 0o777)
    planted = as_nobody(
        f"ln -s {playground} {shared}/{task_id} && "
        f"ln -s {victim_file} {playground}/output.log && "
        f"ln -s {victim_file} {playground}/config.json"
    )
    assert planted.returncode == 0, planted.stderr
    before = modes_under(reachable.state, reachable.root)
    line = single_error_line(
        reachable("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "echo", "INJECTED")
    )
    assert line == (
        f"taskplane: refusing to use {shared}: it is writable by group or others (mode 0777)"
    )
    assert victim_file.read_text() == "original\n"
    assert sorted(os.listdir(playground)) == ["config.json", "output.log"]
    assert modes_under(reachable.state, reachable.root) == before
    os.unlink(shared / task_id)  # the attacker's link is no bundle the leak check should see


# -- case 4: spec files; case 5: the longest IDs ---------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"process": {"args": ["\xff"]}}', "is not UTF-8 (invalid start byte at byte 23)"),
        (b'{"process": {"args": ["sh"]}, "root": {"path": 5}}', ": root.path: expected a string"),
        (b"[" * 100_000 + b"]" * 100_000, "nests objects and arrays more than 32 deep"),
    ],
)
def test_a_bad_spec_file_is_one_line_naming_it(
    taskplane: Taskplane, tmp_path: Path, content: bytes, message: str
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_bytes(content)
    line = single_error_line(taskplane("run", "--spec", str(spec), "x"))
    assert line.startswith(f"taskplane: spec file {str(spec)!r}"), line
    assert message in line
    assert "internal error" not in line


def test_the_longest_valid_id_runs_with_its_hostname_cut_to_64(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    longest = (task_id + "-" + "x" * 76)[:76]
    result = runner("run", "--rm", "--rootfs", str(busybox_rootfs), longest, "--", "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == longest[:64] + "\n"


# -- case 6: logging under attack ------------------------------------------------------------


def _nofile_1024() -> None:
    # A common default: the limit the flood of issue 9 ran into.
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _probe(path: Path) -> None:
    """Send one request on a fresh connection and wait for the answer or the close."""
    from runtime_v2.ttrpc import encode_frame, ttrpc_pb2

    with socket.socket(socket.AF_UNIX) as probe:
        # A blocking connect waits while the backlog is full, up to SO_SNDTIMEO (only there to
        # stop a hung test); a plain settimeout would make it fail at once with EAGAIN.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 60, 0))
        probe.connect(str(path))
        probe.settimeout(60)
        request = ttrpc_pb2.Request(service="probe", method="probe").SerializeToString()
        with contextlib.suppress(ConnectionError):  # refused: closed, maybe before we wrote
            probe.sendall(encode_frame(1, 1, 0, request))
            probe.recv(1)


def test_a_connection_flood_on_the_events_socket_leaves_stderr_short(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    run = subprocess.Popen(
        runner.argv(
            "--log-level",
            "warning",
            "run",
            "--rm",
            "--rootfs",
            str(busybox_rootfs),
            task_id,
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ),
        cwd=runner.cwd,
        env=runner.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_nofile_1024,
    )
    flood: list[socket.socket] = []
    try:
        assert wait_for_line(run.stdout) == "ready\n"  # type: ignore[arg-type]
        # The run process serves the events socket from boot on; flood it and hold it all.
        refused = 0
        for _ in range(3000):
            conn = socket.socket(socket.AF_UNIX)
            conn.setblocking(False)  # a full backlog is EAGAIN, not a hang
            try:
                conn.connect(str(runner.state / "taskplane.sock.ttrpc"))
                conn.send(b"\0\0\0\x10garbage")
            except OSError:
                refused += 1
                conn.close()
            else:
                flood.append(conn)
        # Connections are accepted in order: once a probe behind the flood gets an answer (or
        # is closed), the server has been through every flooding connection.
        _probe(runner.state / "taskplane.sock.ttrpc")
        for conn in flood:
            conn.close()
        killed = runner("tasks", "kill", "--signal", "KILL", task_id)
        assert killed.returncode == 0, killed.stderr
        _, stderr = run.communicate(timeout=60)
    finally:
        for conn in flood:
            conn.close()
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 128 + 9, stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) <= 3, stderr
    assert "ttrpc: refused a connection: 256 connections are open" in stderr


def test_a_duplicate_exec_id_says_it_already_exists(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    started = runner("run", "-d", "--rootfs", str(busybox_rootfs), task_id, "--", "sleep", "60")
    assert started.returncode == 0, started.stderr
    first = runner.popen(
        "tasks", "exec", "--exec-id", "e1", task_id, "--", "sh", "-c", "echo up; sleep 60"
    )
    try:
        assert wait_for_line(first.stdout) == "up\n"  # type: ignore[arg-type]
        line = single_error_line(runner("tasks", "exec", "--exec-id", "e1", task_id, "--", "true"))
        assert line == f'taskplane: cannot exec in task "{task_id}": exec "e1" already exists'
    finally:
        removed = runner("tasks", "rm", "-f", task_id)
        first.communicate(timeout=60)
    assert removed.returncode == 0, removed.stderr


async def test_an_embedder_cannot_make_root_run_an_untrusted_runc(
    private_dirs: tuple[Path, Path, str, str], busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    # The CLI checks up front (preflight); an embedder reaches the shim manager's own check.
    import taskplane
    from plugins import errdefs
    from taskplane import oci
    from taskplane.containers import Client, runc_options

    runc = tmp_path / "runc"
    shutil.copy(shutil.which("runc") or "/usr/sbin/runc", runc)
    os.chmod(runc, 0o777)
    root, state, namespace, _ = private_dirs
    async with await taskplane.boot_async(root=str(root), state=str(state)) as host:
        client = Client(host, namespace=namespace)
        spec = oci.default_spec(task_id, rootfs=busybox_rootfs, args=["true"], namespace=namespace)
        with pytest.raises(errdefs.PermissionDenied) as info:
            await client.run(task_id, spec, runtime_options=runc_options(str(runc)))
        assert str(info.value) == (
            f"failed to start shim: refusing to run runc binary {runc} as root: "
            "it is writable by group or others (mode 0777)"
        )
    assert not list((state / "io.containerd.runtime.v2.task" / namespace).iterdir())
