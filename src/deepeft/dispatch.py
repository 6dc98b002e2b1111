"""Implementations of public entry points for network specs other than :class:`~deepeft.MLP`.

A public function (``de.kernels``, ``de.vertex_flow``, ``de.sample_ensemble`` …) asks ``lookup(entry, net)`` first
and, when an implementation is registered for ``type(net)``, returns its result; the implementing module registers
itself on import (``register(entry, cls)`` as a decorator) and is imported by its package ``__init__``. This keeps
the entry points free of imports of the modules that implement other architectures (no import cycles), e.g.
``deepeft.theory.residual_recursions`` for :class:`~deepeft.ResidualMLP`.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import DeepEFTInputError

__all__ = ["lookup", "register"]

_IMPL: dict[tuple[str, type], Callable] = {}


def register(entry: str, cls: type) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` implements the public entry point ``entry`` for networks of type ``cls``."""

    def deco(fn: Callable) -> Callable:
        _IMPL[(entry, cls)] = fn
        return fn

    return deco


def lookup(entry: str, net) -> Callable | None:
    """The implementation of ``entry`` for ``type(net)``, or None (the entry point's own MLP code applies)."""
    fn = _IMPL.get((entry, type(net)))
    if fn is None and any(cls is type(net) for _, cls in _IMPL):
        raise DeepEFTInputError(f"{entry} does not support {type(net).__name__}; see the docs for what it accepts.")
    return fn
