"""The shim plugin (``io.containerd.shim.v1.manager``): starts shims and owns their connections.

containerd's ``shim_manager.go``. The :class:`ShimManager` resolves a runtime name to a shim
binary, starts it in a task's bundle, connects to it over ttrpc (speaking the task API version
the shim announced first), keeps every connected shim in an :class:`~runtime_v2.nsmap.NSMap`, and
serves the ttrpc ``Events.Forward`` service at the TTRPC_ADDRESS shims are given, feeding what
they send into the event exchange.

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
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import DecodeError

import registry
from plugins import securefs, types
from plugins.containerd_config import TIMEOUT_SHIM_CLEANUP, TIMEOUT_SHIM_SHUTDOWN
from runtime_v2 import errdefs, ttrpc, typeurl
from runtime_v2.api import events_pb2, events_service_pb2, introspection_pb2, runc_options_pb2
from runtime_v2.api import task_v3_pb2 as task_pb2
from runtime_v2.binary import ShimBinary, ShimCommandError, check_env, run_info
from runtime_v2.bundle import Bundle, write_file
from runtime_v2.locks import task_lock
from runtime_v2.nsmap import NSMap
from runtime_v2.runtime import Exit
from runtime_v2.runtime_path import RuntimePathResolver, binary_name, check_runc_binary
from runtime_v2.shim import (
    CALL_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    Shim,
    ShimTask,
    connect,
    is_being_deleted,
)
from runtime_v2.shim_log import SHIM_LOGGER
from runtime_v2.start_protocol import (
    BOOTSTRAP,
    LEGACY,
    BinaryProtocol,
    StartProtocol,
    StartProtocols,
    is_bootstrap_refusal,
)
from runtime_v2.start_response import (
    ShimEndpoint,
    restore_bootstrap_params,
    write_bootstrap_json,
)

__all__ = [
    "CLEANUP_TIMEOUT",
    "DEFAULT_SOCKET_DIR",
    "INFO_CACHE_TTL",
    "MAX_SOCKET_DIR_LEN",
    "MAX_SUN_PATH",
    "OPTIONS_FILE",
    "SANDBOX_FILE",
    "ShimConfig",
    "ShimManager",
    "read_sandbox_id",
    "reap_dead_shim",
    "registration",
    "run_delete",
]

log = logging.getLogger("taskplane.runtime_v2.shim_manager")

#: The sun_path limit on Linux (108 bytes including the terminating NUL).
MAX_SUN_PATH = 108
#: containerd's ``maxSocketDirLen`` on Linux: 108 - NUL - "/" - 64 hex characters.
MAX_SOCKET_DIR_LEN = MAX_SUN_PATH - 1 - 1 - 64
#: Where shims put their sockets when run as root (containerd's ``defaultSocketDir``).
DEFAULT_SOCKET_DIR = "/run/containerd/s"
#: containerd's ``io.containerd.timeout.shim.cleanup`` default (``[timeouts]`` sets it).
CLEANUP_TIMEOUT = 5.0
#: How long a shim may take to exit after Shutdown before it is killed.
SHIM_EXIT_TIMEOUT = 2.0
#: How long a ``-info`` result (or failure) is reused.
INFO_CACHE_TTL = 10.0

#: Where the shims' log lines go (runtime_v2.shim_log.ShimLog).
_SHIM_LOG = SHIM_LOGGER

_EVENTS_SERVICE = events_service_pb2.DESCRIPTOR.services_by_name["Events"]


def check_socket_dir(socket_dir: str) -> str:
    """Validate a configured ``socket_dir`` and return it cleaned.

    It must be absolute and at most :data:`MAX_SOCKET_DIR_LEN` bytes, so that
    ``<socket_dir>/<64 hex>`` fits sun_path; the error gives the exact length.
    """
    if not os.path.isabs(socket_dir):
        raise errdefs.InvalidArgument(f"socket_dir must be an absolute path: {socket_dir!r}")
    cleaned = os.path.normpath(socket_dir)
    length = len(os.fsencode(cleaned))
    if length > MAX_SOCKET_DIR_LEN:
        raise errdefs.InvalidArgument(
            f"socket_dir {cleaned!r} is {length} characters long; it must be no longer than "
            f"{MAX_SOCKET_DIR_LEN} characters (a shim socket path must fit in {MAX_SUN_PATH} bytes)"
        )
    return cleaned


def _check_bootstrap_runtimes(runtimes: Sequence[str]) -> list[str]:
    for entry in runtimes:
        if not isinstance(entry, str) or not entry or ("/" in entry and not os.path.isabs(entry)):
            raise errdefs.InvalidArgument(
                f"bootstrap_runtimes entry {entry!r} must be a runtime name or an absolute path"
            )
    return list(runtimes)


def _as_value_error(check: Any) -> Any:
    """An attrs validator running ``check(value)``: the config decoder reports the ValueError at
    the field's TOML path (``taskplane config validate``); the plugin's init runs the same
    check again, so the two cannot disagree."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        try:
            check(value)
        except errdefs.InvalidArgument as exc:
            raise ValueError(str(exc)) from None

    return validate


