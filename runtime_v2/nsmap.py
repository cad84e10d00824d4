"""NSMap: objects keyed by namespace, then by id (containerd's ``runtime.NSMap``).

Tasks in different namespaces never collide: ``("a", "x")`` and ``("b", "x")`` are two entries.

>>> m: NSMap[str] = NSMap()
>>> m.add("default", "web", "shim-1")
>>> m.get("default", "web")
'shim-1'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from runtime_v2 import errdefs

__all__ = ["NSMap"]

T = TypeVar("T")


class NSMap(Generic[T]):
    """A two-level map ``namespace -> id -> object``.

    ``get`` of a missing entry raises :class:`errdefs.NotFound`; ``add`` of a duplicate raises
    :class:`errdefs.AlreadyExists`; ``delete`` is silent. Not thread-safe: it is used from one
    event loop.
    """

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, T]] = {}

    def get(self, namespace: str, id: str) -> T:
        """Return the object for ``(namespace, id)`` or raise NotFound naming both."""
        try:
            return self._objects[namespace][id]
        except KeyError:
            raise errdefs.NotFound(f'task "{id}" in namespace "{namespace}": not found') from None

    def add(self, namespace: str, id: str, obj: T) -> None:
        """Add ``obj``; raise AlreadyExists (``<id>: already exists``) if the id is taken."""
        objects = self._objects.setdefault(namespace, {})
        if id in objects:
            raise errdefs.AlreadyExists(f"{id}: already exists")
        objects[id] = obj

    def delete(self, namespace: str, id: str) -> T | None:
        """Remove ``(namespace, id)`` and return what was there (None when absent)."""
        objects = self._objects.get(namespace)
        if objects is None:
            return None
        obj = objects.pop(id, None)
        if not objects:
            del self._objects[namespace]
        return obj

    def contains(self, namespace: str, id: str) -> bool:
        """Whether ``(namespace, id)`` is present."""
        return id in self._objects.get(namespace, {})

    def is_current(self, namespace: str, id: str, obj: T) -> bool:
        """Whether ``(namespace, id)`` maps to exactly ``obj`` (identity, not equality)."""
        return self._objects.get(namespace, {}).get(id) is obj

    def delete_if_current(self, namespace: str, id: str, obj: T) -> bool:
        """Remove ``(namespace, id)`` only while it maps to exactly ``obj``; True when removed.

        How a shim removes itself: a newer shim registered under the same id stays.
        """
        if not self.is_current(namespace, id, obj):
            return False
        self.delete(namespace, id)
        return True

    def get_all(self, namespace: str | None = None, *, all: bool = False) -> list[T]:
        """Objects of ``namespace`` (or of every namespace when ``all`` is true), in add order."""
        if all:
            return [obj for objects in self._objects.values() for obj in objects.values()]
        if namespace is None:
            raise errdefs.InvalidArgument("namespace is required unless all=True")
        return list(self._objects.get(namespace, {}).values())

    def namespaces(self) -> list[str]:
        """Namespaces that currently hold at least one object."""
        return list(self._objects)

    def ids(self, namespace: str) -> set[str]:
        """Ids present in ``namespace``."""
        return set(self._objects.get(namespace, {}))

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._objects.values())

    def __iter__(self) -> Iterator[tuple[str, str, T]]:
        for namespace, objects in list(self._objects.items()):
            for id, obj in list(objects.items()):
                yield namespace, id, obj
