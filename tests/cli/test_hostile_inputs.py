"""The hostile-input catalogue (issue 9): each input through the real CLI is one clear line
on stderr -- ``taskplane: ...``, no traceback, no "internal error" -- and changes nothing under
the root and state directories (a listing of both is compared before and after).

Frames on the events socket are in tests/security/test_events_socket_frames.py (in-process: a
CLI process per frame would cost seconds for nothing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.prerequisites import missing_integration_prerequisites, require

from .conftest import Taskplane, base_env

SHIM = "containerd-shim-runc-v2"
ID_77 = "a" * 77


@attrs.frozen
class Ground:
    """One booted root/state pair and the hostile files the inputs point at."""

    taskplane: Taskplane
    files: Path
    rootfs: Path


@pytest.fixture(scope="module")
def ground() -> Iterator[Ground]:
    require(missing_integration_prerequisites(), what="the catalogue needs root and the runtime")
    base = Path(tempfile.mkdtemp(prefix="tphost", dir="/tmp"))
    files = base / "files"
    files.mkdir()
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    cwd = base / "cwd"
    cwd.mkdir()
    tp = Taskplane(root=base / "r", state=base / "s", cwd=cwd, env=base_env())
    _make_files(files)
    booted = tp("tasks", "ls")  # the plugins' own directories exist before the catalogue
    assert booted.returncode == 0, booted.stderr
    yield Ground(tp, files, rootfs)
    shutil.rmtree(base, ignore_errors=True)


def _make_files(d: Path) -> None:
    os.mkfifo(d / "fifo")
    os.symlink("/dev/zero", d / "zero")
    (d / "dir").mkdir()
    (d / "latin1.json").write_bytes(b'{"process": {"args": ["\xe9"]}}')
    base = {"process": {"args": ["sh"]}, "root": {"path": "rootfs"}}
    for name, patch in {
        "root-int.json": {"root": {"path": 5}},
        "root-list.json": {"root": {"path": ["/"]}},
        "args-str.json": {"process": {"args": "sh"}},
        "no-args.json": {"process": {"args": []}},
        "long-host.json": {"hostname": "h" * 65},
        "env-int.json": {"process": {"args": ["sh"], "env": [1]}},
    }.items():
        (d / name).write_text(json.dumps({**base, **patch}))
    (d / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (d / "big.json").write_bytes(b" " * ((1 << 20) + 1))
    (d / "list.json").write_text("[]")
    # Configs.
    (d / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    (d / "latin1.toml").write_bytes(b'root = "\xe9"\n')
    (d / "big.toml").write_bytes(b"#" * ((1 << 20) + 1))
    (d / "unknown.toml").write_text("version = 3\nnot_a_key = 1\n")
    (d / "imports-zero.toml").write_text('imports = ["/dev/zero"]\n')
    (d / "imports-fifo.toml").write_text(f'imports = ["{d / "fifo"}"]\n')
    loop = d / "loop"
    loop.mkdir()
    (loop / "config.toml").write_text('imports = ["a/config.toml", "b/config.toml"]\nbad = 1\n')
    os.symlink(".", loop / "a")
    os.symlink(".", loop / "b")
    (d / "same-dirs.toml").write_text('root = "/tmp/x"\nstate = "/tmp/x"\n')
    (d / "relative-root.toml").write_text('root = "rel"\n')
    # An untrusted shim: writable by everyone.
    (d / "open").mkdir()
    shim = d / "open" / SHIM
    shim.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(shim, 0o777)


def _listing(*dirs: Path) -> dict[str, tuple[str, int]]:
    """(kind + mode, size) of everything under ``dirs``; sockets and dirs have size 0."""
    out: dict[str, tuple[str, int]] = {}
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                out[path] = (stat.filemode(st.st_mode), size)
    return out


R = "{rootfs}"
F = "{files}"
RUN = ("run", "--rootfs", R)

#: (what, argv, environment) -- ``{rootfs}`` and ``{files}`` are filled in per ground.
CATALOGUE: list[tuple[str, tuple[str, ...], dict[str, str]]] = [
    # IDs
    ("id empty", (*RUN, "", "--", "true"), {}),
    ("id dash", (*RUN, "--", "-x", "--", "true"), {}),
    ("id slash", (*RUN, "a/b", "--", "true"), {}),
    ("id dotdot", (*RUN, "../../etc", "--", "true"), {}),
    ("id 77 chars", (*RUN, ID_77, "--", "true"), {}),
    ("id space", (*RUN, "a b", "--", "true"), {}),
    ("id unicode", (*RUN, "caf\u00e9", "--", "true"), {}),
    ("id newline", (*RUN, "a\nb", "--", "true"), {}),
    ("id shell", (*RUN, "$(id)", "--", "true"), {}),
    ("id leading dot", (*RUN, ".hidden", "--", "true"), {}),
    ("id double dot", (*RUN, "a..b", "--", "true"), {}),
    ("tasks rm bad id", ("tasks", "rm", "../x"), {}),
    ("tasks kill unknown id", ("tasks", "kill", "nobody-here"), {}),
    ("tasks logs bad id", ("tasks", "logs", "a/../../b"), {}),
    # namespaces
    ("ns slash", ("-n", "a/b", "tasks", "ls"), {}),
    ("ns dotdot", ("-n", "..", "tasks", "ls"), {}),
    ("ns 77 chars", ("-n", ID_77, "tasks", "ls"), {}),
    ("ns space", ("-n", "a b", *RUN, "x", "--", "true"), {}),
    ("ns from env", ("tasks", "ls"), {"TASKPLANE_NAMESPACE": "../../etc"}),
    # specs
    ("spec latin1", ("run", "--spec", f"{F}/latin1.json", "x"), {}),
    ("spec root.path int", ("run", "--spec", f"{F}/root-int.json", "x"), {}),
    ("spec root.path list", ("run", "--spec", f"{F}/root-list.json", "x"), {}),
    ("spec args string", ("run", "--spec", f"{F}/args-str.json", "x"), {}),
    ("spec no args", ("run", "--spec", f"{F}/no-args.json", "x"), {}),
    ("spec long hostname", ("run", "--spec", f"{F}/long-host.json", "x"), {}),
    ("spec env int", ("run", "--spec", f"{F}/env-int.json", "x"), {}),
    ("spec nested 100k deep", ("run", "--spec", f"{F}/deep.json", "x"), {}),
    ("spec too big", ("run", "--spec", f"{F}/big.json", "x"), {}),
    ("spec array", ("run", "--spec", f"{F}/list.json", "x"), {}),
    ("spec fifo", ("run", "--spec", f"{F}/fifo", "x"), {}),
    ("spec /dev/zero", ("run", "--spec", f"{F}/zero", "x"), {}),
    ("spec directory", ("run", "--spec", f"{F}/dir", "x"), {}),
    ("spec missing", ("run", "--spec", f"{F}/missing.json", "x"), {}),
    # configs
    ("config fifo", ("--config", f"{F}/fifo", "tasks", "ls"), {}),
    ("config /dev/zero", ("--config", f"{F}/zero", "tasks", "ls"), {}),
    ("config directory", ("--config", f"{F}/dir", "tasks", "ls"), {}),
    ("config 5000 deep", ("--config", f"{F}/deep.toml", "tasks", "ls"), {}),
    ("config latin1", ("--config", f"{F}/latin1.toml", "tasks", "ls"), {}),
    ("config too big", ("--config", f"{F}/big.toml", "tasks", "ls"), {}),
    ("config unknown key", ("--config", f"{F}/unknown.toml", "tasks", "ls"), {}),
    ("config imports /dev/zero", ("--config", f"{F}/imports-zero.toml", "tasks", "ls"), {}),
    ("config imports fifo", ("--config", f"{F}/imports-fifo.toml", "tasks", "ls"), {}),
    ("config symlink loop", ("--config", f"{F}/loop/config.toml", "tasks", "ls"), {}),
    ("config root = state", ("--config", f"{F}/same-dirs.toml", "tasks", "ls"), {}),
    ("config relative root", ("--config", f"{F}/relative-root.toml", "tasks", "ls"), {}),
    ("config from env", ("tasks", "ls"), {"TASKPLANE_CONFIG": f"{F}/zero"}),
    # runtime names
    ("runtime bare word", ("run", "--runtime", "runc", "--rootfs", R, "x", "--", "true"), {}),
    ("runtime relative path", ("run", "--runtime", f"./{SHIM}", "--rootfs", R, "x", "--", "t"), {}),
    ("runtime unknown", ("run", "--runtime", "io.x.nope.v9", "--rootfs", R, "x", "--", "t"), {}),
    (
        "runtime missing path",
        ("run", "--runtime", "/nonexistent/shim", "--rootfs", R, "x", "--", "true"),
        {},
    ),
    (
        "runtime untrusted",
        ("run", "--runtime", f"{F}/open/{SHIM}", "--rootfs", R, "x", "--", "true"),
        {},
    ),
    ("runtime info bare word", ("runtime", "info", "runc"), {}),
    ("runc relative", ("run", "--runc-binary", "./runc", "--rootfs", R, "x", "--", "t"), {}),
    (
        "runc untrusted",
        ("run", "--runc-binary", f"{F}/open/{SHIM}", "--rootfs", R, "x", "--", "true"),
        {},
    ),
    # signals
    ("signal name", ("tasks", "kill", "--signal", "SIGBOGUS", "x"), {}),
    ("signal number", ("tasks", "kill", "--signal", "99999", "x"), {}),
    ("signal negative", ("tasks", "kill", "--signal", "-9", "x"), {}),
    ("signal empty", ("tasks", "kill", "--signal", "", "x"), {}),
    # env
    ("env no equals", (*RUN, "--env", "NOEQUALS", "x", "--", "true"), {}),
    ("env empty key", (*RUN, "--env", "=v", "x", "--", "true"), {}),
    # paths
    ("root empty", ("--root", "", "tasks", "ls"), {}),
    ("state empty", ("--state", "", "tasks", "ls"), {}),
    ("rootfs missing", ("run", "--rootfs", f"{F}/nope", "x", "--", "true"), {}),
    ("rootfs a file", ("run", "--rootfs", f"{F}/latin1.json", "x", "--", "true"), {}),
    ("cwd relative", (*RUN, "--cwd", "rel", "x", "--", "true"), {}),
]


def test_the_catalogue_has_at_least_50_inputs() -> None:
    assert len(CATALOGUE) >= 50


@pytest.mark.parametrize(("what", "argv", "env"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_a_hostile_input_is_one_line_and_changes_nothing(
    ground: Ground, what: str, argv: tuple[str, ...], env: dict[str, str]
) -> None:
    fill = {"rootfs": str(ground.rootfs), "files": str(ground.files)}
    args = [a.format(**fill) if "{" in a and "$" not in a else a for a in argv]
    env = {k: v.format(**fill) for k, v in env.items()}
    tp = ground.taskplane
    before = _listing(tp.root, tp.state)
    result = tp(*args, env=env, timeout=30)
    after = _listing(tp.root, tp.state)
    assert result.returncode != 0, (what, result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, (what, result.stderr)
    # "taskplane: ..." or, for a usage error, "taskplane run: ..." (exit code 2).
    assert re.match(r"taskplane( [a-z]+)*: ", lines[0]), (what, lines[0])
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr, lines[0]
    assert after == before, what
