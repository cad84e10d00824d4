"""One effective runtime options value per task: which runtime options win.

containerd carries two option blobs: *runtime options* (from the runtime handler's config, e.g.
``binary_name = "/usr/sbin/crun"``) and *task options* (from the client creating the task, e.g.
``io_uid``/``io_gid`` for user namespaces). Each of its call sites picks one of the two, so a task
options value that sets only ``io_uid`` silently drops ``binary_name`` and the wrong runc runs.

taskplane computes the value once, with :func:`effective_runtime_options`:

- both of the same message type (e.g. ``containerd.runc.v1.Options``): start from the runtime
  options and overlay every field the task options actually *set* (present on the wire:
  proto3 non-default scalars, non-empty repeated fields, set messages/optional fields);
- different types: the task options win entirely (recorded in :attr:`EffectiveOptions.note`);
- only one present: that one.

The result remembers where each field came from, and the same value is passed to the shim's
``start``, ``-info``, the Create RPC and ``delete``.

>>> from runtime_v2.api import runc_options_pb2 as runc
>>> eff = effective_runtime_options(runc.Options(binary_name="crun"), runc.Options(io_uid=1000))
>>> eff.message.binary_name, eff.message.io_uid, dict(eff.sources)
('crun', 1000, {'io_uid': 'task', 'binary_name': 'runtime'})
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Literal, TypeAlias

import attrs
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from runtime_v2 import errdefs, typeurl
from runtime_v2.api import runc_options_pb2

__all__ = [
    "RUNC_RUNTIMES",
    "EffectiveOptions",
    "Source",
    "effective_runtime_options",
    "is_runc_runtime",
    "with_runc_root",
]

#: Where an effective field came from.
Source = Literal["runtime", "task"]

OptionsInput: TypeAlias = "any_pb2.Any | Message | None"


def _readonly(mapping: Mapping[str, Source]) -> Mapping[str, Source]:
    return types.MappingProxyType(dict(mapping))


@attrs.frozen
class EffectiveOptions:
    """The runtime options a task's shim gets, and where each field came from.

    ``any`` is the value to send (a ``google.protobuf.Any`` with the bare type URL, or None for
    no options); ``message`` is it decoded (None when there are no options or the type is not a
    known protobuf message); ``sources`` maps each set field name to ``"runtime"`` or ``"task"``;
    ``note`` explains a non-obvious choice (e.g. task options of another type replacing the
    runtime options), else "".
    """

    any: any_pb2.Any | None = None
    message: Message | None = None
    sources: Mapping[str, Source] = attrs.field(
        factory=dict, converter=_readonly, hash=False, eq=False
    )
    note: str = ""

    @property
    def runc_options(self) -> runc_options_pb2.Options | None:
        """The decoded ``containerd.runc.v1.Options``, or None when the options are another type."""
        if isinstance(self.message, runc_options_pb2.Options):
            return self.message
        return None

    def marshal(self) -> bytes:
        """The serialized Any (what a shim reads on stdin), or b"" when there are no options."""
        return self.any.SerializeToString() if self.any is not None else b""


def _as_any(value: OptionsInput, which: str) -> any_pb2.Any | None:
    """Normalize an input to an Any, or None when it carries nothing (Go's nil checks)."""
    if value is None:
        return None
    if isinstance(value, any_pb2.Any):
        if not value.type_url and not value.value:
            return None
        return value
    if isinstance(value, Message):
        return typeurl.pack(value)
    raise errdefs.InvalidArgument(
        f"{which} options must be a protobuf Any or message, not {type(value).__name__}"
    )


def _decode(any_: any_pb2.Any, which: str) -> Message | None:
    """Decode a protobuf Any; None for an unknown type; InvalidArgument for a broken value."""
    try:
        decoded = typeurl.unpack(any_)
    except typeurl.UnknownTypeError:
        return None
    except errdefs.InvalidArgument as exc:
        raise errdefs.InvalidArgument(f"{which} options: {exc}") from None
    return decoded if isinstance(decoded, Message) else None


def _set_fields(message: Message) -> list[str]:
    return [field.name for field, _ in message.ListFields()]


def _overlay(base: Message, top: Message) -> Message:
    """A copy of ``base`` with every field ``top`` sets replaced by ``top``'s value."""
    result = type(base)()
    result.CopyFrom(base)
    for field, value in top.ListFields():
        if field.is_repeated:  # lists and maps: replaced whole
            result.ClearField(field.name)
            target = getattr(result, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                if _map_of_messages(field):
                    for key, item in value.items():
                        target[key].CopyFrom(item)
                else:
                    target.update(value)
            elif field.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.message_type is not None:
            getattr(result, field.name).CopyFrom(value)
        else:
            setattr(result, field.name, value)
    return result


def _map_of_messages(field: FieldDescriptor) -> bool:
    entry = field.message_type
    assert entry is not None
    value_field = entry.fields_by_name["value"]
    return value_field.message_type is not None


def _only(any_: any_pb2.Any, which: Source, note: str = "") -> EffectiveOptions:
    message = _decode(any_, which)
    sources: dict[str, Source] = {}
    if message is not None:
        sources = dict.fromkeys(_set_fields(message), which)
        any_ = typeurl.pack(message)  # the bare type URL containerd 1.6 shims need
    return EffectiveOptions(any=any_, message=message, sources=sources, note=note)


def effective_runtime_options(
    runtime_options: OptionsInput, task_options: OptionsInput
) -> EffectiveOptions:
    """Combine a runtime handler's options with a task's options into one effective value.

    Both arguments may be a ``google.protobuf.Any``, a protobuf message, or None; an Any with
    neither type URL nor value counts as None. See the module docstring for the rule.

    Raises :class:`errdefs.InvalidArgument` naming the blob when a value of a known type does not
    decode.
    """
    runtime_any = _as_any(runtime_options, "runtime")
    task_any = _as_any(task_options, "task")
    if task_any is None and runtime_any is None:
        return EffectiveOptions()
    if task_any is None:
        assert runtime_any is not None
        return _only(runtime_any, "runtime")
    if runtime_any is None:
        return _only(task_any, "task")

    runtime_message = _decode(runtime_any, "runtime")
    task_message = _decode(task_any, "task")
    if runtime_message is None or task_message is None:
        if runtime_any.type_url == task_any.type_url and runtime_any.value == task_any.value:
            return _only(task_any, "task")
        return _only(
            task_any,
            "task",
            note=(
                f'task options of type "{task_any.type_url}" replace runtime options of type '
                f'"{runtime_any.type_url}" entirely (an unknown type cannot be merged field by '
                "field)"
            ),
        )
    if runtime_message.DESCRIPTOR.full_name != task_message.DESCRIPTOR.full_name:
        return _only(
            task_any,
            "task",
            note=(
                f"task options of type {task_message.DESCRIPTOR.full_name} replace runtime "
                f"options of type {runtime_message.DESCRIPTOR.full_name} entirely"
            ),
        )

    merged = _overlay(runtime_message, task_message)
    task_fields = set(_set_fields(task_message))
    sources: dict[str, Source] = {
        name: ("task" if name in task_fields else "runtime") for name in _set_fields(merged)
    }
    return EffectiveOptions(any=typeurl.pack(merged), message=merged, sources=sources)


#: Runtime names whose shim takes ``containerd.runc.v1.Options`` (the runc shim).
RUNC_RUNTIMES = frozenset({"io.containerd.runc.v2", "io.containerd.runc.v1"})
_RUNC_SHIM_BINARY = "containerd-shim-runc-v2"


def is_runc_runtime(runtime: str) -> bool:
    """Whether ``runtime`` (a name or a shim path) is the runc shim."""
    return runtime in RUNC_RUNTIMES or os.path.basename(runtime) == _RUNC_SHIM_BINARY


def with_runc_root(effective: EffectiveOptions, *, runtime: str, root: str) -> EffectiveOptions:
    """``effective`` with ``root`` (runc's ``--root``) set, unless the options already set one.

    Each state dir gets its own runc root so that two state dirs never see, reap or kill each
    other's runc containers (containerd-shim-runc-v2 runs ``runc --root <root>/<namespace>``;
    the default ``/run/containerd/runc`` is shared by every state dir). Options of another type
    are returned as they are; no options at all become ``Options{root}`` for the runc shim only.
    """
    message = effective.runc_options
    if message is None:
        if effective.any is not None or not is_runc_runtime(runtime):
            return effective
        message = runc_options_pb2.Options()
    if message.root:
        return effective
    rooted = runc_options_pb2.Options()
    rooted.CopyFrom(message)
    rooted.root = root
    return attrs.evolve(
        effective, any=typeurl.pack(rooted), message=rooted, sources=effective.sources
    )
