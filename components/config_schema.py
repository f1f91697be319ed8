"""Typed, validated configuration sections built from plain dataclasses.

A section is a `@dataclass` whose fields carry type hints and defaults. It may
define `validate(self) -> None` that raises `ConfigError` for values that are
well-typed but not allowed (a fraction above 1, say). `from_dict` builds a
section from YAML-like data, checking every key and type and naming the full
dotted key in errors; `to_dict` is its inverse.

Supported field types: str, int, float, bool, Optional[T], list[T],
dict[str, T], Literal[...], and nested section dataclasses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from typing import Any, Iterator, Literal, TypeVar, Union

from tlpipe.models.plumbing.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, key: str = "") -> T:
    """Build section `cls` from `data`, validating keys, types and values."""
    if not isinstance(data, dict):
        raise ConfigError(key or "<root>", data, f"a mapping of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        bad = _join(key, str(unknown[0]))
        raise ConfigError(bad, data[unknown[0]], f"keys of '{key or 'the config'}': " + ", ".join(sorted(fields)))
    kwargs = {name: _convert(hints[name], value, _join(key, name)) for name, value in data.items()}
    instance = cls(**kwargs)
    validate_tree(instance, key)
    return instance


def validate_tree(section: Any, key: str = "") -> None:
    """Run `validate()` of a section and of every nested section, innermost first."""
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if dataclasses.is_dataclass(value):
            validate_tree(value, _join(key, field.name))
    validate = getattr(section, "validate", None)
    if validate is not None:
        with prefixed(key):
            validate()


@contextlib.contextmanager
def prefixed(key: str) -> Iterator[None]:
    """A ConfigError raised inside names its key under `key` (`dropout` of section `trainer.head` becomes
    `trainer.head.dropout`), unless it already does."""
    try:
        yield
    except ConfigError as error:
        if key and not error.key.startswith(key + "."):
            raise ConfigError(_join(key, error.key), error.received, error.allowed) from None
        raise


def to_dict(section: Any) -> dict[str, Any]:
    """Plain-data view of a section (dicts, lists and scalars), for YAML/JSON."""
    return dataclasses.asdict(section)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`; mappings merge, other values replace."""
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of str to {_describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, value, args)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(key, value, _describe(tp))
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(key, value, _describe(tp))
        return [_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, _describe(tp))
        return {str(k): _convert(args[1], v, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, value, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, value, "a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config field type {tp!r} at '{key}'")
