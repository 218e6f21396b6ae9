"""Values of config fields: `--set key=value` text and JSON values turned into the field's type.

A field's type is one of `bool`, `int`, `float`, `str`, `tuple[T, ...]` (written `1,2,3` or
`[1, 2, 3]`) or `T | None` (written `none`). Parsing never raises anything but `ConfigError`
naming the key and the accepted form; range checks are the config's (`ExperimentConfig.validate`).
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

from .._errors import ConfigError

_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")


def _optional_inner(annotation):
    """(inner type, True) for `T | None`, else (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def _item_type(annotation):
    """T for `tuple[T, ...]` or `list[T]`, else None."""
    if typing.get_origin(annotation) in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args else Any
    return None


def _parts(annotation):
    """(the type without `| None`, whether None is allowed, the item type of a list or None)."""
    inner, optional = _optional_inner(annotation)
    return inner, optional, _item_type(inner)


def type_name(annotation) -> str:
    """A short name of a field's type for tables and messages: 'int', 'list of float', ...."""
    inner, optional, item = _parts(annotation)
    if item is not None:
        name = f"list of {type_name(item)}"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def accepted_form(annotation) -> str:
    """What a `--set` value of this type looks like (for messages)."""
    inner, optional, item = _parts(annotation)
    if item is not None:
        text = f"a comma-separated list of {type_name(item)}, e.g. 1,2,3"
    else:
        text = {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "a string",
        }.get(inner, f"a value of type {type_name(inner)}")
    return text + (" or none" if optional else "")


def _parse_scalar(text: str, annotation) -> Any:
    """Parse one scalar; raise ValueError when it does not parse."""
    low = text.strip().lower()
    if annotation is bool:
        if low in _TRUE_WORDS:
            return True
        if low in _FALSE_WORDS:
            return False
        raise ValueError(text)
    # int() and float() take surrounding white space themselves, in their own sense of it: not
    # str.strip()'s, which also removes control characters such as \x1f ('0\x1f' is refused).
    if annotation is int:
        return int(text)
    if annotation is float:
        return float(text)
    if annotation is str:
        return text.strip()
    raise ValueError(text)


def parse_text(key: str, text: str, annotation) -> Any:
    """A `--set key=text` value as the field's type; `ConfigError(key, text, form)` if it does not
    parse. Ranges are not checked here."""
    inner, optional = _optional_inner(annotation)
    if optional and text.strip().lower() in _NONE_WORDS:
        return None
    item = _item_type(inner)
    try:
        if item is None:
            return _parse_scalar(text, inner)
        stripped = text.strip()
        if stripped.startswith("["):
            values = json.loads(stripped)
            if not isinstance(values, list):
                raise ValueError(text)
            parts = [v if isinstance(v, str) else json.dumps(v) for v in values]
        else:
            parts = [p for p in stripped.split(",") if p.strip()]
        return tuple(_parse_scalar(p, item) for p in parts)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise ConfigError(key, text, accepted_form(annotation)) from None


def coerce(key: str, value: Any, annotation) -> Any:
    """A typed value (Python API, or JSON read back from config.json) in the field's type: lists
    become tuples, integers given for a float field become floats, text is parsed. Anything of
    the wrong type raises `ConfigError(key, value, form)`."""
    inner, optional = _optional_inner(annotation)
    if (
        optional
        and inner is str
        and isinstance(value, str)
        and value.strip().lower() in _NONE_WORDS
    ):
        return None  # an optional text field (a file path): `none` is None, as for other types
    if (
        isinstance(value, str)
        and annotation is not str
        and _optional_inner(annotation)[0] is not str
    ):
        return parse_text(key, value, annotation)
    inner, optional = _optional_inner(annotation)
    if optional and isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
        value = None  # `str | None` (a file): 'none' is no file, as the CLI writes None
    if value is None:
        if optional:
            return None
        raise ConfigError(key, value, accepted_form(annotation))
    item = _item_type(inner)
    if item is not None:
        if not isinstance(value, list | tuple):
            raise ConfigError(key, value, accepted_form(annotation))
        try:
            return tuple(coerce(key, v, item) for v in value)
        except ConfigError:
            raise ConfigError(key, value, accepted_form(annotation)) from None
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }.get(inner, lambda v: True)
    if not ok(value):
        raise ConfigError(key, value, accepted_form(annotation))
    if inner is float:
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            raise ConfigError(key, value, "a finite number") from None
    return value


def to_text(value: Any) -> str:
    """The `--set` text of a typed value (inverse of `parse_text` for valid values)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(to_text(v) for v in value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)
