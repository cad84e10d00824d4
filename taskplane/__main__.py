"""``python -m taskplane`` and the ``taskplane`` console script.

The command's process ends as soon as the command is done: its output is flushed and the
process exits with the command's code without the interpreter's teardown (freeing every module
and object one by one, a third of what ``taskplane tasks ls`` costs). Nothing is lost by it: the
command has closed its host (plugins, shims' connections, the metadata store) before it returns,
and the kernel frees the rest. Under a profiler or coverage (``python -m cProfile -m taskplane``)
the process exits as usual, so they write their reports. An embedder calls
:func:`taskplane.cli.main`, which returns. The command runs without the cycle collector until
it boots (:mod:`taskplane.collector`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from taskplane import collector

collector.hold()  # until the command boots, if it does (taskplane.collector)

from taskplane.cli import EXIT_BROKEN_PIPE  # noqa: E402
from taskplane.cli import main as run_command  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``taskplane`` command (``argv``, default ``sys.argv[1:]``) and exit with its
    code."""
    code = run_command(argv)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage writes its report at the interpreter's exit
    logging = sys.modules.get("logging")  # not imported by a command that logged nothing
    if logging is not None:
        logging.shutdown()  # flushes the handlers, as the interpreter's exit would
    os._exit(_flushed(code))


def _flushed(code: int) -> int:
    """Flush stdout and stderr; the exit code (:data:`EXIT_BROKEN_PIPE` when the reader of
    stdout went away before the last of it was written, as ``taskplane ... | head`` does)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except BrokenPipeError:
            if stream is sys.stdout:
                code = EXIT_BROKEN_PIPE
        except (OSError, ValueError):  # closed by the caller (``taskplane ... >&-``)
            pass
    return code


if __name__ == "__main__":
    main()
