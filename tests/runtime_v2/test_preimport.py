"""runtime_v2.preimport.import_meanwhile: modules imported on a worker thread of the loop."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from runtime_v2 import preimport


def test_the_modules_are_imported_on_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tp_meanwhile_probe.py").write_text(
        "import threading\nTHREAD = threading.current_thread()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tp_meanwhile_probe", raising=False)

    async def main() -> None:
        future = preimport.import_meanwhile(["tp_meanwhile_probe", "asyncio"])
        assert future is not None
        await future
        assert preimport.import_meanwhile(["tp_meanwhile_probe", "asyncio"]) is None  # all done

    asyncio.run(main())
    assert sys.modules["tp_meanwhile_probe"].THREAD is not threading.main_thread()


def test_a_failing_import_is_left_to_the_importer() -> None:
    async def main() -> None:
        future = preimport.import_meanwhile(["tp_no_such_module_anywhere"])
        assert future is not None
        with pytest.raises(ModuleNotFoundError):
            await future

    asyncio.run(main())


def test_without_an_executor_nothing_is_imported_in_the_background() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().shutdown_default_executor()
        assert preimport.import_meanwhile(["tp_never_imported_module"]) is None
        assert "tp_never_imported_module" not in sys.modules

    asyncio.run(main())
