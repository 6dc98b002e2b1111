"""A weight spectrum against its fitted Marchenko–Pastur law (Agg canvas, no pyplot state); used by ``deepeft diagnose``."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..sgd.observables import MarchenkoPastur

__all__ = ["plot_weight_spectrum"]


def plot_weight_spectrum(eigenvalues, mp_sigma2: float, shape_ratio: float, bulk_edge: float, num_outliers: int = 0,
                         title: str = "", ax=None) -> Figure:
    """Histogram of the eigenvalues of WᵀW/n, the fitted MP density (4.2), the bulk edge (dotted) and the outliers
    (red triangles, the ``num_outliers`` largest eigenvalues). Returns the Figure (a new one when ``ax`` is None)."""
    lam = np.asarray(eigenvalues, np.float64)
    lam = lam[np.isfinite(lam)]
    if ax is None:
        fig = Figure(figsize=(4.2, 2.6), dpi=80, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
    else:
        fig = ax.figure
    hi = max(float(lam.max()), float(bulk_edge)) * 1.05
    ax.hist(lam, bins=min(60, max(10, lam.size // 8)), range=(0, hi), density=True, color="#8ab", label="ESD")
    x = np.linspace(1e-12, hi, 400)
    ax.plot(x, MarchenkoPastur(float(mp_sigma2), float(shape_ratio)).pdf(x), "k-", lw=1.2, label="MP fit")
    ax.axvline(float(bulk_edge), color="k", ls=":", lw=1)
    k = int(num_outliers)
    if k:
        ax.plot(np.sort(lam)[-k:], np.zeros(k), "rv", ms=6, label=f"{k} outlier(s)")
    ax.set_xlabel("λ of WᵀW/n")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig
