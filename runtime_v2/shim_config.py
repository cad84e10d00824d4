"""The shim plugin's config (``[plugins."io.containerd.shim.v1.manager"]``) and its migration.

Kept apart from :mod:`runtime_v2.shim_manager` so that reading and checking a config
(``taskplane config validate``) does not load the shim manager itself. Each field is checked when
the config is loaded, and the plugin's init runs the same checks again for an instance built in
code.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from plugins import types

__all__ = [
    "ShimConfig",
    "check_bootstrap_runtimes",
    "check_env",
    "check_socket_dir",
    "events_on_demand",
    "events_served_on_demand",
    "migrate_sched_core",
]

_EVENTS_ON_DEMAND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "taskplane_events_on_demand", default=False
)


@contextlib.contextmanager
def events_on_demand() -> Iterator[None]:
    """Boot shim managers that serve the shims' events address only once they start a shim
    or act on one (any call but a query such as ``State``; see
    :meth:`runtime_v2.shim_manager.ShimManager.start_events_server`).

    For a short-lived process such as a ``taskplane`` command: one that starts no shim and
    acts on none (a listing) causes no events to receive, and a peer that serves the address
    meanwhile is nothing it must take over from. A long-lived process (an embedder,
    ``taskplane events``) serves or watches from boot, the default, so that it takes the
    address over when the serving peer dies::

        with events_on_demand():
            host = await taskplane.boot_async(root=..., state=...)
    """
    token = _EVENTS_ON_DEMAND.set(True)
    try:
        yield
    finally:
        _EVENTS_ON_DEMAND.reset(token)


def events_served_on_demand() -> bool:
    """Whether a shim manager booted now waits for its first started or acted-on shim to
    serve events."""
    return _EVENTS_ON_DEMAND.get()


def check_env(env: Sequence[str]) -> list[str]:
    """The shim env check of :mod:`runtime_v2.binary` (imported only when there is an env)."""
    if not env:
        return []
    from runtime_v2.binary import check_env

    return check_env(env)


def check_bootstrap_runtimes(runtimes: Sequence[str]) -> list[str]:
    """``runtimes`` as a list; InvalidArgument for an entry that is neither a runtime name nor
    an absolute path."""
    for entry in runtimes:
        if not isinstance(entry, str) or not entry or ("/" in entry and not os.path.isabs(entry)):
            from plugins import errdefs

            raise errdefs.InvalidArgument(
                f"bootstrap_runtimes entry {entry!r} must be a runtime name or an absolute path"
            )
    return list(runtimes)


def check_socket_dir(directory: str) -> str:
    """:func:`runtime_v2.shim_socket.check_socket_dir` of a set ``directory`` (imported only
    then); ``""`` (the default) as it is."""
    if not directory:
        return directory
    from runtime_v2.shim_socket import check_socket_dir as check

    return check(directory)


def _as_value_error(
    check: Callable[[Any], object],
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator running ``check(value)``: the config decoder reports the ValueError at
    the field's TOML path (``taskplane config validate``); the plugin's init runs the same
    check again, so the two cannot disagree."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        try:
            check(value)
        except Exception as exc:
            from plugins import errdefs  # only for a value that fails (a config check, a CLI)

            if not isinstance(exc, errdefs.InvalidArgument):
                raise
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
    socket_dir: str = attrs.field(default="", validator=_as_value_error(check_socket_dir))
    bootstrap_runtimes: list[str] = attrs.field(
        factory=list, validator=_as_value_error(check_bootstrap_runtimes)
    )


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
