"""A container record, as containerd's ``containers.Container`` (``core/containers``): what
the metadata store (:mod:`plugins.metadata`) keeps per namespace.

A module of its own so that the class is built by the first record read or written, not by
every command that boots the store (``plugins ls``, ``tasks ls`` read no record).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

__all__ = ["Container"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _freeze_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    return types.MappingProxyType(dict(labels or {}))


@attrs.frozen
class Container:
    """A container record, as containerd's ``containers.Container`` (the fields the runtime uses).

    ``runtime_options`` is a marshalled protobuf ``Any`` (the runtime handler's options, e.g.
    ``containerd.runc.v1.Options``); ``spec`` is the OCI runtime spec as JSON bytes.
    ``labels`` is read-only. ``created_at`` / ``updated_at`` are set by the store (UTC); the
    values given to :meth:`plugins.metadata.ContainerStore.create` are ignored.
    """

    id: str
    runtime_name: str
    runtime_options: bytes | None = None
    spec: bytes | None = None
    sandbox_id: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_labels, hash=False)
    created_at: datetime = _EPOCH
    updated_at: datetime = _EPOCH
