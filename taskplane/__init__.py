"""taskplane: containerd's plugin registry and runtime v2 task manager, in Python.

This package is the front door. :func:`boot` / :func:`boot_async` boot the plugin registry with
taskplane's built-in plugins (the event exchange, the metadata store, the shim manager and the
runtime v2 task manager) plus every third-party plugin installed through the
``taskplane.plugins`` entry point group::

    import taskplane

    with taskplane.boot(root="/var/lib/taskplane", state="/run/taskplane") as host:
        for status in host.statuses:
            print(status.uri, status.status)

:class:`Client` (from :mod:`taskplane.containers`) runs container tasks on a booted host and
:func:`default_spec` (from :mod:`taskplane.oci`) generates a default OCI spec; both are imported
on first use. The command line lives in :mod:`taskplane.cli`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry import Host
    from registry.config import Config
    from taskplane.containers import Client, RunResult
    from taskplane.oci import default_spec

__all__ = [
    "DEFAULT_NAMESPACE",
    "Client",
    "RunResult",
    "boot",
    "boot_async",
    "builtin_plugins",
    "default_spec",
]

# Re-exported lazily (PEP 562), so ``import taskplane`` does not import the runtime.
_LAZY = {
    "Client": "taskplane.containers",
    "RunResult": "taskplane.containers",
    "default_spec": "taskplane.oci",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskplane' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


#: The namespace commands and helpers use when none is given (containerd's default too).
DEFAULT_NAMESPACE = "default"


def builtin_plugins() -> list[object]:
    """Return the modules holding taskplane's built-in ``taskplane_registrations`` hookimpls.

    Imported lazily, so ``import taskplane`` stays cheap and never pulls in the runtime.
    """
    import plugins.builtin
    import runtime_v2.builtin

    return [plugins.builtin, runtime_v2.builtin]


async def boot_async(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    root: str | None = None,
    state: str | None = None,
    autoload: bool | None = None,
    extra_builtins: Iterable[object] = (),
) -> Host:
    """Boot the registry with the built-in and installed third-party plugins; return the Host.

    ``config`` is a TOML file path, a mapping shaped like the TOML, a ``registry.config.Config``
    or None for the embedded defaults. ``root``/``state`` override the config's directories.
    ``autoload`` None follows ``TASKPLANE_DISABLE_PLUGIN_AUTOLOAD``. ``extra_builtins`` adds
    modules or objects with hookimpls (handy in tests). Close the host with ``await host.aclose()``
    or ``async with``.
    """
    from plugins.containerd_config import CATALOGUE
    from registry import boot_async as registry_boot_async

    return await registry_boot_async(
        config,
        builtins=[*builtin_plugins(), *extra_builtins],
        autoload=autoload,
        root=root,
        state=state,
        known=CATALOGUE,
    )


def boot(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    root: str | None = None,
    state: str | None = None,
    autoload: bool | None = None,
    extra_builtins: Iterable[object] = (),
) -> Host:
    """Synchronous :func:`boot_async`: the Host keeps its own event loop (``host.run(coro)``).

    Use it as a context manager (``with taskplane.boot() as host:``) or call ``host.close()``.
    """
    from plugins.containerd_config import CATALOGUE
    from registry import boot as registry_boot

    return registry_boot(
        config,
        builtins=[*builtin_plugins(), *extra_builtins],
        autoload=autoload,
        root=root,
        state=state,
        known=CATALOGUE,
    )
