"""Strict cattrs structuring of plugin config tables, with TOML paths in every error.

Private helper of :mod:`registry._config_decode`, imported only when a plugin's table is
decoded or a config written: cattrs is the costliest import of a config check. The converter
never coerces ("7" is not 7, 1 is not True, a string is not a list), rejects unknown keys, and
its errors are turned into ``(path, message)`` pairs by :func:`structure_issues`.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from registry._config_text import PathPart, describe_value, quote, unknown_key_message

Path = tuple[PathPart, ...]
Issue = tuple[Path, str]


class WrongType(Exception):
    """A value of the wrong TOML type; *expected* describes what was wanted."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {describe_value(value)}")
        self.expected = expected
        self.value = value


def _is_optional(t: Any) -> bool:
    return _is_union(t) and type(None) in get_args(t)


def _is_union(t: Any) -> bool:
    origin = get_origin(t)
    return origin is Union or origin is types.UnionType


_SEQUENCE_ORIGINS = (list, tuple, set, frozenset, Sequence, typing.Sequence)
_MAPPING_ORIGINS = (dict, Mapping, typing.Mapping)


def _is_sequence_type(t: Any) -> bool:
    return get_origin(t) in _SEQUENCE_ORIGINS or t in (list, tuple)


def _is_mapping_type(t: Any) -> bool:
    return get_origin(t) in _MAPPING_ORIGINS or t is dict


def _is_literal_type(t: Any) -> bool:
    return get_origin(t) is Literal


def _is_enum_type(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum)


def describe_type(t: Any) -> str:
    """Name a Python type as a TOML value: ``a list of strings``, ``a table``."""
    if t is str:
        return "a string"
    if t is bool:
        return "a boolean"
    if t is int:
        return "an integer"
    if t is float:
        return "a number"
    if t is Any or t is object:
        return "any value"
    if _is_enum_type(t):
        return "one of " + ", ".join(_literal(m.value) for m in t)
    if attrs.has(t):
        return "a table"
    args = get_args(t)
    if _is_literal_type(t):
        if len(args) == 1:
            return _literal(args[0])
        return "one of " + ", ".join(_literal(a) for a in args)
    if _is_union(t):
        return " or ".join(describe_type(a) for a in args if a is not type(None))
    if _is_sequence_type(t):
        if get_origin(t) is tuple and args and args[-1] is not Ellipsis:
            return f"an array of {len(args)} items"
        return f"a list of {_plural(args[0]) if args else 'values'}"
    if _is_mapping_type(t):
        if len(args) == 2 and args[1] is not Any:
            return f"a table of {_plural(args[1])}"
        return "a table"
    return f"a {getattr(t, '__name__', str(t))}"


def _plural(t: Any) -> str:
    names = {str: "strings", bool: "booleans", int: "integers", float: "numbers"}
    if t in names:
        return names[t]
    if attrs.has(t) or get_origin(t) in _MAPPING_ORIGINS:
        return "tables"
    if get_origin(t) in _SEQUENCE_ORIGINS:
        return "lists"
    return f"values ({describe_type(t)})"


def _literal(v: object) -> str:
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


# -- hooks -------------------------------------------------------------------------------------


def _structure_str(v: object, _: Any) -> str:
    if not isinstance(v, str):
        raise WrongType("a string", v)
    return v


def _structure_bool(v: object, _: Any) -> bool:
    if not isinstance(v, bool):
        raise WrongType("a boolean", v)
    return v


