"""The catalogue of containerd's configuration surface that taskplane does not implement.

taskplane reads containerd's ``config.toml``; a config a user already has for containerd 1.6,
1.7 or 2.x holds many settings taskplane has no use for (its gRPC API, CRI, snapshotters, ...).
:data:`CATALOGUE` names each of them with why it is ignored, so loading such a file warns
("``grpc``: containerd's gRPC API; taskplane has none: ignored") instead of failing, while a key
no containerd version has stays an error. The registry knows no plugin types; it takes this
catalogue as a :class:`registry.config.KnownSettings`.

Sources: the ``containerd config default`` output of 1.6, 1.7 and 2.0-2.4, and the config
structs in containerd's ``cmd/containerd/server/config/config.go`` (top-level keys, the
version 1 plugin names of ``v1MigratePluginName``) and ``pkg/timeout`` users (``[timeouts]``).
"""

from __future__ import annotations

from collections.abc import Mapping

from registry.config import KnownSettings

__all__ = [
    "CATALOGUE",
    "TIMEOUT_SHIM_CLEANUP",
    "TIMEOUT_SHIM_LOAD",
    "TIMEOUT_SHIM_SHUTDOWN",
    "UNIMPLEMENTED_PLUGINS",
    "UNIMPLEMENTED_TOP_LEVEL",
    "rename_v1_plugin",
]

_NO_DAEMON = "taskplane has no daemon"

#: containerd's top-level keys and tables taskplane does not implement (1.6 to 2.4).
UNIMPLEMENTED_TOP_LEVEL: Mapping[str, str] = {
    "temp": f"containerd's temporary directory; {_NO_DAEMON}",
    "plugin_dir": "containerd 1.x's Go plugin directory; taskplane loads Python entry points",
    "oom_score": f"the containerd daemon's OOM score; {_NO_DAEMON}",
    "cgroup": f"the containerd daemon's cgroup; {_NO_DAEMON}",
    "debug": "containerd's debug socket and log level; taskplane has neither (use --log-level)",
    "grpc": "containerd's gRPC API; taskplane has none",
    "ttrpc": "containerd's ttrpc API; taskplane has none",
    "metrics": "containerd's metrics endpoint; taskplane has none",
    "proxy_plugins": "containerd's proxy plugins (served over gRPC); taskplane has none",
    "stream_processors": "containerd's image layer stream processors; taskplane pulls no images",
}

# What each plugin type is for, to explain an ignored plugin table in one phrase.
_TYPES = {
    "io.containerd.content.v1": "{id} store",
    "io.containerd.cri.v1": "CRI (Kubernetes) {id} settings",
    "io.containerd.differ.v1": "{id} layer differ",
    "io.containerd.gc.v1": "metadata garbage collector",
    "io.containerd.grpc.v1": "{id} gRPC service",
    "io.containerd.http.v1": "{id} HTTP endpoint",
    "io.containerd.image-verifier.v1": "{id} image verifier",
    "io.containerd.internal.v1": "internal {id} service",
    "io.containerd.lease.v1": "lease {id}",
    "io.containerd.metadata.v1": "{id} metadata database (taskplane keeps its own in SQLite)",
    "io.containerd.metrics.v1": "{id} metrics",
    "io.containerd.monitor.v1": "{id} task monitor",
    "io.containerd.monitor.container.v1": "container {id} monitor",
    "io.containerd.monitor.task.v1": "{id} task monitor",
    "io.containerd.mount-handler.v1": "{id} mount handler",
    "io.containerd.mount-manager.v1": "{id} mount manager",
    "io.containerd.nri.v1": "NRI (node resource interface) plugin host",
    "io.containerd.podsandbox.controller.v1": "{id} pod sandbox controller",
    "io.containerd.runtime.v1": "runtime v1 (containerd-shim, removed in 2.0)",
    "io.containerd.sandbox.controller.v1": "{id} sandbox controller",
    "io.containerd.sandbox.store.v1": "{id} sandbox store",
    "io.containerd.server.v1": "{id} server",
    "io.containerd.service.v1": "{id}",
    "io.containerd.snapshotter.v1": "{id} snapshotter (taskplane has only overlayfs)",
    "io.containerd.streaming.v1": "streaming {id}",
    "io.containerd.tracing.processor.v1": "{id} tracing exporter",
    "io.containerd.transfer.v1": "{id} image transfer service",
    "io.containerd.ttrpc.v1": "{id} ttrpc service",
    "io.containerd.warning.v1": "{id} warnings",
}

