"""taskplane.oci.load_spec on hostile spec files: one SpecError naming the file and the JSON
path, never an internal error (issue 9, case 4); the default hostname fits (case 5)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from plugins import identifiers
from taskplane import oci

GOOD: dict[str, object] = {"process": {"args": ["sh"]}, "root": {"path": "rootfs"}}


def _with(path: str, value: object) -> dict[str, object]:
    """GOOD with the dotted ``path`` set to ``value``."""
    spec = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


def _load(tmp_path: Path, content: bytes | dict[str, object]) -> str:
    spec = tmp_path / "spec.json"
    spec.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(oci.SpecError) as info:
        oci.load_spec(spec)
    message = str(info.value)
    assert message.startswith(f"spec file {str(spec)!r}")
    assert "\n" not in message
    return message.removeprefix(f"spec file {str(spec)!r}")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("root.path", 5, ": root.path: expected a string, got an integer"),
        ("root.path", ["a"], ": root.path: expected a string, got an array"),
        ("root.path", "a\0b", ": root.path: contains a NUL character"),
        ("root", "rootfs", ": root: expected an object, got a string"),
        ("process.args", "sh", ": process.args: expected an array, got a string"),
        ("process.args", ["sh", 1], ": process.args[1]: expected a string, got an integer"),
        ("process.env", [None], ": process.env[0]: expected a string, got null"),
        ("process.user.uid", True, ": process.user.uid: expected an integer, got a boolean"),
        ("process.user.uid", 1.5, ": process.user.uid: expected an integer, got a number"),
        ("process.terminal", "yes", ": process.terminal: expected a boolean, got a string"),
        ("mounts", [{"destination": 3}], ": mounts[0].destination: expected a string, got an"),
        ("annotations", {"k": 1}, ": annotations.k: expected a string, got an integer"),
        ("linux.namespaces", [{"type": []}], ": linux.namespaces[0].type: expected a string"),
        ("hostname", "h" * 65, ": hostname: longer than 64 bytes"),
        ("process", None, ": process: expected an object, got null"),
    ],
)
def test_a_bad_value_names_its_json_path(
    tmp_path: Path, path: str, value: object, message: str
) -> None:
    assert _load(tmp_path, _with(path, value)).startswith(message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"process": "\xff"}', " is not UTF-8 (invalid start byte at byte 13)"),
        (b"[" * 100_000 + b"]" * 100_000, " nests objects and arrays more than 32 deep"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, " nests objects and arrays more than 32 deep"),
        (b"[1]", " must hold a JSON object, not an array"),
        (b"{", " is not valid JSON"),
        (b" " * (oci.MAX_SPEC_BYTES + 1), f" is larger than {oci.MAX_SPEC_BYTES} bytes"),
        (json.dumps({"root": {"path": "r"}}).encode(), " has no process.args"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    assert _load(tmp_path, content).startswith(message)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (os.mkfifo, " is a FIFO, not a regular file"),
        (lambda p: os.symlink("/dev/zero", p), " is a device, not a regular file"),
        (lambda p: None, " does not exist"),
    ],
)
def test_only_a_regular_spec_file_is_read(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    spec = tmp_path / "spec.json"
    make(spec)
    with pytest.raises(oci.SpecError) as info:
        oci.load_spec(spec)
    assert str(info.value) == f"spec file {str(spec)!r}{message}"


def test_a_good_spec_loads(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    full = oci.default_spec("x", rootfs=tmp_path, args=["sh"])
    spec.write_text(json.dumps(full))
    assert oci.load_spec(spec) == full


def test_the_default_hostname_of_the_longest_valid_id_fits() -> None:
    longest = "a" * identifiers.MAX_LENGTH
    identifiers.validate_task_id(longest)
    spec = oci.default_spec(longest, rootfs="/", args=["sh"])
    assert spec["hostname"] == "a" * oci.HOST_NAME_MAX
    assert oci.default_spec("short", rootfs="/", args=["sh"])["hostname"] == "short"
