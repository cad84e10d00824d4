"""Frame writing shared by the client and the server: one write per event-loop turn.

The first frame of a loop turn goes to the transport at once (no added latency for a lone
call); frames queued later in the same turn are joined and written together when the turn ends,
so 64 concurrent calls cost a handful of ``write`` system calls instead of 64.
"""

from __future__ import annotations

import asyncio

__all__ = ["FrameWriter"]


class FrameWriter:
    """Writes encoded frames to ``transport``, batching those queued in one loop turn.

    After :meth:`discard` (the connection is gone) frames are dropped silently.
    """

    __slots__ = ("_discarded", "_flush_scheduled", "_loop", "_out", "_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        self._loop = loop
        self._transport = transport
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._discarded = False

    def write(self, frame: bytes) -> None:
        """Send ``frame`` now, or with the others at the end of this loop turn."""
        if self._discarded:
            return
        if self._flush_scheduled:
            self._out.append(frame)
        else:
            self._transport.write(frame)
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write whatever is queued (also called before closing the transport)."""
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not self._discarded:
            self._transport.write(data)

    def discard(self) -> None:
        """The connection is lost: drop queued frames and every later one."""
        self._discarded = True
        self._out.clear()
