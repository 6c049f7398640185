"""A frozen-dataclass tree as a config schema: validate parsed YAML into it, dump it back.

Each section of model.yaml is a frozen dataclass; a field's type says what a key holds
(int, float, bool, str, a Literal of choices, a tuple, `X | None`, or another section) and
its metadata (`meta`) says its help text and bounds. `build` checks a mapping key by key
against that (the scikit-learn way: validate at the boundary, then trust) and raises a
`ConfigError` whose message is one line naming the key path and what is allowed; `to_dict`
is its inverse. Nothing here knows a particular section.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from typing import Any, Literal

from analogep.errors import AnalogepError
from analogep.registry import names


class ConfigError(AnalogepError, ValueError):
    """A config that cannot be used; the message names the key path and what is allowed."""


# Integers are stored in numpy int64 arrays and written back to YAML; larger ones are refused.
INT_MAX = 2**63 - 1


def meta(help: str, **constraints: Any) -> dict:
    """Field metadata: help text and constraints. Bounds: `min`/`ge`, `gt`, `lt`, `le` (of a
    number, or of each item of a list); `len`, `min_len` (of a list); `pattern` and
    `pattern_help` (of a string); `registry` (a kind of analogep.registry whose names a string
    may take) and `also` (more names it may take); `yaml` (the YAML key when it differs from
    the attribute); `omit_default` (`to_dict` leaves the key out at its default, so files
    written before the key existed stay byte-identical)."""
    return {"help": help, **constraints}


def yaml_key(f: dataclasses.Field) -> str:
    """The key a field has in YAML."""
    return f.metadata.get("yaml", f.name)


class _ShortRepr(reprlib.Repr):
    """repr() cut to a readable length (a value may be a whole YAML document, or an integer
    too long for repr)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlong, self.maxlevel = 60, 60, 40, 3

    def repr_int(self, x: int, level: int) -> str:
        return super().repr_int(x, level) if x.bit_length() <= 256 else f"<{x.bit_length()}-bit integer>"


_short_repr = _ShortRepr().repr


def show(value: Any) -> str:
    """A value for an error message: one short line."""
    return _short_repr(value)


def _show_key(key: Any) -> str:
    """A mapping key for a key path: as written when it is a plain printable string."""
    return key if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 60 else show(key)


def _optional(tp: Any) -> Any:
    """X for an `X | None` field (None may be written as YAML null), else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _describe(tp: Any) -> str:
    inner = _optional(tp)
    if inner is not None:
        return _describe(inner) + " or null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0]).split(" ", 1)[-1] + "s"  # "a list of integers"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _check_bounds(path: str, value: Any, constraints: dict) -> None:
    rules = [
        ("min", lambda v, b: v >= b, ">="),
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
        ("le", lambda v, b: v <= b, "<="),
    ]
    for name, ok, sym in rules:
        if name in constraints and not ok(value, constraints[name]):
            raise ConfigError(f"{path}: {show(value)} is not allowed; must be {sym} {constraints[name]}")


def _convert(path: str, value: Any, tp: Any, constraints: dict) -> Any:
    inner = _optional(tp)
    if inner is not None:
        return None if value is None else _convert(path, value, inner, constraints)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) or value not in choices or type(value) not in {type(c) for c in choices}:
            raise ConfigError(f"{path}: {show(value)} is not allowed; must be {_describe(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {type(value).__name__} {show(value)}")
        if "len" in constraints and len(value) != constraints["len"]:
            raise ConfigError(f"{path}: expected {constraints['len']} values, got {len(value)}")
        if "min_len" in constraints and len(value) < constraints["min_len"]:
            raise ConfigError(f"{path}: expected at least {constraints['min_len']} values, got {len(value)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(f"{path}[{i}]", v, item_tp, constraints) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {show(value)}")
        if value > INT_MAX:
            raise ConfigError(f"{path}: {show(value)} is too large; must be <= 2**63 - 1")
        _check_bounds(path, value, constraints)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected a number, got {show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {show(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ConfigError(f"{path}: expected a finite number, got {show(value)}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {show(value)}")
        _check_bounds(path, value, constraints)
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a non-empty string, got {show(value)}")
        if "registry" in constraints:
            allowed = tuple(constraints.get("also", ())) + names(constraints["registry"])
            if value not in allowed:
                raise ConfigError(f"{path}: {show(value)} is not allowed; must be one of {', '.join(map(repr, allowed))}")
            return value
        if "pattern" in constraints and not re.fullmatch(constraints["pattern"], value):
            rule = constraints.get("pattern_help", "use letters, digits, '.', '_' and '-' (it names folders)")
            raise ConfigError(f"{path}: {show(value)} is not allowed; {rule}")
        return value
    raise TypeError(f"unsupported spec type {tp!r}")  # a bug in a section class, not in the config


def build(cls: type, data: Any, path: str) -> Any:
    """An instance of the section class `cls` from parsed YAML `data` (None: every default),
    every key checked; `path` is the section's key path for messages ("" at the root).

    A section class may define `resolve(data, path) -> data`, which fills in the mapping
    before it is checked (the devices section: its preset's values)."""
    if data is None:
        data = {}
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        data = resolve(data, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(data).__name__} {show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {yaml_key(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{_show_key(key)}" if path else _show_key(key)
            raise ConfigError(f"{where}: unknown key; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for key, f in fields.items():
        if key in data:
            where = f"{path}.{key}" if path else key
            kwargs[f.name] = _convert(where, data[key], hints[f.name], dict(f.metadata))
    return cls(**kwargs)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def to_dict(tree: Any) -> dict:
    """A section (or the whole config) as plain YAML-ready data under its YAML keys (tuples
    become lists); `build` reads it back to an equal tree."""
    out = {}
    for f in dataclasses.fields(tree):
        value = getattr(tree, f.name)
        if f.metadata.get("omit_default") and value == _default(f):
            continue  # a later key at its default is not written: older runs' files stay byte-identical
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[yaml_key(f)] = value
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