@attrs.define
class ShimConfig:
    """``[plugins."io.containerd.shim.v1.manager"]``.

    ``env``: ``KEY=VALUE`` strings added to every shim command's environment.
    ``socket_dir``: where shims should create their sockets (absolute, at most 42 characters;
    empty: ``/run/containerd/s`` for root). Debian's 1.6 shim ignores it.
    ``bootstrap_runtimes``: an override, rarely needed: runtime names or absolute shim paths
    always started with containerd 2.3's protobuf ``BootstrapParams`` on stdin, without the
    negotiation every other shim gets (1.x and 2.0-2.2 shims must not be listed: they fail on
    it).

    All three are checked when the config is loaded (``taskplane config validate``).
    """

    env: list[str] = attrs.field(factory=list, validator=_as_value_error(check_env))
    socket_dir: str = attrs.field(
        default="", validator=_as_value_error(lambda d: check_socket_dir(d) if d else d)
    )
    bootstrap_runtimes: list[str] = attrs.field(
        factory=list, validator=_as_value_error(_check_bootstrap_runtimes)
    )


def default_socket_dir() -> str:
    """containerd's default socket dir: ``/run/containerd/s`` for root, else the first usable
    candidate among ``$XDG_RUNTIME_DIR/containerd/s``, ``/run/<uid>/containerd/s`` and
    ``/tmp/containerd-s-<uid>``."""
    uid = os.geteuid()
    if uid == 0:
        return DEFAULT_SOCKET_DIR
    candidates = [DEFAULT_SOCKET_DIR]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        candidates.append(os.path.join(xdg, "containerd", "s"))
    candidates += [f"/run/{uid}/containerd/s", f"/tmp/containerd-s-{uid}"]
    for candidate in candidates:
        if len(os.fsencode(candidate)) > MAX_SOCKET_DIR_LEN:
            continue
        try:
            os.makedirs(candidate, 0o700, exist_ok=True)
            st = os.lstat(candidate)
            if not os.path.isdir(candidate) or os.path.islink(candidate) or st.st_uid != uid:
                continue
            os.chmod(candidate, 0o700)
        except OSError:
            continue
        return candidate
    raise errdefs.FailedPrecondition(
        "failed to find a suitable socket directory for shim, please configure one"
    )


def check_sun_path(path: str, what: str) -> None:
    """Raise InvalidArgument when ``path`` does not fit a unix socket address (108 bytes)."""
    length = len(os.fsencode(path))
    if length >= MAX_SUN_PATH:
        raise errdefs.InvalidArgument(
            f"{what} {path!r} is {length} bytes long; a unix socket path must be shorter than "
            f"{MAX_SUN_PATH} bytes (use a shorter state directory)"
        )


def socket_path_of(address: str) -> str | None:
    """The filesystem path of a ``unix://`` shim address (None for abstract or other kinds)."""
    if address.startswith("unix://"):
        return address[len("unix://") :]
    return None


