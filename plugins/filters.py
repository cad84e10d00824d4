"""containerd's filter language (``pkg/filters``): selectors over an object's field paths.

A filter is a comma-separated list of selectors, all of which must match; a list of filters
matches when any one does. A selector is ``<fieldpath>[<operator><value>]``:

- ``fieldpath`` is ``field('.'field)*``; a field is ``[A-Za-z][A-Za-z0-9_]*`` or a quoted string
  (``labels."my label"``);
- the operators are ``==``, ``!=`` and ``~=`` (a regular expression, searched anywhere in the
  value, as Go's ``MatchString``); without an operator the selector tests that the field is
  present;
- a value is a quoted string or a run of characters up to a comma or a blank; after ``~=`` the
  regular expression may also be quoted with ``/.../`` or ``|...|``.

Examples (the event exchange's fields, :mod:`plugins.events`)::

    topic~="/tasks/"
    namespace==default,event.container_id==web
    topic==/tasks/exit,event.container_id~=^db-

:func:`parse` gives a :class:`Filter`; :meth:`Filter.match` takes a *field function*: given a
field path it returns ``(value, present)``, what containerd's ``Adaptor.Field`` returns. Parse
errors are :class:`~plugins.errdefs.InvalidArgument` with containerd's wording
(``parse error: [before >|x|< after]: what was expected``).

Differences from containerd, on purpose (each accepts more, nothing containerd accepts is
refused): a value may start with ``/`` or ``|`` after ``==``/``!=`` (``topic==/tasks/exit``;
containerd takes them for quotes there and refuses the filter); single quotes quote like double
quotes; a regular expression is compiled when the filter is
parsed, so a bad one is an InvalidArgument naming it (containerd logs it at match time and the
selector never matches); Python's ``re`` dialect is used, which accepts every RE2 expression
that tools use in filters (RE2-only syntax such as ``\\pN`` is refused with a clear error).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence

import attrs

from plugins.errdefs import InvalidArgument

__all__ = ["FieldFunc", "Filter", "Selector", "parse", "parse_all"]

#: ``field(path) -> (value, present)``: containerd's ``Adaptor.Field``.
FieldFunc = Callable[[Sequence[str]], tuple[str, bool]]

_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPERATORS = ("==", "!=", "~=")
_QUOTES = "\"'"
_ALT_QUOTES = "/|"


@attrs.frozen
class Selector:
    """One ``<fieldpath>[<operator><value>]``; ``operator`` is "" for a presence test."""

    fieldpath: tuple[str, ...]
    operator: str = ""
    value: str = ""
    regex: re.Pattern[str] | None = attrs.field(default=None, eq=False, repr=False)

    def match(self, field: FieldFunc) -> bool:
        """Whether the object whose fields ``field`` gives matches this selector."""
        value, present = field(self.fieldpath)
        if self.operator == "":
            return present
        if self.operator == "==":
            return present and value == self.value
        if self.operator == "!=":
            return value != self.value
        assert self.regex is not None
        return self.regex.search(value) is not None


@attrs.frozen
class Filter:
    """Selectors that must all match (one filter string); no selector matches everything."""

    selectors: tuple[Selector, ...] = ()

    def match(self, field: FieldFunc) -> bool:
        """Whether every selector matches the object whose fields ``field`` gives."""
        return all(s.match(field) for s in self.selectors)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, pos: int, message: str) -> InvalidArgument:
        text = self.text
        if pos < len(text):
            where = f"[{text[:pos]} >|{text[pos]}|< {text[pos + 1 :]}]"
        else:
            where = f"[{text}]"
        return InvalidArgument(f"filters: parse error: {where}: {message}")

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_blanks()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def quoted(self, alternatives: bool) -> str:
        start, quote = self.pos, self.text[self.pos]
        end = start + 1
        while end < len(self.text) and self.text[end] != quote:
            end += 2 if self.text[end] == "\\" and quote in _QUOTES else 1
        if end >= len(self.text):
            raise self.error(start, "quoted literal not terminated")
        self.pos = end + 1
        body = self.text[start + 1 : end]
        if quote in _ALT_QUOTES:
            if not alternatives:
                raise self.error(start, "invalid quote encountered")
            return body
        try:
            value = ast.literal_eval(f"{quote}{body}{quote}")
        except (SyntaxError, ValueError) as exc:
            raise self.error(start, f"unquoting failed: {exc}") from None
        assert isinstance(value, str)
        return value

    def field(self) -> str:
        char = self.peek()
        if char and char in _QUOTES:
            return self.quoted(alternatives=False)
        found = _FIELD.match(self.text, self.pos)
        if found is None:
            raise self.error(self.pos, "expected field or quoted")
        self.pos = found.end()
        return found.group()

    def fieldpath(self) -> tuple[str, ...]:
        path = [self.field()]
        while self.peek() == ".":
            self.pos += 1
            path.append(self.field())
        return tuple(path)

    def operator(self) -> str:
        self.skip_blanks()
        op = self.text[self.pos : self.pos + 2]
        if op not in _OPERATORS:
            raise self.error(self.pos, 'expected an operator ("=="|"!="|"~=")')
        self.pos += 2
        return op

    def value(self, operator: str) -> str:
        char = self.peek()
        if char and (char in _QUOTES or (char in _ALT_QUOTES and operator == "~=")):
            return self.quoted(alternatives=operator == "~=")
        start = self.pos
        while (
            self.pos < len(self.text)
            and self.text[self.pos] != ","
            and not self.text[self.pos].isspace()
        ):
            self.pos += 1
        if start == self.pos:
            raise self.error(start, "expected value or quoted")
        return self.text[start : self.pos]

    def selector(self) -> Selector:
        path = self.fieldpath()
        if self.peek() in (",", ""):
            return Selector(path)
        op = self.operator()
        start = self.pos
        value = self.value(op)
        regex = None
        if op == "~=":
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise self.error(start, f"invalid regular expression {value!r}: {exc}") from None
        return Selector(path, op, value, regex)

    def parse(self) -> Filter:
        selectors = [self.selector()]
        while True:
            char = self.peek()
            if char == "":
                return Filter(tuple(selectors))
            if char != ",":
                raise self.error(self.pos, f"unexpected input: {char}")
            self.pos += 1
            selectors.append(self.selector())


def parse(text: str) -> Filter:
    """Parse one filter string (``""`` matches everything); InvalidArgument when malformed."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a filter must be a string, not {type(text).__name__}")
    if text == "":
        return Filter()
    return _Parser(text).parse()


def parse_all(texts: Sequence[str]) -> Callable[[FieldFunc], bool]:
    """Parse filter strings into one predicate matching when any filter matches (no filter:
    everything), as containerd's ``ParseAll``."""
    filters = [parse(t) for t in texts]
    if not filters:
        return lambda field: True
    return lambda field: any(f.match(field) for f in filters)