# Every plugin URI with a config table in the ``config default`` of containerd 1.6, 1.7 and
# 2.0-2.4, and every other plugin containerd 2.4's ``ctr plugins ls`` lists (users name them in
# disabled_plugins), except the ones taskplane implements.
_PLUGINS = (
    "io.containerd.content.v1.content",
    "io.containerd.cri.v1.images",
    "io.containerd.cri.v1.runtime",
    "io.containerd.differ.v1.erofs",
    "io.containerd.differ.v1.walking",
    "io.containerd.gc.v1.scheduler",
    *(
        f"io.containerd.grpc.v1.{id_}"
        for id_ in (
            "containers", "content", "cri", "diff", "events", "healthcheck", "images",
            "introspection", "leases", "mounts", "namespaces", "sandbox-controllers",
            "sandboxes", "snapshots", "streaming", "tasks", "transfer", "version",
        )
    ),
    "io.containerd.http.v1.pprof",
    "io.containerd.image-verifier.v1.bindir",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.internal.v1.tracing",
    "io.containerd.lease.v1.manager",
    "io.containerd.metadata.v1.bolt",
    "io.containerd.metrics.v1.grpc-otel",
    "io.containerd.metrics.v1.grpc-prometheus",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.monitor.container.v1.restart",
    "io.containerd.monitor.task.v1.cgroups",
    "io.containerd.mount-handler.v1.erofs",
    "io.containerd.mount-manager.v1.bolt",
    "io.containerd.nri.v1.nri",
    "io.containerd.podsandbox.controller.v1.podsandbox",
    "io.containerd.runtime.v1.linux",
    "io.containerd.sandbox.controller.v1.podsandbox",
    "io.containerd.sandbox.controller.v1.shim",
    "io.containerd.sandbox.store.v1.local",
    "io.containerd.server.v1.debug",
    "io.containerd.server.v1.grpc",
    "io.containerd.server.v1.grpc-tcp",
    "io.containerd.server.v1.metrics",
    "io.containerd.server.v1.ttrpc",
    *(
        f"io.containerd.service.v1.{id_}-service"
        for id_ in (
            "containers", "content", "diff", "images", "introspection", "leases",
            "namespaces", "snapshots", "tasks",
        )
    ),
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.blockfile",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.erofs",
    "io.containerd.snapshotter.v1.native",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.streaming.v1.manager",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.transfer.v1.local",
    "io.containerd.ttrpc.v1.otelttrpc",
    "io.containerd.warning.v1.deprecations",
)  # fmt: skip


def _explain(uri: str) -> str:
    type_, _, id_ = uri.rpartition(".")
    what = _TYPES[type_].format(id=id_)
    return f"containerd's {what}; taskplane does not implement it"


#: containerd's plugins taskplane does not implement: uri -> explanation.
UNIMPLEMENTED_PLUGINS: Mapping[str, str] = {uri: _explain(uri) for uri in _PLUGINS}

