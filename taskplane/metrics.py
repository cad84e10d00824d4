"""A task's cgroup statistics, decoded from the Any its shim's ``Stats`` returns.

A runc shim answers ``Stats`` with ``io.containerd.cgroups.v1.Metrics`` on a cgroup v1 host
and ``io.containerd.cgroups.v2.Metrics`` on a cgroup v2 host (containerd's
``cmd/containerd-shim-runc-v2/task/service.go``). :func:`decode` turns either into one
:class:`Metrics` value with the figures ``ctr task metrics`` shows (memory, cpu, pids, io)::

    metrics = decode(await task.stats())
    print(metrics.memory_usage, metrics.as_dict())
"""

from __future__ import annotations

from typing import Any

import attrs
from google.protobuf import any_pb2

from plugins import errdefs

__all__ = ["Metrics", "decode"]


@attrs.frozen
class Metrics:
    """One task's statistics; 0 where the cgroup does not report a figure.

    ``cgroup`` is ``"v1"`` or ``"v2"``; memory figures are bytes (``memory_limit`` is the
    kernel's "no limit" value when none is set), cpu figures nanoseconds, io figures bytes read
    and written over every device.
    """

    cgroup: str
    memory_usage: int
    memory_limit: int
    memory_max_usage: int
    cpu_usage_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    cpu_throttled_periods: int
    pids_current: int
    pids_limit: int
    io_read_bytes: int
    io_write_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """The figures grouped as ``{"cgroup", "memory": {...}, "cpu": {...}, ...}`` (JSON)."""
        return {
            "cgroup": self.cgroup,
            "memory": {
                "usage": self.memory_usage,
                "limit": self.memory_limit,
                "max_usage": self.memory_max_usage,
            },
            "cpu": {
                "usage_ns": self.cpu_usage_ns,
                "user_ns": self.cpu_user_ns,
                "system_ns": self.cpu_system_ns,
                "throttled_periods": self.cpu_throttled_periods,
            },
            "pids": {"current": self.pids_current, "limit": self.pids_limit},
            "io": {"read_bytes": self.io_read_bytes, "write_bytes": self.io_write_bytes},
        }

    def rows(self) -> list[list[str]]:
        """``[METRIC, VALUE]`` rows for a table, in :meth:`as_dict`'s order."""
        out = []
        for group, values in self.as_dict().items():
            if isinstance(values, dict):
                out += [[f"{group}.{key}", str(value)] for key, value in values.items()]
        return out


def decode(any_: any_pb2.Any) -> Metrics:
    """Decode a shim's Stats Any; ``errdefs.NotImplemented`` naming any other type."""
    from runtime_v2 import typeurl
    from runtime_v2.api import cgroups_v1_metrics_pb2 as v1
    from runtime_v2.api import cgroups_v2_metrics_pb2 as v2

    if typeurl.is_(any_, v1.Metrics):
        return _from_v1(typeurl.unpack_as(any_, v1.Metrics))
    if typeurl.is_(any_, v2.Metrics):
        return _from_v2(typeurl.unpack_as(any_, v2.Metrics))
    raise errdefs.NotImplemented(
        f'cannot decode statistics of type "{any_.type_url or "(empty)"}" '
        "(taskplane knows cgroup v1 and v2 metrics)"
    )


def _from_v1(m: Any) -> Metrics:
    def io_total(op: str) -> int:
        return sum(e.value for e in m.blkio.io_service_bytes_recursive if e.op.lower() == op)

    return Metrics(
        cgroup="v1",
        memory_usage=m.memory.usage.usage,
        memory_limit=m.memory.usage.limit,
        memory_max_usage=m.memory.usage.max,
        cpu_usage_ns=m.cpu.usage.total,
        cpu_user_ns=m.cpu.usage.user,
        cpu_system_ns=m.cpu.usage.kernel,
        cpu_throttled_periods=m.cpu.throttling.throttled_periods,
        pids_current=m.pids.current,
        pids_limit=m.pids.limit,
        io_read_bytes=io_total("read"),
        io_write_bytes=io_total("write"),
    )


def _from_v2(m: Any) -> Metrics:
    return Metrics(
        cgroup="v2",
        memory_usage=m.memory.usage,
        memory_limit=m.memory.usage_limit,
        memory_max_usage=m.memory.max_usage,
        cpu_usage_ns=m.cpu.usage_usec * 1000,
        cpu_user_ns=m.cpu.user_usec * 1000,
        cpu_system_ns=m.cpu.system_usec * 1000,
        cpu_throttled_periods=m.cpu.nr_throttled,
        pids_current=m.pids.current,
        pids_limit=m.pids.limit,
        io_read_bytes=sum(e.rbytes for e in m.io.usage),
        io_write_bytes=sum(e.wbytes for e in m.io.usage),
    )