async def kill_and_wait(pid: int, timeout: float) -> None:
    """SIGKILL process ``pid`` (not necessarily our child) and wait, at most ``timeout`` s,
    until it has exited: its pidfd, opened before the signal so the pid cannot be reused
    meanwhile, turns readable then, zombie or not. A process already gone is fine."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await exited
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def remove_stale_socket(address: str) -> bool:
    """Remove the socket file of ``address`` if nothing listens on it; True when removed."""
    path = socket_path_of(address)
    if not path or not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        pass
    except OSError:
        return False
    else:
        return False  # live: someone serves it (a grouped shim)
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        return True
    return False


#: containerd's file naming the sandbox a task's bundle belongs to (its shim is the sandbox's).
SANDBOX_FILE = "sandbox"


def read_sandbox_id(bundle: Bundle) -> str:
    """The sandbox ``bundle``'s task runs in ("" for none)."""
    try:
        with open(os.path.join(bundle.path, SANDBOX_FILE), "rb") as f:
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


#: The task's effective runtime options in its bundle, so a later process runs ``delete`` with
#: the same options (a serialized ``google.protobuf.Any``, mode 0600).
OPTIONS_FILE = "taskplane-options.pb"


def write_options(bundle: Bundle, options: any_pb2.Any) -> None:
    """Record the task's effective runtime options in its bundle."""
    write_file(os.path.join(bundle.path, OPTIONS_FILE), options.SerializeToString(), 0o600)


def read_options(bundle: Bundle) -> any_pb2.Any | None:
    """The options :func:`write_options` recorded, or None."""
    try:
        with open(os.path.join(bundle.path, OPTIONS_FILE), "rb") as f:
            return any_pb2.Any.FromString(f.read())
    except (OSError, DecodeError):
        return None


async def run_delete(binary: ShimBinary, bundle: Bundle) -> Exit:
    """Run ``binary``'s ``delete`` with the task's effective runtime options on stdin.

    The options are the ones :func:`write_options` recorded in ``bundle`` at start, so a later
    process (restart recovery) sends the same value; a task without options gets /dev/null.
    The bundle is left to the caller.
    """
    return await binary.delete(read_options(bundle), remove_bundle=False)


async def reap_dead_shim(
    binary: ShimBinary | None,
    bundle: Bundle,
    address: str | None,
    timeout: float = CLEANUP_TIMEOUT,
) -> Exit | None:
    """Clean up after a shim that is gone: its binary's ``delete`` (which kills and deletes the
    container), then the bundle, then the shim's stale socket.

    Each step runs even when the one before failed (failures are logged). Returns the
    ``delete`` command's Exit, or None when there is no binary or the command failed.
    """
    exit: Exit | None = None
    if binary is not None:
        try:
            async with asyncio.timeout(timeout):
                exit = await run_delete(binary, bundle)
        except Exception as exc:
            log.warning(
                "task %s/%s: shim delete command failed: %s", bundle.namespace, bundle.id, exc
            )
    try:
        await asyncio.to_thread(bundle.delete)
    except OSError as exc:
        log.warning("task %s/%s: failed to remove the bundle: %s", bundle.namespace, bundle.id, exc)
    if address:
        remove_stale_socket(address)
    return exit


def _peer_pid(client: ttrpc.Client) -> int:
    """The pid at the other end of a ttrpc connection (SO_PEERCRED), or 0."""
    peer = client.peer_credentials()
    return peer.pid if peer is not None else 0


def _now() -> float:
    """The clock of the ``-info`` cache (tests replace it)."""
    return time.monotonic()


@attrs.frozen
class _CachedError:
    """A cached ``-info`` failure: its class, message and attributes, re-raised fresh each time
    (never the same instance, so tracebacks and ``__cause__`` chains do not pile up)."""

    cls: type[BaseException]
    message: str
    attributes: dict[str, Any]

    @classmethod
    def of(cls, exc: BaseException) -> _CachedError:
        return cls(type(exc), str(exc), dict(getattr(exc, "__dict__", {})))

    def fresh(self) -> BaseException:
        exc = self.cls.__new__(self.cls)
        exc.args = (self.message,)
        exc.__dict__.update(self.attributes)
        return exc


@attrs.define
class _InfoEntry:
    expires: float
    info: introspection_pb2.RuntimeInfo | None
    error: _CachedError | None


#: (shim path, its mtime, serialized options, the runc binary the options name, its mtime).
_InfoKey = tuple[str, int, bytes, str, int]


