"""containerd 2's plugin type names (``plugins/types.go``) and plugin property keys.

A plugin's URI is ``f"{type}.{id}"``, e.g. ``io.containerd.event.v1.exchange``. Third-party
plugins may use these names to require containerd-compatible plugin types.

The property keys are the ones :class:`registry.InitContext` fills in for every plugin; they are
re-exported from :mod:`registry` so there is one source of truth.
"""

from __future__ import annotations

from typing import Final

from registry import (
    PROPERTY_GRPC_ADDRESS,
    PROPERTY_ROOT,
    PROPERTY_STATE,
    PROPERTY_TTRPC_ADDRESS,
)

__all__ = [
    "ALL_PLUGIN_TYPES",
    "CONTAINER_MONITOR_PLUGIN",
    "CONTENT_PLUGIN",
    "CRI_SERVICE_PLUGIN",
    "DEPRECATIONS_PLUGIN",
    "DIFF_PLUGIN",
    "EVENT_PLUGIN",
    "GC_PLUGIN",
    "GRPC_PLUGIN",
    "HTTP_HANDLER",
    "IMAGE_VERIFIER_PLUGIN",
    "INTERNAL_PLUGIN",
    "LEASE_PLUGIN",
    "METADATA_PLUGIN",
    "METRICS_PLUGIN",
    "MOUNT_HANDLER_PLUGIN",
    "MOUNT_MANAGER_PLUGIN",
    "NRI_API_PLUGIN",
    "POD_SANDBOX_PLUGIN",
    "PROPERTY_GRPC_ADDRESS",
    "PROPERTY_ROOT",
    "PROPERTY_ROOT_DIR",
    "PROPERTY_STATE",
    "PROPERTY_STATE_DIR",
    "PROPERTY_TTRPC_ADDRESS",
    "RUNTIME_PLUGIN",
    "RUNTIME_PLUGIN_V2",
    "RUNTIME_RUNC_V2",
    "RUNTIME_RUNHCS_V1",
    "SANDBOX_CONTROLLER_PLUGIN",
    "SANDBOX_STORE_PLUGIN",
    "SERVER_PLUGIN",
    "SERVICE_PLUGIN",
    "SHIM_PLUGIN",
    "SNAPSHOT_PLUGIN",
    "STREAMING_PLUGIN",
    "TASK_MONITOR_PLUGIN",
    "TRACING_PROCESSOR_PLUGIN",
    "TRANSFER_PLUGIN",
    "TTRPC_PLUGIN",
    "WARNING_PLUGIN",
]

