"""runtime_v2.bundle makes its shared directories (``STATE/<ns>``, ``ROOT/<ns>`` and the parents
they need) through plugins.securefs: exact modes under any umask, and nothing planted on the way
followed -- what ``os.makedirs`` in their place would get wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from plugins import securefs
from runtime_v2.bundle import new_bundle

NS = "ns1"
ID = "task1"
NOBODY = 65534


def _modes(base: Path, *names: str) -> list[int]:
    return [stat.S_IMODE(os.lstat(base / name).st_mode) for name in names]


def test_missing_parents_of_state_and_root_are_0711_under_umask_000(tmp_path: Path) -> None:
    """Under umask 000 ``os.makedirs`` makes the missing parents 0777: writable by anyone, who
    could then swap a task's bundle. securefs gives every directory it creates 0711."""
    root, state = tmp_path / "var" / "root", tmp_path / "run" / "state"
    old_umask = os.umask(0)
    try:
        new_bundle(str(root), str(state), NS, ID, None)
    finally:
        os.umask(old_umask)
    assert _modes(tmp_path, "run", "run/state", "run/state/ns1") == [0o711] * 3
    assert _modes(tmp_path, "var", "var/root", "var/root/ns1") == [0o711] * 3


@pytest.mark.usefixtures("as_root")  # to lchown the symlink to another user
@pytest.mark.parametrize("which", ["state", "root"])
def test_a_namespace_dir_symlinked_by_another_user_is_refused(tmp_path: Path, which: str) -> None:
    """A symlink another user planted at ``STATE/<ns>`` or ``ROOT/<ns>`` is not followed: the
    create fails naming it, and nothing lands where it points."""
    root, state = tmp_path / "root", tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / which).mkdir(mode=0o711)
    link = tmp_path / which / NS
    os.symlink(elsewhere, link)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(securefs.UnsafePath, match=rf"{link}: it is owned by uid {NOBODY}"):
        new_bundle(str(root), str(state), NS, ID, None)
    assert list(elsewhere.iterdir()) == []
    assert not os.path.lexists(state / NS / ID)


def test_a_world_writable_state_dir_is_refused(tmp_path: Path) -> None:
    """A state dir anyone can write to (left by an older version, or made by someone else) is
    refused with one sentence naming it; no bundle is made in it."""
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    with pytest.raises(securefs.UnsafePath, match=rf"{state}: it is writable by group or others"):
        new_bundle(str(tmp_path / "root"), str(state), NS, ID, None)
    assert list(state.iterdir()) == []
