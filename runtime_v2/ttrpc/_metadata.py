"""ttrpc request metadata: string keys (lowercased) with one or more string values each.

On the wire metadata is ``repeated KeyValue``; a repeated key means several values, kept in
order. This mirrors ttrpc's ``MD`` helpers::

    >>> md = MD.from_pairs([("Containerd-Namespace-Ttrpc", "default")])
    >>> md.get("containerd-namespace-ttrpc")
    ['default']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping

__all__ = ["MD", "NAMESPACE_KEY"]

#: The key containerd sends the namespace under on every namespaced ttrpc call.
NAMESPACE_KEY = "containerd-namespace-ttrpc"


class MD(MutableMapping[str, list[str]]):
    """Metadata: a mapping from lowercased key to the list of its values."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Iterable[str]] | None = None) -> None:
        self._data: dict[str, list[str]] = {}
        if data:
            for key, values in data.items():
                self.append(key, *values)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> MD:
        """Collect ``(key, value)`` pairs, values per key in order."""
        md = cls()
        data = md._data
        for key, value in pairs:
            key = key.lower()
            values = data.get(key)
            if values is None:
                data[key] = [value]
            else:
                values.append(value)
        return md

    def pairs(self) -> list[tuple[str, str]]:
        """The ``(key, value)`` pairs to send, in insertion order."""
        return [(k, v) for k, values in self._data.items() for v in values]

    def set(self, key: str, *values: str) -> None:
        """Replace the values of ``key``; with no values the key is removed."""
        key = key.lower()
        if values:
            self._data[key] = list(values)
        else:
            self._data.pop(key, None)

    def append(self, key: str, *values: str) -> None:
        """Add values to ``key``, after any it has."""
        if values:
            self._data.setdefault(key.lower(), []).extend(values)

    def clone(self) -> MD:
        """A deep copy: changing either copy's value lists does not affect the other."""
        md = MD()
        md._data = {k: list(v) for k, v in self._data.items()}
        return md

    def __getitem__(self, key: str) -> list[str]:
        return self._data[key.lower()]

    def __setitem__(self, key: str, values: list[str]) -> None:
        self.set(key, *values)

    def __delitem__(self, key: str) -> None:
        del self._data[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MD({self._data!r})"
