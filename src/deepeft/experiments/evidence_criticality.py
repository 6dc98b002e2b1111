"""evidence-criticality: the Bayesian evidence (6.34) over initialization hyperparameters and depth — the
"evidence for criticality" of §6.3.1 — with a Monte Carlo check of the evidence itself.

Theory (``de.evidence_grid``, ``de.log_evidence``; computed once in ``assemble``):
* ReLU, C_b = 0, one input: K^{(L)} = C_W (C_W/2)^{L−1} x̄², so the evidence (6.36) is maximal at
  C_W* = 2 (Ȳ/(2x̄²))^{1/L} (``relu_evidence_optimal_C_W``, digest [derived]) → 2, the critical value, as L grows.
* two equal-norm inputs whose targets have both a γ⁰ and a γ² component (6.44): the evidence factorizes (6.45)
  and needs both K̃_[0] and K̃_[2] of order one at depth, i.e. χ_∥ = χ_⊥ = 1. The tanh (K* = 0 class) landscape
  is drawn but not checked: at criticality K^{(ℓ)} ≈ 1/(2ℓ) → 0, so with O(1) targets the grid optimum sits
  above C_W = 1 (quick preset: 1.45 at L = 16–32, 1.40 at L = 64). For ReLU with two inputs the optimum is
  1.82, 2.02, 2.08, 2.08 at L = 8, 16, 32, 64 (a compromise between the two components; not checked).
Simulation (one task per C_W of ``mc_C_W``): the evidence is the prior average of the likelihood,
p(y|ℋ) = E_θ[Π_α N(y_α; z_α(θ), σ_ε²)] (6.10), estimated over random tanh networks of width n
(``sample_ensemble(method="metric")``), compared with ``de.log_evidence(..., noise=σ_ε²)``.

Checks (kind in each rule):
* resolution — ReLU: the grid argmax of the evidence equals the closed-form C_W* within one grid step, each depth;
* finding — ReLU: |C_W* − 2| decreases with L and is < relu_tol at the deepest L;
* prediction — Monte Carlo log evidence vs (6.34): |sim − theory| < max_z·se + c·L/n (se by the delta method).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register


def _log_evidence(net, X, Y, noise):
    """log p(y|ℋ) (6.34) of ``de.log_evidence``."""
    from ..theory.bayes import log_evidence

    return log_evidence(net, X, Y, noise)


def _two_inputs(n0: int) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-norm inputs (|x|²/n0 = 1, cos angle 0.3) and targets with 𝕐_[0], 𝕐_[2] both O(1) (6.44)."""
    e1 = np.zeros(n0)
    e1[0] = 1.0
    e2 = np.zeros(n0)
    e2[1] = 1.0
    c = 0.3
    X = np.sqrt(n0) * np.stack([e1, c * e1 + np.sqrt(1 - c * c) * e2])
    Y = np.array([[0.6], [-0.2]])
    return X, Y


