"""A private containerd daemon for interop tests and benchmarks (../shared/upstream/README.md).

:class:`PrivateContainerd` runs a containerd binary on its own ``--root``, ``--state`` and
``--address`` under a directory it is given, with a config that disables the CRI and NRI
plugins (and, for Debian's 1.6, the snapshotters and tracing it cannot load here). Its log goes
to ``containerd.log`` there. ``path_prefix`` is put first on its PATH, so it starts that
directory's shim (and the shim that directory's runc). :meth:`PrivateContainerd.start` returns
once the daemon said it booted; :meth:`PrivateContainerd.stop` stops it by its PID. The shims it
started keep running after it stops, as with any containerd: delete their tasks first.

Its task state uses containerd's layout, ``<state>/io.containerd.runtime.v2.task/<ns>/<id>``
-- taskplane's too, so a taskplane pointed at the same ``--root``/``--state`` loads its bundles.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PrivateContainerd", "disabled_plugins"]

#: containerd logs this once every plugin has loaded and it serves its API.
_BOOTED = b"containerd successfully booted"
#: Upper bound for the daemon to boot or stop (only stops a hung run).
TIMEOUT = 30.0


def disabled_plugins(config_version: int) -> list[str]:
    """Plugins a private containerd of this config version must not load here: CRI and NRI
    (would manage this host's pods), and for 1.6 (config version 2) the snapshotters and
    tracing that fail or are slow without their backing."""
    if config_version >= 3:
        return ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]
    return [
        "io.containerd.grpc.v1.cri",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
    ]


class PrivateContainerd:
    """One private containerd daemon under ``base`` (see the module docstring).

    ``containerd`` and ``ctr`` are the binaries; ``config_version`` 3 for containerd 2.x, 2 for
    1.6; ``path_prefix`` directories go first on the daemon's PATH.
    """

    def __init__(
        self,
        base: Path,
        *,
        containerd: str,
        ctr: str,
        config_version: int = 3,
        path_prefix: Sequence[str] = (),
    ) -> None:
        self.base = base
        self.containerd = containerd
        self.ctr = ctr
        self.config_version = config_version
        self.path_prefix = list(path_prefix)
        self.root = base / "root"
        self.state = base / "state"
        self.address = str(base / "c.sock")
        self.log_path = base / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._booted = threading.Event()
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The daemon's PID (0 when not running)."""
        return self.proc.pid if self.proc is not None else 0

    def env(self) -> dict[str, str]:
        """The daemon's environment: ours with :attr:`path_prefix` first on PATH."""
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([*self.path_prefix, env.get("PATH", "/usr/bin:/bin")])
        return env

    def start(self) -> None:
        """Start the daemon and wait until it has booted (RuntimeError when it exits first)."""
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "config.toml"
        disabled = ", ".join(f'"{p}"' for p in disabled_plugins(self.config_version))
        config.write_text(
            f"version = {self.config_version}\ndisabled_plugins = [{disabled}]\n"
            '[debug]\n  level = "info"\n'
        )
        argv = [self.containerd, "--config", str(config), "--root", str(self.root)]
        argv += ["--state", str(self.state), "--address", self.address]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
            start_new_session=True,
        )
        self._drain = threading.Thread(target=self._copy_log, daemon=True)
        self._drain.start()
        self._booted.wait(TIMEOUT)
        if not self._booted.is_set() or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(
                f"{self.containerd} did not boot: {self.log_path.read_text(errors='replace')}"
            )

    def _copy_log(self) -> None:
        """Copy the daemon's stderr to :attr:`log_path`, noting the boot line (a thread: the
        pipe must be drained for the daemon's whole life)."""
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.log_path, "wb") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                if _BOOTED in line:
                    self._booted.set()
        self._booted.set()  # exited: wake start()

    def ctr_argv(self, namespace: str, *args: str) -> list[str]:
        """``ctr -a <address> -n <namespace> ARGS...``."""
        return [self.ctr, "-a", self.address, "-n", namespace, *args]

    def ctr_run(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against the daemon; CalledProcessError (with its stderr) on failure."""
        return subprocess.run(
            self.ctr_argv(namespace, *args),
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT,
            env=self.env(),
        )

    def stop(self) -> None:
        """Stop the daemon by its PID (SIGTERM, SIGKILL after :data:`TIMEOUT`); idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._drain is not None:
            self._drain.join(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()
