"""``taskplane run``'s container options, checked inside real containers (runc + its shim).

Each option is shown doing what it names from inside the container (or, for resource limits,
in the container's own cgroup files); the ``runner`` fixture fails a test that leaks a shim,
a bundle or an overlay layer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskplane.containers import cgroups_path

from .conftest import Taskplane, single_error_line

pytestmark = pytest.mark.integration


def run_in(runner: Taskplane, rootfs: Path, task_id: str, *args: str, script: str) -> str:
    """``taskplane run --rm`` with ``args`` then ``sh -c script``; its stdout (exit 0 asserted)."""
    result = runner(
        "run", "--rm", "--rootfs", str(rootfs), *args, task_id, "--", "sh", "-c", script
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bind_mounts_are_readable_and_ro_ones_are_not_writable(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    out = run_in(
        runner,
        busybox_rootfs,
        task_id,
        "--mount",
        f"type=bind,src={shared},dst=/rw,options=rbind:rw",
        "-v",
        f"{shared}:/ro:ro",
        script="cat /ro/note; echo written > /rw/new && echo rw-ok; "
        "touch /ro/other 2>/dev/null || echo ro-refused",
    )
    assert out == "from the host\nrw-ok\nro-refused\n"
    assert (shared / "new").read_text() == "written\n"
    assert not (shared / "other").exists()


def test_user_sets_the_uid_and_gid_id_prints(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    out = run_in(runner, busybox_rootfs, task_id, "--user", "1000:1001", script="id -u; id -g")
    assert out == "1000\n1001\n"


def test_read_only_makes_a_write_to_the_root_fail(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    out = run_in(
        runner, busybox_rootfs, task_id, "--read-only",
        script="touch /written 2>/dev/null && echo wrote || echo refused",
    )  # fmt: skip
    assert out == "refused\n"
    assert not (busybox_rootfs / "written").exists()


def test_memory_cpu_and_pids_limits_are_in_the_containers_cgroup(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    started = runner(
        "run", "-d", "--rootfs", str(busybox_rootfs),
        "--memory-limit", "64m", "--cpus", "0.5", "--pids-limit", "20",
        task_id, "--", "sleep", "600",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        cgroup = cgroups_path(str(runner.state), runner.namespace, task_id)
        # The container's own cgroup (cgroup v1 here: one hierarchy per controller).
        v1 = Path("/sys/fs/cgroup")
        assert (v1 / f"memory{cgroup}/memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
        assert (v1 / f"cpu{cgroup}/cpu.cfs_quota_us").read_text() == "50000\n"
        assert (v1 / f"cpu{cgroup}/cpu.cfs_period_us").read_text() == "100000\n"
        assert (v1 / f"pids{cgroup}/pids.max").read_text() == "20\n"
        # The container's process is in it.
        pid = json.loads(runner("tasks", "ls", "--json").stdout)[0]["pid"]
        assert str(pid) in (v1 / f"pids{cgroup}/cgroup.procs").read_text().split()
    finally:
        assert runner("tasks", "rm", "--force", task_id).returncode == 0


def test_net_host_shows_the_hosts_network_interfaces(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    host = sorted(os.listdir("/sys/class/net"))
    assert host != ["lo"]  # otherwise the test could not tell the namespaces apart
    shared = run_in(runner, busybox_rootfs, task_id, "--net-host", script="ls /sys/class/net")
    assert shared.split() == host
    own = run_in(runner, busybox_rootfs, task_id, script="ls /sys/class/net")
    assert own.split() == ["lo"]


def test_hostname_env_file_and_env_reach_the_process(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# settings\nA=from-file\n\nB=from-file\n")
    out = run_in(
        runner, busybox_rootfs, task_id,
        "--hostname", "box", "--env-file", str(env_file), "--env", "B=from-flag",
        script='hostname; echo "$A $B"',
    )  # fmt: skip
    assert out == "box\nfrom-file from-flag\n"


def test_labels_are_shown_by_containers_ls_json(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    created = runner(
        "run", "--rootfs", str(busybox_rootfs), "--label", "tier=web", "--label", "team=a=b",
        task_id, "--", "true",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = json.loads(runner("containers", "ls", "--json").stdout)
    assert [(c["id"], c["labels"]) for c in listed] == [(task_id, {"team": "a=b", "tier": "web"})]
    assert runner("containers", "ls", "-q").stdout == f"{task_id}\n"
    table = runner("containers", "ls").stdout.splitlines()
    assert table[1].split() == [task_id, "io.containerd.runc.v2", "team=a=b,tier=web"]
    info = json.loads(runner("containers", "info", task_id).stdout)
    assert info["labels"] == {"team": "a=b", "tier": "web"}
    assert info["spec"]["process"]["args"] == ["true"]
    assert runner("tasks", "rm", task_id).returncode == 0
    assert json.loads(runner("containers", "ls", "--json").stdout) == []


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``path`` with its mode and mtime (what a write would change)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), path)] = (st.st_mode, st.st_mtime_ns)
    return out


def test_overlay_writes_stay_out_of_the_lower_dir_and_the_layer_goes_with_rm(
    runner: Taskplane, busybox_rootfs: Path, task_id: str
) -> None:
    before = _tree(busybox_rootfs)
    result = runner(
        "run", "--overlay", "--cwd", "/nonexist", "--rootfs", str(busybox_rootfs), task_id,
        "--", "sh", "-c", "echo private > /tmp/made; rm /bin/ls; cat /tmp/made",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "private\n"
    layers = runner.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots" / runner.namespace
    upper = layers / task_id / "fs"
    assert (upper / "tmp" / "made").read_text() == "private\n"  # the write went to the layer
    assert (upper / "nonexist").is_dir()
    assert _tree(busybox_rootfs) == before  # the lower dir was never written
    assert runner("tasks", "rm", task_id).returncode == 0
    assert not (layers / task_id).exists()
    assert _tree(busybox_rootfs) == before


def test_oci_spec_output_is_accepted_by_run_spec_and_flags_override_it(
    runner: Taskplane, busybox_rootfs: Path, task_id: str, tmp_path: Path
) -> None:
    printed = runner("oci", "spec", "--user", "1000", "--env", "WHO=file", "--rootfs",
                     str(busybox_rootfs), "--", "sh", "-c", "echo unused")  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    spec_file = tmp_path / "config.json"
    spec_file.write_text(printed.stdout)
    as_is = runner("run", "--rm", "--spec", str(spec_file), task_id, "--", "sh", "-c",
                   'echo "$(id -u) $WHO $(hostname)"')  # fmt: skip
    assert as_is.returncode == 0, as_is.stderr
    assert as_is.stdout == f"1000 file {task_id}\n"
    overridden = runner("run", "--rm", "--spec", str(spec_file), "--user", "2000",
                        "--env", "WHO=flag", task_id, "--", "sh", "-c",
                        'echo "$(id -u) $WHO"')  # fmt: skip
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stdout == "2000 flag\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "docker.io/library/alpine:latest"],
        ["run", "--rootfs", "/", "alpine:3.19", "sh"],
        ["run", "--rootfs", "/", "web", "ghcr.io/org/app"],
    ],
)
def test_an_image_reference_gets_one_sentence(runner: Taskplane, argv: list[str]) -> None:
    line = single_error_line(runner(*argv))
    assert "looks like an image reference: taskplane runs a root filesystem directory, not " \
        "images; use --rootfs DIR" in line  # fmt: skip