def _structure_int(v: object, _: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise WrongType("an integer", v)
    return v


def _structure_float(v: object, _: Any) -> float:
    # An integer is a number: `timeout = 5` for a float field is not a coercion.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise WrongType("a number", v)
    return float(v)


Hook = Callable[[Any, Any], Any]


def _note_and_raise(t: Any, errors: list[Exception]) -> None:
    if errors:
        raise IterableValidationError(f"While structuring {t!r}", errors, t)


def _sequence_factory(t: Any, conv: cattrs.Converter) -> Hook:
    origin = get_origin(t) or t
    args = get_args(t)
    fixed = origin is tuple and bool(args) and args[-1] is not Ellipsis
    elem_types: list[Any] = list(args) if fixed else [args[0] if args else Any]
    hooks = [conv.get_structure_hook(e) for e in elem_types]
    expected = describe_type(t)

    def structure(v: object, _: Any) -> Any:
        if not isinstance(v, list | tuple):
            raise WrongType(expected, v)
        if fixed and len(v) != len(elem_types):
            raise WrongType(expected, v)
        out: list[Any] = []
        errors: list[Exception] = []
        for i, item in enumerate(v):
            et, hook = (elem_types[i], hooks[i]) if fixed else (elem_types[0], hooks[0])
            try:
                out.append(hook(item, et))
            except Exception as e:
                e.add_note(IterableValidationNote(f"Structuring {t!r} @ index {i}", i, et))
                errors.append(e)
        _note_and_raise(t, errors)
        if origin in (set, frozenset):
            return origin(out)
        return out if origin is list else tuple(out)

    return structure


def _mapping_factory(t: Any, conv: cattrs.Converter) -> Hook:
    args = get_args(t)
    key_t, val_t = (args[0], args[1]) if len(args) == 2 else (str, Any)
    key_hook = conv.get_structure_hook(key_t)
    val_hook = conv.get_structure_hook(val_t)
    expected = describe_type(t)

    def structure(v: object, _: Any) -> dict[Any, Any]:
        if not isinstance(v, Mapping):
            raise WrongType(expected, v)
        out: dict[Any, Any] = {}
        errors: list[Exception] = []
        for k, item in v.items():
            try:
                out[key_hook(k, key_t)] = val_hook(item, val_t)
            except Exception as e:
                e.add_note(IterableValidationNote(f"Structuring {t!r} @ key {k!r}", k, val_t))
                errors.append(e)
        _note_and_raise(t, errors)
        return out

    return structure


def _union_factory(t: Any, conv: cattrs.Converter) -> Hook:
    members = [a for a in get_args(t) if a is not type(None)]
    optional = _is_optional(t)
    hooks = [(m, conv.get_structure_hook(m)) for m in members]
    expected = describe_type(t)

    def structure(v: object, _: Any) -> Any:
        if v is None and optional:
            return None
        if len(hooks) == 1:
            m, hook = hooks[0]
            return hook(v, m)
        for m, hook in hooks:
            try:
                return hook(v, m)
            except WrongType:
                continue
        raise WrongType(expected, v)

    return structure


def _literal_factory(t: Any, conv: cattrs.Converter) -> Hook:
    allowed = get_args(t)
    expected = describe_type(t)

    def structure(v: object, _: Any) -> Any:
        for a in allowed:
            if type(a) is type(v) and a == v:
                return a
        raise WrongType(expected, v)

    return structure


def _enum_factory(t: Any, conv: cattrs.Converter) -> Hook:
    expected = describe_type(t)

    def structure(v: object, _: Any) -> Any:
        for member in t:
            if type(member.value) is type(v) and member.value == v:
                return member
        raise WrongType(expected, v)

    return structure


class FieldValues:
    """An attrs class's ``__init__`` arguments, structured but not yet validated or built.

    The converter turns every table for an attrs class into one of these (nested ones too), so
    that :func:`build` can run each field's validator itself -- each failure gets its own
    path -- before the instance is built the ordinary way, validators on. Nothing global
    (like ``attrs.validators.disabled()``) is touched.
    """

    __slots__ = ("cls", "values")

    def __init__(self, cls: type[Any], values: dict[str, Any]) -> None:
        self.cls = cls
        #: init argument name (the attribute's alias) -> structured value
        self.values = values

    def __repr__(self) -> str:
        return f"FieldValues({self.cls.__qualname__}, {self.values!r})"


def _attrs_factory(t: Any, conv: cattrs.Converter) -> Hook:
    if any(isinstance(a.type, str) for a in attrs.fields(t)):
        attrs.resolve_types(t)
    fields = [a for a in attrs.fields(t) if a.init]
    hooks = [(a, conv.get_structure_hook(a.type if a.type is not None else Any)) for a in fields]
    known = {a.name for a in fields}
    name = getattr(t, "__qualname__", repr(t))

    def structure(v: object, _: Any) -> FieldValues:
        if not isinstance(v, Mapping):
            raise WrongType("a table", v)
        values: dict[str, Any] = {}
        errors: list[Exception] = []
        for a, hook in hooks:
            if a.name not in v:
                if a.default is attrs.NOTHING:
                    errors.append(KeyError(a.name))  # structure_issues adds the key to the path
                continue
            try:
                values[a.alias] = hook(v[a.name], a.type)
            except Exception as e:
                e.add_note(
                    AttributeValidationNote(
                        f"Structuring class {name} @ attribute {a.name}", a.name, a.type
                    )
                )
                errors.append(e)
        unknown = set(v) - known
        if unknown:
            errors.append(ForbiddenExtraKeysError("", t, unknown))
        if errors:
            raise ClassValidationError(f"While structuring {name}", errors, t)
        return FieldValues(t, values)

    return structure


def make_converter() -> cattrs.Converter:
    """A cattrs converter with strict primitives, strict containers and no extra keys.

    attrs classes come out as :class:`FieldValues`; :func:`structure_config` (or
    :func:`build`) turns those into instances.
    """
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    # cattrs' stubs cannot express "factory taking the converter"; the call is checked at runtime.
    register: Any = conv.register_structure_hook_factory
    register(_is_sequence_type, _sequence_factory)
    register(_is_mapping_type, _mapping_factory)
    register(_is_union, _union_factory)
    register(_is_literal_type, _literal_factory)
    register(_is_enum_type, _enum_factory)
    register(attrs.has, _attrs_factory)
    return conv


# -- errors ------------------------------------------------------------------------------------


def structure_issues(exc: BaseException, path: Path = ()) -> list[Issue]:
    """Flatten a cattrs error tree into ``(path, message)`` pairs, one per problem."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        out: list[Issue] = []
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, AttributeValidationNote):
                    sub_path = (*path, note.name)
                elif isinstance(note, IterableValidationNote):
                    sub_path = (*path, note.index)
            out += structure_issues(sub, sub_path)
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        cl: Any = exc.cl
        valid = [a.name for a in attrs.fields(cl)]
        return [((*path, k), unknown_key_message(k, valid)) for k in sorted(exc.extra_fields)]
    if isinstance(exc, WrongType):
        return [(path, str(exc))]
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        return [((*path, exc.args[0]), "missing required key")]
    return [(path, _exception_message(exc))]


def _exception_message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str) and exc.args[0]:
        return exc.args[0]
    return str(exc) or type(exc).__name__


def structure_config(
    conv: cattrs.Converter, raw: object, cls: type[Any]
) -> tuple[Any, list[Issue]]:
    """Decode *raw* into an instance of the attrs class *cls*: ``(instance, [])``, or
    ``(None, issues)`` with every structuring and validator problem at its path."""
    try:
        values = conv.structure(raw, cls)
    except Exception as e:
        return None, structure_issues(e)
    return build(values)


def build(value: Any, path: Path = ()) -> tuple[Any, list[Issue]]:
    """Turn the :class:`FieldValues` in a structured tree into instances, innermost first.

    Each field's validator runs (on the field values, before the instance exists) and every
    failure is reported at its path; only a class whose fields all pass is built -- by calling
    it, so attrs runs its converters, validators and ``__attrs_post_init__`` as usual. An error
    the constructor raises is reported at the table's path. Returns ``(value, issues)``; the
    value is None when there are issues.
    """
    if isinstance(value, FieldValues):
        return _build_instance(value, path)
    issues: list[Issue] = []
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for i, item in enumerate(value):
            built, found = build(item, (*path, i))
            items.append(built)
            issues += found
        out: Any = items if isinstance(value, list) else type(value)(items)
    elif isinstance(value, dict):
        out = {}
        for k, item in value.items():
            out[k], found = build(item, (*path, str(k)))
            issues += found
    else:
        return value, []
    return (None, issues) if issues else (out, [])


class _Fields:
    """Stands in for the instance being decoded when its fields' validators and
    ``takes_self`` factories run: attribute access gives the field values."""


def _build_instance(node: FieldValues, path: Path) -> tuple[Any, list[Issue]]:
    cls: Any = node.cls
    fields = attrs.fields(cls)
    kwargs: dict[str, Any] = {}
    issues: list[Issue] = []
    for a in fields:
        if a.init and a.alias in node.values:
            kwargs[a.alias], found = build(node.values[a.alias], (*path, a.name))
            issues += found
    if issues:
        return None, issues
    # The values __init__ would validate: given ones converted, defaults for the others.
    this = _Fields()
    present = []
    for a in fields:
        try:
            if a.init and a.alias in kwargs:
                value = _convert(a, kwargs[a.alias], this)
            elif a.default is attrs.NOTHING:
                continue
            elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
                factory: Any = a.default
                value = factory.factory(this) if factory.takes_self else factory.factory()
                value = _convert(a, value, this)
            else:
                value = _convert(a, a.default, this)
        except (ValueError, TypeError) as e:
            issues.append(((*path, a.name), _exception_message(e)))
            continue
        setattr(this, a.name, value)
        present.append(a)
    for a in present:
        if a.validator is None:
            continue
        try:
            a.validator(this, a, getattr(this, a.name))
        except (ValueError, TypeError) as e:
            issues.append(((*path, a.name), _exception_message(e)))
    if issues:
        return None, issues
    try:
        return cls(**kwargs), []
    except Exception as e:  # __attrs_post_init__, or a validator looking at the real instance
        return None, [(path, _exception_message(e))]


def _convert(a: attrs.Attribute[Any], value: Any, this: object) -> Any:
    converter: Any = a.converter
    if converter is None:
        return value
    if isinstance(converter, attrs.Converter):
        wrapped: Any = converter  # the stubs do not declare its attributes
        args: list[Any] = [value]
        if wrapped.takes_self:
            args.append(this)
        if wrapped.takes_field:
            args.append(a)
        return wrapped.converter(*args)
    return converter(value)