#: Keys containerd has in the tables of plugins taskplane implements, that taskplane does not.
_PLUGIN_KEYS: Mapping[str, Mapping[str, str]] = {
    "io.containerd.runtime.v2.task": {
        # A version 2 file's sched_core moves to the shim manager's env (its config migration);
        # in a version 3 file it is what containerd 2 also ignores.
        "sched_core": (
            "containerd 1.x's core scheduling switch, moved to "
            '[plugins."io.containerd.shim.v1.manager"] env = ["SCHED_CORE=1"] in version 3'
        ),
    },
    # containerd's overlayfs options beyond root_path (plugins/snapshots/overlay/plugin).
    "io.containerd.snapshotter.v1.overlayfs": {
        "upperdir_label": "containerd's label naming each snapshot's upper dir",
        "sync_remove": "containerd's synchronous snapshot removal (taskplane always is)",
        "slow_chown": "containerd's chown of layers for idmapped user namespaces",
        "mount_options": "containerd's extra overlay mount options",
    },
}

#: ``[timeouts]`` keys taskplane uses (their defaults are the runtime's constants).
TIMEOUT_SHIM_CLEANUP = "io.containerd.timeout.shim.cleanup"
TIMEOUT_SHIM_LOAD = "io.containerd.timeout.shim.load"
TIMEOUT_SHIM_SHUTDOWN = "io.containerd.timeout.shim.shutdown"

_TIMEOUTS: Mapping[str, str] = {
    "io.containerd.timeout.bolt.open": "containerd's bolt database deadline; taskplane has none",
    "io.containerd.timeout.cri.defercleanup": "containerd's CRI deadline; taskplane has no CRI",
    "io.containerd.timeout.metrics.shimstats": (
        "containerd's shim stats deadline; taskplane has no metrics"
    ),
    "io.containerd.timeout.task.state": (
        "containerd's deadline for its tasks service's State calls; taskplane has none"
    ),
}

# containerd's version 1 names of its core plugins (``v1MigratePluginName``).
_V1_NAMES: Mapping[str, str] = {
    "cri": "io.containerd.grpc.v1.cri",
    "cgroups": "io.containerd.monitor.v1.cgroups",
    "linux": "io.containerd.runtime.v1.linux",
    "scheduler": "io.containerd.gc.v1.scheduler",
    "bolt": "io.containerd.metadata.v1.bolt",
    "task": "io.containerd.runtime.v2.task",
    "opt": "io.containerd.internal.v1.opt",
    "restart": "io.containerd.internal.v1.restart",
    "tracing": "io.containerd.internal.v1.tracing",
    "otlp": "io.containerd.tracing.processor.v1.otlp",
    "aufs": "io.containerd.snapshotter.v1.aufs",
    "btrfs": "io.containerd.snapshotter.v1.btrfs",
    "devmapper": "io.containerd.snapshotter.v1.devmapper",
    "native": "io.containerd.snapshotter.v1.native",
    "overlayfs": "io.containerd.snapshotter.v1.overlayfs",
    "zfs": "io.containerd.snapshotter.v1.zfs",
}


def rename_v1_plugin(name: str) -> str:
    """A version 1 config's plugin name as a URI, by containerd 2's rules: a name with a dot is
    a URI already; a core plugin's id is its URI; ``*-service`` is a service; any other bare id
    is taken for a gRPC service (containerd warns that it is ambiguous)."""
    if "." in name:
        return name
    if name in _V1_NAMES:
        return _V1_NAMES[name]
    if name.endswith("-service"):
        return "io.containerd.service.v1." + name
    if name in ("windows", "windows-lcow"):
        return "io.containerd.snapshotter.v1." + name
    return "io.containerd.grpc.v1." + name


#: containerd's configuration surface taskplane knows of but does not implement.
CATALOGUE = KnownSettings(
    top_level=UNIMPLEMENTED_TOP_LEVEL,
    plugins=UNIMPLEMENTED_PLUGINS,
    plugin_keys=_PLUGIN_KEYS,
    timeouts=_TIMEOUTS,
    used_timeouts=frozenset({TIMEOUT_SHIM_CLEANUP, TIMEOUT_SHIM_LOAD, TIMEOUT_SHIM_SHUTDOWN}),
    rename_v1=rename_v1_plugin,
)