def _runc_binary_of(options: any_pb2.Any | None) -> str | None:
    """The runc binary a runc shim runs ``runc features`` with for ``options``: their
    ``binary_name``, else ``runc``; None for options of another type (not a runc shim's)."""
    if options is None:
        return "runc"
    if not typeurl.is_(options, runc_options_pb2.Options):
        return None
    with contextlib.suppress(errdefs.ContainerdError):
        return typeurl.unpack_as(options, runc_options_pb2.Options).binary_name or "runc"
    return None


def _binary_stamp(name: str | None) -> tuple[str, int]:
    """(path, mtime) of the binary ``name`` as ``exec.LookPath`` finds it on our PATH (what a
    shim's ``-info`` inherits); ("", -1) for None and an mtime of -1 when it is not found."""
    if name is None:
        return "", -1
    path = name if os.sep in name else shutil.which(name) or name
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, -1


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
        exchange: Any,
        containers: Any = None,
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
        self.cleanup_timeout = self.timeout(TIMEOUT_SHIM_CLEANUP, CLEANUP_TIMEOUT)
        self.shutdown_timeout = self.timeout(TIMEOUT_SHIM_SHUTDOWN, SHUTDOWN_TIMEOUT)
        self.containers = containers
        self.grpc_address = grpc_address
        self.ttrpc_address = ttrpc_address
        self.socket_dir = socket_dir or default_socket_dir()
        self.env = list(env)
        #: Runtime names / absolute shim paths started with protobuf BootstrapParams on stdin.
        self.bootstrap_runtimes = frozenset(bootstrap_runtimes)
        #: The negotiated start protocol per shim binary (kept in ``state_dir`` when given).
        self.start_protocols = StartProtocols(state_dir)
        self.shims: NSMap[Shim] = NSMap()
        self._resolver = RuntimePathResolver()
        self._info_cache: dict[_InfoKey, _InfoEntry] = {}
        self._info_runs: dict[_InfoKey, asyncio.Task[_InfoEntry]] = {}
        self._server: ttrpc.Server | None = None
        self._owner: ttrpc.Client | None = None
        self._takeover: asyncio.Future[None] | None = None
        self._takeover_attempts = 0
        #: Set while this process serves the events address.
        self.events_served = asyncio.Event()
        self._closing = False

    def timeout(self, key: str, default: float) -> float:
        """The config's ``[timeouts]`` *key* in seconds, or *default* when it is not set."""
        return self.timeouts.get(key, default)

    # -- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``io.containerd.shim.v1.manager``."""
        return f"{types.SHIM_PLUGIN}.manager"

    @property
    def serves_events(self) -> bool:
        """Whether this process serves the events address (False when a live peer does)."""
        return self._server is not None

    # -- events service -------------------------------------------------------------------------

    async def start_events_server(self) -> None:
        """Serve ``Events.Forward`` at :attr:`ttrpc_address` unless a live peer already does.

        When a peer serves it, a connection to the peer is held open; when the peer goes away
        (closed or killed) this manager takes the address over, so shims' events always have
        a taskplane process to reach while any runs.
        """
        path = self.ttrpc_address
        check_sun_path(path, "ttrpc address")
        # Serialise the live-or-stale check and the bind among processes on this state dir.
        lock_fd = securefs.open_file(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
            if self._closing:
                return
            server = ttrpc.Server()
            server.register(_EVENTS_SERVICE, {"Forward": errdefs.grpc_handler(self._forward)})
            try:
                # serve() replaces a stale socket file and refuses a live one. The file stays
                # after we exit: shims that publish then get ECONNREFUSED and give up at once,
                # where a missing file makes the Go publisher retry on ENOENT for 5 s per event
                # (and delays the shim's exit after Shutdown by as much).
                await server.serve(path, keep_socket_file=True)
            except ttrpc.StatusError as exc:
                if exc.code != ttrpc.Code.ALREADY_EXISTS:
                    raise errdefs.from_grpc(exc) from exc
                log.debug("events address %s is served by another taskplane process", path)
                await self._watch_events_owner()
                return
            self._server = server
            self.events_served.set()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    async def _watch_events_owner(self) -> None:
        try:
            client = await connect(self.ttrpc_address, timeout=self.cleanup_timeout)
        except (errdefs.ContainerdError, OSError):
            client = None  # the owner just went away: try again right now
        if client is not None:
            # One round trip: the owner has accepted us (and is a live ttrpc server).
            try:
                await client.call(
                    "taskplane.Liveness",
                    "Probe",
                    empty_pb2.Empty(),
                    empty_pb2.Empty,
                    timeout=self.cleanup_timeout,
                )
            except ttrpc.StatusError as exc:
                if exc.code == ttrpc.Code.UNIMPLEMENTED:
                    pass  # the expected answer of a live server
                else:
                    log.warning(
                        "the process serving %s does not answer (%s); not watching it",
                        self.ttrpc_address,
                        exc,
                    )
                    await client.close()
                    return
        if client is None:
            self._takeover_attempts += 1
            if self._takeover_attempts <= 3:
                self._takeover = asyncio.ensure_future(self.start_events_server())
            return
        self._takeover_attempts = 0
        self._owner = client

        def owner_gone() -> None:
            if not self._closing:
                log.debug("the process serving %s went away; taking over", self.ttrpc_address)
                self._takeover = asyncio.ensure_future(self.start_events_server())

        client.on_close(owner_gone)

    async def _forward(
        self, request: events_service_pb2.ForwardRequest, ctx: Any
    ) -> empty_pb2.Empty:
        await self.exchange.forward(request.envelope)
        return empty_pb2.Empty()

    # -- runtime resolution and -info -----------------------------------------------------------

    def resolve_runtime_path(self, runtime: str) -> str:
        """Resolve a runtime name (``io.containerd.runc.v2``) or absolute path to a shim binary;
        errors say ``failed to resolve runtime path:`` first, as containerd's do."""
        try:
            return self._resolver.resolve(runtime)
        except errdefs.ContainerdError as exc:
            raise errdefs.wrap(exc, "failed to resolve runtime path") from None

    def binary(self, runtime_path: str, bundle: Bundle) -> ShimBinary:
        """The shim binary ``runtime_path`` bound to ``bundle`` (with this manager's addresses,
        socket dir and env). Its ``delete`` is run through :func:`run_delete`, which hands it
        the task's effective options."""
        return ShimBinary(
            runtime_path,
            bundle=bundle,
            grpc_address=self.grpc_address,
            ttrpc_address=self.ttrpc_address,
            socket_dir=self.socket_dir,
            env=self.env,
            # containerd passes -debug when it logs at debug itself; the shim's lines are
            # logged to taskplane.shim, so that logger's level decides.
            debug=_SHIM_LOG.isEnabledFor(logging.DEBUG),
        )

    async def runtime_info(
        self, runtime: str, options: any_pb2.Any | None
    ) -> introspection_pb2.RuntimeInfo:
        """Run ``<shim> -info`` with ``options`` on stdin, cached.

        The cache key is (resolved path, the binary's mtime, serialized options, the runc
        binary the options name -- ``binary_name`` or ``runc`` -- and its mtime); results and
        failures are kept for :data:`INFO_CACHE_TTL` seconds. Concurrent misses for one key share
        a single run. A cached failure is raised as a new exception of the same class and
        message each time.
        """
        path = self.resolve_runtime_path(runtime)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            raise errdefs.NotFound(f"runtime binary {path}: {exc.strerror}") from None
        serialized = options.SerializeToString() if options is not None else b""
        # The runc binary is part of the key: replacing runc changes what -info reports.
        key: _InfoKey = (path, mtime, serialized, *_binary_stamp(_runc_binary_of(options)))
        entry = self._info_cache.get(key)
        if entry is None or entry.expires <= _now():
            run = self._info_runs.get(key)
            if run is None:
                run = asyncio.ensure_future(self._run_info(key, path, options))
                self._info_runs[key] = run
                run.add_done_callback(lambda _: self._info_runs.pop(key, None))
            # A caller that is cancelled leaves the shared run to the others.
            entry = await asyncio.shield(run)
        if entry.error is not None:
            raise entry.error.fresh()
        assert entry.info is not None
        result = introspection_pb2.RuntimeInfo()
        result.CopyFrom(entry.info)
        return result

    async def _run_info(self, key: _InfoKey, path: str, options: any_pb2.Any | None) -> _InfoEntry:
        try:
            info = await run_info(path, options)
        except Exception as exc:
            entry = _InfoEntry(_now() + INFO_CACHE_TTL, None, _CachedError.of(exc))
        else:
            entry = _InfoEntry(_now() + INFO_CACHE_TTL, info, None)
        now = _now()
        for stale in [k for k, e in self._info_cache.items() if e.expires <= now]:
            del self._info_cache[stale]
        self._info_cache[key] = entry
        return entry

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
        runtime_path = self.resolve_runtime_path(runtime)
        if sandbox_id:
            return await self.join_sandbox(bundle, runtime_path, options, sandbox_id)
        if os.path.basename(runtime_path) == binary_name(types.RUNTIME_RUNC_V2):
            # The runc shim runs runc as root too: the same trust check (runtime_path.py).
            shim_path_env = [e.partition("=")[2] for e in self.env if e.startswith("PATH=")]
            check_runc_binary(options, shim_path_env[-1] if shim_path_env else None)
        binary = self.binary(runtime_path, bundle)
        shim: Shim | None = None
        try:
            if options is not None:
                write_options(bundle, options)
            endpoint, start_protocol = await self._start_binary(binary, runtime, options)
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
            if shim is not None:
                await asyncio.shield(self.abort(shim))
            else:
                await asyncio.shield(self.reap_unconnected(binary))
            raise
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
        sandbox_bundle = os.path.join(os.path.dirname(bundle.path), sandbox_id)
        try:
            endpoint = restore_bootstrap_params(sandbox_bundle)
        except (errdefs.NotFound, OSError):
            raise errdefs.NotFound(f"can't find sandbox {sandbox_id}") from None
        write_file(os.path.join(bundle.path, SANDBOX_FILE), sandbox_id.encode())
        write_bootstrap_json(bundle.path, endpoint)
        if options is not None:
            write_options(bundle, options)
        write_file(os.path.join(bundle.path, "shim-binary-path"), runtime_path.encode())
        # Its binary runs `delete` if the shim dies; the log FIFO is the sandbox's.
        shim = await self._connect(bundle, endpoint, self.binary(runtime_path, bundle))
        shim.sandbox_id = sandbox_id
        try:
            await shim.negotiate(version=max(endpoint.version, 2))
            self.shims.add(bundle.namespace, bundle.id, shim)
        except BaseException:
            shim.orderly_shutdown = True
            await asyncio.shield(shim.close())
            raise
        return ShimTask(shim)

    async def _connect(self, bundle: Bundle, endpoint: ShimEndpoint, binary: ShimBinary) -> Shim:
        """Connect to the shim at ``endpoint`` for ``bundle``'s task, watched for its death."""
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
        if self.uses_bootstrap(runtime, runtime_path):
            return BOOTSTRAP
        known = self.start_protocols.get(runtime_path)
        return known.start_protocol if known is not None else None

    def negotiated(self, runtime: str) -> BinaryProtocol | None:
        """What ``runtime``'s binary is started with and which task API it served, as far as
        known: the override for a ``bootstrap_runtimes`` entry (task API 0 until a start), else
        the negotiated record, else None (no task was started with this binary yet)."""
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

    @staticmethod
    def _group_of(bundle: Bundle) -> str:
        """The runc shim's grouping key: tasks with the same key share one shim."""
        with contextlib.suppress(Exception), open(os.path.join(bundle.path, "config.json")) as f:
            annotations = json.load(f).get("annotations") or {}
            return str(
                annotations.get("io.containerd.runc.v2.group")
                or annotations.get("io.kubernetes.cri.sandbox-id")
                or bundle.id
            )
        return bundle.id

    def expected_addresses(self, bundle: Bundle) -> list[str]:
        """Where a runc-style shim of ``bundle`` puts its socket: ``<dir>/<sha256 hex>`` of
        ``<grpc address>/<namespace>/<group>``, in the configured socket dir and in
        ``/run/containerd/s`` (1.6 shims ignore the setting)."""
        group = self._group_of(bundle)
        key = os.path.normpath(os.path.join(self.grpc_address, bundle.namespace, group))
        name = hashlib.sha256(key.encode()).hexdigest()
        dirs = dict.fromkeys([self.socket_dir, DEFAULT_SOCKET_DIR])
        return [f"unix://{os.path.join(d, name)}" for d in dirs]

    def shares_shim(self, shim: Shim) -> bool:
        """Whether another task in the map is served by ``shim``'s daemon (a grouped shim:
        same address), so that daemon must outlive ``shim``'s task."""
        return any(
            other is not shim and other.address == shim.address for _, _, other in self.shims
        )

    def watch(self, shim: Shim, binary: ShimBinary | None) -> None:
        """Run the dead-shim cleanup when ``shim``'s connection drops (unless closing); its
        Shutdown deadline becomes the config's."""
        shim.shutdown_timeout = self.shutdown_timeout

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
            if pid and self._group_of(shim.bundle) != shim.id:
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

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop serving events and close every shim connection; shims keep running."""
        self._closing = True
        for run in list(self._info_runs.values()):
            run.cancel()
        if self._takeover is not None:
            self._takeover.cancel()
            with contextlib.suppress(BaseException):
                await self._takeover
        if self._owner is not None:
            with contextlib.suppress(Exception):
                await self._owner.close()
        for namespace, task_id, shim in list(self.shims):
            self.shims.delete(namespace, task_id)
            with contextlib.suppress(Exception):
                await shim.close()
        if self._server is not None:
            server, self._server = self._server, None
            self.events_served.clear()
            with contextlib.suppress(Exception):
                await server.close()


async def _init(ic: registry.InitContext) -> ShimManager:
    config: ShimConfig = ic.config if ic.config is not None else ShimConfig()
    # The config decoder ran the same checks; an instance built in code may not have been.
    env = check_env(config.env)
    socket_dir = check_socket_dir(config.socket_dir) if config.socket_dir else ""
    bootstrap_runtimes = _check_bootstrap_runtimes(config.bootstrap_runtimes)
    exchange = ic.get_by_id(types.EVENT_PLUGIN, "exchange")
    try:
        containers = ic.get_single(types.METADATA_PLUGIN)
    except registry.PluginError:
        containers = None
    grpc_address = ic.properties[registry.PROPERTY_GRPC_ADDRESS]
    ttrpc_address = ic.properties[registry.PROPERTY_TTRPC_ADDRESS]
    check_sun_path(ttrpc_address, "ttrpc address")
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
    await manager.start_events_server()
    return manager


def migrate_sched_core(plugins: Mapping[str, Any], from_version: int) -> dict[str, Any]:
    """Config migration from version 2 (or 1): the task plugin's ``sched_core = true`` becomes
    ``SCHED_CORE=1`` in this plugin's ``env``, as containerd 2's shim manager migration does
    (``core/runtime/v2/shim_manager.go``). Unlike containerd's, an ``env`` the file already
    sets is kept; a non-boolean ``sched_core`` is left for the decoder to report."""
    task_uri = f"{types.RUNTIME_PLUGIN_V2}.task"
    out = dict(plugins)
    task = out.get(task_uri)
    if from_version >= 3 or not isinstance(task, Mapping) or "sched_core" not in task:
        return out
    sched_core = task["sched_core"]
    if not isinstance(sched_core, bool):
        return out
    out[task_uri] = {k: v for k, v in task.items() if k != "sched_core"}
    if sched_core:
        uri = f"{types.SHIM_PLUGIN}.manager"
        shim = dict(out.get(uri) or {})
        env = shim.get("env", [])
        if isinstance(env, list) and "SCHED_CORE=1" not in env:
            shim["env"] = [*env, "SCHED_CORE=1"]
        out[uri] = shim
    return out


def registration() -> registry.Registration:
    """The shim plugin's registration: ``io.containerd.shim.v1.manager``."""
    return registry.Registration(
        type=types.SHIM_PLUGIN,
        id="manager",
        init=_init,
        requires=(types.EVENT_PLUGIN, types.METADATA_PLUGIN),
        config=ShimConfig,
        config_migration=migrate_sched_core,
    )
