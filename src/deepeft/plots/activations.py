"""Book Fig. 2.2 analogue: one small panel per activation σ(z), with σ'(z) dashed."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..activations import activation
from ..errors import DeepEFTInputError

__all__ = ["BOOK_FIG_2_2", "plot_activations"]

#: The activations of book Fig. 2.2 (§2.2), then leaky ReLU (not shown there), erf and ELU.
BOOK_FIG_2_2 = (
    "perceptron", "sigmoid", "tanh", "sin", "linear", "relu",
    "softplus", "swish", "gelu", "leaky_relu", "erf", "elu",
)  # fmt: skip


def plot_activations(names=None, ax=None, path=None, *, z_range=(-3.0, 3.0), ncols=4) -> Figure:
    """Plot σ(z) (solid) and σ'(z) (dashed) for each activation, as in book Fig. 2.2.

    ``names``: activations (anything :func:`deepeft.activation` accepts: names, ``Activation`` objects,
    callables); default :data:`BOOK_FIG_2_2`. ``ax``: ``None`` (a new grid of panels), a sequence/array of
    at least ``len(names)`` Axes (one panel each), or a single Axes (all curves overlaid). ``path``: save a
    PNG there. Kinks are marked with a dot, jumps (the perceptron's δ(z) in σ') with a dotted vertical line;
    derivatives at kinks follow the registry's right-derivative convention. Returns the Figure.
    """
    acts = [activation(n) for n in (BOOK_FIG_2_2 if names is None else _as_list(names))]
    if not acts:
        raise DeepEFTInputError("names is empty: give at least one activation to plot (or None for all).")
    lo, hi = (float(v) for v in z_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise DeepEFTInputError(f"z_range must be two finite numbers (lo, hi) with lo < hi, got {z_range!r}.")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise DeepEFTInputError(f"ncols must be a positive integer, got {ncols!r}.")

    axes, fig = _axes_for(acts, ax, ncols)
    z = np.linspace(lo, hi, 601)
    overlay = len(axes) == 1 and len(acts) > 1
    for i, act in enumerate(acts):
        a = axes[0] if overlay else axes[i]
        _draw(a, act, z, color=f"C{i % 10}" if overlay else "C0", overlay=overlay)
    if overlay:
        axes[0].legend(fontsize=7, ncol=2)
    if ax is None:
        fig.suptitle("σ(z) solid, σ'(z) dashed (right derivative at kinks)", fontsize=10)
    if path is not None:
        _save(fig, path)
    return fig


def _as_list(names):
    if isinstance(names, str) or callable(names):
        return [names]
    return list(names)


def _axes_for(acts, ax, ncols):
    if ax is None:
        ncols = min(ncols, len(acts))
        nrows = -(-len(acts) // ncols)
        fig = Figure(figsize=(2.3 * ncols, 2.0 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for extra in grid[len(acts) :]:
            extra.set_visible(False)
        return list(grid[: len(acts)]), fig
    if isinstance(ax, Axes):
        return [ax], ax.figure
    axes = list(np.asarray(ax, dtype=object).ravel())
    if len(axes) < len(acts) or not all(isinstance(a, Axes) for a in axes):
        raise DeepEFTInputError(
            f"ax must be one Axes or a sequence of at least {len(acts)} Axes (one per activation), got {ax!r}."
        )
    return axes[: len(acts)], axes[0].figure


def _label(act):
    name = act.name.lstrip("_") or "custom"  # matplotlib hides legend labels that start with "_"
    p = ", ".join(f"{k}={v:g}" for k, v in act.params)
    return f"{name}({p})" if p else name


def _draw(a, act, z, color, overlay):
    s = _break_at(z, act.numpy(z), act.jumps)  # no vertical segment across a jump
    ds = _break_at(z, act.numpy(z, 1), act.breakpoints)
    a.plot(z, s, color=color, lw=1.6, label=_label(act))
    a.plot(z, ds, color=color if overlay else "C1", lw=1.0, ls="--")
    kz = [k for k in act.kinks if z[0] <= k <= z[-1]]
    if kz:
        a.plot(kz, act.numpy(np.asarray(kz)), "o", color=color, ms=3)
    for j in act.jumps:
        if z[0] <= j <= z[-1]:
            a.axvline(j, color=color, lw=0.8, ls=":")
    if not overlay:
        a.set_title(_label(act), fontsize=9)
        a.set_ylim(-1.6, 3.1)
    a.set_xlim(z[0], z[-1])
    a.set_xticks(np.arange(np.ceil(z[0]), np.floor(z[-1]) + 1))  # grid in units of one, as in the book
    a.set_yticks(np.arange(-1, 4) if not overlay else a.get_yticks())
    a.grid(True, lw=0.4, alpha=0.5)
    a.tick_params(labelsize=7)


def _break_at(z, y, points):
    """NaN at the grid point just left of each discontinuity, so matplotlib draws no connecting segment."""
    y = y.copy()
    for p in points:
        y[(z < p) & (z >= p - (z[1] - z[0]))] = np.nan
    return y


def _save(fig, path):
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=80)
