"""Fixtures shared by the runtime_v2 unit tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def base() -> Iterator[Path]:
    """A fresh directory under /tmp, short enough for the unix sockets made inside it."""
    path = Path(tempfile.mkdtemp(prefix="tpr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
