"""plugins.securefs: exact modes under any umask, untrusted components refused, no symlink
followed unless root planted it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins import errdefs, securefs

NOBODY = 65534


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_created_directories_get_exactly_the_mode_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    securefs.make_dirs(tmp_path / "a" / "b" / "c", 0o711)
    assert [_mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o711] * 3


def test_existing_directories_keep_their_mode(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(mode=0o755)
    securefs.make_dirs(tmp_path / "a" / "b", 0o700)
    assert (_mode(tmp_path / "a"), _mode(tmp_path / "a" / "b")) == (0o755, 0o700)


def test_a_world_writable_directory_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(securefs.UnsafePath, match=r"open: it is writable by group or others"):
        securefs.make_dirs(tmp_path / "open" / "x")
    assert not (tmp_path / "open" / "x").exists()


def test_a_sticky_root_owned_directory_is_trusted(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    os.chmod(tmp_path / "tmp", 0o1777)
    securefs.make_dirs(tmp_path / "tmp" / "mine", 0o700)
    assert _mode(tmp_path / "tmp" / "mine") == 0o700


@pytest.mark.usefixtures("as_root")  # to chown to another user
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir(mode=0o755)
    os.chown(tmp_path / "theirs", NOBODY, NOBODY)
    with pytest.raises(securefs.UnsafePath, match=r"theirs: it is owned by uid 65534"):
        securefs.make_dirs(tmp_path / "theirs" / "x")


@pytest.mark.usefixtures("as_root")  # to lchown to another user
def test_a_symlink_planted_by_another_user_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    os.lchown(tmp_path / "link", NOBODY, NOBODY)
    with pytest.raises(securefs.UnsafePath, match=r"symlink .*link: it is owned by uid 65534"):
        securefs.make_dirs(tmp_path / "link" / "x")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_symlink_of_our_own_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "link")
    assert securefs.make_dirs(tmp_path / "link" / "x") == str(tmp_path / "real" / "x")


def test_symlink_loops_end_in_a_clear_error(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(securefs.UnsafePath, match="too many levels of symbolic links"):
        securefs.make_dirs(tmp_path / "a" / "x")


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(securefs.UnsafePath, match="is not a directory"):
        securefs.make_dirs(tmp_path / "f")
    with pytest.raises(securefs.UnsafePath, match="is not a directory"):
        securefs.make_dirs(tmp_path / "f" / "x")


def test_open_file_refuses_a_symlink_in_the_files_place(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "out.log")
    with pytest.raises(securefs.UnsafePath, match=r"out.log: it is a symlink"):
        securefs.open_file(tmp_path / "out.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert victim.read_text() == "keep"


def test_open_file_sets_the_mode_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    fd = securefs.open_file(tmp_path / "d" / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    assert (_mode(tmp_path / "d"), _mode(tmp_path / "d" / "f")) == (0o711, 0o600)


def test_check_trusted_accepts_a_missing_tail(tmp_path: Path) -> None:
    assert securefs.check_trusted(tmp_path / "no" / "such") == str(tmp_path / "no" / "such")


def test_unsafe_path_reads_as_a_permission_error() -> None:
    assert issubclass(securefs.UnsafePath, errdefs.PermissionDenied)
