"""containerd's core plugins, ported: plugin type names, the event exchange and the metadata store.

Modules:

- :mod:`plugins.types` -- containerd's plugin type names and plugin property keys.
- :mod:`plugins.identifiers` -- containerd's identifier rule (namespaces, ids, topic components).
- :mod:`plugins.events` -- the event exchange (``io.containerd.event.v1.exchange``).
- :mod:`plugins.metadata` -- the container store (``io.containerd.metadata.v1.sqlite``).
- :mod:`plugins.builtin` -- the pluggy hook that registers both with the registry.
- :mod:`plugins.errdefs` -- containerd's error classes.

This package imports ``registry`` (only in :mod:`plugins.builtin` and :mod:`plugins.types`) and
never ``runtime_v2`` or ``taskplane``.
"""
