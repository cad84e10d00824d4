"""Runtime name to shim binary path (containerd's TestResolveRuntimePath and BinaryName)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import attrs
import pytest

from runtime_v2 import errdefs
from runtime_v2.runtime_path import (
    RuntimePathResolver,
    binary_name,
    default_executable_dirs,
    resolve_runtime_path,
)
from tests.prerequisites import need

SHIM = "containerd-shim-runc-v2"


def _fake_shim(directory: Path, name: str = SHIM) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@attrs.frozen
class Env:
    """A fake shim first in PATH, an empty cwd and an empty executable dir."""

    fake: str
    path_env: str
    cwd: str
    exe_dir: str

    def resolve(self, runtime: str, cache: dict[str, str] | None = None) -> str:
        return resolve_runtime_path(
            runtime,
            cache=cache,
            path_env=self.path_env,
            executable_dirs=[self.exe_dir],
        )


@pytest.fixture
def env(tmp_path: Path) -> Env:
    bin_dir = tmp_path / "bin"
    fake = _fake_shim(bin_dir)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "exe").mkdir()
    return Env(
        fake=fake,
        path_env=f"{bin_dir}{os.pathsep}/usr/bin",
        cwd=str(tmp_path / "cwd"),
        exe_dir=str(tmp_path / "exe"),
    )


@pytest.mark.parametrize(
    ("runtime", "name"),
    [
        ("io.containerd.runc.v2", "containerd-shim-runc-v2"),
        ("io.containerd.runhcs.v1", "containerd-shim-runhcs-v1"),
        ("io.foo.bar.runc2.v2.baz", "containerd-shim-v2-baz"),
        ("runc.v2", "containerd-shim-runc-v2"),
        ("io", ""),
        ("", ""),
        (".io.containerd.runc.v2", ""),
    ],
)
def test_binary_name(runtime: str, name: str) -> None:
    assert binary_name(runtime) == name


def test_absolute_path_is_returned_as_is(env: Env) -> None:
    cache: dict[str, str] = {}
    assert env.resolve(env.fake, cache) == env.fake
    assert cache == {}  # absolute paths are not cached


def test_runtime_name_finds_the_path_hit(env: Env) -> None:
    cache: dict[str, str] = {}
    assert env.resolve("io.containerd.runc.v2", cache) == env.fake
    assert cache == {SHIM: env.fake}


@pytest.mark.parametrize(
    ("runtime", "error", "message"),
    [
        ("/fake/abs/path", errdefs.NotFound, "invalid custom binary path: /fake/abs/path"),
        ("", errdefs.InvalidArgument, "no runtime name"),
        ("./containerd-shim-runc-v2", errdefs.InvalidArgument, "invalid runtime name"),
        ("fake/containerd-shim-runc-v2", errdefs.InvalidArgument, "invalid runtime name"),
        ("./fake/containerd-shim-runc-v2", errdefs.InvalidArgument, "invalid runtime name"),
        (".io.containerd.runc.v2", errdefs.InvalidArgument, "invalid runtime name"),
        ("runc", errdefs.InvalidArgument, "format like `io.containerd.runc.v2`"),
    ],
)
def test_bad_runtimes_are_rejected(
    env: Env, runtime: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        env.resolve(runtime, {})


def test_missing_binary_error_names_every_place_it_looked(env: Env) -> None:
    with pytest.raises(errdefs.NotFound) as info:
        env.resolve("io.containerd.nope.v1", {})
    assert str(info.value) == (
        'runtime "io.containerd.nope.v1" binary not installed "containerd-shim-nope-v1": '
        f"looked in PATH ({env.path_env.replace(os.pathsep, ', ')}), {env.exe_dir} "
        "(never the working directory)"
    )


def test_the_working_directory_is_never_searched(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # containerd looks in its cwd first; a root command must not run what a user left there.
    _fake_shim(Path(env.cwd))
    monkeypatch.chdir(env.cwd)
    assert env.resolve("io.containerd.runc.v2") == env.fake
    alone = attrs.evolve(env, path_env="/nonexistent")
    with pytest.raises(errdefs.NotFound):
        alone.resolve("io.containerd.runc.v2")


def test_executable_dir_is_the_last_resort(env: Env) -> None:
    next_to_us = _fake_shim(Path(env.exe_dir))
    env = attrs.evolve(env, path_env="/nonexistent")
    assert env.resolve("io.containerd.runc.v2") == next_to_us


def test_path_skips_non_executable_files_and_directories(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / SHIM).write_text("not executable")
    as_dir = tmp_path / "dir"
    (as_dir / SHIM).mkdir(parents=True)
    good = _fake_shim(tmp_path / "good")
    path_env = os.pathsep.join([str(plain), str(as_dir), str(tmp_path / "good")])
    assert (
        resolve_runtime_path("io.containerd.runc.v2", path_env=path_env, executable_dirs=[]) == good
    )


@pytest.mark.parametrize("entry", ["", ".", "sub", "./sub"])
def test_empty_and_relative_path_entries_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    # They would name the working directory (Go's exec.LookPath refuses them too: ErrDot).
    _fake_shim(tmp_path)
    _fake_shim(tmp_path / "sub")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errdefs.NotFound):
        resolve_runtime_path(
            "io.containerd.runc.v2",
            path_env=entry + os.pathsep + "/nonexistent",
            executable_dirs=[],
        )


def test_cache_hit_is_returned_without_looking(env: Env) -> None:
    cache = {SHIM: "/cached/containerd-shim-runc-v2"}
    assert env.resolve("io.containerd.runc.v2", cache) == "/cached/containerd-shim-runc-v2"


def test_first_writer_wins_in_the_cache(env: Env) -> None:
    class Racing(dict[str, str]):
        """A cache that another resolver fills between our lookup and our store."""

        def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
            self[key] = "/first/writer"
            return None

    assert env.resolve("io.containerd.runc.v2", Racing()) == "/first/writer"


def test_resolver_object_caches(env: Env) -> None:
    resolver = RuntimePathResolver(path_env=env.path_env, executable_dirs=[env.exe_dir])
    assert resolver.resolve("io.containerd.runc.v2") == env.fake
    assert resolver.cache == {SHIM: env.fake}


def test_default_executable_dirs_include_the_venv_bin() -> None:
    assert os.path.join(sys.prefix, "bin") in default_executable_dirs()


def test_the_installed_runc_shim_is_found_on_the_default_path() -> None:
    need(
        os.path.exists("/usr/bin/containerd-shim-runc-v2"),
        "containerd-shim-runc-v2 is not installed",
    )
    path = resolve_runtime_path(
        "io.containerd.runc.v2", cache={}, path_env="/usr/local/bin:/usr/bin"
    )
    assert path == "/usr/bin/containerd-shim-runc-v2"


def test_a_module_path_in_argv0_is_not_a_place_to_look(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under `python -m taskplane`, argv[0] is .../taskplane/__main__.py: no shims live there.
    monkeypatch.setattr(sys, "argv", ["/opt/x/site-packages/taskplane/__main__.py"])
    assert "/opt/x/site-packages/taskplane" not in default_executable_dirs()
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/taskplane"])
    assert default_executable_dirs()[0] == "/opt/venv/bin"


# -- trust: as root, only binaries root alone controls are run (sudo's secure_path rule) -----

NOBODY = 65534
needs_root = pytest.mark.usefixtures("as_root")  # the trust check applies to root


@needs_root
def test_a_shim_writable_by_others_is_refused(env: Env) -> None:
    os.chmod(env.fake, 0o777)
    with pytest.raises(errdefs.PermissionDenied) as info:
        env.resolve("io.containerd.runc.v2", {})
    assert str(info.value) == (
        f"refusing to run shim binary {env.fake} as root: "
        "it is writable by group or others (mode 0777)"
    )


@needs_root
def test_a_shim_owned_by_another_user_is_refused_even_by_absolute_path(env: Env) -> None:
    os.chown(env.fake, NOBODY, NOBODY)
    with pytest.raises(errdefs.PermissionDenied, match="it is owned by uid 65534, not by root"):
        env.resolve(env.fake, {})


@needs_root
def test_a_shim_in_a_directory_others_can_write_is_refused(env: Env) -> None:
    os.chmod(os.path.dirname(env.fake), 0o777)
    with pytest.raises(errdefs.PermissionDenied, match=r"bin: it is writable by group or others"):
        env.resolve("io.containerd.runc.v2", {})


@needs_root
def test_a_cached_shim_is_checked_again(env: Env) -> None:
    cache: dict[str, str] = {}
    env.resolve("io.containerd.runc.v2", cache)
    os.chmod(env.fake, 0o757)
    with pytest.raises(errdefs.PermissionDenied):
        env.resolve("io.containerd.runc.v2", cache)


def test_not_root_there_is_nothing_to_protect(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    os.chmod(env.fake, 0o777)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert env.resolve("io.containerd.runc.v2", {}) == env.fake


@needs_root
@pytest.mark.parametrize("by_name", [True, False])
def test_the_runc_binary_the_shim_will_run_is_checked(tmp_path: Path, by_name: bool) -> None:
    from runtime_v2 import typeurl
    from runtime_v2.api import runc_options_pb2
    from runtime_v2.runtime_path import check_runc_binary

    runc = _fake_shim(tmp_path / "bin", "my-runc" if by_name else "runc")
    os.chmod(runc, 0o775)
    options = typeurl.pack(runc_options_pb2.Options(binary_name=runc)) if by_name else None
    with pytest.raises(errdefs.PermissionDenied) as info:
        check_runc_binary(options, path_env=str(tmp_path / "bin"))
    assert str(info.value) == (
        f"refusing to run runc binary {runc} as root: it is writable by group or others (mode 0775)"
    )
    os.chmod(runc, 0o755)
    check_runc_binary(options, path_env=str(tmp_path / "bin"))


def test_a_runc_binary_found_nowhere_is_left_to_the_shim(tmp_path: Path) -> None:
    from runtime_v2.runtime_path import check_runc_binary

    check_runc_binary(None, path_env=str(tmp_path))
