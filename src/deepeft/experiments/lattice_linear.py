"""lattice-linear: deep linear stochastic networks as a lattice model (Schoenholz et al. 2017, arXiv:1710.06570,
Figs. 3, 4, 7, 8, 9).

One task per σ_w²: M networks of width N and depth L sampled exactly with the conditional chain (9)
(``deepeft.lattice.sample_conditional``, φ(z) = z, one input with |x|²/n_0 = 1), analysed in the window of
layers [L/2, L) (App. 8.3). Theory (``deepeft.lattice``, verified coefficients, errata E1/E2/E9):

* Fig. 3 — E[r²] over the window = N q^l of the linear q-map (exact at any N, transient included; equal to
  r*² = Nσ_b²/Δ_w (13) once the transient has decayed) and E[r] = r* − C(0)/(2r*) (r* is the mode, E9);
* Fig. 4 / 9b — the spectrum of ε = r − r*: band averages of the measured periodogram against the exact
  windowed spectrum ``expected_periodogram`` (→ S(q) (15) with E1/E2 for W ≫ ξ);
* real-space lagged covariances C(d), d = 0..d_max (AR(1) of (14)), the convention-free primary target, and the
  one-step (innovation) variance E[(ε_{l+1} − ρε_l)²] = C(0)(1 − ρ²) with ρ = C(1)/C(0) of the theory: its residuals
  are nearly white, so it resolves the scale of C to ≈ √(2/(M·W)) at every σ_w² (C(0) itself only to
  ≈ √(2(1 + ρ²)/((1 − ρ²)M·W)): 2.3 % at σ_w² = 0.9 in the quick preset, where a 5 % slip of C was invisible);
* Fig. 9a — E[ε_q] = 0 for 0 < q < π; Fig. 8 — ε_q Gaussian with per-component variance S_W(q)/(2W);
* Fig. 7 — trajectories and their FFT (figure only).

Printed vs verified (E1): the printed (14) read as the precision doubles every variance; a ``reject`` check
per σ_w² asserts the simulation rejects it (C(0) ratio ≈ 0.5). Large-N predictions are judged as plain
z-checks when N·Δ_w ≥ ``min_n_gap``; closer to criticality the O(1/(NΔ_w)) Laplace systematic is added.

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

_HIST_EDGES = np.linspace(-4.0, 4.0, 25)


@register
class LatticeLinear(Experiment):
    name = "lattice-linear"
    description = "deep linear stochastic networks: r*, E[r^2], spectra S(q), C(d), eps_q statistics vs simulation"
    references = "Schoenholz et al. 2017 (arXiv:1710.06570) eqs. (13)-(15), Figs. 3, 4, 7, 8, 9; errata E1, E2, E9"
    order = 200

    @dataclasses.dataclass(frozen=True)
    class Params:
        sigma_w2s: tuple[float, ...] = param((0.02, 0.34, 0.66, 0.9), "weight variances σ_w² (< 1)", min=0.0, max=0.9999)
        detail_sigma_w2: float = param(
            0.9, "σ_w² of the trajectory / histogram / mode-mean figures (Figs. 7-9)", min=0.0, analysis=True
        )
        sigma_b2: float = param(0.01, "bias variance σ_b²", min=1e-12)
        N: int = param(200, "width N", min=2)
        L: int = param(256, "depth L (analysis window: layers L/2..L-1)", min=32)
        n_networks: int = param(100, "networks M", min=8)
        d_max: int = param(3, "largest lag d of the real-space covariance C(d)", min=0)
        n_trajectories: int = param(5, "trajectories drawn in Fig. 7", min=1)
        min_n_gap: float = param(10.0, "Laplace regime: N·Δ_w at least this for plain z-checks", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        reject_z: float = param(Z_MAX, "printed coefficients count as rejected at |z| ≥ reject_z", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            if len(set(self.sigma_w2s)) != len(self.sigma_w2s) or not self.sigma_w2s:
                raise DeepEFTInputError("parameter 'sigma_w2s' must list distinct values, e.g. [0.5, 0.9].")
            if self.detail_sigma_w2 not in self.sigma_w2s:
                raise DeepEFTInputError(
                    f"parameter 'detail_sigma_w2' = {self.detail_sigma_w2} must be one of sigma_w2s {list(self.sigma_w2s)}."
                )
            if self.d_max >= self.L // 4:
                raise DeepEFTInputError(f"parameter 'd_max' must be < L/4 = {self.L // 4}; lower d_max or raise L.")
            if self.n_trajectories > self.n_networks:
                raise DeepEFTInputError("parameter 'n_trajectories' must be <= n_networks.")

    presets = {
        "quick": {"n_networks": 400},  # 4× the default: the fluctuations to ~1 % (a 5 % theory slip fails)
        "paper": {
            "sigma_w2s": (0.02, 0.18, 0.34, 0.5, 0.66, 0.82, 0.9, 0.98),
            "L": 1024,
            "n_networks": 200,
        },
    }

    def sweep(self, p):
        return {"sigma_w2": list(p.sigma_w2s)}

    def coords(self, p):
        W = p.L - p.L // 2
        return {
            "layer": list(range(p.L)),
            "lag": list(range(p.d_max + 1)),
            "mode": list(range(W // 2 + 1)),
            "band": list(lc.BANDS),
            "traj": list(range(p.n_trajectories)),
            "hmode": lc.histogram_modes(W),
            "hbin": list(0.5 * (_HIST_EDGES[1:] + _HIST_EDGES[:-1])),
        }

    def compute(self, p, task, ctx):
        sw, sb, N, L = float(task["sigma_w2"]), p.sigma_b2, p.N, p.L
        s = dl.sample_conditional("linear", sw, sb, N=N, L=L, n_networks=p.n_networks, seed=lc.sampler_seed(ctx))
        th = dl.quadratic_theory("linear", sw, sb, N)
        printed = dl.quadratic_theory("linear", sw, sb, N, coefficients="printed")
        rstar = dl.saddle_linear(sw, sb, N)
        win = dl.analysis_window(L)
        W = win.stop - win.start
        nm = W // 2 + 1
        r = s.r[:, :, 0].astype(np.float64)
        x = dl.fluctuation_fields(s, "linear")  # ε = r − r*, (M, W)

        r_mean, r_se = mean_se(r)
        r2_mean, r2_se = mean_se(r * r)
        r2w, r2w_se = mean_se((r[:, win] ** 2).mean(1))
        rw, rw_se = mean_se(r[:, win].mean(1))
        r2_layer = N * dl.q_trajectory("linear", sw, sb, L)  # exact E[r_l²] (linear q-map)

        C = dl.estimate_lagged_covariance(x, p.d_max)
        T_win = dl.expected_periodogram(th, W)
        q = 2.0 * np.pi * np.arange(W) / W
        S_inf = dl.spectrum(th, q)
        ms = dl.mode_statistics(x)
        bands = lc.band_spectra(x, T_win)
        t2, t2_th, t2_se = lc.mode_mean_statistic(x)
        g = lc.mode_gaussianity(x, T_win, lc.histogram_modes(W), _HIST_EDGES)
        xh_traj = np.abs(np.fft.fft(x[: p.n_trajectories], axis=1)[:, :nm]) ** 2 / W
        C0, C1 = dl.lagged_covariance(th, 1)
        rho = C1 / C0
        step = dl.estimate_step_residual(x, rho)
        return {
            "r_star": np.float64(rstar),
            "n_gap": np.float64(N * lc.laplace_gap("linear", sw)),
            "r_mean": (("layer",), r_mean),
            "r_se": (("layer",), r_se),
            "r2_mean": (("layer",), r2_mean),
            "r2_se": (("layer",), r2_se),
            "r2_theory": (("layer",), r2_layer),
            "r2_window": np.float64(r2w),
            "r2_window_se": np.float64(r2w_se),
            "r2_window_theory": np.float64(r2_layer[win].mean()),
            "r_window": np.float64(rw),
            "r_window_se": np.float64(rw_se),
            "r_window_theory": np.float64(rstar - C0 / (2 * rstar)),
            "C_sim": (("lag",), C.value),
            "C_se": (("lag",), C.stderr),
            "C_theory": (("lag",), dl.lagged_covariance(th, p.d_max)),
            "C_printed": (("lag",), dl.lagged_covariance(printed, p.d_max)),
            "step_var": np.float64(step.value),
            "step_var_se": np.float64(step.stderr),
            "step_var_theory": np.float64(C0 * (1 - rho * rho)),
            "S_sim": (("mode",), ms.spectrum.value[:nm]),
            "S_se": (("mode",), ms.spectrum.stderr[:nm]),
            "S_window": (("mode",), T_win[:nm]),
            "S_theory": (("mode",), S_inf[:nm]),
            "S_printed": (("mode",), dl.spectrum(printed, q)[:nm]),
            "median_ratio": np.float64(dl.median_bin_ratio(ms.spectrum.value[: W // 2], S_inf[: W // 2])),
            "median_ratio_window": np.float64(dl.median_bin_ratio(ms.spectrum.value[: W // 2], T_win[: W // 2])),
            "band_sim": (("band",), bands["value"][:, 0, 0]),
            "band_se": (("band",), bands["stderr"][:, 0, 0]),
            "band_theory": (("band",), bands["theory"][:, 0, 0]),
            "eq_mean_re": (("mode",), ms.mean.value[:nm].real),
            "eq_mean_im": (("mode",), ms.mean.value[:nm].imag),
            "eq_mean_se": (("mode",), ms.mean.stderr[:nm]),
            "t2": np.float64(t2),
            "t2_theory": np.float64(t2_th),
            "t2_se": np.float64(t2_se),
            "hist_var": (("hmode",), g["var"]),
            "hist_var_se": (("hmode",), g["var_se"]),
            "hist_kurt": (("hmode",), g["kurt"]),
            "hist_kurt_se": (("hmode",), g["kurt_se"]),
            "hist": (("hmode", "hbin"), g["hist"]),
            "traj_r": (("traj", "layer"), r[: p.n_trajectories]),
            "traj_fft": (("traj", "mode"), xh_traj),
        }

    def analyze(self, p, ds):
        checks = []
        for sw in p.sigma_w2s:
            d = ds.sel(sigma_w2=sw)
            tag = f"σ_w²={sw:g}"
            kw = {"n_gap": float(d.n_gap), "min_n_gap": p.min_n_gap, "max_z": p.max_z}
            checks.append(zcheck(f"{tag}: E[r²] window (exact q-map, Fig. 3)", d.r2_window_theory, d.r2_window,
                                 d.r2_window_se, max_z=p.max_z))
            checks.append(lc.laplace_check(f"{tag}: E[r] = r* − C(0)/2r* (mode, E9)", d.r_window_theory, d.r_window,
                                           d.r_window_se, scale=d.C_theory.sel(lag=0) / (2 * d.r_star), **kw))
            for lag in ds.lag.values:
                e = d.sel(lag=lag)
                checks.append(lc.laplace_check(f"{tag}: C({lag}) (14) verified", e.C_theory, e.C_sim, e.C_se, **kw))
            checks.append(lc.laplace_check(f"{tag}: one-step variance E[(ε_l+1 − ρε_l)²] = C(0)(1 − ρ²), ρ = C(1)/C(0) "
                                           "(14) verified", d.step_var_theory, d.step_var, d.step_var_se, **kw))
            for band in ds.band.values:
                e = d.sel(band=band)
                checks.append(lc.laplace_check(f"{tag}: S(q)/S_W(q) {band} band (Fig. 4)", e.band_theory, e.band_sim,
                                               e.band_se, **kw))
            if float(d.n_gap) >= p.min_n_gap:
                e = d.sel(lag=0)
                checks.append(lc.reject_check(f"{tag}: printed (14) as precision, C(0) (E1)", e.C_printed, e.C_sim,
                                              e.C_se, min_z=p.reject_z))
        d = ds.sel(sigma_w2=p.detail_sigma_w2)
        tag = f"σ_w²={p.detail_sigma_w2:g}"
        checks.append(zcheck(f"{tag}: E[ε_q] = 0, mean t² over 0<q<π (Fig. 9a)", d.t2_theory, d.t2, d.t2_se,
                             max_z=p.max_z))
        for n in ds.hmode.values:
            e = d.sel(hmode=n)
            kw = {"n_gap": float(d.n_gap), "min_n_gap": p.min_n_gap, "max_z": p.max_z}
            checks.append(lc.laplace_check(f"{tag}: Var ε_q / (S_W/2W), n={n} (Fig. 8)", 1.0, e.hist_var,
                                           e.hist_var_se, **kw))
            checks.append(zcheck(f"{tag}: excess kurtosis of ε_q, n={n} (Fig. 8)", 0.0, e.hist_kurt, e.hist_kurt_se,
                                 max_z=p.max_z))
        return checks

    def figures(self, p, ds):
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        cmap = colormaps["coolwarm"]
        sws = list(p.sigma_w2s)
        col = {sw: cmap(i / max(len(sws) - 1, 1)) for i, sw in enumerate(sws)}
        figs = {}

        # Fig. 3: r*(σ_w²) and √E[r²]
        fig = Figure(figsize=(5.5, 4.0), layout="constrained")
        ax = fig.subplots()
        grid = np.linspace(0.0, max(0.99, max(sws)), 200)
        ax.plot(grid, [dl.saddle_linear(g, p.sigma_b2, p.N) for g in grid], "k--", lw=1.2, label="r* (13)")
        rms = np.sqrt(ds.r2_window.values)
        ax.errorbar(sws, rms, yerr=ds.r2_window_se.values / (2 * rms), fmt="o", color="crimson", ms=5,
                    label="√E[r²] (simulation, window)")
        ax.errorbar(sws, ds.r_window.values, yerr=ds.r_window_se.values, fmt="x", color="navy", ms=5,
                    label="E[r] (simulation)")
        ax.set_yscale("log")
        ax.set_xlabel("σ_w²")
        ax.set_ylabel("norm")
        ax.set_title(f"Fig. 3: linear fixed point, N={p.N}, L={p.L}, σ_b²={p.sigma_b2:g}, M={p.n_networks}", fontsize=9)
        ax.legend(fontsize=8)
        figs["fig3_rstar.png"] = fig

        # Fig. 4: spectra
        fig = Figure(figsize=(6.0, 4.4), layout="constrained")
        ax = fig.subplots()
        W = p.L - p.L // 2
        qm = 2 * np.pi * ds.mode.values / W
        for sw in sws:
            d = ds.sel(sigma_w2=sw)
            ax.plot(qm[1:], d.S_sim.values[1:], "-", color=col[sw], lw=1.0, label=f"σ_w²={sw:g}")
            ax.plot(qm[1:], d.S_window.values[1:], "-", color="white", lw=2.2, zorder=3)
            ax.plot(qm[1:], d.S_window.values[1:], "k-", lw=0.7, zorder=4)
            ax.plot(qm[1:], d.S_printed.values[1:], ":", color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("q")
        ax.set_ylabel("S(q) = E|fft(ε)|²/W")
        ax.set_title("Fig. 4: linear spectra; black: theory (verified), dotted: printed (14)", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
        figs["fig4_spectra.png"] = fig

        d = ds.sel(sigma_w2=p.detail_sigma_w2)
        # Fig. 7: trajectories and their FFT
        fig = Figure(figsize=(10.0, 3.8), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        for t in ds.traj.values:
            ax1.plot(ds.layer.values, d.traj_r.sel(traj=t).values, lw=0.6)
            ax2.plot(qm[1:], d.traj_fft.sel(traj=t).values[1:], lw=0.6)
        ax1.axhline(float(d.r_star), color="k", ls="--", lw=1.0, label="r*")
        ax1.axvspan(p.L // 2, p.L, color="grey", alpha=0.15, label="analysis window")
        ax1.set_xlabel("layer l")
        ax1.set_ylabel("|z^l|")
        ax1.legend(fontsize=8)
        ax1.set_title(f"Fig. 7a: trajectories, σ_w²={p.detail_sigma_w2:g}", fontsize=9)
        ax2.plot(qm[1:], d.S_window.values[1:], "k-", lw=1.2, label="theory S_W(q)")
        ax2.set_yscale("log")
        ax2.set_xlabel("q")
        ax2.set_ylabel("|fft(ε)|²/W")
        ax2.legend(fontsize=8)
        ax2.set_title("Fig. 7b: per-network FFT of the window", fontsize=9)
        figs["fig7_trajectories.png"] = fig

        # Fig. 8: histograms of standardised ε_q
        fig = Figure(figsize=(5.5, 4.0), layout="constrained")
        ax = fig.subplots()
        u = np.linspace(-4, 4, 200)
        for n in ds.hmode.values:
            ax.step(ds.hbin.values, d.hist.sel(hmode=n).values, where="mid", label=f"q = 2π·{n}/{W}")
        ax.plot(u, np.exp(-u * u / 2) / np.sqrt(2 * np.pi), "k--", lw=1.2, label="N(0, 1)")
        ax.set_xlabel("Re, Im ε_q / √(S_W(q)/2W)")
        ax.set_ylabel("density")
        ax.set_title(f"Fig. 8: ε_q distributions, σ_w²={p.detail_sigma_w2:g}", fontsize=9)
        ax.legend(fontsize=7)
        figs["fig8_histograms.png"] = fig

        # Fig. 9: mode means and variances
        fig = Figure(figsize=(10.0, 3.8), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        ax1.errorbar(qm, d.eq_mean_re.values, yerr=d.eq_mean_se.values, fmt=".", ms=3, label="Re E[ε_q]")
        ax1.plot(qm, d.eq_mean_im.values, ".", ms=3, label="Im E[ε_q]")
        ax1.axhline(0.0, color="k", lw=0.8)
        ax1.set_xlabel("q")
        ax1.set_title("Fig. 9a: E[ε_q] (q = 0 carries the E9 offset)", fontsize=9)
        ax1.legend(fontsize=8)
        ax2.errorbar(qm[1:], d.S_sim.values[1:] / W, yerr=d.S_se.values[1:] / W, fmt=".", ms=3, label="simulation")
        ax2.plot(qm[1:], d.S_window.values[1:] / W, "k-", lw=1.2, label="theory (window)")
        ax2.plot(qm[1:], d.S_theory.values[1:] / W, "g--", lw=0.9, label="S(q) (15), E1/E2")
        ax2.set_yscale("log")
        ax2.set_xlabel("q")
        ax2.set_ylabel("⟨|ε_q|²⟩")
        ax2.legend(fontsize=8)
        ax2.set_title("Fig. 9b: variance of ε_q", fontsize=9)
        figs["fig9_mode_statistics.png"] = fig
        return figs
