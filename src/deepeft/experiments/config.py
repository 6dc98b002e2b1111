"""Typed experiment parameters: declaration, validation, TOML files and ``--set key=value``.

An experiment declares its parameters as a frozen dataclass whose fields are made with
:func:`param` (a default, a one-line help text, optional bounds/choices)::

    @dataclasses.dataclass(frozen=True)
    class Params:
        n_samples: int = param(100_000, "Monte Carlo samples per task", min=2)
        variances: tuple[float, ...] = param((0.5, 1.0), "Gaussian variances K", min=0.0)
        seed: int = param(0, "experiment seed (per-task seeds derive from it)", min=0)

Supported field types: ``int``, ``float``, ``bool``, ``str`` and ``tuple[int|float|str, ...]``.
Values are resolved in the order: dataclass defaults < preset < config file < ``--set``.
Unknown keys and values of the wrong type are rejected with the allowed names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DeepEFTInputError, suggest

__all__ = [
    "param",
    "build_params",
    "params_to_dict",
    "parse_assignments",
    "load_toml",
    "config_diff",
    "describe_params",
]

_SCALARS = (int, float, bool, str)


def param(default, help: str = "", *, min: float | None = None, max: float | None = None, choices=None,
          analysis: bool = False):
    """A dataclass field with a default, a help line and optional bounds (inclusive) or choices.

    analysis: the parameter only enters ``analyze``/``figures`` (a tolerance, a threshold), never a
    task's computation — changing it on ``--resume`` re-analyses the stored tasks instead of refusing.
    """
    meta = {"help": help, "min": min, "max": max, "choices": tuple(choices) if choices is not None else None,
            "analysis": bool(analysis)}
    return dataclasses.field(default=default, metadata=meta)


def analysis_params(cls) -> frozenset[str]:
    """Names of the fields of a Params class declared with ``analysis=True``."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("analysis"))


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _coerce_scalar(value, tp, key: str):
    """Convert ``value`` to the scalar type ``tp`` or raise with what is expected."""
    bad = DeepEFTInputError(f"parameter {key!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__}).")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            v = float(value)
        elif isinstance(value, str):
            try:
                v = float(value)
            except ValueError:
                raise bad from None
        else:
            raise bad
        if not math.isfinite(v):
            raise DeepEFTInputError(f"parameter {key!r} must be finite, got {value!r}.")
        return v
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"unsupported parameter type {tp!r} for {key!r}")  # a bug in the experiment, not user input


def _coerce(value, tp, key: str):
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis or args[0] not in _SCALARS:
            raise TypeError(f"parameter {key!r}: use tuple[int|float|str|bool, ...], got {tp!r}")
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        if len(value) == 0:
            raise DeepEFTInputError(f"parameter {key!r} must be a non-empty list of {args[0].__name__}.")
        return tuple(_coerce_scalar(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    return _coerce_scalar(value, tp, key)


def _check_bounds(value, field: dataclasses.Field, key: str):
    meta = field.metadata
    items = value if isinstance(value, tuple) else (value,)
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    for v in items:
        if choices is not None and v not in choices:
            raise DeepEFTInputError(
                f"parameter {key!r} must be one of {list(choices)}, got {v!r}.{suggest(str(v), map(str, choices))}"
            )
        if lo is not None and v < lo:
            raise DeepEFTInputError(f"parameter {key!r} must be >= {lo}, got {v!r}.")
        if hi is not None and v > hi:
            raise DeepEFTInputError(f"parameter {key!r} must be <= {hi}, got {v!r}.")


def build_params(cls, *layers: Mapping[str, Any], where: Sequence[str] = ()):
    """Instantiate the Params dataclass ``cls`` from defaults overridden by ``layers`` (later wins).

    ``where`` names each layer (e.g. "preset 'quick'", "--set") for error messages.
    """
    types = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        origin = where[i] if i < len(where) else "configuration"
        for key, raw in layer.items():
            if key not in types:
                raise DeepEFTInputError(
                    f"unknown parameter {key!r} (from {origin}).{suggest(key, types)} "
                    f"Allowed parameters: {', '.join(types)}."
                )
            try:
                v = _coerce(raw, types[key], key)
                _check_bounds(v, fields[key], key)
            except DeepEFTInputError as exc:
                raise DeepEFTInputError(f"{exc} (from {origin})") from None
            values[key] = v
    return cls(**values)


def params_to_dict(p) -> dict[str, Any]:
    """Plain JSON-able dict of a Params instance (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def describe_params(cls) -> list[dict[str, Any]]:
    """[{name, type, default, help, min, max, choices, analysis}] for docs, ``deepeft list --json`` and reports
    (``min``/``max``: inclusive bounds or None; ``choices``: allowed values or None)."""
    types = _field_types(cls)
    rows = []
    for f in dataclasses.fields(cls):
        d = f.default
        rows.append(
            {
                "name": f.name,
                "type": _type_name(types[f.name]),
                "default": list(d) if isinstance(d, tuple) else d,
                "help": f.metadata.get("help", ""),
                "min": f.metadata.get("min"),
                "max": f.metadata.get("max"),
                "choices": list(f.metadata["choices"]) if f.metadata.get("choices") is not None else None,
                "analysis": bool(f.metadata.get("analysis", False)),
            }
        )
    return rows


def _parse_value(text: str):
    """A ``--set`` value: TOML syntax when it parses (numbers, booleans, [lists], "strings"), else the raw text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Sequence[str], *, option: str = "--set") -> dict[str, Any]:
    """``["n_samples=1000", "activations=relu,tanh"]`` → ``{"n_samples": 1000, "activations": "relu,tanh"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeepEFTInputError(f"{option} expects KEY=VALUE (e.g. {option} n_samples=1000), got {item!r}.")
        out[key] = _parse_value(value.strip())
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (errors say which file and line)."""
    p = Path(path)
    if not p.is_file():
        raise DeepEFTInputError(f"config file {str(p)!r} does not exist; pass the path of a .toml file.")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DeepEFTInputError(f"config file {str(p)!r} is not valid TOML: {exc}.") from None


def config_diff(stored: Mapping[str, Any], current: Mapping[str, Any], ignore=()) -> list[str]:
    """Human-readable differences between two parameter dicts (empty when identical), keys in ``ignore`` skipped."""
    diffs = []
    for key in sorted((set(stored) | set(current)) - set(ignore)):
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diffs.append(f"{key}: stored {a!r}, now {b!r}")
    return diffs
