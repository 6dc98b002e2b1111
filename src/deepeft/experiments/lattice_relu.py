"""lattice-relu: deep ReLU stochastic networks as a three-field lattice model (Schoenholz et al. 2017,
arXiv:1710.06570, Figs. 5, 6).

One task per σ_w²: M networks of width N and depth L from the exact conditional chain (9) with φ = ReLU
(``deepeft.lattice.sample_conditional``), analysed in the window [L/2, L). Per layer the sampler records
r_± = |z_±| and k, the number of NEGATIVE components (E4). Fields (21): ε̃_± = (√N/r*)(r_± − r*), ε̃_k = (k − N/2)/√N.

Theory (verified coefficients, errata E4–E6):

* Fig. 5 — E[r_±²] = ½ N q^l with q^l the ReLU q-map (exact at any N: z is sign-symmetric given Σ^l, transient
  included; = r*² of (20) once it has decayed), E[k] = N/2 and Var(k) = N/4 (k ~ Binomial(N, ½) exactly);
  E[r_±] is drawn against r*_± (the mode, E9);
* Fig. 6 — the 3×3 equal-layer covariance and lagged covariances C(d) = E[x_{l+d} x_lᵀ] of (ε̃_+, ε̃_−, ε̃_k)
  (VAR(1) closed forms), and band averages of the 3×3 (cross-)spectra against the exact windowed spectrum.

Printed vs verified (E6): the printed k-sector (3ε̃_k², ε̃_k(ε̃_+ − ε̃_−)) predicts Var(ε̃_k) ≈ 0.40 instead of the
exact ¼; a ``reject`` check per σ_w² asserts the simulation rejects it, and the printed 3×3 covariance is
stored (``C_printed``) and drawn. Laplace predictions are plain z-checks when N·(1 − σ_w²/2) ≥ ``min_n_gap``;
closer to the ReLU critical point σ_w² = 2 the O(1/(N·gap)) systematic is added.

References:
  Schoenholz, Pennington & Sohl-Dickstein, A Correspondence Between Random Neural Networks and Statistical
  Field Theory (2017), arXiv:1710.06570
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import lattice as dl
from ..errors import DeepEFTInputError
from ..statistics import Z_MAX, mean_se
from . import _lattice_common as lc
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register

FIELDS = ("+", "−", "k")


@register
class LatticeRelu(Experiment):
    name = "lattice-relu"
    description = "deep ReLU stochastic networks: r*_+-, k statistics, 3x3 equal-layer/lagged covariances and spectra"
    references = "Schoenholz et al. 2017 (arXiv:1710.06570) eqs. (18)-(22), (85), (90)-(97), Figs. 5, 6; errata E4-E6, E9"
    order = 201

    @dataclasses.dataclass(frozen=True)
    class Params:
        sigma_w2s: tuple[float, ...] = param((0.02, 0.66, 1.3), "weight variances σ_w² (< 2)", min=0.0, max=1.9999)
        sigma_b2: float = param(0.01, "bias variance σ_b²", min=1e-12)
        N: int = param(200, "width N", min=2)
        L: int = param(256, "depth L (analysis window: layers L/2..L-1)", min=32)
        n_networks: int = param(100, "networks M", min=8)
        d_max: int = param(2, "largest lag d of the covariances C(d)", min=0)
        min_n_gap: float = param(10.0, "Laplace regime: N·(1 − σ_w²/2) at least this for plain z-checks", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        reject_z: float = param(Z_MAX, "printed coefficients count as rejected at |z| ≥ reject_z", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            if len(set(self.sigma_w2s)) != len(self.sigma_w2s) or not self.sigma_w2s:
                raise DeepEFTInputError("parameter 'sigma_w2s' must list distinct values, e.g. [0.66, 1.3].")
            if self.d_max >= self.L // 4:
                raise DeepEFTInputError(f"parameter 'd_max' must be < L/4 = {self.L // 4}; lower d_max or raise L.")

    presets = {
        "quick": {"n_networks": 400},  # 4× the default: the fluctuations to ~1 % (a 5 % theory slip fails)
        "paper": {"sigma_w2s": (0.02, 0.34, 0.66, 0.98, 1.3, 1.62, 1.94), "L": 1024, "n_networks": 200},
    }

    def sweep(self, p):
        return {"sigma_w2": list(p.sigma_w2s)}

    def coords(self, p):
        W = p.L - p.L // 2
        return {
            "layer": list(range(p.L)),
            "lag": list(range(p.d_max + 1)),
            "field": list(FIELDS),
            "field2": list(FIELDS),
            "mode": list(range(W // 2 + 1)),
            "band": list(lc.BANDS),
        }

    def compute(self, p, task, ctx):
        sw, sb, N, L = float(task["sigma_w2"]), p.sigma_b2, p.N, p.L
        s = dl.sample_conditional("relu", sw, sb, N=N, L=L, n_networks=p.n_networks, seed=lc.sampler_seed(ctx))
        th = dl.quadratic_theory("relu", sw, sb, N)
        printed = dl.quadratic_theory("relu", sw, sb, N, coefficients="printed")
        rstar = dl.saddle_relu(sw, sb, N).r_plus
        win = dl.analysis_window(L)
        W = win.stop - win.start
        nm = W // 2 + 1
        x = dl.fluctuation_fields(s, "relu", scaled=True)  # (M, W, 3)

        rp = s.r_plus[:, :, 0].astype(np.float64)
        rm = s.r_minus[:, :, 0].astype(np.float64)
        k = s.k[:, :, 0].astype(np.float64)
        r2_layer = 0.5 * N * dl.q_trajectory("relu", sw, sb, L)  # exact E[r_±²]
        out = {"r_star": np.float64(rstar), "n_gap": np.float64(N * lc.laplace_gap("relu", sw)),
               "r2_theory": (("layer",), r2_layer), "r2_window_theory": np.float64(r2_layer[win].mean())}
        for name, v in (("rp", rp), ("rm", rm), ("k", k)):
            m, se = mean_se(v)
            out[f"{name}_mean"], out[f"{name}_se"] = (("layer",), m), (("layer",), se)
        for name, v in (("rp2", rp * rp), ("rm2", rm * rm), ("k", k), ("k_var", (k - N / 2.0) ** 2)):
            m, se = mean_se(v[:, win].mean(1))
            out[f"{name}_window"], out[f"{name}_window_se"] = np.float64(m), np.float64(se)

        C = dl.estimate_lagged_covariance(x, p.d_max)
        T_win = dl.expected_periodogram(th, W)
        q = 2.0 * np.pi * np.arange(W) / W
        ms = dl.mode_statistics(x)
        bands = lc.band_spectra(x, T_win)
        dims3 = ("lag", "field", "field2")
        spec = ("mode", "field", "field2")
        out.update({
            "C_sim": (dims3, C.value),
            "C_se": (dims3, C.stderr),
            "C_theory": (dims3, dl.lagged_covariance(th, p.d_max)),
            "C_printed": (dims3, dl.lagged_covariance(printed, p.d_max)),
            "S_sim": (spec, ms.spectrum.value[:nm].real),
            "S_se": (spec, ms.spectrum.stderr[:nm]),
            "S_window": (spec, T_win[:nm].real),
            "S_theory": (spec, dl.spectrum(th, q)[:nm].real),
            "S_printed": (spec, dl.spectrum(printed, q)[:nm].real),
            "band_sim": (("band", "field", "field2"), bands["value"]),
            "band_se": (("band", "field", "field2"), bands["stderr"]),
            "band_theory": (("band", "field", "field2"), bands["theory"]),
        })
        return out

    def analyze(self, p, ds):
        checks = []
        N = p.N
        for sw in p.sigma_w2s:
            d = ds.sel(sigma_w2=sw)
            tag = f"σ_w²={sw:g}"
            kw = {"n_gap": float(d.n_gap), "min_n_gap": p.min_n_gap, "max_z": p.max_z}
            for f, lab in (("rp2", "r_+²"), ("rm2", "r_−²")):
                checks.append(zcheck(f"{tag}: E[{lab}] window (exact q-map, Fig. 5)", d.r2_window_theory,
                                     d[f"{f}_window"], d[f"{f}_window_se"], max_z=p.max_z))
            checks.append(zcheck(f"{tag}: E[k] = N/2 (Fig. 5 inset, E4)", N / 2.0, d.k_window, d.k_window_se,
                                 max_z=p.max_z))
            checks.append(zcheck(f"{tag}: Var k = N/4", N / 4.0, d.k_var_window, d.k_var_window_se, max_z=p.max_z))
            for lag in ds.lag.values:
                for a, fa in enumerate(FIELDS):
                    for b, fb in enumerate(FIELDS):
                        if lag == 0 and b < a:
                            continue  # symmetric
                        e = d.sel(lag=lag, field=fa, field2=fb)
                        scale = np.sqrt(d.C_theory.sel(lag=0, field=fa, field2=fa) * d.C_theory.sel(lag=0, field=fb, field2=fb))
                        checks.append(lc.laplace_check(f"{tag}: C({lag})[{fa}{fb}] (21) verified", e.C_theory, e.C_sim,
                                                       e.C_se, scale=scale, **kw))
            for band in ds.band.values:
                for a, b, lab in lc.pair_labels(FIELDS):
                    e = d.sel(band=band, field=FIELDS[a], field2=FIELDS[b])
                    checks.append(lc.laplace_check(f"{tag}: S_{lab}/√(S_aa S_bb) {band} band (Fig. 6)", e.band_theory,
                                                   e.band_sim, e.band_se, scale=1.0, **kw))
            e = d.sel(lag=0, field="k", field2="k")
            checks.append(lc.reject_check(f"{tag}: printed (21) k-sector, Var ε̃_k (E6)", e.C_printed, e.C_sim, e.C_se,
                                          min_z=p.reject_z))
        return checks

    def figures(self, p, ds):
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        cmap = colormaps["coolwarm"]
        sws = list(p.sigma_w2s)
        col = {sw: cmap(i / max(len(sws) - 1, 1)) for i, sw in enumerate(sws)}
        win = dl.analysis_window(p.L)
        figs = {}

        # Fig. 5: r*_± and k*
        fig = Figure(figsize=(9.5, 4.0), layout="constrained")
        ax, axk = fig.subplots(1, 2, width_ratios=[2, 1])
        grid = np.linspace(0.0, max(1.97, max(sws)), 200)
        ax.plot(grid, [dl.saddle_relu(g, p.sigma_b2, p.N).r_plus for g in grid], "k--", lw=1.2, label="r*_± (20)")
        for f, c, lab in (("rp", "crimson", "+"), ("rm", "royalblue", "−")):
            m = np.array([ds[f"{f}_mean"].sel(sigma_w2=sw).values[win].mean() for sw in sws])
            rms = np.sqrt(ds[f"{f}2_window"].values)
            ax.plot(sws, m, "o", color=c, ms=5, label=f"E[r_{lab}] (simulation)")
            ax.plot(sws, rms, "x", color=c, ms=6, label=f"√E[r_{lab}²] (simulation)")
        ax.set_yscale("log")
        ax.set_xlabel("σ_w²")
        ax.set_ylabel("norm")
        ax.legend(fontsize=7)
        ax.set_title(f"Fig. 5: ReLU fixed point, N={p.N}, L={p.L}, σ_b²={p.sigma_b2:g}, M={p.n_networks}", fontsize=9)
        axk.errorbar(sws, ds.k_window.values, yerr=ds.k_window_se.values, fmt="o", color="k", ms=5, label="E[k]")
        axk.axhline(p.N / 2, color="grey", ls="--", lw=1.2, label="k* = N/2")
        axk.set_xlabel("σ_w²")
        axk.set_ylabel("k (negative components)")
        axk.legend(fontsize=7)
        figs["fig5_rstar_k.png"] = fig

        # Fig. 6: 3×3 spectra
        W = p.L - p.L // 2
        qm = 2 * np.pi * ds.mode.values / W
        fig = Figure(figsize=(11.0, 9.0), layout="constrained")
        axes = fig.subplots(3, 3)
        for a, fa in enumerate(FIELDS):
            for b, fb in enumerate(FIELDS):
                ax = axes[a, b]
                if b < a:  # lower triangle: equal-layer covariance vs σ_w²
                    e = ds.C_sim.sel(lag=0, field=fb, field2=fa)
                    ax.errorbar(sws, e.values, yerr=ds.C_se.sel(lag=0, field=fb, field2=fa).values, fmt="o", ms=4,
                                label="simulation")
                    g2 = np.linspace(0.0, 1.97, 100)
                    ax.plot(g2, [dl.relu_covariance(g)[b, a] for g in g2], "k-", lw=1, label="verified")
                    ax.plot(sws, ds.C_printed.sel(lag=0, field=fb, field2=fa).values, "s", mfc="none", color="grey",
                            ms=5, label="printed")
                    ax.set_title(f"C(0)[{fb}{fa}] vs σ_w²", fontsize=8)
                    ax.set_xlabel("σ_w²", fontsize=8)
                    ax.legend(fontsize=6)
                    continue
                for sw in sws:
                    d = ds.sel(sigma_w2=sw, field=fa, field2=fb)
                    ax.plot(qm[1:], d.S_sim.values[1:], color=col[sw], lw=0.9, label=f"σ_w²={sw:g}")
                    ax.plot(qm[1:], d.S_window.values[1:], "k-", lw=0.7)
                    ax.plot(qm[1:], d.S_printed.values[1:], ":", color="grey", lw=0.7)
                ax.set_yscale("log" if a == b else "symlog")
                ax.set_title(f"Re S_{fa}{fb}(q): black verified, dotted printed", fontsize=8)
                ax.set_xlabel("q", fontsize=8)
        axes[0, 0].legend(fontsize=6)
        fig.suptitle("Fig. 6: ReLU fluctuation spectra (upper) and equal-layer covariances (lower)", fontsize=10)
        figs["fig6_spectra.png"] = fig

        # lagged covariances
        fig = Figure(figsize=(10.0, 3.6), layout="constrained")
        axes = fig.subplots(1, 3)
        for j, (sa, sb) in enumerate([("+", "+"), ("+", "−"), ("−", "+")]):
            ax = axes[j]
            for sw in sws:
                d = ds.sel(sigma_w2=sw, field=sa, field2=sb)
                ax.errorbar(ds.lag.values, d.C_sim.values, yerr=d.C_se.values, fmt="o", ms=4, color=col[sw],
                            label=f"σ_w²={sw:g}")
                ax.plot(ds.lag.values, d.C_theory.values, "k-", lw=0.8)
            ax.set_xlabel("lag d")
            ax.set_title(f"C(d)[{sa}{sb}] = E[ε̃_{sa}^(l+d) ε̃_{sb}^(l)]", fontsize=9)
        axes[0].legend(fontsize=7)
        figs["lagged_covariance.png"] = fig
        return figs
