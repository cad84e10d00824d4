"""The container options as values: parsing, applying to a spec, ``oci spec``, bad input, and
decoding cgroup metrics (no container needed; the integration tests run them for real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins import errdefs
from taskplane import oci, oci_text
from taskplane.cli_spec import looks_like_image
from taskplane.metrics import decode

from .conftest import Taskplane, single_error_line


def test_default_spec_keywords_set_the_spec_fields(tmp_path: Path) -> None:
    spec = oci.default_spec(
        "web", rootfs=tmp_path, args=["sh"],
        mounts=[oci.BindMount(str(tmp_path), "/data", read_only=True)],
        user=(1000, 1001), read_only=True, memory_limit=64 << 20, cpus=1.5, pids_limit=7,
        net_host=True, hostname="box",
    )  # fmt: skip
    assert spec["mounts"][-1] == {
        "destination": "/data", "type": "bind", "source": str(tmp_path),
        "options": ["rbind", "ro"],
    }  # fmt: skip
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1001}
    assert spec["root"]["readonly"] is True
    resources = spec["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20}
    assert resources["cpu"] == {"period": 100_000, "quota": 150_000}
    assert resources["pids"] == {"limit": 7}
    assert "network" not in [ns["type"] for ns in spec["linux"]["namespaces"]]
    assert spec["hostname"] == "box"
    plain = oci.default_spec("web", rootfs=tmp_path, args=["sh"])
    assert "network" in [ns["type"] for ns in plain["linux"]["namespaces"]]
    assert set(plain["linux"]["resources"]) == {"devices"}


def test_a_mount_at_the_same_destination_replaces_the_specs(tmp_path: Path) -> None:
    spec = oci.default_spec("web", rootfs=tmp_path, args=["sh"])
    options = oci.SpecOptions(mounts=(oci.BindMount(str(tmp_path), "/run"),))
    applied = oci.apply_options(spec, options)
    assert [m for m in applied["mounts"] if m["destination"] == "/run"] == [
        {"destination": "/run", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}
    ]
    assert spec["mounts"] != applied["mounts"]  # the input is not changed


@pytest.mark.parametrize(
    ("text", "value"),
    [("1048576", 1 << 20), ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30),
     ("512KiB", 512 << 10)],
)  # fmt: skip
def test_parse_bytes(text: str, value: int) -> None:
    assert oci_text.parse_bytes(text) == value


def test_parse_user_mount_and_volume(tmp_path: Path) -> None:
    assert oci_text.parse_user("1000") == (1000, 1000)
    assert oci_text.parse_user("1000:5") == (1000, 5)
    assert oci_text.parse_mount(f"type=bind,src={tmp_path},dst=/d,options=rbind:ro") == (
        oci.BindMount(str(tmp_path), "/d", ("rbind", "ro"))
    )
    assert oci_text.parse_volume(f"{tmp_path}:/d:ro") == oci.BindMount(
        str(tmp_path), "/d", read_only=True
    )


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (oci_text.parse_bytes, "lots", "memory limit 'lots' must be a number of bytes"),
        (oci_text.parse_bytes, "0", "memory limit '0' must be greater than 0"),
        (oci_text.parse_cpus, "nan", "cpus 'nan' must be greater than 0"),
        (oci_text.parse_cpus, "-1", "cpus '-1' must be greater than 0"),
        (oci_text.parse_user, "root", "user 'root' must be UID or UID:GID (numbers)"),
        (oci_text.parse_volume, "/nonexistent-i12:/d", "the host path '/nonexistent-i12' does not"),
        (oci_text.parse_volume, "rel:/d", "the host path 'rel' must be absolute"),
        (oci_text.parse_volume, "/:d", "the container path 'd' must be absolute"),
        (oci_text.parse_volume, "/:/d:rx", "must be HOST:CTR or HOST:CTR:ro"),
        (oci_text.parse_mount, "type=tmpfs,src=/,dst=/d", "only type=bind is supported"),
        (oci_text.parse_mount, "src=/", "needs src=HOST and dst=CTR"),
        (oci_text.parse_mount, "src=/,dst=/d,bogus=1", "must be type=bind,src=HOST,dst=CTR"),
    ],
)
def test_bad_option_text_is_one_clear_error(parse: object, text: str, message: str) -> None:
    with pytest.raises(oci.SpecError) as caught:
        parse(text)  # type: ignore[operator]
    assert message in str(caught.value)


def test_bad_option_values_are_refused() -> None:
    with pytest.raises(oci.SpecError, match=r"hostname 'x{65}' must be 1 to 64 bytes"):
        oci.SpecOptions(hostname="x" * 65)
    with pytest.raises(oci.SpecError, match="pids limit must be greater than 0"):
        oci.SpecOptions(pids_limit=0)


def test_env_file(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# comment\n\nA=1\nB=x=y\n")
    assert oci_text.parse_env_file(good) == ["A=1", "B=x=y"]
    bad = tmp_path / "bad"
    bad.write_text("A=1\nnot a setting\n")
    with pytest.raises(oci.SpecError, match="line 2: expected KEY=VALUE"):
        oci_text.parse_env_file(bad)
    with pytest.raises(oci.SpecError, match="is a directory"):
        oci_text.parse_env_file(tmp_path)


@pytest.mark.parametrize(
    ("text", "image"),
    [("docker.io/library/alpine:latest", True), ("alpine:3.19", True), ("ghcr.io/o/app", True),
     ("localhost:5000/app", True), ("busybox@sha256:" + "a" * 64, True), ("web", False),
     ("sh", False), ("/bin/sh", False), ("./run.sh", False), ("tp-12ab", False),
     ("bin/echo", False)],
)  # fmt: skip
def test_image_references_are_told_from_ids_and_commands(text: str, image: bool) -> None:
    assert looks_like_image(text) is image


def test_oci_spec_prints_the_default_spec_with_the_flags(taskplane: Taskplane) -> None:
    result = taskplane("oci", "spec", "--memory-limit", "1g", "--", "echo", "hi")
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)
    assert spec["process"]["args"] == ["echo", "hi"]
    assert spec["root"]["path"] == "rootfs"
    assert spec["linux"]["resources"]["memory"] == {"limit": 1 << 30}
    assert "hostname" not in spec and "cgroupsPath" not in spec["linux"]
    named = json.loads(taskplane("oci", "spec", "web").stdout)
    assert named["hostname"] == "web"
    assert named["process"]["args"] == ["sh"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "memory limit 'lots' must be a number of bytes"),
        (["--user", "root"], "user 'root' must be UID or UID:GID"),
        (["-v", "/nonexistent-i12:/d"], "does not exist"),
        (["--hostname", "h" * 65], "must be 1 to 64 bytes"),
        (["--env-file", "/nonexistent-i12"], "env file '/nonexistent-i12' does not exist"),
        (["--spec", "/nonexistent-i12"], "spec file '/nonexistent-i12' does not exist"),
    ],
)
def test_oci_spec_bad_flags_are_one_line(
    taskplane: Taskplane, args: list[str], message: str
) -> None:
    assert message in single_error_line(taskplane("oci", "spec", *args))


def test_pids_limit_must_be_a_positive_number(taskplane: Taskplane) -> None:
    result = taskplane("oci", "spec", "--pids-limit", "0")
    assert result.returncode == 2
    assert "'0' must be a whole number greater than 0" in result.stderr


def test_a_spec_file_with_a_bad_resources_field_names_its_path(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    spec = oci.default_spec("x", rootfs=tmp_path, args=["sh"])
    spec["linux"]["resources"]["memory"] = {"limit": "lots"}
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    line = single_error_line(taskplane("oci", "spec", "--spec", str(tmp_path / "bad.json")))
    assert "linux.resources.memory.limit: expected an integer, got a string" in line


def test_metrics_of_cgroup_v1_and_v2_decode_to_the_same_figures() -> None:
    from runtime_v2 import typeurl
    from runtime_v2.api import cgroups_v1_metrics_pb2 as v1
    from runtime_v2.api import cgroups_v2_metrics_pb2 as v2

    one = v1.Metrics(
        pids=v1.PidsStat(current=2, limit=9),
        cpu=v1.CPUStat(usage=v1.CPUUsage(total=5000, user=3000, kernel=2000)),
        memory=v1.MemoryStat(usage=v1.MemoryEntry(usage=4096, limit=8192, max=5000)),
        blkio=v1.BlkIOStat(
            io_service_bytes_recursive=[
                v1.BlkIOEntry(op="Read", value=10),
                v1.BlkIOEntry(op="Write", value=20),
                v1.BlkIOEntry(op="Read", value=1),
                v1.BlkIOEntry(op="Total", value=31),
            ]
        ),
    )
    two = v2.Metrics(
        pids=v2.PidsStat(current=2, limit=9),
        cpu=v2.CPUStat(usage_usec=5, user_usec=3, system_usec=2),
        memory=v2.MemoryStat(usage=4096, usage_limit=8192, max_usage=5000),
        io=v2.IOStat(usage=[v2.IOEntry(rbytes=10, wbytes=20), v2.IOEntry(rbytes=1)]),
    )
    first = decode(typeurl.pack(one)).as_dict()
    second = decode(typeurl.pack(two)).as_dict()
    assert first.pop("cgroup") == "v1" and second.pop("cgroup") == "v2"
    assert (
        first
        == second
        == {
            "memory": {"usage": 4096, "limit": 8192, "max_usage": 5000},
            "cpu": {"usage_ns": 5000, "user_ns": 3000, "system_ns": 2000, "throttled_periods": 0},
            "pids": {"current": 2, "limit": 9},
            "io": {"read_bytes": 11, "write_bytes": 20},
        }
    )


def test_metrics_of_an_unknown_type_name_it() -> None:
    from google.protobuf import any_pb2

    with pytest.raises(errdefs.NotImplemented, match=r'"example\.Other"'):
        decode(any_pb2.Any(type_url="example.Other"))


def test_a_plain_id_and_command_are_told_without_compiling_the_reference_pattern() -> None:
    # Every run checks its id and command: neither compiles the image-reference pattern.
    from taskplane import cli_spec

    cli_spec._image.cache_clear()
    cli_spec.check_not_image("web", ["/bin/true"])
    cli_spec.check_not_image("tp-12ab", ["sh", "-c", "exit 3"])
    assert cli_spec._image.cache_info().currsize == 0
    assert looks_like_image("alpine:3.19")  # the pattern when it may be one
    assert cli_spec._image.cache_info().currsize == 1
