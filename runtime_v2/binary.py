"""Running a shim binary: ``start``, ``delete`` and ``-info`` (containerd's ``binary.go``).

A :class:`ShimBinary` is one shim binary bound to one bundle. :meth:`ShimBinary.start` runs
``<shim> ... start`` in the bundle and returns the :class:`~runtime_v2.start_response.ShimEndpoint`
the shim printed; :meth:`ShimBinary.delete` runs ``<shim> ... delete`` to reap a dead shim's
container and returns its :class:`~runtime_v2.runtime.Exit`. :func:`run_info` runs
``<shim> -info``.

The shim daemon writes its log to the bundle's ``log`` FIFO, which the binary's
:class:`~runtime_v2.shim_log.ShimLog` drains from before ``start`` (an unread FIFO blocks the
shim). Stop it with :meth:`ShimBinary.close` when the shim is gone (``delete`` also stops it).

Differences from containerd, on purpose:

- A failed ``start`` names the binary and attaches the shim's last log lines.
- When ``start`` exits 0 but its output is unusable, the binary's ``delete`` is run to reap
  whatever it started before the error is raised.
- A pre-2.0 shim asked for ``-info`` gives :class:`errdefs.NotImplemented` naming its version.
- ``-debug`` and ``BootstrapParams.log_level`` follow taskplane's log level as containerd's
  follow its own, except that the shim never logs below info: taskplane's default level is
  error, and the shim's warnings are what its create errors quote.
- ``-address``/``GRPC_ADDRESS`` name ``STATE/taskplane.sock``, where nothing listens: taskplane
  serves no gRPC API (a daemonless peer has nothing there to serve), and the address is what a
  shim hashes into its socket path, so it must stay one per state dir. A shim that dials it
  fails at once (no such socket) rather than reaching another daemon; events go to the ttrpc
  ``TTRPC_ADDRESS`` as with containerd.
- ``containerd_version`` is ``2.4.0+taskplane.<version>`` (:data:`CONTAINERD_COMPAT_VERSION`):
  the containerd whose shim protocol taskplane speaks, so version checks accept it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import re
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from registry.log import get_logger
from runtime_v2 import errdefs, preimport
from runtime_v2.api import bootstrap_pb2
from runtime_v2.bundle import SHIM_BINARY_PATH_FILE, Bundle, write_file
from runtime_v2.runtime import Exit, from_timestamp
from runtime_v2.shim_log import ShimLog
from runtime_v2.start_response import ShimEndpoint, parse_start_response, write_bootstrap_json

if TYPE_CHECKING:
    from runtime_v2.api import introspection_pb2

__all__ = [
    "AFTER_START",
    "CONTAINERD_COMPAT_VERSION",
    "ShimBinary",
    "ShimCommandError",
    "check_env",
    "default_publish_binary",
    "installed_version",
    "log_level_for",
    "run_info",
    "shim_env",
]

log = get_logger(__name__)

#: Time allowed for reaping a shim whose ``start`` output could not be used.
_REAP_TIMEOUT = 5.0

_UNKNOWN_INFO_FLAG = "flag provided but not defined: -info"
_VERSION_LINE = re.compile(r"^\s*Version:\s*(\S+)", re.MULTILINE)


class ShimCommandError(errdefs.Unknown):
    """A shim command (``start``, ``delete`` or ``-info``) exited non-zero.

    ``str(err)`` is one sentence naming the binary and the command, with the shim's output and
    (for ``start``) its last log lines. ``exit_status`` is the exit code (negative: killed by that
    signal), ``output`` the shim's own text, ``log_tail`` its recent log lines ("" if none).
    """

    def __init__(self, message: str, *, exit_status: int, output: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.output = output
        self.log_tail = log_tail


def default_publish_binary() -> str:
    """What ``-publish-binary`` names: our own executable (shims since 1.5 ignore it)."""
    return sys.executable


def check_env(env: Iterable[str]) -> list[str]:
    """Return ``env`` as a list; InvalidArgument for an entry that is not ``KEY=VALUE``."""
    entries = list(env)
    for entry in entries:
        if not isinstance(entry, str) or "=" not in entry or entry.startswith("="):
            raise errdefs.InvalidArgument(f"shim env entry {entry!r} must have the form KEY=VALUE")
    return entries


def shim_env(
    *,
    grpc_address: str,
    ttrpc_address: str,
    namespace: str,
    extra: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a shim command (containerd's ``core/runtime/v2/binary.go``).

    Our environment plus ``GOMAXPROCS=2``, ``MAX_SHIM_VERSION=2``, ``TTRPC_ADDRESS``,
    ``GRPC_ADDRESS`` and ``NAMESPACE``, then the ``extra`` ``KEY=VALUE`` entries (the shim
    manager's ``env`` config), which win.
    """
    env = dict(os.environ if base is None else base)
    env.update(
        GOMAXPROCS="2",
        MAX_SHIM_VERSION="2",
        TTRPC_ADDRESS=ttrpc_address,
        GRPC_ADDRESS=grpc_address,
        NAMESPACE=namespace,
    )
    for entry in check_env(extra):
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def _exit_text(returncode: int) -> str:
    """Go's ``*exec.ExitError`` text: ``exit status 1`` or ``signal: killed``."""
    if returncode < 0:
        try:
            description = signal.strsignal(-returncode)
        except ValueError:
            description = None
        return f"signal: {(description or f'signal {-returncode}').lower()}"
    return f"exit status {returncode}"


