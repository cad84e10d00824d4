"""The shim plugin (``io.containerd.shim.v1.manager``): starts shims and owns their connections.

containerd's ``shim_manager.go``. The :class:`ShimManager` resolves a runtime name to a shim
binary, starts it in a task's bundle, connects to it over ttrpc (speaking the task API version
the shim announced first), keeps every connected shim in an :class:`~runtime_v2.nsmap.NSMap`, and
cleans up after shims that die. Around it, one job per module: the ``Events.Forward`` server shims
publish to (:mod:`runtime_v2.events_server`), where shim sockets go
(:mod:`runtime_v2.shim_socket`), the ``-info`` cache (:mod:`runtime_v2.shim_info`) and the
cleanup steps shared with recovery and teardown (:mod:`runtime_v2.shim_cleanup`).

This module is long because :class:`ShimManager` is containerd's ``ShimManager`` whole: starting a
shim (with start-protocol negotiation and sandbox joins), aborting one, and the dead-shim cleanup
all read and change one map of connected shims under the same timeouts, and the list of
deliberate differences from containerd below belongs next to that code.

When a shim's connection drops without an orderly delete, the manager runs containerd's
dead-shim cleanup: the shim binary's ``delete`` command, the bundle's removal, and -- if the task
was still registered -- ``/tasks/exit`` and ``/tasks/delete`` events (exit status 255, pid 0 when
``delete`` fails). Differences from containerd, on purpose:

- The bundle and the shim's stale socket are removed even when the ``delete`` command fails.
- After an orderly delete (Delete RPC succeeded, shim shut down) the ``delete`` command is not
  run again: there is nothing left to reap, and it costs a process spawn per task.
- Closing the manager (``Host.aclose``) closes the connections and leaves shims running; no
  cleanup runs, so a later process can reattach (restart recovery).
- A failed or cancelled start leaves no shim behind: a daemon we never connected to is found
  through the bundle's ``bootstrap.json``/``address`` (or the socket path a runc-style shim
  uses), asked to shut down and reaped; one that will not exit is killed.
- Several taskplane processes may use the same state directory. Only one can serve the events
  address; a process that finds it served by a live peer does not serve it (shims' events then
  reach that peer) but takes it over when the peer goes away; a stale socket file is replaced.
  A process booted under :func:`~runtime_v2.shim_config.events_on_demand` (a ``taskplane``
  command) serves or watches only from the first shim it starts or acts on; reattaching a
  shim and asking its ``State`` (a listing) does neither (see
  :meth:`ShimManager.start_events_server`).
  A connection that drops because another process deleted the task (the bundle is gone or
  marked ``.deleting``) is forgotten quietly.
- ``delete`` gets the task's effective runtime options on stdin, like ``start`` and ``-info``.
- Grouped shims (tasks whose specs carry the same ``io.kubernetes.cri.sandbox-id`` or
  ``io.containerd.runc.v2.group``; the runc shim's ``start`` answers with the group's live
  socket): each task has its own connection; a task's delete or failed create leaves the shim
  and its socket to the other tasks (the shim ignores Shutdown while it has tasks), and when
  it dies every task of it gets the dead-shim cleanup.
- Sandboxed tasks (``CreateOpts.sandbox_id``, :meth:`ShimManager.join_sandbox`): the sandbox
  is found by its bundle's ``bootstrap.json`` on disk, so a sandbox created by a peer process
  works too; containerd looks only in its own map. NotFound (not Unknown) names a missing
  sandbox. taskplane has no sandbox controller to stop the sandbox's shim, so a sandboxed
  task deleted after its sandbox task asks the shim to shut down like any task (the shim
  stays while it has tasks); containerd never does.
- A Delete the shim answers NotFound publishes ``/tasks/exit`` and ``/tasks/delete`` with
  status 255 from the deleting process (:meth:`ShimManager.publish_task_gone`), under the
  task's lock; containerd leaves it to the dead-shim cleanup of the closing connection.
- ``-info`` results are cached by (binary path, its mtime, options, the runc binary the
  options name and its mtime), failures included, for
  :data:`INFO_CACHE_TTL` seconds; concurrent misses share one run.
- ``start`` negotiates the start protocol per shim binary (:mod:`runtime_v2.start_protocol`):
  the options Any on stdin first, containerd 2.3's ``BootstrapParams`` when the shim refuses
  that; the answer is remembered per (binary path, mtime). containerd 2.4 decides by the
  binary's name instead. ``bootstrap_runtimes`` forces ``BootstrapParams`` (no negotiation).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import registry
from plugins import types
from plugins.containerd_config import TIMEOUT_SHIM_CLEANUP, TIMEOUT_SHIM_SHUTDOWN
from registry.log import get_logger
from runtime_v2 import errdefs
from runtime_v2.locks import task_lock
from runtime_v2.nsmap import NSMap
from runtime_v2.shim_config import (
    ShimConfig,
    check_bootstrap_runtimes,
    check_env,
    events_served_on_demand,
)
from runtime_v2.shim_socket import (
    DEFAULT_SOCKET_DIR,
    check_socket_dir,
    check_sun_path,
    default_socket_dir,
    expected_addresses,
    group_of,
    remove_stale_socket,
    socket_path_of,
)

if TYPE_CHECKING:
    from google.protobuf import any_pb2

    from plugins.events import Exchange, ForwardedEnvelope
    from plugins.metadata import ContainerStore
    from runtime_v2 import ttrpc
    from runtime_v2.api import introspection_pb2
    from runtime_v2.binary import ShimBinary
    from runtime_v2.bundle import Bundle
    from runtime_v2.events_server import EventsServer
    from runtime_v2.runtime import Exit
    from runtime_v2.runtime_path import RuntimePathResolver
    from runtime_v2.shim import Shim, ShimTask
    from runtime_v2.shim_info import InfoCache
    from runtime_v2.start_protocol import BinaryProtocol, StartProtocol, StartProtocols
    from runtime_v2.start_response import ShimEndpoint

__all__ = [
    "DEFAULT_SOCKET_DIR",
    "QUERIES",
    "SHIM_EXIT_TIMEOUT",
    "ShimManager",
    "init",
]

log = get_logger(__name__)

#: How long a shim may take to exit after Shutdown before it is killed.
SHIM_EXIT_TIMEOUT = 2.0
#: The task API calls that change nothing in a shim, so it publishes no event for them: the
#: only calls on a watched shim that do not serve the events address first
#: (:meth:`ShimManager.start_events_server` says why). ``Wait`` is not one: whoever waits for
#: a task's exit wants its ``/tasks/exit`` to reach a taskplane process too.
QUERIES = frozenset({"State", "Connect", "Pids", "Stats"})


def _retrieve(task: asyncio.Task[None]) -> None:
    """A done callback: take a failed task's exception, logging it (whoever awaited the task
    may have stopped waiting, and asyncio would log it again as never retrieved)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("serving the shims' events address failed: %s", exc)


