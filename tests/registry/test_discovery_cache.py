"""The entry point cache: a real distribution installed and removed is seen by the very next
command; a cache that is corrupt, foreign or writable by others is never believed."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from registry import _discovery_cache as cache
from registry.hookspecs import ENTRY_POINT_GROUP
from tests.packages import pip_install_target

REPO = Path(__file__).resolve().parents[2]
PROBE_URI = "io.example.cacheprobe.v1.probe"

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tp-cache-probe"
version = "0.1"

[project.entry-points."taskplane.plugins"]
probe = "tp_cache_probe"

[tool.setuptools]
py-modules = ["tp_cache_probe"]
"""

MODULE = """
from registry import Registration, hookimpl


@hookimpl
def taskplane_registrations():
    return [Registration("io.example.cacheprobe.v1", "probe", init=lambda ic: "probe")]
"""


def pip_install(source: Path, target: Path) -> None:
    """A real distribution, dist-info and all."""
    result = pip_install_target(source, target)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def probe_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("probe-src") / "tp_cache_probe"
    source.mkdir()
    (source / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (source / "tp_cache_probe.py").write_text(textwrap.dedent(MODULE))
    return source


@pytest.fixture(scope="module")
def probe_installed(probe_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe pip-installed once; tests copy what pip wrote (a real dist-info)."""
    target = tmp_path_factory.mktemp("probe-installed")
    pip_install(probe_source, target)
    return target


def install_copy(installed: Path, target: Path) -> None:
    for item in installed.iterdir():
        if item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target / item.name)


class Runner:
    """Runs ``python -m taskplane`` (or ``python -c``) with ``target`` on the path and a
    private cache home."""

    def __init__(self, tmp_path: Path, cache_home: Path) -> None:
        self.target = tmp_path / "site"
        self.target.mkdir()
        self.root, self.state = tmp_path / "r", tmp_path / "s"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.target), str(REPO)]),
            "XDG_CACHE_HOME": str(cache_home),
        }
        self.env.pop("TASKPLANE_DISABLE_PLUGIN_AUTOLOAD", None)
        self.env.pop("TASKPLANE_CONFIG", None)

    def plugin_uris(self) -> list[str]:
        """``taskplane plugins ls --json``: the URIs; the command must succeed quietly."""
        result = subprocess.run(
            [
                *(sys.executable, "-m", "taskplane", "--root", str(self.root)),
                *("--state", str(self.state), "plugins", "ls", "--json"),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return [record["uri"] for record in json.loads(result.stdout)]

    def python(self, code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def runner(tmp_path: Path, private_cache_home: Path) -> Runner:
    return Runner(tmp_path, private_cache_home)


def cache_file(runner: Runner) -> Path:
    files = list((Path(runner.env["XDG_CACHE_HOME"]) / "taskplane").glob("entry-points-*.txt"))
    assert len(files) == 1, files
    return files[0]


def test_installing_and_removing_a_plugin_package_is_seen_by_the_very_next_command(
    runner: Runner, probe_source: Path, probe_installed: Path
) -> None:
    assert PROBE_URI not in runner.plugin_uris()  # caches "no probe"
    pip_install(probe_source, runner.target)
    assert PROBE_URI in runner.plugin_uris()
    assert PROBE_URI in runner.plugin_uris()  # now from the cache
    shutil.rmtree(runner.target / "tp_cache_probe-0.1.dist-info")
    (runner.target / "tp_cache_probe.py").unlink()
    assert PROBE_URI not in runner.plugin_uris()
    install_copy(probe_installed, runner.target)
    assert PROBE_URI in runner.plugin_uris()


_PROBE = (
    "import sys\n"
    "from registry.discovery import entry_points\n"
    "print([ep.name for ep in entry_points()], 'importlib.metadata' in sys.modules)\n"
)


def test_an_unchanged_environment_is_answered_from_the_cache_without_importlib_metadata(
    runner: Runner, probe_installed: Path
) -> None:
    install_copy(probe_installed, runner.target)
    assert runner.python(_PROBE) == "['probe'] True\n"  # scanned, cached
    assert runner.python(_PROBE) == "['probe'] False\n"  # from the cache
    assert oct(cache_file(runner).stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_cache_is_rebuilt_without_a_traceback(
    runner: Runner, probe_installed: Path
) -> None:
    install_copy(probe_installed, runner.target)
    runner.plugin_uris()
    path = cache_file(runner)
    path.write_text('{"version": 2, "key": ')
    assert PROBE_URI in runner.plugin_uris()
    assert ast.literal_eval(path.read_text())["entry_points"] == [
        ["tp-cache-probe", "probe", "tp_cache_probe"]
    ]


@pytest.mark.parametrize(
    "text",
    [
        b"__import__('os').system('touch MARKER')",  # code, not a literal: never run
        b"[" * 100_000 + b"]" * 100_000,  # too deep for the parser
        b"{'version': 2, 'key': '\xff'}",  # not UTF-8
    ],
    ids=["code", "deep", "not-utf-8"],
)
def test_a_cache_that_is_no_literal_is_rebuilt_and_never_run(
    runner: Runner, probe_installed: Path, tmp_path: Path, text: bytes
) -> None:
    install_copy(probe_installed, runner.target)
    runner.plugin_uris()
    path = cache_file(runner)
    marker = tmp_path / "ran"
    path.write_bytes(text.replace(b"MARKER", bytes(marker)))
    assert PROBE_URI in runner.plugin_uris()
    assert not marker.exists()
    assert ast.literal_eval(path.read_text())["version"] == cache.CACHE_VERSION


def _plant(path: Path) -> None:
    """Keep the file's key but make it name a module of someone else's choosing."""
    data = ast.literal_eval(path.read_text())
    data["entry_points"] = [["evil", "evil", "os"]]
    path.write_text(repr(data))


@pytest.mark.parametrize("how", ["foreign owner", "writable by others"])
def test_a_cache_that_others_could_have_written_is_not_believed(
    runner: Runner, probe_installed: Path, how: str
) -> None:
    if os.geteuid() != 0 and how == "foreign owner":
        pytest.skip("giving a file away takes root")
    install_copy(probe_installed, runner.target)
    assert runner.python(_PROBE) == "['probe'] True\n"
    path = cache_file(runner)
    _plant(path)
    if how == "foreign owner":
        os.chown(path, 65534, 65534)
    else:
        path.chmod(0o666)
    assert runner.python(_PROBE) == "['probe'] True\n"  # scanned again, plant ignored
    assert runner.python(_PROBE) == "['probe'] False\n"  # and the cache rewritten


def test_a_cache_directory_that_is_not_private_is_not_used(
    runner: Runner, probe_installed: Path
) -> None:
    directory = Path(runner.env["XDG_CACHE_HOME"]) / "taskplane"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    install_copy(probe_installed, runner.target)
    assert runner.python(_PROBE) == "['probe'] True\n"
    assert runner.python(_PROBE) == "['probe'] True\n"  # every run scans
    assert list(directory.iterdir()) == []


def test_the_fingerprint_changes_when_a_distribution_appears_or_its_entry_points_change(
    tmp_path: Path,
) -> None:
    before = cache.fingerprint([str(tmp_path)])
    info = tmp_path / "x-1.0.dist-info"
    info.mkdir()
    with_dist = cache.fingerprint([str(tmp_path)])
    (info / "entry_points.txt").write_text("[taskplane.plugins]\nx = x\n")
    with_entry_points = cache.fingerprint([str(tmp_path)])
    (info / "entry_points.txt").write_text("[taskplane.plugins]\nx = x:y\n")  # in place
    rewritten = cache.fingerprint([str(tmp_path)])
    (tmp_path / "unrelated.txt").write_text("not metadata")
    assert len({before, with_dist, with_entry_points, rewritten}) == 4
    assert cache.fingerprint([str(tmp_path)]) == rewritten


def test_a_layout_of_the_path_has_a_cache_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout whose ``*.egg-info`` is on the path (``python -m taskplane`` run from it)
    and the console script elsewhere keep two files, so alternating does not rescan each time;
    installing a package keeps the file (and changes the key in it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site, checkout, plain = tmp_path / "site", tmp_path / "checkout", tmp_path / "plain"
    (site / "x-1.0.dist-info").mkdir(parents=True)
    (checkout / "taskplane.egg-info").mkdir(parents=True)
    plain.mkdir()

    def file_of(*paths: Path) -> str | None:
        return cache.cache_path(cache._fingerprint([str(p) for p in paths])[1])

    alone = file_of(site)
    assert alone is not None and alone.startswith(str(tmp_path / "cache" / "taskplane"))
    assert file_of(plain, site) == alone
    assert file_of(checkout, site) != alone
    key = cache.fingerprint([str(site)])
    (site / "y-1.0.dist-info").mkdir()  # an install
    assert file_of(site) == alone
    assert cache.fingerprint([str(site)]) != key


def test_the_fingerprint_ignores_path_entries_without_distributions(tmp_path: Path) -> None:
    # python -m taskplane puts the current directory first on sys.path: from one directory to
    # the next the entry points are the same, and so is the key.
    site, cwd, other = tmp_path / "site", tmp_path / "cwd", tmp_path / "other"
    for directory in (site, cwd, other):
        directory.mkdir()
    (site / "x-1.0.dist-info").mkdir()
    key = cache.fingerprint([str(site)])
    assert cache.fingerprint([str(cwd), str(site)]) == key
    assert cache.fingerprint([str(other), str(site), str(tmp_path / "missing")]) == key
    (cwd / "y-1.0.dist-info").mkdir()  # ...until one holds a distribution
    assert cache.fingerprint([str(cwd), str(site)]) != key


def test_the_fingerprint_changes_when_a_zip_file_on_the_path_changes(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK one")
    before = cache.fingerprint([str(archive)])
    archive.write_bytes(b"PK two, longer")
    assert cache.fingerprint([str(archive)]) != before


def test_a_cached_entry_point_loads_its_module_or_attribute() -> None:
    assert (
        cache.PluginEntryPoint("d", "n", "registry.hookspecs").load()
        is sys.modules["registry.hookspecs"]
    )
    loaded = cache.PluginEntryPoint("d", "n", "registry.hookspecs:hookimpl [extra]").load()
    assert loaded is sys.modules["registry.hookspecs"].hookimpl
    with pytest.raises(ValueError, match="is not 'module' or 'module:attr'"):
        cache.PluginEntryPoint("d", "n", "not a module").load()
    assert ENTRY_POINT_GROUP == "taskplane.plugins"