def _one_input(n0: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.full((1, n0), 1.0)
    return X, np.array([[0.8]])


@register
class EvidenceCriticality(Experiment):
    name = "evidence-criticality"
    description = "Bayesian evidence (6.34) vs C_W and depth: maximum at criticality; Monte Carlo evidence"
    references = "PDLT (6.10), (6.34)–(6.45); digest: ReLU evidence-optimal C_W"
    order = 401

    @dataclasses.dataclass(frozen=True)
    class Params:
        depths: tuple[int, ...] = param((2, 4, 8, 16, 32, 64), "depths L of the theory scans", min=1)
        relu_C_W: tuple[float, ...] = param((1.0, 2.2, 0.01), "ReLU one-input C_W grid (start, stop, step)")
        tanh_C_W: tuple[float, ...] = param((0.6, 1.6, 0.05), "tanh two-input C_W grid (start, stop, step; figure only)")
        input_dim: int = param(4, "n_0", min=2)
        relu_tol: float = param(0.05, "|C_W*(L_max) − 2| bound for the ReLU findings", min=0.0, analysis=True)
        mc_C_W: tuple[float, ...] = param((0.8, 1.3), "tanh C_W values of the Monte Carlo evidence", min=0.0)
        mc_depth: int = param(3, "depth of the Monte Carlo networks", min=1, max=16)
        mc_width: int = param(256, "width of the Monte Carlo networks", min=2)
        mc_noise: float = param(0.5, "observation noise σ_ε² of the Monte Carlo evidence", min=0.01)
        n_networks: int = param(10_000, "Monte Carlo networks per C_W", min=16)
        bias_coef: float = param(1.0, "c in the finite-width allowance c·L/n (on the log evidence)", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            for key in ("relu_C_W", "tanh_C_W"):
                g = getattr(self, key)
                if len(g) != 3 or not (0 < g[0] < g[1]) or g[2] <= 0:
                    raise DeepEFTInputError(
                        f"parameter {key!r} must be (start, stop, step) with 0 < start < stop, step > 0; got {list(g)}."
                    )
            if len(set(self.depths)) != len(self.depths) or list(self.depths) != sorted(self.depths):
                raise DeepEFTInputError(f"parameter 'depths' must increase strictly, got {list(self.depths)}.")

    presets = {"quick": {}, "paper": {"depths": (2, 4, 8, 16, 32, 64, 128, 256), "n_networks": 400_000, "mc_width": 1024,
                                      "mc_C_W": (0.7, 0.85, 1.0, 1.15, 1.3, 1.5)}}

    def sweep(self, p):
        return {"C_W": list(p.mc_C_W)}

    @staticmethod
    def grid(g) -> np.ndarray:
        return np.round(np.arange(g[0], g[1] + g[2] / 2, g[2]), 12)

    def compute(self, p, task, ctx):
        from ..simulate.ensemble import sample_ensemble

        X, Y = _two_inputs(p.input_dim)
        net = MLP(p.input_dim, [p.mc_width] * (p.mc_depth - 1), 1, "tanh", C_b=0.0, C_W=task["C_W"])
        theory = _log_evidence(net, X, Y, p.mc_noise)
        ens = sample_ensemble(net, X, p.n_networks, int(ctx.seed % 2**32), dtype="float64", method="metric",
                              keep_preactivations=(p.n_networks, 1), vertex=False)
        z = ens.preactivations[-1][:, :, 0]  # (M, 2) outputs
        s2 = p.mc_noise
        logl = -0.5 * np.sum((Y[:, 0] - z) ** 2, axis=1) / s2 - 0.5 * z.shape[1] * np.log(2 * np.pi * s2)
        c = logl.max()
        w = np.exp(logl - c)
        m = w.mean()
        return {"theory": theory, "mc": c + np.log(m), "mc_se": w.std(ddof=1) / np.sqrt(w.size) / m}

    def assemble(self, p, tasks, results):
        from ..theory.bayes import evidence_grid, relu_evidence_optimal_C_W

        ds = super().assemble(p, tasks, results)
        X1, Y1 = _one_input(p.input_dim)
        relu = MLP(p.input_dim, [8] * (max(p.depths) - 1), 1, "relu", C_b=0.0, C_W=2.0)
        g = evidence_grid(relu, X1, Y1, C_W=self.grid(p.relu_C_W), depth=list(p.depths))
        closed = [relu_evidence_optimal_C_W(Y1[0], X1[0], L) for L in p.depths]
        X2, Y2 = _two_inputs(p.input_dim)
        tanh = MLP(p.input_dim, [8] * (max(p.depths) - 1), 1, "tanh", C_b=0.0, C_W=1.0)
        h = evidence_grid(tanh, X2, Y2, C_W=self.grid(p.tanh_C_W), depth=list(p.depths))
        ds = ds.assign_coords(depth=list(p.depths), relu_C_W=g.C_W.values, tanh_C_W=h.C_W.values)
        ds["relu_log_evidence"] = (("relu_C_W", "depth"), g.log_evidence.transpose("C_W", "depth").values)
        ds["relu_closed_form"] = (("depth",), np.asarray(closed))
        ds["tanh_log_evidence"] = (("tanh_C_W", "depth"), h.log_evidence.transpose("C_W", "depth").values)
        return ds

    def analyze(self, p, ds):
        checks = []
        cw = ds.relu_C_W.values
        step = p.relu_C_W[2]
        opt = []
        for L in p.depths:
            le = ds.relu_log_evidence.sel(depth=L).values
            best = float(cw[int(np.nanargmax(le))])
            closed = float(ds.relu_closed_form.sel(depth=L))
            opt.append(best)  # the scanned evidence's optimum (the closed form is checked against it above)
            inside = cw[0] <= closed <= cw[-1]
            checks.append(lc.kind_check("resolution", f"ReLU L={L}: grid argmax C_W vs closed form 2(Ȳ/2x̄²)^(1/L)",
                                        closed, best, None, bool(inside and abs(best - closed) <= step),
                                        f"|argmax − C_W*| ≤ one grid step {step:g}"))
        d = np.abs(np.asarray(opt) - 2.0)
        checks.append(lc.kind_check("finding", "ReLU: |argmax C_W − 2| does not grow with depth", None, float(np.max(np.diff(d))),
                                    None, bool(np.all(np.diff(d) <= step)),
                                    f"max_L Δ|argmax C_W(L) − 2| ≤ one grid step {step:g} over the depths"))
        checks.append(lc.kind_check("finding", f"ReLU L={p.depths[-1]}: argmax C_W → 2 (critical)", None, opt[-1], None,
                                    bool(d[-1] < p.relu_tol), f"|argmax C_W − 2| < {p.relu_tol:g}"))
        for cwv in p.mc_C_W:
            pt = ds.sel(C_W=cwv)
            al = p.bias_coef * p.mc_depth / p.mc_width
            checks.append(lc.allowance_check(
                f"tanh C_W={cwv:g} L={p.mc_depth} n={p.mc_width}: Monte Carlo log evidence", float(pt.theory), float(pt.mc),
                float(pt.mc_se), allowance=al, max_z=p.max_z, what="log p(y|ℋ) (6.34)", allowance_text=f"{p.bias_coef:g}·L/n"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11.0, 3.4), layout="constrained")
        a1, a2, a3 = fig.subplots(1, 3)
        le = ds.tanh_log_evidence.values
        rel = le - np.nanmax(le, axis=0, keepdims=True)
        im = a1.pcolormesh(np.arange(len(p.depths)), ds.tanh_C_W.values, np.clip(rel, -10, 0), shading="nearest", cmap="viridis")
        a1.set_xticks(range(len(p.depths)), [str(L) for L in p.depths])
        a1.axhline(1.0, color="w", lw=0.8, ls="--")
        a1.set_xlabel("depth L")
        a1.set_ylabel("C_W (tanh, C_b = 0)")
        a1.set_title("log evidence − max over C_W (two inputs)", fontsize=8)
        fig.colorbar(im, ax=a1)
        cw = ds.relu_C_W.values
        for L in p.depths:
            a2.plot(cw, ds.relu_log_evidence.sel(depth=L).values, lw=1, label=f"L={L}")
            a2.axvline(float(ds.relu_closed_form.sel(depth=L)), lw=0.5, color="0.6")
        a2.axvline(2.0, color="k", lw=0.8, ls="--")
        a2.set_ylim(np.nanmax(ds.relu_log_evidence.values) - 15, np.nanmax(ds.relu_log_evidence.values) + 1)
        a2.set_xlabel("C_W (ReLU, one input)")
        a2.set_ylabel("log evidence")
        a2.set_title("maxima (grey) → 2 (dashed) with depth", fontsize=8)
        a2.legend(fontsize=6)
        a3.errorbar(ds.C_W.values, ds.mc.values, yerr=2 * ds.mc_se.values, fmt="o", ms=3, label=f"Monte Carlo, n={p.mc_width}")
        a3.plot(ds.C_W.values, ds.theory.values, "s", mfc="none", label="(6.34)")
        a3.set_xlabel("C_W (tanh)")
        a3.set_ylabel("log evidence")
        a3.set_title(f"L = {p.mc_depth}, σ_ε² = {p.mc_noise:g}", fontsize=8)
        a3.legend(fontsize=7)
        return {"evidence.png": fig}