#: An internal plugin of the daemon.
INTERNAL_PLUGIN: Final = "io.containerd.internal.v1"
#: A v1 runtime (containerd 1.x's linux runtime; kept for the name only).
RUNTIME_PLUGIN: Final = "io.containerd.runtime.v1"
#: A v2 runtime: the shim task manager (``io.containerd.runtime.v2.task``).
RUNTIME_PLUGIN_V2: Final = "io.containerd.runtime.v2"
#: An internal service.
SERVICE_PLUGIN: Final = "io.containerd.service.v1"
#: A gRPC service.
GRPC_PLUGIN: Final = "io.containerd.grpc.v1"
#: A ttrpc service (for shims, e.g. the events Forward service).
TTRPC_PLUGIN: Final = "io.containerd.ttrpc.v1"
#: A snapshotter.
SNAPSHOT_PLUGIN: Final = "io.containerd.snapshotter.v1"
#: A task monitor.
TASK_MONITOR_PLUGIN: Final = "io.containerd.monitor.task.v1"
#: A container monitor.
CONTAINER_MONITOR_PLUGIN: Final = "io.containerd.monitor.container.v1"
#: A differ.
DIFF_PLUGIN: Final = "io.containerd.differ.v1"
#: A metadata store (taskplane: ``io.containerd.metadata.v1.sqlite``).
METADATA_PLUGIN: Final = "io.containerd.metadata.v1"
#: A content store.
CONTENT_PLUGIN: Final = "io.containerd.content.v1"
#: A garbage collection policy.
GC_PLUGIN: Final = "io.containerd.gc.v1"
#: Event handling (taskplane: ``io.containerd.event.v1.exchange``).
EVENT_PLUGIN: Final = "io.containerd.event.v1"
#: A lease manager.
LEASE_PLUGIN: Final = "io.containerd.lease.v1"
#: A stream manager.
STREAMING_PLUGIN: Final = "io.containerd.streaming.v1"
#: An OpenTelemetry span processor.
TRACING_PROCESSOR_PLUGIN: Final = "io.containerd.tracing.processor.v1"
#: The NRI adaptation interface.
NRI_API_PLUGIN: Final = "io.containerd.nri.v1"
#: A transfer service.
TRANSFER_PLUGIN: Final = "io.containerd.transfer.v1"
#: A sandbox store.
SANDBOX_STORE_PLUGIN: Final = "io.containerd.sandbox.store.v1"
#: The pod sandbox controller (pause container as the sandbox).
POD_SANDBOX_PLUGIN: Final = "io.containerd.podsandbox.controller.v1"
#: A sandbox controller.
SANDBOX_CONTROLLER_PLUGIN: Final = "io.containerd.sandbox.controller.v1"
#: An image verifier.
IMAGE_VERIFIER_PLUGIN: Final = "io.containerd.image-verifier.v1"
#: A warning (deprecation) service.
WARNING_PLUGIN: Final = "io.containerd.warning.v1"
#: The CRI service.
CRI_SERVICE_PLUGIN: Final = "io.containerd.cri.v1"
#: The shim manager (``io.containerd.shim.v1.manager``).
SHIM_PLUGIN: Final = "io.containerd.shim.v1"
#: An HTTP handler.
HTTP_HANDLER: Final = "io.containerd.http.v1"
#: The mount manager (containerd 2.2+, ``io.containerd.mount-manager.v1.bolt``).
MOUNT_MANAGER_PLUGIN: Final = "io.containerd.mount-manager.v1"
#: A mount handler the mount manager delegates a mount type to (containerd 2.2+).
MOUNT_HANDLER_PLUGIN: Final = "io.containerd.mount-handler.v1"
#: A metrics exporter (``io.containerd.metrics.v1.cgroups`` and friends).
METRICS_PLUGIN: Final = "io.containerd.metrics.v1"
#: The server itself (containerd registers its own server-level services under it).
SERVER_PLUGIN: Final = "io.containerd.server.v1"

#: Every plugin type above, in containerd's order.
ALL_PLUGIN_TYPES: Final[tuple[str, ...]] = (
    INTERNAL_PLUGIN,
    RUNTIME_PLUGIN,
    RUNTIME_PLUGIN_V2,
    SERVICE_PLUGIN,
    GRPC_PLUGIN,
    TTRPC_PLUGIN,
    SNAPSHOT_PLUGIN,
    TASK_MONITOR_PLUGIN,
    CONTAINER_MONITOR_PLUGIN,
    DIFF_PLUGIN,
    METADATA_PLUGIN,
    CONTENT_PLUGIN,
    GC_PLUGIN,
    EVENT_PLUGIN,
    LEASE_PLUGIN,
    STREAMING_PLUGIN,
    TRACING_PROCESSOR_PLUGIN,
    NRI_API_PLUGIN,
    TRANSFER_PLUGIN,
    SANDBOX_STORE_PLUGIN,
    POD_SANDBOX_PLUGIN,
    SANDBOX_CONTROLLER_PLUGIN,
    IMAGE_VERIFIER_PLUGIN,
    WARNING_PLUGIN,
    CRI_SERVICE_PLUGIN,
    SHIM_PLUGIN,
    HTTP_HANDLER,
    MOUNT_MANAGER_PLUGIN,
    MOUNT_HANDLER_PLUGIN,
    METRICS_PLUGIN,
    SERVER_PLUGIN,
)

#: The runc runtime that supports multiple containers per shim.
RUNTIME_RUNC_V2: Final = "io.containerd.runc.v2"
#: The runtime name of runhcs (Windows).
RUNTIME_RUNHCS_V1: Final = "io.containerd.runhcs.v1"
#: The id of the deprecations warning plugin (``io.containerd.warning.v1.deprecations``).
DEPRECATIONS_PLUGIN: Final = "deprecations"

#: containerd's name for :data:`PROPERTY_ROOT` (``io.containerd.plugin.root``).
PROPERTY_ROOT_DIR: Final = PROPERTY_ROOT
#: containerd's name for :data:`PROPERTY_STATE` (``io.containerd.plugin.state``).
PROPERTY_STATE_DIR: Final = PROPERTY_STATE
