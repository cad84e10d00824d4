"""The command line's building blocks, in process: the default spec, signals, FIFOs, errors."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

import pytest

from taskplane import oci
from taskplane.cli_tasks import parse_signal
from taskplane.errors import CLIError, Missing, report
from taskplane.stdio import FifoPair, file_uri


def test_default_spec_matches_containerds_defaults(tmp_path: Path) -> None:
    spec = oci.default_spec("web", rootfs=tmp_path, args=["/bin/echo", "hi"], namespace="ns")
    assert spec["root"] == {"path": str(tmp_path), "readonly": False}
    assert [n["type"] for n in spec["linux"]["namespaces"]] == [
        "pid",
        "ipc",
        "uts",
        "mount",
        "network",
    ]
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} <= set(mounts)
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/dev"]["type"] == "tmpfs"
    process = spec["process"]
    assert process["args"] == ["/bin/echo", "hi"]
    assert process["terminal"] is False
    assert process["env"] == [f"PATH={oci.DEFAULT_PATH}"]
    assert process["capabilities"]["bounding"] == list(oci.DEFAULT_CAPABILITIES)
    assert len(oci.DEFAULT_CAPABILITIES) == 14
    assert spec["linux"]["cgroupsPath"] == "/taskplane@ns@web"
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]


def test_default_spec_makes_a_relative_rootfs_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = oci.default_spec("x", rootfs="rootfs", args=["true"])
    assert spec["root"]["path"] == str(tmp_path / "rootfs")


def test_env_overrides_path_and_later_values_win(tmp_path: Path) -> None:
    spec = oci.default_spec(
        "x", rootfs=tmp_path, args=["true"], env=["A=1", "PATH=/bin", "A=2", "EMPTY="]
    )
    assert spec["process"]["env"] == ["PATH=/bin", "A=2", "EMPTY="]


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_env_entries_must_be_key_value(tmp_path: Path, bad: str) -> None:
    with pytest.raises(oci.SpecError, match="KEY=VALUE"):
        oci.default_spec("x", rootfs=tmp_path, args=["true"], env=[bad])


def test_cwd_must_be_absolute(tmp_path: Path) -> None:
    with pytest.raises(oci.SpecError, match="absolute"):
        oci.default_spec("x", rootfs=tmp_path, args=["true"], cwd="relative")


def test_a_spec_file_without_process_args_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"root": {"path": "/"}}')
    with pytest.raises(oci.SpecError, match=r"process\.args"):
        oci.load_spec(path)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", signal.SIGKILL),
        ("sigterm", signal.SIGTERM),
        ("SIGHUP", signal.SIGHUP),
        ("9", 9),
        (" usr1 ", signal.SIGUSR1),
    ],
)
def test_signals_parse_by_name_or_number(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "0", "999", "-1", ""])
def test_bad_signals_are_rejected(text: str) -> None:
    with pytest.raises(CLIError, match="invalid signal"):
        parse_signal(text)


def test_report_prints_one_line_and_the_exit_code() -> None:
    out = io.StringIO()
    assert report(Missing("runc is not installed", exit_code=3), stream=out) == 3
    assert out.getvalue() == "taskplane: runc is not installed\n"


def test_report_prefixes_every_line_of_a_multi_line_message() -> None:
    out = io.StringIO()
    assert report(Missing("demo cannot run: a\ndemo cannot run: b"), stream=out) == 1
    assert out.getvalue() == "taskplane: demo cannot run: a\ntaskplane: demo cannot run: b\n"


def test_report_calls_unexpected_errors_internal_and_points_at_debug() -> None:
    out = io.StringIO()
    assert report(ZeroDivisionError("division by zero"), stream=out) == 1
    assert out.getvalue() == (
        "taskplane: internal error: ZeroDivisionError: division by zero "
        "(run with --debug for the traceback)\n"
    )


def test_report_with_debug_ends_with_the_same_line() -> None:
    out = io.StringIO()
    try:
        raise CLIError("boom")
    except CLIError as exc:
        report(exc, debug=True, stream=out)
    assert "Traceback" in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "taskplane: boom"


def test_report_names_the_file_of_an_os_error() -> None:
    out = io.StringIO()
    report(FileNotFoundError(2, "No such file or directory", "/nowhere"), stream=out)
    assert out.getvalue() == "taskplane: /nowhere: No such file or directory\n"


def test_file_uri_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert file_uri("out.log") == f"file://{tmp_path}/out.log"


async def test_fifo_pair_copies_until_the_writer_closes(tmp_path: Path) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    with FifoPair(tmp_path / "io") as fifos:
        # Stand in for the shim: open the write ends, then let ours go.
        w_out = os.open(fifos.stdout, os.O_WRONLY)
        w_err = os.open(fifos.stderr, os.O_WRONLY)
        fifos.release()
        copy = asyncio.ensure_future(fifos.copy_to(out.append, err.append))
        os.write(w_out, b"hello ")
        os.write(w_err, b"oops")
        os.write(w_out, b"world")
        os.close(w_out)
        os.close(w_err)
        await asyncio.wait_for(copy, 5)
    assert b"".join(out) == b"hello world"
    assert b"".join(err) == b"oops"
    assert not os.path.exists(fifos.stdout) and not os.path.exists(fifos.stderr)


def test_fifo_pair_sees_no_end_of_file_before_release(tmp_path: Path) -> None:
    with FifoPair(tmp_path / "io") as fifos:
        probe = os.open(fifos.stdout, os.O_RDONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(BlockingIOError):  # a writer (ours) exists: no data, no EOF
                os.read(probe, 1)
            fifos.release()
            assert os.read(probe, 1) == b""  # no writer left: end-of-file
        finally:
            os.close(probe)


@pytest.mark.parametrize(
    ("argv", "command", "rm"),
    [
        (["run", "--rootfs", "r", "t1", "echo", "-n", "hi"], ["echo", "-n", "hi"], False),
        (["run", "--rootfs", "r", "t1", "--", "echo", "--rm"], ["echo", "--rm"], False),
        (["run", "t1", "--rootfs", "r", "--rm", "--", "sh", "-c", "x"], ["sh", "-c", "x"], True),
    ],
)
def test_the_command_follows_the_id_and_an_optional_dashdash(
    argv: list[str], command: list[str], rm: bool
) -> None:
    from taskplane.cli import _split_command, build_parser

    args, trailing = _split_command(argv)
    ns = build_parser(command_after_dashdash=trailing is not None).parse_args(args)
    assert (ns.id, ns.rootfs, [*ns.cmd, *(trailing or [])], ns.rm) == ("t1", "r", command, rm)


def test_import_taskplane_is_cheap_and_re_exports_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, taskplane\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('registry', 'runtime_v2')]\n"
        "assert not heavy, heavy\n"
        "from taskplane.containers import Client\n"
        "assert taskplane.Client is Client\n"
        "assert taskplane.default_spec is taskplane.oci.default_spec\n"
    )
    from .conftest import base_env

    result = subprocess.run(
        [sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--namespace", "ns1", "tasks", "ls"],
        ["tasks", "--namespace", "ns1", "ls"],
        ["tasks", "ls", "--namespace", "ns1"],
        ["-n", "ns1", "plugins", "ls"],
        ["config", "-n", "ns1", "default"],
    ],
)
def test_global_options_are_accepted_at_every_level(argv: list[str]) -> None:
    from taskplane.cli import build_parser

    assert build_parser().parse_args(argv).namespace == "ns1"
