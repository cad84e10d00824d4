"""The ttrpc ``Events.Forward`` server at the TTRPC_ADDRESS shims are given.

containerd serves ``containerd.services.events.ttrpc.v1.Events`` from its events service plugin
(``plugins/services/events/service.go``) on its ttrpc socket; shims publish their task events to
it (``pkg/shim/publisher.go``) and every forwarded envelope goes into the event exchange.

taskplane has no daemon: several processes may use one state dir, and only one can serve the
address. :class:`EventsServer` serialises the live-or-stale check and the bind among them with
a ``flock`` on ``<address>.lock`` (waited for in a thread, so a peer holding it never stalls this
process's event loop); a process that finds the address served by a live peer does not serve it
(shims' events then reach that peer) but holds a connection to the peer and takes the address
over when the peer goes away. A stale socket file is replaced. The socket file stays after the
server closes: a shim publishing then gets ECONNREFUSED and gives up at once, where a missing
file makes the Go publisher retry on ENOENT for 5 s per event (and delays its exit after
Shutdown by as much).

It is a module the shim manager owns, not a plugin of its own: a daemonless process serves the
address only while its shim manager may have shims, and the address is the shim manager's
``ttrpc_address`` property.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from google.protobuf import empty_pb2

from plugins import securefs
from registry.log import get_logger
from runtime_v2 import errdefs, ttrpc
from runtime_v2.api import (
    events_pb2,  # noqa: F401 - registers the task events shims forward, so they arrive decoded
    events_service_pb2,
)
from runtime_v2.shim_socket import check_sun_path

if TYPE_CHECKING:
    from runtime_v2.api.event_pb2 import Envelope

__all__ = ["EventsServer", "Forwarder"]

log = get_logger(__name__)

#: What the server hands every forwarded envelope to (the exchange's ``forward``).
Forwarder = Callable[["Envelope"], Awaitable[object]]

_EVENTS_SERVICE = events_service_pb2.DESCRIPTOR.services_by_name["Events"]
#: How many times in a row an owner that vanished before we could watch it is retried.
_TAKEOVER_RETRIES = 3


def _close_after(fd: int, locking: asyncio.Future[None]) -> None:
    """Close ``fd`` once the flock on it is done, whatever became of it."""
    if not locking.cancelled():
        locking.exception()  # retrieved: a lock not taken is nothing to report here
    os.close(fd)


class EventsServer:
    """Serves ``Events.Forward`` at ``address`` unless a live peer does (see the module
    docstring). ``forward`` receives each envelope; ``timeout`` bounds the probe of a peer."""

    def __init__(self, address: str, forward: Forwarder, *, timeout: float) -> None:
        check_sun_path(address, "ttrpc address")
        self.address = address
        self._forward_to = forward
        self._timeout = timeout
        self._server: ttrpc.Server | None = None
        self._owner: ttrpc.Client | None = None
        self._takeover: asyncio.Future[None] | None = None
        self._takeover_attempts = 0
        self._closing = False
        #: Set while this process serves the address.
        self.served = asyncio.Event()

    @property
    def serving(self) -> bool:
        """Whether this process serves the address (False when a live peer does)."""
        return self._server is not None

    async def start(self) -> None:
        """Serve the address, or watch the live peer that does and take over when it goes."""
        lock_fd = securefs.open_file(self.address + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        locking = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(locking)
        except asyncio.CancelledError:
            # The thread may not have called flock yet: the file is closed (and its lock, if
            # it got one, given up with it) once it has, never under it (its number reused).
            locking.add_done_callback(functools.partial(_close_after, lock_fd))
            raise
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            if self._closing:
                return
            server = ttrpc.Server()
            server.register(_EVENTS_SERVICE, {"Forward": errdefs.grpc_handler(self._forward)})
            try:
                # serve() replaces a stale socket file and refuses a live one.
                await server.serve(self.address, keep_socket_file=True)
            except ttrpc.StatusError as exc:
                if exc.code != ttrpc.Code.ALREADY_EXISTS:
                    raise errdefs.from_grpc(exc) from exc
                log.debug("events address %s is served by another taskplane process", self.address)
                await self._watch_owner()
                return
            self._server = server
            self.served.set()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    async def _watch_owner(self) -> None:
        try:
            client: ttrpc.Client | None = await ttrpc.Client.connect(
                self.address, timeout=self._timeout
            )
        except (ttrpc.StatusError, OSError):
            client = None  # the owner just went away: try again right now
        if client is None:
            self._takeover_attempts += 1
            if self._takeover_attempts <= _TAKEOVER_RETRIES:
                self._takeover = asyncio.ensure_future(self.start())
            return
        # One round trip: the owner has accepted us (and is a live ttrpc server).
        try:
            await client.call(
                "taskplane.Liveness",
                "Probe",
                empty_pb2.Empty(),
                empty_pb2.Empty,
                timeout=self._timeout,
            )
        except ttrpc.StatusError as exc:
            if exc.code != ttrpc.Code.UNIMPLEMENTED:  # what a live server answers
                log.warning(
                    "the process serving %s does not answer (%s); not watching it",
                    self.address,
                    exc,
                )
                await client.close()
                return
        self._takeover_attempts = 0
        self._owner = client

        def owner_gone() -> None:
            if not self._closing:
                log.debug("the process serving %s went away; taking over", self.address)
                self._takeover = asyncio.ensure_future(self.start())

        client.on_close(owner_gone)

    async def _forward(
        self, request: events_service_pb2.ForwardRequest, ctx: object
    ) -> empty_pb2.Empty:
        await self._forward_to(request.envelope)
        return empty_pb2.Empty()

    async def stop_watching(self) -> None:
        """Stop watching the peer that serves the address (no takeover from now on); serving,
        if this process does, goes on until :meth:`aclose`."""
        self._closing = True
        if self._takeover is not None:
            self._takeover.cancel()
            with contextlib.suppress(BaseException):
                await self._takeover
        if self._owner is not None:
            with contextlib.suppress(Exception):
                await self._owner.close()

    async def aclose(self) -> None:
        """Stop serving (and watching); the socket file stays."""
        await self.stop_watching()
        if self._server is not None:
            server, self._server = self._server, None
            self.served.clear()
            with contextlib.suppress(Exception):
                await server.close()
