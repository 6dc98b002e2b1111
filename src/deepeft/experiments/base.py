"""The :class:`Experiment` base class: parameters, a sweep of tasks, a compute function per task,
assembly into an ``xarray.Dataset``, and an analysis that pairs theory with simulation.

Subclass it in one small module under ``deepeft/experiments/`` and decorate with
:func:`deepeft.experiments.register`; see ``docs/experiments.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .checks import Check
from .seeds import TaskContext

__all__ = ["Experiment"]


class Experiment:
    """Base class of a named, parameterised reproduction.

    Class attributes
    ----------------
    name : kebab-case name used on the command line (``deepeft run NAME``).
    description : one line shown by ``deepeft list``.
    Params : a frozen dataclass of typed parameters (fields made with :func:`param`); it must have
        an integer field ``seed``.
    presets : ``{"quick": {...}, "paper": {...}}`` — overrides of the dataclass defaults. ``quick``
        finishes in minutes on 2 cores; ``paper`` uses the sources' full parameters.
    order : position in ``deepeft list`` / ``reproduce`` (smaller first; foundations < 100).
    references : where the compared numbers come from (book equations, papers).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"quick": {}, "paper": {}}
    order: ClassVar[int] = 100
    references: ClassVar[str] = ""

    # -- the sweep ----------------------------------------------------------------------------
    def sweep(self, p) -> dict[str, Sequence]:
        """Named axes of a grid sweep, e.g. ``{"activation": [...], "K": [...]}``; one task per grid
        point in row-major order. The default ``{}`` means a single task."""
        return {}

    def tasks(self, p) -> list[dict[str, Any]]:
        """The list of tasks (JSON-able dicts). Task ``i`` gets seed stream (p.seed, i)."""
        axes = self.sweep(p)
        names = list(axes)
        return [dict(zip(names, point)) for point in itertools.product(*(list(axes[n]) for n in names))]

    def coords(self, p) -> dict[str, Sequence]:
        """Coordinates of the dims that ``compute`` results carry beyond the sweep axes."""
        return {}

    # -- the work -----------------------------------------------------------------------------
    def compute(self, p, task: dict[str, Any], ctx: TaskContext) -> Mapping[str, Any]:
        """Run one task. Return ``{var: array}`` (0-d) or ``{var: (dims, array)}``; arrays must be numeric.

        Use only ``ctx.rng()`` / ``ctx.jax_key()`` for randomness so results are reproducible
        on any scheduler. Runs in a worker process/thread: no global state, no pyplot.
        """
        raise NotImplementedError

    def assemble(self, p, tasks: list[dict[str, Any]], results: list[dict[str, tuple]]):
        """Stack per-task results into an ``xarray.Dataset`` with dims (*sweep axes, *result dims).

        ``results[i]`` maps var → (dims, ndarray). Override to add theory curves computed once
        for the whole grid (call ``super().assemble`` first).
        """
        import xarray as xr

        axes = self.sweep(p)
        shape = tuple(len(v) for v in axes.values())
        if int(np.prod(shape)) != len(tasks):
            raise NotImplementedError(
                f"{self.name}: tasks() is not the grid of sweep(); override assemble() to build the Dataset."
            )
        data_vars = {}
        for var, (dims, first) in results[0].items():
            stacked = np.stack([np.asarray(r[var][1]) for r in results]) if results else np.asarray(first)
            data_vars[var] = ((*axes.keys(), *dims), stacked.reshape(shape + np.shape(first)))
        coords = {k: list(v) for k, v in axes.items()}
        coords.update({k: list(v) for k, v in self.coords(p).items()})
        return xr.Dataset(data_vars, coords=coords)

    def analyze(self, p, ds) -> list[Check]:
        """Pair theory with simulation: a list of :class:`Check` (see ``zcheck``/``close_check``)."""
        return []

    def figures(self, p, ds) -> dict[str, Any]:
        """``{"file.png": matplotlib.figure.Figure}``; build figures with ``matplotlib.figure.Figure``
        (not pyplot) so nothing depends on a display or global state."""
        return {}
