"""The command line's log on stderr: ``taskplane: LEVEL logger: message``, one line per record.

:func:`configure` sets it up (a handler on the root logger, as :func:`logging.basicConfig`
does). :func:`taskplane.cli.main` imports this module only when something logs: unless
logging is in use already or ``--log-level``/``--debug`` asks for it, it defers the setup to
the first use of a project logger (``registry.log.on_first_use``), and whatever is about to
run code that logs through :mod:`logging` itself (the boot, which imports asyncio; a
third-party plugin's import) runs it first (``registry.log.first_use``). So a command that
logs nothing (``taskplane config validate``, ``--help``) never imports :mod:`logging`, and
every record of every other command reads as before.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["OneLineFormatter", "configure"]


class OneLineFormatter(logging.Formatter):
    """``taskplane: LEVEL logger: message``, one line per record.

    A logged exception adds its type and message to the line; its traceback is printed only
    with ``--debug``, so the stderr of a command that succeeds carries no tracebacks (a benign
    race logged by a library is one line, not thirty).
    """

    def __init__(self, *, debug: bool = False) -> None:
        super().__init__("taskplane: %(levelname)s %(name)s: %(message)s")
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        if self.debug or not (record.exc_info or record.stack_info):
            return super().format(record)
        exc = record.exc_info[1] if record.exc_info else None
        line = logging.LogRecord(
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            record.getMessage(),
            None,
            None,
        )
        line.levelname = record.levelname
        text = super().format(line)
        if exc is not None:
            detail = " ".join(str(exc).split())
            text += f" ({type(exc).__name__}{': ' + detail if detail else ''})"
        return text


def configure(level: str, *, debug: bool) -> None:
    """Log records of ``level`` (a name: ``"error"``) and above to stderr, one line each (with
    tracebacks when ``debug``); like :func:`logging.basicConfig`, a no-op when the root logger
    has a handler already (an embedder's)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(debug=debug))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
