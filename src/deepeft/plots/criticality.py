"""Figures for §5.3: analogues of book Figs 5.1–5.3 (theory curves; matplotlib, Agg-safe).

* Fig. 5.1 left — the lines χ_⊥(K*) = 1 and χ_∥(K*) = 1 in the (C_W, C_b) plane, parametrised by the
  fixed point K* (C_W = 1/⟨σ′σ′⟩ or 1/g′, C_b = K* − C_W g(K*) from (5.56)); they meet at criticality.
* Fig. 5.1 right, 5.2, 5.3 — the ratio χ_⊥/χ_∥ = 2K²⟨σ′σ′⟩/⟨σσ(z² − K)⟩ of (5.73) against K*, with the
  critical points found by :func:`~deepeft.theory.criticality.criticality` marked.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..activations import activation as _activation
from ..theory.criticality import criticality
from ..theory.single_input import helper_functions

__all__ = ["book_figures", "plot_criticality_lines", "plot_criticality_ratio"]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(4.8, 3.6))
    return ax


def plot_criticality_ratio(activations=("tanh",), *, K_range=(1e-2, 1e2), n: int = 241, ax=None):
    """χ_⊥/χ_∥ (5.73) against K* for each activation (name, Activation or callable); dots at critical points."""
    ax = _axes(ax)
    for a in activations:
        crit = criticality(a, K_range=K_range, n_grid=n, exponents=False)
        ax.semilogx(crit.K_grid, crit.ratio, label=crit.activation.name)
        for p in crit.points:
            if p.K_star is not None:
                ks = max(p.K_star, K_range[0])
                ax.plot([ks], [1.0], "o", color="k" if p.physical else "0.6", ms=5, zorder=3)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel(r"$K^\star$")
    ax.set_ylabel(r"$\chi_\perp/\chi_\parallel$ (5.73)")
    ax.legend(frameon=False)
    return ax


def plot_criticality_lines(activation="tanh", *, K_range=(1e-3, 3.0), n: int = 300, ax=None):
    """Fig. 5.1 (left): the lines χ_⊥* = 1 (solid) and χ_∥* = 1 (dashed) in the (C_W, C_b) plane.

    Each line is parametrised by its fixed point K*: C_W = 1/⟨σ′σ′⟩ (χ_⊥ = 1) or 1/g′ (χ_∥ = 1), and
    C_b = K* − C_W g(K*) (5.56). For tanh (g concave) the χ_∥ = 1 line has C_b = −2K*² + … ≤ 0: it touches the
    physical region C_b ≥ 0 only at the critical point (1, 0), where the two lines meet.
    """
    ax = _axes(ax)
    act = _activation(activation)
    K = np.geomspace(K_range[0], K_range[1], n)
    hf = helper_functions(act, K, 1.0)
    lines = ((hf.chi_perp, "-", r"$\chi_\perp^\star = 1$"), (hf.chi_parallel, "--", r"$\chi_\parallel^\star = 1$"))
    for chi, style, label in lines:
        cw = 1.0 / chi
        ax.plot(cw, K - cw * hf.g, style, label=label)
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    crit = criticality(act, exponents=False)
    p = crit.critical
    if p is not None:
        ax.plot([p.C_W], [p.C_b], "ko", ms=5, label="critical point")
    lo, hi = ax.get_ylim()
    if lo < 0:  # a variance C_b cannot be negative: shade that half-plane
        ax.axhspan(lo, 0.0, color="0.85", alpha=0.6, lw=0, zorder=0, label=r"$C_b < 0$: unphysical")
        ax.set_ylim(lo, hi)
    ax.set_xlabel(r"$C_W$")
    ax.set_ylabel(r"$C_b$")
    ax.set_title(act.name)
    ax.legend(frameon=False)
    return ax


def book_figures(outdir=None) -> dict:
    """Figs 5.1–5.3 analogues as matplotlib Figures (saved as PNG under ``outdir`` when given)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figs = {}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    plot_criticality_lines("tanh", ax=a)
    plot_criticality_ratio(["tanh"], K_range=(1e-3, 1e1), ax=b)
    figs["fig5_1"] = fig
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    plot_criticality_ratio(["sigmoid"], K_range=(1e-3, 1e1), ax=a)
    plot_criticality_ratio(["softplus"], K_range=(1e-3, 1e2), ax=b)
    figs["fig5_2"] = fig
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    plot_criticality_ratio(["swish"], K_range=(1e-2, 1e2), ax=a)
    plot_criticality_ratio(["gelu"], K_range=(1e-2, 1e2), ax=b)
    figs["fig5_3"] = fig
    for f in figs.values():
        f.tight_layout()
    if outdir is not None:
        out = pathlib.Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        for name, f in figs.items():
            f.savefig(out / f"{name}.png", dpi=120)
    return figs
