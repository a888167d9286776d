"""TOML values -> the section dataclasses: types and ranges checked against the field metadata."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from daemon.config.errors import ConfigError

T = TypeVar("T")


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_range(path: str, value: float, meta: Any) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(path, f"value {value!r} out of range; allowed {lo} .. {hi}")


def _convert(path: str, value: object, tp: Any, meta: Any) -> object:
    """Check and convert one TOML value to the field type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected an integer")
        _check_range(path, value, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a number")
        if not math.isfinite(value):
            raise ConfigError(path, f"value {value!r} is not finite")
        _check_range(path, float(value), meta)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(path, f"value {value!r} not allowed; allowed {', '.join(choices)}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a list")
        return tuple(_convert(f"{path}[{i}]", v, args[0], meta) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a table")
        return build(typing.cast(type[Any], tp), value, path)
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # pragma: no cover - programming error


def build(cls: type[T], table: dict[str, Any], path: str, base: T | None = None) -> T:
    """Build dataclass ``cls`` from a TOML table: unknown keys and bad values raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        sub = f"{path}.{key}" if path else key
        if key not in fields:
            raise ConfigError(sub, f"unknown key; known keys here: {', '.join(sorted(fields))}")
        tp = hints[key]
        if isinstance(tp, types.UnionType):  # pragma: no cover - no optional fields today
            tp = typing.get_args(tp)[0]
        kwargs[key] = _convert(sub, value, tp, fields[key].metadata)
    if base is not None:
        return dataclasses.replace(base, **kwargs)  # type: ignore[type-var]
    return cls(**kwargs)