async def _run(
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    cwd: str | None,
    env: Mapping[str, str] | None,
    combine_output: bool,
) -> tuple[int, bytes, bytes]:
    """Run a command in its own process group; return (returncode, stdout, stderr).

    With ``combine_output`` stderr goes to stdout (and the returned stderr is b""). If the caller
    is cancelled the process group is killed and reaped before the cancellation propagates.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if combine_output else asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            process_group=0,
        )
    except OSError as exc:
        cls = errdefs.NotFound if exc.errno == errno.ENOENT else errdefs.Unknown
        where = f" ({exc.filename})" if exc.filename and exc.filename != argv[0] else ""
        raise cls(f"failed to run {argv[0]}: {exc.strerror}{where}") from exc
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err or b""


#: What a task's life needs once its shim runs: the task service's client and messages
#: (:mod:`runtime_v2.shim`), the ttrpc client, and :mod:`shutil` (with its compression modules),
#: which removing the task's bundle and io dir needs. :meth:`ShimBinary.start` has them imported
#: on a worker thread while the shim's ``start`` command runs (see :mod:`runtime_v2.preimport`):
#: a cold ``taskplane run`` spends a few milliseconds on them, which then overlap the start
#: instead of preceding it or lengthening the teardown.
AFTER_START = ("runtime_v2.shim", "runtime_v2.ttrpc._client", "shutil")


class ShimBinary:
    """A shim binary bound to one bundle (containerd's ``binary``).

    ``runtime_path`` is the resolved absolute path of the shim binary; ``grpc_address`` and
    ``ttrpc_address`` name our daemon (the shim hashes the grpc address into its socket path and
    sends events to the ttrpc one); ``socket_dir`` goes into BootstrapParams; ``env`` holds extra
    ``KEY=VALUE`` entries; ``debug`` adds ``-debug``.
    """

    def __init__(
        self,
        runtime_path: str,
        *,
        bundle: Bundle,
        grpc_address: str,
        ttrpc_address: str,
        socket_dir: str = "",
        env: Sequence[str] = (),
        debug: bool = False,
        publish_binary: str | None = None,
    ) -> None:
        self.runtime_path = runtime_path
        self.bundle = bundle
        self.grpc_address = grpc_address
        self.ttrpc_address = ttrpc_address
        self.socket_dir = socket_dir
        self.env = list(env)
        self.debug = debug
        self.publish_binary = publish_binary or default_publish_binary()
        self.log = ShimLog(
            os.path.join(bundle.path, "log"), namespace=bundle.namespace, task_id=bundle.id
        )

    def __repr__(self) -> str:
        return f"ShimBinary({self.runtime_path!r}, bundle={self.bundle.path!r})"

    @property
    def namespace(self) -> str:
        """The namespace of the bundle's task."""
        return self.bundle.namespace

    @property
    def name(self) -> str:
        """The binary's base name, e.g. ``containerd-shim-runc-v2``."""
        return os.path.basename(self.runtime_path)

    def _common_args(self) -> list[str]:
        return [
            self.runtime_path,
            "-namespace", self.namespace,
            "-address", self.grpc_address,
            "-publish-binary", self.publish_binary,
            "-id", self.bundle.id,
        ]  # fmt: skip

    def start_args(self) -> list[str]:
        """argv of ``start``: ``<shim> -namespace N -address A -publish-binary B -id I [-debug]
        start``."""
        return [*self._common_args(), *(["-debug"] if self.debug else []), "start"]

    def delete_args(self) -> list[str]:
        """argv of ``delete``: ``... -id I -bundle <bundle> [-debug] delete``."""
        return [
            *self._common_args(),
            "-bundle", self.bundle.path,
            *(["-debug"] if self.debug else []),
            "delete",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The environment both commands run with (see :func:`shim_env`)."""
        return shim_env(
            grpc_address=self.grpc_address,
            ttrpc_address=self.ttrpc_address,
            namespace=self.namespace,
            extra=self.env,
        )

    def bootstrap_params(self, options: any_pb2.Any | None) -> bootstrap_pb2.BootstrapParams:
        """The ``BootstrapParams`` a 2.3+ shim reads on stdin (containerd's ``binary.go``)."""
        params = bootstrap_pb2.BootstrapParams(
            instance_id=self.bundle.id,
            namespace=self.namespace,
            log_level=log_level_for(logging.DEBUG if self.debug else logging.INFO),
            containerd_version=_our_version(),
            containerd_ttrpc_address=self.ttrpc_address,
            containerd_grpc_address=self.grpc_address,
            containerd_binary=self.publish_binary,
            socket_dir=self.socket_dir,
        )
        if options is not None:
            params.extensions.add().value.CopyFrom(options)
        return params

    async def start(
        self, options: any_pb2.Any | None = None, *, bootstrap: bool = False
    ) -> ShimEndpoint:
        """Run the shim's ``start`` command in the bundle and return where its daemon listens.

        stdin is ``options`` (the task's effective runtime options Any) serialized, or nothing;
        with ``bootstrap=True`` (a runtime that speaks the 2.3+ protocol) it is
        :meth:`bootstrap_params` instead. The ``log`` FIFO is opened and drained first. On
        success ``shim-binary-path`` (0600) and ``bootstrap.json`` are written in the bundle.

        Raises :class:`ShimCommandError` when the command exits non-zero (the message names the
        binary and carries its output and last log lines), :class:`errdefs.NotImplemented` for a
        shim protocol version above 3. Cancellation kills the ``start`` process.
        """
        if bootstrap:
            stdin: bytes | None = self.bootstrap_params(options).SerializeToString()
        else:
            stdin = options.SerializeToString() if options is not None else None
        self.log.open()
        preimport.import_meanwhile(AFTER_START)
        try:
            returncode, out, _ = await _run(
                self.start_args(),
                stdin=stdin,
                cwd=self.bundle.path,
                env=self.environment(),
                combine_output=True,
            )
        except asyncio.CancelledError:
            self.log.close()
            raise
        except BaseException as exc:
            tail = self.log.tail()
            self.log.close()
            if isinstance(exc, errdefs.ContainerdError) and tail:
                raise type(exc)(f"{exc}; last shim log lines:\n{tail}") from exc
            raise
        if returncode != 0:
            output = out.decode("utf-8", errors="replace").strip()
            tail = self.log.tail()
            self.log.close()
            message = f"{self.runtime_path} start failed: {output}: {_exit_text(returncode)}"
            if tail:
                message += f"; last shim log lines:\n{tail}"
            raise ShimCommandError(message, exit_status=returncode, output=output, log_tail=tail)
        try:
            write_file(
                os.path.join(self.bundle.path, SHIM_BINARY_PATH_FILE), self.runtime_path.encode()
            )
            endpoint = parse_start_response(out)
            write_bootstrap_json(self.bundle.path, endpoint)
        except BaseException:
            await self._reap_after_failed_start(options)
            raise
        return endpoint

    async def _reap_after_failed_start(self, options: any_pb2.Any | None) -> None:
        """Best effort: the shim started something we cannot use; let its ``delete`` reap it."""
        try:
            async with asyncio.timeout(_REAP_TIMEOUT):
                await self.delete(options, remove_bundle=False)
        except Exception as exc:
            log.debug(
                "shim %s/%s: delete after a failed start: %s", self.namespace, self.bundle.id, exc
            )
        finally:
            self.log.close()

    async def delete(
        self, options: any_pb2.Any | None = None, *, remove_bundle: bool = True
    ) -> Exit:
        """Run the shim's ``delete`` command (reaps a dead shim's container) and return its Exit.

        stdin is ``options`` (the task's effective runtime options Any, as given to ``start``)
        serialized, or /dev/null without them -- containerd always sends nothing, and its shims
        do not read stdin on ``delete``. stdout must be a task ``DeleteResponse``; stderr of a
        successful run is logged as a warning. The shim log is closed, then the bundle is
        deleted (unless ``remove_bundle`` is False).

        Raises :class:`ShimCommandError` (with the shim's stderr) when the command exits
        non-zero, :class:`errdefs.NotFound` when the bundle directory is gone, and
        :class:`errdefs.Unknown` when stdout is not a ``DeleteResponse``.
        """
        if not os.path.isdir(self.bundle.path):
            self.log.close()
            raise errdefs.NotFound(
                f"cannot run {self.name} delete for task {self.bundle.id}: "
                f"bundle {self.bundle.path} does not exist"
            )
        try:
            returncode, out, err = await _run(
                self.delete_args(),
                stdin=options.SerializeToString() if options is not None else None,
                cwd=self.bundle.path,
                env=self.environment(),
                combine_output=False,
            )
        finally:
            self.log.close()
        errors = err.decode("utf-8", errors="replace").strip()
        if returncode != 0:
            raise ShimCommandError(
                f"{self.runtime_path} delete failed: {errors}: {_exit_text(returncode)}",
                exit_status=returncode,
                output=errors,
            )
        if errors:
            log.warning(
                "shim %s/%s: warnings while cleaning up dead shim: %s",
                self.namespace,
                self.bundle.id,
                errors,
                extra={"namespace": self.namespace, "task_id": self.bundle.id},
            )
        from runtime_v2.api import task_v3_pb2  # a dead shim's delete: never on a run's way

        response = task_v3_pb2.DeleteResponse()
        try:
            response.ParseFromString(out)
        except DecodeError as exc:
            raise errdefs.Unknown(
                f"{self.runtime_path} delete printed something that is not a DeleteResponse "
                f"({len(out)} bytes): {exc}"
            ) from None
        if remove_bundle:
            await asyncio.to_thread(self.bundle.delete)
        return Exit(
            pid=response.pid,
            status=response.exit_status,
            timestamp=from_timestamp(response.exited_at),
        )

    def close(self) -> None:
        """Stop draining the shim's log FIFO (call once the shim is gone); idempotent."""
        self.log.close()


async def run_info(
    runtime_path: str, options: any_pb2.Any | None = None
) -> introspection_pb2.RuntimeInfo:
    """Run ``<runtime_path> -info`` and decode the ``RuntimeInfo`` it prints (containerd's
    ``core/runtime/v2/manager.go`` ``runtimeInfo``).

    stdin is ``options`` serialized (or empty); our own cwd and environment are used.

    Raises :class:`errdefs.NotImplemented` for a shim that has no ``-info`` flag (containerd
    1.x shims; the message gives the shim's version when it can), :class:`ShimCommandError`
    for another non-zero exit ("failed to run [...]: exit status N (stderr: ...)"), and
    :class:`errdefs.Unknown` when stdout is not a ``RuntimeInfo``.
    """
    from runtime_v2.api import introspection_pb2  # only -info needs it, never a run

    argv = [runtime_path, "-info"]
    returncode, out, err = await _run(
        argv,
        stdin=options.SerializeToString() if options is not None else b"",
        cwd=None,
        env=None,
        combine_output=False,
    )
    errors = err.decode("utf-8", errors="replace")
    if returncode != 0:
        if _UNKNOWN_INFO_FLAG in errors:
            version = await _shim_version(runtime_path)
            who = f"{os.path.basename(runtime_path)} ({version})" if version else runtime_path
            raise errdefs.NotImplemented(
                f"{who} does not support -info: shims before containerd 2.0 have no runtime "
                "info; use a newer shim to get runtime features"
            )
        raise ShimCommandError(
            f"failed to run [{' '.join(argv)}]: {_exit_text(returncode)} (stderr: {errors!r})",
            exit_status=returncode,
            output=errors,
        )
    info = introspection_pb2.RuntimeInfo()
    try:
        info.ParseFromString(out)
    except DecodeError as exc:
        raise errdefs.Unknown(
            f"failed to unmarshal stdout from [{' '.join(argv)}] into *types.RuntimeInfo: {exc}"
        ) from None
    return info


async def _shim_version(runtime_path: str) -> str:
    """The ``Version:`` a shim's ``-v`` prints, or "" (never raises)."""
    try:
        async with asyncio.timeout(_REAP_TIMEOUT):
            returncode, out, _ = await _run(
                [runtime_path, "-v"], stdin=None, cwd=None, env=None, combine_output=True
            )
    except Exception:
        return ""
    match = _VERSION_LINE.search(out.decode("utf-8", errors="replace"))
    return match.group(1) if returncode == 0 and match else ""


#: The containerd release whose shim protocol taskplane speaks (BootstrapParams of 2.3+, task
#: API v3): what ``containerd_version`` says, so a shim comparing versions sees a containerd it
#: supports; taskplane's own version follows as semver build metadata.
CONTAINERD_COMPAT_VERSION = "2.4.0"


@functools.cache
def _our_version() -> str:
    """``2.4.0+taskplane.<version>``: a semver a shim's version checks accept."""
    ours = installed_version("taskplane")
    if ours is None:  # metadata importlib.metadata finds some other way (a zip, an egg)
        # Only then: importing it (email, zipfile, csv...) costs a ``run`` 14 ms.
        import importlib.metadata

        try:
            ours = importlib.metadata.version("taskplane")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
            ours = "dev"
    build = re.sub(r"[^0-9A-Za-z.-]", "-", ours)  # semver build identifiers
    return f"{CONTAINERD_COMPAT_VERSION}+taskplane.{build}"


def installed_version(name: str) -> str | None:
    """The ``Version`` of the installed distribution ``name`` (lower case, letters only), as
    ``importlib.metadata.version`` finds it: from the first ``sys.path`` directory holding a
    ``<name>-*.dist-info`` or ``<name>.egg-info``/``<name>-*.egg-info`` directory (dist-info
    first within one directory), the ``Version:`` header of its ``METADATA``/``PKG-INFO``.
    None when no such directory has one (importlib.metadata may still find it elsewhere).

    Reads one directory listing per ``sys.path`` entry and one file, where importing
    importlib.metadata alone costs a 2.4 shim's ``run`` about 14 ms."""
    for entry in sys.path:
        try:
            children = sorted(os.listdir(entry or "."), key=lambda c: not c.endswith(".dist-info"))
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if low.rpartition(".")[2] not in ("dist-info", "egg-info"):
                continue
            if low.rpartition(".")[0].partition("-")[0] != name:
                continue
            metadata = "METADATA" if low.endswith(".dist-info") else "PKG-INFO"
            try:
                with open(os.path.join(entry or ".", child, metadata), encoding="utf-8") as f:
                    for line in f:
                        if not line.strip():
                            break  # the headers end here
                        key, sep, value = line.partition(":")
                        if sep and key.lower() == "version":
                            return value.strip()
            except OSError:
                continue
    return None


def log_level_for(level: int) -> bootstrap_pb2.LogLevel:
    """The ``BootstrapParams.log_level`` for taskplane's effective log ``level``: DEBUG under
    ``--log-level debug`` (as containerd passes its own level), INFO otherwise -- never less,
    because the shim's warnings and errors go into taskplane's create errors."""
    return bootstrap_pb2.DEBUG if level <= logging.DEBUG else bootstrap_pb2.INFO
