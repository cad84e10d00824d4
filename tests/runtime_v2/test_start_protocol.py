"""The per-binary start protocol record: keyed by path and mtime, shared through a file."""

from __future__ import annotations

import os
from pathlib import Path

from runtime_v2.start_protocol import (
    PROTOCOLS_FILE,
    BinaryProtocol,
    StartProtocols,
    is_bootstrap_refusal,
)


def _binary(base: Path, name: str = "shim") -> str:
    path = base / name
    path.write_text("#!/bin/sh\n")
    return str(path)


def test_a_record_is_seen_by_another_instance_on_the_same_state_dir(base: Path) -> None:
    shim = _binary(base)
    StartProtocols(str(base / "state")).record(shim, "bootstrap", 3)
    assert StartProtocols(str(base / "state")).get(shim) == BinaryProtocol(
        shim, os.stat(shim).st_mtime_ns, "bootstrap", 3
    )
    assert StartProtocols(None).get(shim) is None  # memory only: nothing shared


def test_a_replaced_binary_is_unknown_again(base: Path) -> None:
    shim = _binary(base)
    protocols = StartProtocols(str(base / "state"))
    protocols.record(shim, "legacy", 2)
    st = os.stat(shim)
    os.utime(shim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert protocols.get(shim) is None
    assert StartProtocols(str(base / "state")).get(shim) is None


def test_a_corrupt_file_is_ignored_and_rewritten(base: Path) -> None:
    shim = _binary(base)
    state = base / "state"
    state.mkdir()
    for garbage in ("{not json", "[]", '{"format": 1, "binaries": {"x": 7}}'):
        (state / PROTOCOLS_FILE).write_text(garbage)
        assert StartProtocols(str(state)).get(shim) is None
    StartProtocols(str(state)).record(shim, "legacy", 2)
    assert StartProtocols(str(state)).get(shim) is not None


def test_records_of_several_binaries_coexist_and_gone_ones_are_dropped(base: Path) -> None:
    one, two = _binary(base, "one"), _binary(base, "two")
    state = str(base / "state")
    StartProtocols(state).record(one, "legacy", 2)
    StartProtocols(state).record(two, "bootstrap", 3)
    assert StartProtocols(state).get(one) is not None
    os.unlink(one)
    StartProtocols(state).record(two, "bootstrap", 2)
    assert one not in (base / "state" / PROTOCOLS_FILE).read_text()


def test_the_refusal_of_a_new_shim_is_recognised() -> None:
    assert is_bootstrap_refusal(
        "io.containerd.runc.v2: shim was started through the deprecated API but was built "
        "against the new API; if you upgraded containerd, you may need to restart the daemon"
    )
    assert not is_bootstrap_refusal("io.containerd.runc.v2: type with url t: not found")
