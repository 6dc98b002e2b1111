"""running-couplings: the couplings of the m-neuron action (4.97) — 1/g_{(ℓ),m} (4.102), v_{(ℓ)} (4.103) and their
running with m (4.100) — from the landed K, V, G^{1} against couplings fitted to ensembles of random MLPs through the
Ch. 1 inverse map ((1.74), (1.78) inverted; ``simulate.couplings.fit_couplings``), and the flow of the quartic coupling
with depth.

One task per activation: an MLP of depth L and width n at the critical (C_b, C_W), one input; every neuron of every
layer is kept and cut into groups of m (m = 1..4). Theory: ``theory.couplings.running_couplings``. Simulation: the
inverse-map fit with jackknife standard errors over networks, applied for ℓ ≥ 2 to the conditional (Rao–Blackwell)
correlators E[zz] = E[Ĝ]δ, E[zzzz]_c = Var(Ĝ)T, where Ĝ^{(ℓ)} (4.70) is each network's metric computed from its layer
ℓ − 1 (given which the neurons are iid N(0, Ĝ), (4.71)): the same expectations as the raw neuron moments with the last
layer's sampling noise removed — 1/g_m to ≈ 0.3 % (raw: 1.6–2.6 %) and v to ≈ 2–4 % (raw: 16–36 %) at n = 24, L = 3,
4000 networks, so 1/g_m × 1.03 and v × 1.2 fail (tests). The structure checks use the raw neuron moments.

Checks (layers ℓ ≥ 2; layer 1 is Gaussian, v = 0):

* 1/g_m per m: |fit − (4.102)| < max_z·SE + c_G·G·((ℓ−2)₊/n)² (layer 2 is exact: z^{(1)} is Gaussian, so the
  m-neuron law of layer 2 is an exact scale mixture and the first-order inverse map returns (4.102) with the exact G, V);
* v per m: |fit − (4.103)| < max_z·SE + c_V·v·(ℓ−2)₊/n (V's own 1/n correction);
* the running slope d(1/g_m)/dm = −V/(2nG) (least squares over m; the m-dependence of (4.102));
* the parts of the fit that the action (4.97) sets to zero (K off-diagonal, εV ⊥ δδ + δδ + δδ): max |entry|/SE < max_z;
* theory only: the solution (4.102) satisfies the running equation (4.100) up to O(1/n²) — for m = min(m),
  m' = max(m) the residual at width 8n over the residual at 16n is 4 within 10% (an independent path: the book's
  "first way", integrating out neurons);
  and (K* = 0 class) the dimensionless quartic coupling v G² grows as (2/3) ℓ/n (5.131): n·vG²/ℓ at ℓ = 10³ (n → ∞)
  against 2/3 within 1% (the slow approach, spec: 0.664 at ℓ = 10³).

Figures: 1/g_m against m per layer (lines theory, points fit), the flow v G² against ℓ, all z-scores.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, §1.3, §4.4, (5.130)–(5.131)
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from . import _foundation as fd
from .base import Experiment
from .checks import Check, close_check
from .config import param
from .registry import register

__all__ = ["RunningCouplingsExperiment"]

_RUNNING_RTOL = 0.1  # residual(n)/residual(2n) = 4 for an O(1/n²) remainder (4 + O(1/n))
_RUNNING_WIDTH_FACTOR = 8
_FLOW_DEPTH = 1000
_FLOW_RTOL = 0.01


@register
class RunningCouplingsExperiment(Experiment):
    name = "running-couplings"
    description = "running couplings 1/g_m (4.102), v (4.103) of the m-neuron action vs inverse-map fits to ensembles"
    references = "PDLT (1.74), (1.78), (4.97)–(4.103), (4.104), (5.131); critical (C_b, C_W) from §5"
    order = 22

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "relu"), "activations at their critical points")
        width: int = param(48, "width n of every layer (output included)", min=4)
        depth: int = param(3, "number of layers L", min=2, max=32)
        m: tuple[int, ...] = param((1, 2, 3, 4), "neuron counts m of the action (4.97)", min=1, max=6)
        input_dim: int = param(4, "input dimension n_0", min=1)
        n_networks: int = param(4000, "networks per activation", min=64)
        metric_bias_coef: float = param(4.0, "c_G in the 1/g allowance c_G·G·((ℓ−2)₊/n)²", min=0.0, analysis=True)
        vertex_bias_coef: float = param(4.0, "c_V in the v allowance c_V·v·(ℓ−2)₊/n", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.m)) != len(self.m):
                raise DeepEFTInputError(f"parameter 'm' has repeated entries {list(self.m)}; list each once.")
            if max(self.m) > self.width:
                raise DeepEFTInputError(f"parameter 'm' asks for groups of {max(self.m)} neurons but width = {self.width}.")

    presets = {
        "quick": {},
        "paper": {"activations": ("tanh", "relu", "gelu"), "width": 128, "depth": 6, "n_networks": 100_000},
    }

    def sweep(self, p):
        for a in p.activations:
            fd.critical_hyperparameters(a)
        return {"activation": list(p.activations)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1)), "m": list(p.m)}

    @staticmethod
    def _net(p, a: str):
        return fd.critical_net(a, p.width, p.depth, p.input_dim)

    @staticmethod
    def _x(p) -> np.ndarray:
        return fd.fixed_inputs(1, p.input_dim)[0]

    def compute(self, p, task, ctx):
        from ..simulate.couplings import ensemble_couplings
        from ..theory.couplings import running_couplings

        net = self._net(p, task["activation"])
        x = self._x(p)
        th = running_couplings(net, x, m=p.m)
        fit = ensemble_couplings(net, x, p.n_networks, m=p.m, seed=fd.ensemble_seed(ctx))
        lm, l = ("layer", "m"), ("layer",)
        return {
            "n_prev": (l, th.n_prev),
            "G": (l, th.G),
            "inv_g": (lm, th.inv_g),
            "v": (l, th.v),
            "slope": (l, th.slope),
            "inv_g_fit": (lm, fit.inv_g.value),
            "inv_g_se": (lm, fit.inv_g.stderr),
            "v_fit": (lm, fit.v.value),
            "v_se": (lm, fit.v.stderr),
            "slope_fit": (l, fit.slope.value),
            "slope_se": (l, fit.slope.stderr),
            "off_K": (lm, np.array([f.off_K for f in fit.fits])),
            "off_V": (lm, np.array([f.off_V for f in fit.fits])),
        }

    def analyze(self, p, ds):
        from ..theory.couplings import running_couplings

        checks: list[Check] = []
        n = float(p.width)
        for a in p.activations:
            pt = ds.sel(activation=a)
            for li in range(1, p.depth):
                l = li + 1
                G, v = float(pt.G.values[li]), float(pt.v.values[li])
                for k, m in enumerate(p.m):
                    checks.append(fd.biased_check(
                        f"{a}: 1/g_(ℓ={l}),m={m}", pt.inv_g.values[li, k], pt.inv_g_fit.values[li, k],
                        pt.inv_g_se.values[li, k], scale=G, depth_factor=max(l - 2, 0), n=n, order=2,
                        coef=p.metric_bias_coef, max_z=p.max_z, what="(4.102)", scale_text="G"))
                    checks.append(fd.biased_check(
                        f"{a}: v_(ℓ={l}) from m={m}", v, pt.v_fit.values[li, k], pt.v_se.values[li, k], scale=abs(v),
                        depth_factor=max(l - 2, 0), n=n, order=1, coef=p.vertex_bias_coef, max_z=p.max_z,
                        what="(4.103)", scale_text="v"))
                    if m > 1:
                        worst = float(max(pt.off_K.values[li, k], pt.off_V.values[li, k]))
                        checks.append(Check(f"{a}: ℓ={l}, m={m}: fit outside the action's structure", 0.0, worst, None, None,
                                            bool(np.isfinite(worst) and worst < p.max_z),
                                            f"max |entry|/SE of K off-diagonal and εV ⊥ T < {p.max_z:g}"))
                if len(p.m) > 1:
                    checks.append(fd.biased_check(
                        f"{a}: running slope d(1/g_m)/dm at ℓ={l}", pt.slope.values[li], pt.slope_fit.values[li],
                        pt.slope_se.values[li], scale=abs(float(pt.slope.values[li])), depth_factor=max(l - 2, 0), n=n,
                        order=1, coef=p.vertex_bias_coef, max_z=p.max_z, what="−V/(2nG)", scale_text="|V/(2nG)|"))
            # theory only: (4.102) solves (4.100) to O(1/n²)
            m_lo, m_hi = min(p.m), max(p.m)
            n1 = _RUNNING_WIDTH_FACTOR * p.width  # far enough into the asymptotic 1/n² regime (ReLU's coefficient is large)
            r1 = running_couplings(fd.critical_net(a, n1, p.depth, p.input_dim), self._x(p), m=p.m)
            r2 = running_couplings(fd.critical_net(a, 2 * n1, p.depth, p.input_dim), self._x(p), m=p.m)
            res1 = float(r1.running_residual(m_lo, m_hi)[-1])
            res2 = float(r2.running_residual(m_lo, m_hi)[-1])
            checks.append(close_check(f"{a}: (4.100) residual of (4.102), width {n1} over {2 * n1} at ℓ={p.depth}", 4.0,
                                      res1 / res2 if res2 else np.inf, rtol=_RUNNING_RTOL))
        for a in p.activations:
            if a == "tanh":  # K* = 0 class with a₁ = −2: V/(nK²) → (2/3) ℓ/n (5.131)
                big = 10**6
                net = fd.critical_net(a, big, _FLOW_DEPTH, p.input_dim)
                rc = running_couplings(net, self._x(p), m=(1,))
                flow = float(rc.dimensionless_v[-1] * big / _FLOW_DEPTH)
                checks.append(close_check(f"{a}: n·vG²/ℓ at ℓ={_FLOW_DEPTH} (5.131)", 2.0 / 3.0, flow, rtol=_FLOW_RTOL,
                                          kind="regression"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        acts = list(p.activations)
        ms = np.asarray(p.m, dtype=float)
        fig = Figure(figsize=(3.6 * len(acts), 3.2), layout="constrained")
        axes = fig.subplots(1, len(acts), squeeze=False)[0]
        for j, a in enumerate(acts):
            pt = ds.sel(activation=a)
            for li in range(1, p.depth):
                G = float(pt.G.values[li])
                axes[j].plot(ms, pt.inv_g.values[li] / G, "-", color=f"C{li}", lw=1, label=f"ℓ={li + 1}")
                axes[j].errorbar(ms, pt.inv_g_fit.values[li] / G, pt.inv_g_se.values[li] / G, fmt="o", ms=3, color=f"C{li}")
            axes[j].set_xlabel("neurons kept m")
            axes[j].set_title(f"{a}: (1/g_m)/G (lines (4.102), points fits)", fontsize=8)
        axes[0].legend(fontsize=6)

        ffig = Figure(figsize=(4.5, 3.2), layout="constrained")
        ax = ffig.subplots()
        layers = np.arange(1, p.depth + 1)
        for j, a in enumerate(acts):
            pt = ds.sel(activation=a)
            G2 = pt.G.values**2
            ax.plot(layers, pt.v.values * G2, "-", color=f"C{j}", label=f"{a} (4.103)")
            for k in range(len(p.m)):
                ax.errorbar(layers + 0.05 * k, pt.v_fit.values[:, k] * G2, pt.v_se.values[:, k] * G2, fmt="o", ms=2.5,
                            color=f"C{j}")
        ax.set_xlabel("layer ℓ")
        ax.set_ylabel("v G² = V/(nG²)")
        ax.set_title(f"flow of the quartic coupling, n = {p.width}", fontsize=8)
        ax.legend(fontsize=6)

        zfig = Figure(figsize=(6.0, 3.0), layout="constrained")
        ax = zfig.subplots()
        for j, a in enumerate(acts):
            pt = ds.sel(activation=a).isel(layer=slice(1, None))
            for k, (sim, se, th, lab) in enumerate((("inv_g_fit", "inv_g_se", "inv_g", "1/g_m"), ("v_fit", "v_se", "v", "v"))):
                z = ((pt[sim] - pt[th]) / pt[se]).values.ravel()
                z = z[np.isfinite(z)]
                ax.plot(j + 0.2 * (k - 0.5) + np.linspace(-0.05, 0.05, z.size), z, ".", color=f"C{k}",
                        label=lab if j == 0 else None)
        ax.axhline(p.max_z, color="crimson", lw=0.8)
        ax.axhline(-p.max_z, color="crimson", lw=0.8)
        ax.set_xticks(range(len(acts)), acts)
        ax.set_ylabel("(fit − theory)/SE")
        ax.set_title("raw z (checks add the next-order allowance)", fontsize=8)
        ax.legend(fontsize=7)
        return {"running.png": fig, "quartic_flow.png": ffig, "zscores.png": zfig}
