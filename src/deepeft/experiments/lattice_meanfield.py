"""lattice-meanfield: the factorial (mean-field) theory of Poole et al. against the lattice chain
(Schoenholz et al. 2017, arXiv:1710.06570, Fig. 1).

One task per σ_w²: M networks of width N, depth L with φ = tanh (default) from the exact conditional chain (9),
one input with |x|²/n_0 = 1. Mean-field theory (``deepeft.lattice.meanfield``): the q-map
q^l = σ_w² ⟨φ(u)²⟩_{u~N(0, q^{l−1})} + σ_b², q^0 = σ_w² + σ_b², norms √(N q^l), fixed point q*.

Checks per σ_w²: E[|z^l|²]/N at layer 0 (exact: q^0), at layer L/8 (transient) and averaged over the window
[L/2, L) against the mean-field q^l. Mean field replaces φ(z)·φ(z)/N by its expectation, which is exact as
N → ∞; its error at finite N is O(1/N) relative (it neglects the fluctuations of Σ^l), below the Monte Carlo
resolution at the paper's sizes. The figure (Fig. 1) draws sample trajectories with the mean-field norms
dashed: the variance is predicted, the layer-to-layer fluctuations are not (the factorial theory has none);
the recorded lag-1 autocorrelation of |z^l| in the window (``rho1``, factorial theory: 0) quantifies them.

References:
  Schoenholz, Pennington & Sohl-Dickstein, A Correspondence Between Random Neural Networks and Statistical
  Field Theory (2017), arXiv:1710.06570
  Poole et al., Exponential expressivity in deep neural networks through transient chaos (2016), arXiv:1606.05340
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import lattice as dl
from ..activations import available_activations
from ..errors import DeepEFTInputError
from ..statistics import Z_MAX, mean_se
from . import _lattice_common as lc
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register


@register
class LatticeMeanfield(Experiment):
    name = "lattice-meanfield"
    description = "mean-field q-map q* and norms sqrt(N q^l) vs sampled stochastic tanh networks (Fig. 1)"
    references = "Schoenholz et al. 2017 (arXiv:1710.06570) eq. (9), Fig. 1; Poole et al. (2016) q-map"
    order = 199

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("tanh", "activation φ", choices=tuple(available_activations()))
        sigma_w2s: tuple[float, ...] = param((0.1, 0.5, 0.9, 1.2, 1.5), "weight variances σ_w²", min=0.0)
        sigma_b2: float = param(0.001, "bias variance σ_b²", min=1e-12)
        N: int = param(200, "width N", min=2)
        L: int = param(100, "depth L", min=16)
        n_networks: int = param(64, "networks M", min=8)
        n_trajectories: int = param(3, "trajectories per σ_w² drawn in Fig. 1", min=1)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            if len(set(self.sigma_w2s)) != len(self.sigma_w2s) or not self.sigma_w2s:
                raise DeepEFTInputError("parameter 'sigma_w2s' must list distinct values, e.g. [0.1, 1.5].")
            if self.n_trajectories > self.n_networks:
                raise DeepEFTInputError("parameter 'n_trajectories' must be <= n_networks.")

    presets = {
        "quick": {"n_networks": 400},  # 4× the default: the fluctuations to ~1 % (a 5 % theory slip fails)
        "paper": {
            "sigma_w2s": (0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5),
            "N": 500,
            "n_networks": 200,
        },
    }

    def sweep(self, p):
        return {"sigma_w2": list(p.sigma_w2s)}

    def coords(self, p):
        return {"layer": list(range(p.L)), "traj": list(range(p.n_trajectories))}

    def compute(self, p, task, ctx):
        sw, sb, N, L = float(task["sigma_w2"]), p.sigma_b2, p.N, p.L
        s = dl.sample_conditional(p.activation, sw, sb, N=N, L=L, n_networks=p.n_networks, seed=lc.sampler_seed(ctx))
        r = s.r[:, :, 0].astype(np.float64)
        q2 = r * r / N
        q_mf = dl.q_trajectory(p.activation, sw, sb, L)
        win = dl.analysis_window(L)
        mean, se = mean_se(q2)
        qw, qw_se = mean_se(q2[:, win].mean(1))
        eps = r[:, win] - r[:, win].mean()
        rho, rho_se = mean_se((eps[:, 1:] * eps[:, :-1]).mean(1) / (eps * eps).mean(1))
        try:
            qstar = dl.fixed_point(p.activation, sw, sb)
        except DeepEFTInputError:
            qstar = np.nan  # no finite fixed point (the norm grows without bound)
        return {
            "q_sim": (("layer",), mean),
            "q_se": (("layer",), se),
            "q_meanfield": (("layer",), q_mf),
            "q_window": np.float64(qw),
            "q_window_se": np.float64(qw_se),
            "q_window_meanfield": np.float64(q_mf[win].mean()),
            "q_star": np.float64(qstar),
            "rho1": np.float64(rho),
            "rho1_se": np.float64(rho_se),
            "traj_r": (("traj", "layer"), r[: p.n_trajectories]),
        }

    def analyze(self, p, ds):
        checks = []
        for sw in p.sigma_w2s:
            d = ds.sel(sigma_w2=sw)
            tag = f"{p.activation} σ_w²={sw:g}"
            for l in (0, p.L // 8):
                e = d.sel(layer=l)
                checks.append(zcheck(f"{tag}: E|z^{l}|²/N = q^{l} (mean field)", e.q_meanfield, e.q_sim, e.q_se,
                                     max_z=p.max_z))
            checks.append(zcheck(f"{tag}: E|z|²/N window [L/2, L) (mean-field q^l, Fig. 1)", d.q_window_meanfield,
                                 d.q_window, d.q_window_se, max_z=p.max_z))
        return checks

    def figures(self, p, ds):
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        cmap = colormaps["coolwarm"]
        sws = list(p.sigma_w2s)
        fig = Figure(figsize=(14.0, 4.2), layout="constrained")
        ax, ax2, ax3 = fig.subplots(1, 3, width_ratios=[3, 2, 1.6])
        layers = ds.layer.values
        for i, sw in enumerate(sws):
            c = cmap(i / max(len(sws) - 1, 1))
            d = ds.sel(sigma_w2=sw)
            for t in ds.traj.values:
                ax.plot(layers, d.traj_r.sel(traj=t).values, color=c, lw=0.6, alpha=0.8)
            ax.plot(layers, np.sqrt(p.N * d.q_meanfield.values), "k--", lw=1.0)
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_ylabel("|z^l|")
        ax.set_title(f"Fig. 1: {p.activation}, N={p.N}, σ_b²={p.sigma_b2:g}; σ_w² {sws[0]:g} (blue) → {sws[-1]:g} (red); "
                     "dashed: mean field", fontsize=9)

        grid = np.linspace(min(sws), max(sws), 120)
        qs = []
        for g in grid:
            try:
                qs.append(dl.fixed_point(p.activation, g, p.sigma_b2))
            except DeepEFTInputError:
                qs.append(np.nan)
        ax2.plot(grid, qs, "k-", lw=1.2, label="q* (fixed point)")
        ax2.plot(sws, ds.q_window_meanfield.values, "k+", ms=8, label="mean-field q^l, window mean")
        ax2.errorbar(sws, ds.q_window.values, yerr=ds.q_window_se.values, fmt="o", color="crimson", ms=4,
                     label="simulation E|z|²/N, window")
        ax2.set_yscale("log")
        ax2.set_xlabel("σ_w²")
        ax2.set_ylabel("q")
        ax2.legend(fontsize=7)
        ax2.set_title("mean-field fixed point vs simulated norms", fontsize=9)
        ax3.errorbar(sws, ds.rho1.values, yerr=ds.rho1_se.values, fmt="o", color="navy", ms=4, label="simulation")
        ax3.axhline(0.0, color="k", ls="--", lw=1.0, label="mean field (factorial)")
        ax3.set_xlabel("σ_w²")
        ax3.set_ylabel("corr(|z^l|, |z^(l+1)|)")
        ax3.legend(fontsize=7)
        ax3.set_title("cross-layer fluctuations", fontsize=9)
        return {"fig1_meanfield.png": fig}
