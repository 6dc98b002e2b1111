"""The experiment registry: ``@register`` a subclass of :class:`Experiment`; modules in
``deepeft/experiments/`` are discovered (imported) on first lookup."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import traceback
import typing

from ..errors import DeepEFTInputError, suggest
from .base import Experiment
from .config import build_params

__all__ = ["register", "get_experiment", "available_experiments", "discover", "load_errors"]

_REGISTRY: dict[str, Experiment] = {}
_LOAD_ERRORS: dict[str, str] = {}
_DISCOVERED = False
_FRAMEWORK = {"base", "checks", "config", "executors", "registry", "report", "runner", "seeds", "store"}
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _validate_class(cls) -> None:
    where = f"experiment class {cls.__module__}.{cls.__qualname__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TypeError(f"{where}: `name` must be kebab-case like 'kernel-vs-ensemble', got {name!r}")
    desc = getattr(cls, "description", None)
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc.strip():
        raise TypeError(f"{where}: `description` must be one non-empty line")
    P = getattr(cls, "Params", None)
    if P is None or not dataclasses.is_dataclass(P):
        raise TypeError(f"{where}: `Params` must be a frozen dataclass of typed parameters")
    if typing.get_type_hints(P).get("seed") is not int:
        raise TypeError(f"{where}: Params must have an integer field `seed`")
    for preset in ("quick", "paper"):
        if preset not in cls.presets:
            raise TypeError(f"{where}: presets must define {preset!r}")
    for preset, values in cls.presets.items():
        try:
            build_params(P, values, where=[f"preset {preset!r}"])
        except DeepEFTInputError as exc:
            raise TypeError(f"{where}: preset {preset!r} is invalid: {exc}") from None


def register(cls):
    """Class decorator: validate an :class:`Experiment` subclass and add it to the registry."""
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise TypeError("@register decorates a subclass of deepeft.experiments.Experiment")
    _validate_class(cls)
    old = _REGISTRY.get(cls.name)
    if old is not None and (type(old).__module__, type(old).__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(
            f"experiment name {cls.name!r} is registered twice: by {type(old).__module__} and {cls.__module__}"
        )
    _REGISTRY[cls.name] = cls()
    return cls


def discover() -> None:
    """Import every experiment module in this package once (framework modules excluded).

    A module that fails to import is recorded in :func:`load_errors` instead of breaking the CLI.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from . import __path__ as pkg_path

    for info in sorted(pkgutil.iter_modules(pkg_path), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _FRAMEWORK:
            continue
        modname = f"{__package__}.{info.name}"
        try:
            importlib.import_module(modname)
        except Exception:  # noqa: BLE001 - report, don't crash the registry
            _LOAD_ERRORS[modname] = traceback.format_exc(limit=3)


def load_errors() -> dict[str, str]:
    """{module: traceback} for experiment modules that failed to import."""
    discover()
    return dict(_LOAD_ERRORS)


def available_experiments() -> list[str]:
    """Registered experiment names, in ``order`` then name."""
    discover()
    return [e.name for e in sorted(_REGISTRY.values(), key=lambda e: (e.order, e.name))]


def get_experiment(name: str) -> Experiment:
    """The registered experiment called ``name`` (DeepEFTInputError with suggestions otherwise)."""
    discover()
    if isinstance(name, Experiment):
        return name
    if name not in _REGISTRY:
        broken = ""
        if _LOAD_ERRORS:
            broken = f" (modules that failed to import: {', '.join(_LOAD_ERRORS)})"
        raise DeepEFTInputError(
            f"unknown experiment {name!r}.{suggest(name, _REGISTRY)} "
            f"Known: {', '.join(available_experiments()) or 'none'}{broken}. `deepeft list` shows them all."
        )
    return _REGISTRY[name]
