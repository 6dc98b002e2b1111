"""Implementations of public entry points for network specs other than :class:`~deepeft.MLP`.

A public function (``de.kernels``, ``de.vertex_flow``, ``de.sample_ensemble`` …) asks ``lookup(entry, net)`` first
and, when an implementation is registered for ``type(net)``, returns its result; the implementing module registers
itself on import (``register(entry, cls)`` as a decorator). Package namespaces are lazy (deepeft._lazy), so
:func:`lookup` imports the implementing modules of a network class, listed in ``PROVIDERS``, the first time it meets
that class. This keeps the entry points free of imports of the modules that implement other architectures (no
import cycles), e.g. ``deepeft.theory.residual_recursions`` for :class:`~deepeft.ResidualMLP`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .errors import DeepEFTInputError

__all__ = ["lookup", "register"]

_IMPL: dict[tuple[str, type], Callable] = {}

# "module.Class" of a network spec → the modules that register implementations for it (a new architecture, or a
# new module implementing an entry point for one, adds its module here).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "deepeft.network_residual.ResidualMLP": (
        "deepeft.theory.residual_recursions",
        "deepeft.theory.residual_phase",
        "deepeft.simulate.residual_ensemble",
    ),
    "deepeft.graph.GCN": ("deepeft.theory.gnn", "deepeft.simulate.gnn"),
}
_LOADED: set[type] = set()


def _load_providers(cls: type) -> None:
    if cls in _LOADED:
        return
    _LOADED.add(cls)
    for module in PROVIDERS.get(f"{cls.__module__}.{cls.__qualname__}", ()):
        importlib.import_module(module)


def register(entry: str, cls: type) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` implements the public entry point ``entry`` for networks of type ``cls``."""

    def deco(fn: Callable) -> Callable:
        _IMPL[(entry, cls)] = fn
        return fn

    return deco


def lookup(entry: str, net) -> Callable | None:
    """The implementation of ``entry`` for ``type(net)``, or None (the entry point's own MLP code applies)."""
    _load_providers(type(net))
    fn = _IMPL.get((entry, type(net)))
    if fn is None and any(cls is type(net) for _, cls in _IMPL):
        raise DeepEFTInputError(f"{entry} does not support {type(net).__name__}; see the docs for what it accepts.")
    return fn
