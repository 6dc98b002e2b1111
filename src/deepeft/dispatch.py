"""Public entry points that accept several network kinds: a registry (network class, entry point) → function.

``de.kernels``, ``de.four_point_vertex``, ``de.sample_ensemble`` … are written for the MLP; a module that
implements them for another network spec (e.g. :class:`deepeft.graph.GCN` in ``theory/gnn.py``) registers its
functions here at import, and the entry point hands such a network over with ``dispatch.handler(net, name)``.
The registry imports nothing from deepeft, so the entry points need no import of the modules they hand over to
(no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["handler", "register"]

_HANDLERS: dict[tuple[type, str], Callable] = {}


def register(cls: type, **entries: Callable) -> None:
    """Register ``entry_point_name=function`` for networks of class ``cls`` (and its subclasses)."""
    for name, fn in entries.items():
        _HANDLERS[(cls, name)] = fn


def handler(net, entry: str) -> Callable | None:
    """The function registered for ``entry`` and the class of ``net`` (None: the entry point's own MLP path)."""
    for klass in type(net).__mro__:
        fn = _HANDLERS.get((klass, entry))
        if fn is not None:
            return fn
    return None
