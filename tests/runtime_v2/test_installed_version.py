"""taskplane's version in a 2.3+ shim's BootstrapParams, read without importlib.metadata
(:func:`runtime_v2.binary.installed_version`; not timed)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_v2 import binary


@pytest.mark.parametrize("name", ["taskplane", "attrs", "pluggy", "protobuf"])
def test_the_version_is_the_one_importlib_metadata_finds(name: str) -> None:
    assert binary.installed_version(name) == importlib.metadata.version(name)


def _dist(directory: Path, child: str, version: str) -> None:
    path = directory / child
    path.mkdir(parents=True)
    metadata = "METADATA" if child.endswith(".dist-info") else "PKG-INFO"
    body = f"Metadata-Version: 2.1\nName: demo\nVersion: {version}\n\nVersion: 9.9 (the body)\n"
    (path / metadata).write_text(body)


def test_the_first_path_entry_wins_and_dist_info_before_egg_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _dist(first, "demo.egg-info", "1.0")
    _dist(first, "Demo-2.0.dist-info", "2.0")
    _dist(second, "demo-3.0.dist-info", "3.0")
    listdir = os.listdir
    # egg-info listed first: the dist-info is still preferred, as importlib.metadata does
    monkeypatch.setattr(os, "listdir", lambda p: sorted(listdir(p), key=lambda c: "dist" in c))
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    assert binary.installed_version("demo") == "2.0"
    monkeypatch.setattr(sys, "path", [str(second), str(first)])
    assert binary.installed_version("demo") == "3.0"


def test_an_egg_info_directory_and_nothing_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist(tmp_path, "demo.egg-info", "1.5")
    (tmp_path / "demonic-1.0.dist-info").mkdir()  # another name that starts alike
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert binary.installed_version("demo") == "1.5"
    assert binary.installed_version("other") is None


def test_bootstrap_params_name_our_version_without_importing_importlib_metadata() -> None:
    # importlib.metadata (email, zipfile, csv...) cost every run through a 2.4 shim 14 ms.
    code = (
        "import sys; from runtime_v2 import binary; print(binary._our_version()); "
        "print('importlib.metadata' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    version, imported = result.stdout.split()
    assert version == f"2.4.0+taskplane.{importlib.metadata.version('taskplane')}"
    assert imported == "False"