def _peer_pid(client: ttrpc.Client) -> int:
    """The pid at the other end of a ttrpc connection (SO_PEERCRED), or 0."""
    peer = client.peer_credentials()
    return peer.pid if peer is not None else 0


class ShimManager:
    """Starts shims, keeps their connections, and cleans up after dead ones.

    Built by the plugin's init from :class:`ShimConfig`; tests may construct it directly.
    ``exchange`` is the event exchange, ``containers`` the metadata container store (or None),
    ``grpc_address`` the daemon identity shims hash into their socket path and ``ttrpc_address``
    where the events service listens (shims get it as ``TTRPC_ADDRESS``).
    """

    def __init__(
        self,
        *,
        exchange: Exchange,
        containers: ContainerStore | None = None,
        grpc_address: str,
        ttrpc_address: str,
        socket_dir: str = "",
        env: Sequence[str] = (),
        bootstrap_runtimes: Sequence[str] = (),
        state_dir: str | None = None,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.exchange = exchange
        #: The config's ``[timeouts]`` (key -> seconds): see :meth:`timeout`.
        self.timeouts: Mapping[str, float] = dict(timeouts or {})
        self.containers = containers
        self.grpc_address = grpc_address
        self.ttrpc_address = ttrpc_address
        self.socket_dir = socket_dir or default_socket_dir()
        self.env = list(env)
        #: Runtime names / absolute shim paths started with protobuf BootstrapParams on stdin.
        self.bootstrap_runtimes = frozenset(bootstrap_runtimes)
        self._state_dir = state_dir
        self.shims: NSMap[Shim] = NSMap()
        # Built on first use, with their modules: a process that lists no task needs neither.
        self._start_protocols: StartProtocols | None = None
        self._resolver: RuntimePathResolver | None = None
        self._info: InfoCache | None = None
        check_sun_path(ttrpc_address, "ttrpc address")
        self._events: EventsServer | None = None
        self._events_started = False
        self._events_starting: asyncio.Lock | None = None
        #: The start a shim call's hook made (:meth:`_before_call`).
        self._events_task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def start_protocols(self) -> StartProtocols:
        """The negotiated start protocol per shim binary (kept in the state dir when given)."""
        if self._start_protocols is None:
            from runtime_v2.start_protocol import StartProtocols

            self._start_protocols = StartProtocols(self._state_dir)
        return self._start_protocols

    def timeout(self, key: str, default: float) -> float:
        """The config's ``[timeouts]`` *key* in seconds, or *default* when it is not set."""
        return self.timeouts.get(key, default)

    @property
    def cleanup_timeout(self) -> float:
        """How long a shim's cleanup (its ``delete``, a Shutdown) may take: the config's, else
        :data:`~runtime_v2.shim_cleanup.CLEANUP_TIMEOUT`. (The cleanup steps' module is
        imported when a shim needs one: a listing of no task needs none.)"""
        from runtime_v2.shim_cleanup import CLEANUP_TIMEOUT

        return self.timeout(TIMEOUT_SHIM_CLEANUP, CLEANUP_TIMEOUT)

    @property
    def shutdown_timeout(self) -> float:
        """How long a shim's Shutdown may take (the config's, else the shim's default)."""
        from runtime_v2.shim import SHUTDOWN_TIMEOUT

        return self.timeout(TIMEOUT_SHIM_SHUTDOWN, SHUTDOWN_TIMEOUT)

    # -- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``io.containerd.shim.v1.manager``."""
        return f"{types.SHIM_PLUGIN}.manager"

    @property
    def events(self) -> EventsServer:
        """The ``Events.Forward`` server shims publish to (:mod:`runtime_v2.events_server`),
        built (and its ttrpc server and protobuf modules imported) on first use; it serves
        from :meth:`start_events_server` on."""
        if self._events is None:
            from runtime_v2.events_server import EventsServer

            self._events = EventsServer(
                self.ttrpc_address, self._forward, timeout=self.cleanup_timeout
            )
        return self._events

    @property
    def serves_events(self) -> bool:
        """Whether this process serves the events address (False when a live peer does, or
        before :meth:`start_events_server`)."""
        return self._events is not None and self._events.serving

    @property
    def events_served(self) -> asyncio.Event:
        """Set while this process serves the events address."""
        return self.events.served

    @property
    def events_started(self) -> bool:
        """Whether :meth:`start_events_server` ran: this process serves the events address or
        watches the live peer that does."""
        return self._events_started

    async def start_events_server(self) -> None:
        """Serve ``Events.Forward`` at :attr:`ttrpc_address` unless a live peer already does
        (:class:`~runtime_v2.events_server.EventsServer`); a peer's address is taken over when
        it goes away, so shims' events always have a taskplane process to reach. Idempotent.

        The plugin's init calls it, unless the process was booted under
        :func:`~runtime_v2.shim_config.events_on_demand` (a ``taskplane`` command): then it
        runs while the first shim's ``start`` command runs (:meth:`start`: a shim publishes
        nothing before its Create), before a task joins a sandbox's shim (:meth:`join_sandbox`)
        and before the first call that acts on a shim it did not start: every call on a watched
        shim but the :data:`QUERIES` (``Kill``, ``Start``, ``Exec``, ``Wait``, ``Delete``,
        ``Shutdown``, ...) awaits it first (:meth:`watch` hooks it into :meth:`Shim.call
        <runtime_v2.shim.Shim.call>`), so it holds by construction, wherever the shim came
        from: a lookup, a listing's ``entries()`` an embedder acts on afterwards, restart
        recovery. Reattaching a shim and asking it for its ``State`` (all ``tasks ls`` does)
        neither serves nor watches: a listing causes no event.

        Deferring is safe with peers killed at any instant:

        - A process that acts on no shim has no events of its own to receive: a query makes
          the shim publish nothing. What its shims publish on their own meanwhile (a task
          exiting by itself) reaches whichever peer serves the address, as it does when this
          process is not running at all; with no such peer, a listing that served would have
          caught it only by chance (within the few milliseconds it runs, or while the shim
          was still retrying the forward), never reliably.
        - Before a call that makes a shim publish, this process serves (or watches the live
          peer that does, and takes over when it goes), exactly as when it started the shim.
        - A peer that takes over after the server dies is one that acts on shims or a
          long-lived one (an embedder, ``taskplane events``: they serve or watch from boot,
          the default); if no such peer is left, the shims' events went nowhere before too.
        - A process that never serves creates nothing for the events address (no socket, no
          lock file) and holds no lock on it: killed at any instant, it leaves nothing of it.
          Its shims' deaths are still published: the dead-shim cleanup publishes into the
          exchange (and its journal) directly, without the server.
        """
        if self._events_started:
            return
        if self._events_starting is None:
            self._events_starting = asyncio.Lock()
        async with self._events_starting:
            if not self._events_started and not self._closing:
                await self.events.start()
                self._events_started = True

    async def _before_call(self, method: str) -> None:
        """:meth:`Shim.call <runtime_v2.shim.Shim.call>`'s hook on a watched shim: serve the
        events address before a call that is not one of the :data:`QUERIES`.

        Usually a no-op: ``TaskManager.load_task`` serves before anyone acts on a task. When it
        is not, the start runs as a task of its own, in a context of its own (no caller's ttrpc
        deadline is sent with its probe) and shielded: a caller whose deadline runs out meanwhile
        gets its timeout, but the start is not cut off half-way (with the address's lock file
        open in a thread, or a connection to the serving peer made)."""
        if self._events_started or method in QUERIES:
            return
        task = self._events_task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._events_task = asyncio.get_running_loop().create_task(
                self.start_events_server(), context=contextvars.Context()
            )
            task.add_done_callback(_retrieve)  # a caller that timed out is not told: logged
        await asyncio.shield(task)

    async def _forward(self, envelope: ForwardedEnvelope) -> None:
        await self.exchange.forward(envelope)

    # -- runtime resolution and -info -----------------------------------------------------------

    def resolve_runtime_path(self, runtime: str) -> str:
        """Resolve a runtime name (``io.containerd.runc.v2``) or absolute path to a shim binary;
        errors say ``failed to resolve runtime path:`` first, as containerd's do."""
        if self._resolver is None:
            from runtime_v2.runtime_path import RuntimePathResolver

            self._resolver = RuntimePathResolver()
        try:
            return self._resolver.resolve(runtime)
        except errdefs.ContainerdError as exc:
            raise errdefs.wrap(exc, "failed to resolve runtime path") from None

    def binary(self, runtime_path: str, bundle: Bundle) -> ShimBinary:
        """The shim binary ``runtime_path`` bound to ``bundle`` (with this manager's addresses,
        socket dir and env). Its ``delete`` is run through
        :func:`~runtime_v2.shim_cleanup.run_delete`, which hands it the task's effective
        options."""
        import logging

        from runtime_v2.binary import ShimBinary
        from runtime_v2.shim_log import SHIM_LOGGER

        return ShimBinary(
            runtime_path,
            bundle=bundle,
            grpc_address=self.grpc_address,
            ttrpc_address=self.ttrpc_address,
            socket_dir=self.socket_dir,
            env=self.env,
            # containerd passes -debug when it logs at debug itself; the shim's lines are
            # logged to taskplane.shim, so that logger's level decides.
            debug=SHIM_LOGGER.isEnabledFor(logging.DEBUG),
        )

    async def runtime_info(
        self, runtime: str, options: any_pb2.Any | None
    ) -> introspection_pb2.RuntimeInfo:
        """Run ``<shim> -info`` with ``options`` on stdin, cached.

        The cache key is (resolved path, the binary's mtime, serialized options, the runc
        binary the options name -- ``binary_name`` or ``runc`` -- and its mtime); results and
        failures are kept for :data:`runtime_v2.shim_info.INFO_CACHE_TTL` seconds. Concurrent
        misses for one key share a single run. A cached failure is raised as a new exception of
        the same class and message each time.
        """
        if self._info is None:
            from runtime_v2.shim_info import InfoCache

            self._info = InfoCache()
        return await self._info.get(self.resolve_runtime_path(runtime), options)

    def uses_bootstrap(self, runtime: str, runtime_path: str) -> bool:
        """Whether ``runtime`` (as named, or its resolved path) is in ``bootstrap_runtimes``."""
        return runtime in self.bootstrap_runtimes or runtime_path in self.bootstrap_runtimes

    # -- starting shims -------------------------------------------------------------------------

    async def start(
        self,
        bundle: Bundle,
        *,
        runtime: str,
        options: any_pb2.Any | None,
        sandbox_id: str = "",
    ) -> ShimTask:
        """Start the shim of ``bundle``'s task with the effective ``options`` and connect to it.

        With ``sandbox_id`` no shim is started: the task runs in the shim of the sandbox task
        (see :meth:`join_sandbox`). On failure -- or cancellation -- nothing of the shim
        remains: a shim daemon that was started is shut down (or killed) and its socket
        removed. The bundle stays for the caller to delete.
        """
        from runtime_v2.runtime_path import binary_name, check_runc_binary
        from runtime_v2.shim_cleanup import write_options, write_shim_pid

        runtime_path = self.resolve_runtime_path(runtime)
        if sandbox_id:
            return await self.join_sandbox(bundle, runtime_path, options, sandbox_id)
        if os.path.basename(runtime_path) == binary_name(types.RUNTIME_RUNC_V2):
            # The runc shim runs runc as root too: the same trust check (runtime_path.py).
            shim_path_env = [e.partition("=")[2] for e in self.env if e.startswith("PATH=")]
            check_runc_binary(options, shim_path_env[-1] if shim_path_env else None)
        binary = self.binary(runtime_path, bundle)
        shim: Shim | None = None
        starting: asyncio.Future[tuple[ShimEndpoint, StartProtocol]] | None = None
        try:
            if options is not None:
                write_options(bundle, options)
            # The events server is started while the shim's `start` command runs (spawned by
            # the task's first step, which sleep(0) lets run): the shim publishes nothing before
            # the Create RPC (its publisher dials the address on its first event, TaskCreate),
            # and the server serves before this method returns, so before any Create is sent.
            starting = asyncio.ensure_future(self._start_binary(binary, runtime, options))
            await asyncio.sleep(0)
            await self.start_events_server()
            endpoint, start_protocol = await starting
            if endpoint.protocol.lower() != "ttrpc":
                raise errdefs.NotImplemented(
                    f"shim of task {bundle.id} answered with protocol {endpoint.protocol!r}; "
                    "only ttrpc is supported"
                )
            shim = await self._connect(bundle, endpoint, binary)
            # Speak the version the shim announced, as containerd does (a shim that announces
            # v3 but does not serve it is still spoken to over v2); bootstrap.json keeps what
            # the shim said.
            await shim.negotiate(version=max(endpoint.version, 2))
            write_shim_pid(bundle, shim.shim_pid)
            self.start_protocols.record(runtime_path, start_protocol, shim.version)
            log.debug(
                "shim %s of %s/%s: start protocol %s, task API v%d",
                runtime_path,
                bundle.namespace,
                bundle.id,
                start_protocol,
                shim.version,
            )
            self.shims.add(bundle.namespace, bundle.id, shim)
        except BaseException:
            if starting is not None:  # e.g. the events server failed while the shim started
                starting.cancel()  # kills the `start` command if it still runs
                with contextlib.suppress(BaseException):
                    await asyncio.shield(starting)  # its outcome retrieved: nothing logged
            if shim is not None:
                await asyncio.shield(self.abort(shim))
            else:
                await asyncio.shield(self.reap_unconnected(binary))
            raise
        # Imported here, not before the start: binary.py imports it while the shim starts.
        from runtime_v2.shim import ShimTask

        return ShimTask(shim)

    async def join_sandbox(
        self, bundle: Bundle, runtime_path: str, options: any_pb2.Any | None, sandbox_id: str
    ) -> ShimTask:
        """Connect ``bundle``'s task to the shim of sandbox ``sandbox_id`` (containerd's
        ``ShimManager.Start`` for a task with a sandbox ID): the sandbox ID goes into the
        bundle's ``sandbox`` file and the sandbox's ``bootstrap.json`` is copied, so a later
        process reattaches the task to the same shim.

        The sandbox is found by its bundle on disk (a peer may have created it), not only in
        this process's map. NotFound names a sandbox that has no shim.
        """
        from runtime_v2.bundle import SHIM_BINARY_PATH_FILE, write_file
        from runtime_v2.shim import ShimTask
        from runtime_v2.shim_cleanup import SANDBOX_FILE, write_options, write_shim_pid
        from runtime_v2.start_response import restore_bootstrap_params, write_bootstrap_json

        sandbox_bundle = os.path.join(os.path.dirname(bundle.path), sandbox_id)
        try:
            endpoint = restore_bootstrap_params(sandbox_bundle)
        except (errdefs.NotFound, OSError):
            raise errdefs.NotFound(f"can't find sandbox {sandbox_id}") from None
        await self.start_events_server()
        write_file(os.path.join(bundle.path, SANDBOX_FILE), sandbox_id.encode())
        write_bootstrap_json(bundle.path, endpoint)
        if options is not None:
            write_options(bundle, options)
        write_file(os.path.join(bundle.path, SHIM_BINARY_PATH_FILE), runtime_path.encode())
        # Its binary runs `delete` if the shim dies; the log FIFO is the sandbox's.
        shim = await self._connect(bundle, endpoint, self.binary(runtime_path, bundle))
        shim.sandbox_id = sandbox_id
        try:
            await shim.negotiate(version=max(endpoint.version, 2))
            write_shim_pid(bundle, shim.shim_pid)
            self.shims.add(bundle.namespace, bundle.id, shim)
        except BaseException:
            shim.orderly_shutdown = True
            await asyncio.shield(shim.close())
            raise
        return ShimTask(shim)

    async def _connect(self, bundle: Bundle, endpoint: ShimEndpoint, binary: ShimBinary) -> Shim:
        """Connect to the shim at ``endpoint`` for ``bundle``'s task, watched for its death."""
        from runtime_v2.shim import CALL_TIMEOUT, Shim, connect

        client = await connect(endpoint.address, timeout=CALL_TIMEOUT)
        shim = Shim(
            bundle,
            client,
            address=endpoint.address,
            protocol=endpoint.protocol,
            version=endpoint.version,
        )
        shim.binary = binary
        self.watch(shim, binary)
        return shim

    def start_protocol_of(self, runtime: str, runtime_path: str) -> StartProtocol | None:
        """The start protocol ``runtime`` (as named, or its resolved path) is started with:
        :data:`BOOTSTRAP` when ``bootstrap_runtimes`` lists it (the override), else what an
        earlier start negotiated for this binary, else None (not known yet)."""
        from runtime_v2.start_protocol import BOOTSTRAP

        if self.uses_bootstrap(runtime, runtime_path):
            return BOOTSTRAP
        known = self.start_protocols.get(runtime_path)
        return known.start_protocol if known is not None else None

    def negotiated(self, runtime: str) -> BinaryProtocol | None:
        """What ``runtime``'s binary is started with and which task API it served, as far as
        known: the override for a ``bootstrap_runtimes`` entry (task API 0 until a start), else
        the negotiated record, else None (no task was started with this binary yet)."""
        from runtime_v2.start_protocol import BOOTSTRAP, BinaryProtocol

        path = self.resolve_runtime_path(runtime)
        known = self.start_protocols.get(path)
        if self.uses_bootstrap(runtime, path):
            with contextlib.suppress(OSError):
                task_api = known.task_api if known and known.start_protocol == BOOTSTRAP else 0
                return BinaryProtocol(path, os.stat(path).st_mtime_ns, BOOTSTRAP, task_api)
        return known

    async def _start_binary(
        self, binary: ShimBinary, runtime: str, options: any_pb2.Any | None
    ) -> tuple[ShimEndpoint, StartProtocol]:
        """Run ``binary``'s ``start`` with the protocol it speaks, negotiating it if unknown:
        :data:`LEGACY` first, then :data:`BOOTSTRAP` when the shim refuses the legacy protocol
        (a 2.3+ shim refuses before it starts anything, so the retry leaves nothing behind)."""
        from runtime_v2.binary import ShimCommandError
        from runtime_v2.start_protocol import BOOTSTRAP, LEGACY, is_bootstrap_refusal

        if self.start_protocol_of(runtime, binary.runtime_path) == BOOTSTRAP:
            return await binary.start(options, bootstrap=True), BOOTSTRAP
        # Unknown, or known as legacy: a refusal still means "speaks BootstrapParams" (a binary
        # replaced within the mtime's granularity, or a state file written by hand).
        try:
            return await binary.start(options, bootstrap=False), LEGACY
        except ShimCommandError as exc:
            if not is_bootstrap_refusal(exc.output):
                raise
            log.debug(
                "shim %s refused the legacy start protocol; retrying with BootstrapParams",
                binary.runtime_path,
            )
        return await binary.start(options, bootstrap=True), BOOTSTRAP

    async def reap_unconnected(self, binary: ShimBinary) -> None:
        """A shim whose ``start`` ran (maybe only partly) but that we never connected to.

        Where the daemon listens comes from the bundle (``bootstrap.json`` or ``address``); a
        ``start`` cut off before writing either may still have bound its socket, so the paths a
        runc-style shim would use are tried too. A daemon answering there is asked to shut down;
        then the binary's ``delete`` reaps whatever it created and stale sockets are removed.
        """
        from runtime_v2.shim import Shim, connect
        from runtime_v2.shim_cleanup import run_delete
        from runtime_v2.start_response import restore_bootstrap_params

        bundle = binary.bundle
        addresses: list[str] = []
        with contextlib.suppress(Exception):
            addresses.append(restore_bootstrap_params(bundle.path).address)
        for candidate in self.expected_addresses(bundle):
            if candidate not in addresses:
                addresses.append(candidate)
        # A daemon cut off mid-start blocks opening its log FIFO until someone reads it.
        with contextlib.suppress(Exception):
            binary.log.open()
        for address in addresses:
            path = socket_path_of(address)
            if path is not None and not os.path.exists(path):
                continue
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.cleanup_timeout):
                    client = await connect(address, timeout=self.cleanup_timeout)
                    shim = Shim(bundle, client, address=address)
                    shim.orderly_shutdown = True
                    await self.abort(shim)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.cleanup_timeout):
                await run_delete(binary, bundle)
        binary.close()
        for address in addresses:
            remove_stale_socket(address)

    def expected_addresses(self, bundle: Bundle) -> list[str]:
        """Where a runc-style shim of ``bundle`` puts its socket (:mod:`runtime_v2.shim_socket`):
        in the configured socket dir and in ``/run/containerd/s``."""
        return expected_addresses(
            grpc_address=self.grpc_address,
            socket_dir=self.socket_dir,
            namespace=bundle.namespace,
            group=group_of(bundle.path, bundle.id),
        )

    def shares_shim(self, shim: Shim) -> bool:
        """Whether another task in the map is served by ``shim``'s daemon (a grouped shim:
        same address), so that daemon must outlive ``shim``'s task."""
        return any(
            other is not shim and other.address == shim.address for _, _, other in self.shims
        )

    def watch(self, shim: Shim, binary: ShimBinary | None) -> None:
        """Run the dead-shim cleanup when ``shim``'s connection drops (unless closing); its
        Shutdown deadline becomes the config's, and every call on it but the :data:`QUERIES`
        serves the events address first (:meth:`start_events_server`)."""
        shim.shutdown_timeout = self.shutdown_timeout
        shim.before_call = self._before_call

        async def on_close() -> None:
            if binary is not None:
                binary.close()
            if self._closing:
                return
            await self._cleanup_after_dead_shim(shim, binary)

        shim.client.on_close(on_close)

    async def abort(self, shim: Shim) -> None:
        """Tear down a shim whose task failed to be created (or that has no task).

        Delete the task in the shim, ask the shim to shut down and wait for it to go. A shim
        that stays (it still has a task) gets its binary's ``delete`` and is killed -- unless it
        is a grouped shim serving other tasks, which is left running (its socket too). The shim
        is removed from the map first, so no events are published for it; its bundle is left to
        the caller.
        """
        from runtime_v2.api import task_v3_pb2 as task_pb2
        from runtime_v2.shim import ShimTask
        from runtime_v2.shim_cleanup import CLEANUP_TIMEOUT, kill_and_wait, run_delete

        self.shims.delete_if_current(shim.namespace, shim.id, shim)
        shim.orderly_shutdown = True
        shim.shutdown_timeout = self.shutdown_timeout
        task = ShimTask(shim)
        if shim.sandbox_id:
            # The sandbox's shim runs on: delete this task in it and let go.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.cleanup_timeout):
                    await shim.call(
                        "Delete", task_pb2.DeleteRequest(id=shim.id), task_pb2.DeleteResponse
                    )
            await shim.close()
            return
        if not shim.shim_pid:  # the version negotiation did not finish
            with contextlib.suppress(Exception):
                await shim.negotiate(timeout=self.cleanup_timeout)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.cleanup_timeout):
                with contextlib.suppress(errdefs.ContainerdError):
                    await shim.call(
                        "Delete", task_pb2.DeleteRequest(id=shim.id), task_pb2.DeleteResponse
                    )
                await task.shutdown()
        if self.shares_shim(shim):
            # A grouped shim serving other tasks of ours ignores Shutdown and stays, rightly.
            await shim.close()
            return
        exited = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHIM_EXIT_TIMEOUT):
                await shim.client.wait_closed()
                exited = True
        if not exited:
            log.warning(
                "task %s/%s: shim did not exit after Shutdown; killing it", shim.namespace, shim.id
            )
            binary = shim.binary
            if binary is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.cleanup_timeout):
                        await run_delete(binary, shim.bundle)
            pid = shim.shim_pid or _peer_pid(shim.client)
            if pid and group_of(shim.bundle.path, shim.id) != shim.id:
                log.warning(
                    "task %s/%s: the shim is shared with other tasks; not killing it",
                    shim.namespace,
                    shim.id,
                )
            elif pid:
                # Until it is dead its socket still takes connections (the kernel's
                # backlog), and remove_stale_socket would take it for a live one.
                await kill_and_wait(pid, CLEANUP_TIMEOUT)
        await shim.close()
        remove_stale_socket(shim.address)

    async def _cleanup_after_dead_shim(self, shim: Shim, binary: ShimBinary | None) -> None:
        """containerd's ``cleanupAfterDeadShim`` (see the module docstring for the changes)."""
        from runtime_v2.shim import is_being_deleted
        from runtime_v2.shim_cleanup import reap_dead_shim

        namespace, task_id = shim.namespace, shim.id
        if shim.orderly_shutdown:
            log.debug("shim of %s/%s exited after an orderly delete", namespace, task_id)
            self.shims.delete_if_current(namespace, task_id, shim)
            return
        if is_being_deleted(shim.bundle):
            # Another taskplane process sharing the state dir deleted the task.
            log.debug(
                "shim of %s/%s disconnected; its bundle is gone (deleted elsewhere)",
                namespace,
                task_id,
            )
            self.shims.delete_if_current(namespace, task_id, shim)
            return
        # Under the task's lock (runtime_v2.locks): a peer deleting or recreating the task
        # finishes first, and what it removed is not reaped twice.
        async with task_lock(shim.bundle.path) as lock:
            if is_being_deleted(shim.bundle):
                self.shims.delete_if_current(namespace, task_id, shim)
                return
            log.info(
                "shim of %s/%s disconnected; cleaning up after the dead shim", namespace, task_id
            )
            exit = await reap_dead_shim(binary, shim.bundle, shim.address, self.cleanup_timeout)
            lock.set_step("")  # the task is gone
        if not self.shims.is_current(namespace, task_id, shim):
            return
        try:
            await self.publish_task_gone(namespace, task_id, exit)
        finally:
            self.shims.delete(namespace, task_id)

    async def publish_task_gone(self, namespace: str, task_id: str, exit: Exit | None) -> None:
        """Publish ``/tasks/exit`` and ``/tasks/delete`` for a task whose shim can no longer
        say how it ended, as containerd's dead-shim cleanup does: ``exit`` is what the shim
        binary's ``delete`` reported, None for status 255 and pid 0. Failures are logged."""
        from runtime_v2.api import events_pb2
        from runtime_v2.runtime import Exit

        if exit is None:
            exit = Exit(pid=0, status=255, timestamp=_dt.datetime.now(_dt.UTC))
        exited_at = exit.timestamp or _dt.datetime.now(_dt.UTC)
        try:
            await self.exchange.publish(
                "/tasks/exit",
                events_pb2.TaskExit(
                    container_id=task_id,
                    id=task_id,
                    pid=exit.pid,
                    exit_status=exit.status,
                    exited_at=exited_at,
                ),
                namespace=namespace,
            )
            await self.exchange.publish(
                "/tasks/delete",
                events_pb2.TaskDelete(
                    container_id=task_id,
                    pid=exit.pid,
                    exit_status=exit.status,
                    exited_at=exited_at,
                ),
                namespace=namespace,
            )
        except errdefs.ContainerdError as exc:
            log.warning("task %s/%s: failed to publish exit events: %s", namespace, task_id, exc)

    # -- the map of connected shims ------------------------------------------------------------

    def get(self, namespace: str, task_id: str) -> Shim:
        """The connected shim of task ``task_id``; NotFound when this process has none."""
        return self.shims.get(namespace, task_id)

    def find(self, namespace: str, task_id: str) -> Shim | None:
        """The connected shim of task ``task_id``, or None."""
        with contextlib.suppress(errdefs.NotFound):
            return self.shims.get(namespace, task_id)
        return None

    def has(self, namespace: str, task_id: str) -> bool:
        """Whether this process has a connected shim for task ``task_id``."""
        return self.shims.contains(namespace, task_id)

    def connected(self, namespace: str | None = None, *, all: bool = False) -> list[Shim]:
        """The connected shims of ``namespace``, or of every namespace with ``all=True``."""
        return self.shims.get_all(namespace, all=all)

    def forget(self, shim: Shim) -> None:
        """Take ``shim`` out of the map if it is still its task's (no cleanup runs)."""
        self.shims.delete_if_current(shim.namespace, shim.id, shim)

    def adopt(self, shim: Shim, binary: ShimBinary | None) -> bool:
        """Put a reattached ``shim`` into the map and watch it (for its death, and to serve
        the events address before the first call that acts on it); False when its task
        already has one. The caller checks afterwards that the connection is still open (a
        shim that died before :meth:`watch` got no cleanup)."""
        try:
            self.shims.add(shim.namespace, shim.id, shim)
        except errdefs.AlreadyExists:
            return False
        self.watch(shim, binary)
        return True

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop serving events and close every shim connection; shims keep running."""
        self._closing = True
        if self._info is not None:
            self._info.cancel()
        if self._events_task is not None:
            await asyncio.wait([self._events_task])  # a start a call began: finished, then undone
        if self._events is not None:
            await self._events.stop_watching()
        shims = list(self.shims)
        for namespace, task_id, _ in shims:
            self.shims.delete(namespace, task_id)
        # At once: each close waits for its connection to go (a round through the event loop).
        await asyncio.gather(*(shim.close() for _, _, shim in shims), return_exceptions=True)
        # Served until the shims' connections and logs are closed: an event a shim posts
        # meanwhile still arrives, instead of a refused connection logged through its log.
        if self._events is not None:
            await self._events.aclose()


async def init(ic: registry.InitContext) -> ShimManager:
    """The shim plugin's init (:mod:`runtime_v2.builtin` registers it): a :class:`ShimManager`
    built from the plugin's :class:`~runtime_v2.shim_config.ShimConfig`, serving events (from
    the first shim it starts or acts on under
    :func:`~runtime_v2.shim_config.events_on_demand`)."""
    config: ShimConfig = ic.config if ic.config is not None else ShimConfig()
    # The config decoder ran the same checks; an instance built in code may not have been.
    env = check_env(config.env)
    socket_dir = check_socket_dir(config.socket_dir) if config.socket_dir else ""
    bootstrap_runtimes = check_bootstrap_runtimes(config.bootstrap_runtimes)
    from plugins.events import Exchange
    from plugins.metadata import ContainerStore

    exchange = ic.get_by_id(types.EVENT_PLUGIN, "exchange", Exchange)
    containers: ContainerStore | None
    try:
        containers = ic.get_single(types.METADATA_PLUGIN, ContainerStore)
    except registry.UnexpectedInstance:
        raise
    except registry.PluginError:
        containers = None
    grpc_address = ic.properties[registry.PROPERTY_GRPC_ADDRESS]
    ttrpc_address = ic.properties[registry.PROPERTY_TTRPC_ADDRESS]
    manager = ShimManager(
        exchange=exchange,
        containers=containers,
        grpc_address=grpc_address,
        ttrpc_address=ttrpc_address,
        socket_dir=socket_dir,
        env=env,
        bootstrap_runtimes=bootstrap_runtimes,
        state_dir=ic.state,
        timeouts=ic.timeouts,
    )
    if not events_served_on_demand():
        await manager.start_events_server()
    return manager
