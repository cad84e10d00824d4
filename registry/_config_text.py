"""How config problems are worded: TOML paths, quoted names, value descriptions, suggestions.

Private helper of the ``registry.config`` modules and :mod:`registry.platforms`. It imports
nothing heavy (``difflib`` only when a suggestion is computed, on the error path), so reading a
config that needs no conversion never pays for cattrs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PathPart = str | int

#: A TOML bare key; compiled by the first path rendered (re caches it), not by every command.
_BARE_KEY = r"^[A-Za-z0-9_-]+$"


#: What a TOML basic string escapes: the quote, the backslash and every control character
#: below U+0020 (``\n``, ``\t``... by name, the rest as ``\u00XX``): what
#: ``json.dumps(s, ensure_ascii=False)`` writes, without importing json for it.
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
}


def quote(s: str) -> str:
    """Quote *s* as a TOML basic string (and a JSON string: the escapes are the same)."""
    return f'"{s.translate(_ESCAPES)}"'


def render_path(path: Iterable[PathPart]) -> str:
    """Render a key path TOML-style: ``plugins."io.containerd.x".env[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if re.match(_BARE_KEY, part) else quote(part)
        out = f"{out}.{key}" if out else key
    return out


#: How alike (difflib's ratio, 0..1) a name must be to a candidate to suggest it: a typo or two
#: in a word ("platfroms", "disabled_plugin") is above it, another plugin URI of the same shape
#: ("io.containerd.grpc.v1.cri" for "io.containerd.shim.v1.manager": 0.70) is not.
SIMILARITY_CUTOFF = 0.8


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate *name* was probably meant to be, or None when none is close.

    Spelling variants (``BinaryName`` / ``binary_name``) and a bare plugin id for its full
    URI (``task`` -> ``io.containerd.runtime.v2.task``) are found as well as close typos.
    """
    cands = [c for c in candidates if c != name]
    squash = name.replace("_", "").replace("-", "").lower()
    for c in cands:
        if c.replace("_", "").replace("-", "").lower() == squash:
            return c
    if "." not in name:
        tails = [c for c in cands if c.endswith("." + name)]
        if len(tails) == 1:
            return tails[0]
    import difflib  # only on the error path

    close = difflib.get_close_matches(name, cands, n=1, cutoff=SIMILARITY_CUTOFF)
    return close[0] if close else None


def unknown_key_message(key: str, valid: Sequence[str]) -> str:
    """``unknown key (did you mean "x"?)``, or the valid keys when nothing is close."""
    hint = suggest(key, valid)
    if hint is not None:
        return f"unknown key (did you mean {quote(hint)}?)"
    if not valid:
        return "unknown key (this table takes no keys)"
    if len(valid) <= 12:
        return f"unknown key (valid keys: {', '.join(quote(v) for v in sorted(valid))})"
    return "unknown key"


def describe_value(value: object) -> str:
    """Name a value's TOML type, with the value if it is short: ``str "A=1"``, ``int 7``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"str {quote(shown)}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def to_toml_value(value: Any) -> Any:
    """Make unstructured data TOML-able: drop None, tuples and sets become lists."""
    if isinstance(value, Mapping):
        return {str(k): to_toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_toml_value(v) for v in value if v is not None]
    if isinstance(value, set | frozenset):
        return sorted(to_toml_value(v) for v in value)
    if isinstance(value, enum.Enum):
        return to_toml_value(value.value)
    return value
