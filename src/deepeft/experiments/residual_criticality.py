"""residual-criticality: book App. B — the normalized four-point vertex V^{(ℓ)}/(K²ℓ) of critical residual MLPs
for γ² ∈ {0, 0.5, 0.8}, tanh and ReLU, theory against ensembles, and the deep asymptotics ν(γ).

* **Networks**: layer 1 with C_W = 1 (so K^{(1)} = 1 for one input with |x|²/n₀ = 1), then layers ℓ = 2..L of
  width n with the skip γ and the critical C_b = 0, C_W(γ) = (1 − γ²)/A₂ or (1 − γ²)/σ₁² (B.20)–(B.21).
* **Theory**: the single-input recursion (B.12), (B.26) with the three-point feed of
  :mod:`deepeft.theory.residual_recursions` (identical to the book's for odd σ; for ReLU the printed (B.24)
  misses it) and, for comparison, (B.26) as printed. **Simulation**: V^{(ℓ)} from ``sample_ensemble`` (the pair
  estimator of (B.23) on the conditional second moments A_i = E[z_i² | layer ℓ − 1] — the residual analogue of the
  MLP's n Cov(Ĝ) used by ``vertex-vs-ensemble`` — exact conditional sampling). Check per layer ℓ ≥ 2 (prediction):
  |V_sim − V| < max_z·SE + c·((ℓ − 2)/n)·V (V's own O(1/n) correction, not computed, as in ``vertex-vs-ensemble``;
  measured at n = 128 with 2×10⁵ networks: (2.0–3.2)·((ℓ − 2)/n)·V for ReLU, ≤ 1.5 for tanh, so c = 4); at ℓ = 2,
  where the layer-1 preactivations are exactly Gaussian, V^{(2)} is exact at any width and the rule is |z| < max_z:
  65 536 networks resolve V^{(2)} to 0.6–0.8 % (γ² = 0; ReLU γ² = 0.5), so V off by 5 % fails there. The kernel at
  ℓ = 2, E[Ĝ^{(2)}] = K^{(2)} with no 1/n term: |Ĝ_sim − K| < max_z·SE, no allowance (prediction; it resolves
  K^{(2)} to 0.05–0.1 %, so a slip of the residual kernel map (B.12) by a few percent fails it).
* **Finding**: for ReLU with γ > 0 the same data reject the printed (B.24) at the last layer (|z| > Z_CLAIM with
  the same allowance).
* **Deep asymptotics** (theory, a jitted scan to ℓ = ``deep_depth``): the digest's tanh check values
  V/(K²ℓ) = 0.66665, 0.49995, 0.23993 at ℓ = 2×10⁵ (regression, to the printed digits) and the slope against
  ν(γ) (B.35) for tanh and ν₃(γ) for ReLU (resolution: the finite-depth remainder).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), App. B, arXiv:2106.10165
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..network_residual import ResidualMLP
from ..statistics import Z_CLAIM, Z_MAX, agrees, zscore
from . import _foundation as fd
from .base import Experiment
from .checks import Check
from .config import param
from .registry import register

__all__ = ["DIGEST_TANH", "ResidualCriticality"]

# the digest's tanh check values V/(K²ℓ) (pdlt-chinf-end.md §6), reproduced at ℓ = 2×10⁵ with K^{(1)} = 1
DIGEST_TANH: dict[float, str] = {0.0: "0.66665", 0.5: "0.49995", 0.8: "0.23993"}
DIGEST_DEPTH = 200_000
_SCALE_INVARIANT_DEEP = 2000  # K is fixed on the scale-invariant line: V/K² is linear after a few layers


@register
class ResidualCriticality(Experiment):
    name = "residual-criticality"
    description = "App. B: V/(K^2 l) of critical residual MLPs for gamma^2 in {0, 0.5, 0.8}, tanh and ReLU, theory vs ensembles"
    references = "PDLT (B.3), (B.11)-(B.36)"
    order = 420

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "relu"), "activations (K* = 0 or scale-invariant class)")
        gamma2: tuple[float, ...] = param((0.0, 0.5, 0.8), "γ² values (each in [0, 1))", min=0.0, max=0.999)
        width: int = param(128, "hidden (and output) width n", min=2)
        depth: int = param(5, "number of layers L", min=3, max=500)
        input_dim: int = param(4, "input dimension n_0 (one input, |x|²/n_0 = 1)", min=1)
        n_networks: int = param(65_536, "networks per (activation, γ²)", min=2)
        deep_depth: int = param(DIGEST_DEPTH, "depth of the deep single-input scan (digest values at 2e5)", min=100)
        bias_coef: float = param(4.0, "c in the allowance c·((ℓ−2)/n)·V for V's O(1/n) correction", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.gamma2)) != len(self.gamma2):
                raise DeepEFTInputError(f"parameter 'gamma2' has repeated entries {list(self.gamma2)}; list each once.")

    presets = {
        "quick": {},
        "paper": {"width": 256, "depth": 20, "n_networks": 200_000},
    }

    def sweep(self, p):
        from ..theory.residual import residual_critical_point

        for a in p.activations:  # before any task runs: a class with a residual critical point
            residual_critical_point(a, 0.0)
        return {"activation": list(p.activations), "gamma2": list(p.gamma2)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1)), "deep_layer": _deep_grid(p.deep_depth)}

    @staticmethod
    def net(p, act: str, g2: float) -> ResidualMLP:
        from ..theory.residual import residual_critical_point

        g = math.sqrt(g2)
        cw = residual_critical_point(act, g).C_W
        L = p.depth
        return ResidualMLP(p.input_dim, [p.width] * (L - 1), p.width, act, C_b=0.0, C_W=[1.0] + [cw] * (L - 1),
                           gamma=[0.0] + [g] * (L - 1))  # fmt: skip

    def compute(self, p, task, ctx):
        from ..simulate.ensemble import sample_ensemble
        from ..theory.residual import residual_critical_point
        from ..theory.residual_recursions import residual_deep_single_input, residual_single_input

        act, g2 = task["activation"], float(task["gamma2"])
        net = self.net(p, act, g2)
        X = fd.fixed_inputs(1, p.input_dim)
        rec = residual_single_input(net, X[0])
        book = residual_single_input(net, X[0], three_point=False)
        ens = sample_ensemble(net, X, p.n_networks, fd.ensemble_seed(ctx), method="metric", vertex=True)
        cp = residual_critical_point(act, math.sqrt(g2))
        deep = p.deep_depth if cp.universality_class == "K*=0" else min(p.deep_depth, _SCALE_INVARIANT_DEEP)
        K, V = residual_deep_single_input(act, 1.0, cp.C_W, math.sqrt(g2), deep)
        grid = np.asarray(_deep_grid(p.deep_depth))
        ratio = np.full(grid.size, np.nan)
        ok = grid <= deep
        ratio[ok] = V[grid[ok] - 1] / (K[grid[ok] - 1] ** 2 * grid[ok])
        return {
            "K": (("layer",), rec.K),
            "V": (("layer",), rec.V),
            "V_book": (("layer",), book.V),
            "simulation": (("layer",), ens.vertex.value[:, 0, 0, 0, 0]),
            "stderr": (("layer",), ens.vertex.stderr[:, 0, 0, 0, 0]),
            "metric_sim": (("layer",), ens.metric.value[:, 0, 0]),
            "metric_stderr": (("layer",), ens.metric.stderr[:, 0, 0]),
            "deep_ratio": (("deep_layer",), ratio),
            "deep_slope": (V[-1] - V[-2]) / K[-1] ** 2 if cp.universality_class != "K*=0" else ratio[-1],
            "nu": cp.nu,
            "nu3": cp.nu_three_point,
            "k_star_zero": int(cp.universality_class == "K*=0"),
        }

    def analyze(self, p, ds):
        checks: list[Check] = []
        for a in p.activations:
            for g2 in p.gamma2:
                pt = ds.sel(activation=a, gamma2=g2)
                K2, sim, se = float(pt.K.values[1]), float(pt.metric_sim.values[1]), float(pt.metric_stderr.values[1])
                checks.append(Check(  # layer 1 is Gaussian, so E[Ĝ^(2)] = C_b + C_W⟨σσ⟩_K1 + γ²K1 exactly (no 1/n term)
                    f"{a} γ²={g2:g}: K^(2) (B.12), exact at ℓ = 2", K2, sim, se, float(zscore(sim - K2, se)),
                    bool(agrees(sim - K2, se, max_z=p.max_z)), f"|sim − K| < {p.max_z:g}·stderr (no allowance: exact)",
                ))  # fmt: skip
                for li in range(1, p.depth):
                    ell = li + 1
                    V, sim, se = float(pt.V.values[li]), float(pt.simulation.values[li]), float(pt.stderr.values[li])
                    allow = p.bias_coef * (ell - 2) / p.width * abs(V)  # none at ℓ = 2: exact at any width
                    checks.append(Check(
                        f"{a} γ²={g2:g}: V^({ell}) (B.26) + three-point feed", V, sim, se, float(zscore(sim - V, se)),
                        bool(agrees(sim - V, se, max_z=p.max_z, allowance=allow)),
                        f"|sim − V| < {p.max_z:g}·stderr + {p.bias_coef:g}·((ℓ−2)/n)·V (= {allow:.3g}; V's O(1/n) correction)",
                    ))  # fmt: skip
                if a == "relu" and g2 > 0:  # the printed (B.24) against the last layer's data
                    li = p.depth - 1
                    Vb, sim, se = float(pt.V_book.values[li]), float(pt.simulation.values[li]), float(pt.stderr.values[li])
                    allow = p.bias_coef * (li - 1) / p.width * abs(Vb)
                    zb = abs(sim - Vb) / math.hypot(se, allow)
                    checks.append(Check(
                        f"relu γ²={g2:g}: printed (B.24) rejected at ℓ = {p.depth}", Vb, sim, se, float(zscore(sim - Vb, se)),
                        zb > Z_CLAIM, f"|sim − V_book|/√(stderr² + allowance²) = {zb:.2f} > {Z_CLAIM:g}", "finding",
                    ))  # fmt: skip
                slope = float(pt.deep_slope.values)
                want = float(pt.nu3.values)  # = ν for odd σ and for the K* = 0 class
                L_deep = int(pt.deep_layer.values[np.isfinite(pt.deep_ratio.values)][-1])
                rem = 3 * math.log(L_deep) / L_deep if bool(pt.k_star_zero.values) else 0.0  # K* = 0: ~ log ℓ/ℓ
                tol = max(2e-4, rem) * max(want, 1.0)
                checks.append(Check(
                    f"{a} γ²={g2:g}: deep V/(K²ℓ) → ν₃(γ) (= ν(γ) (B.29)/(B.35) for odd σ)", want, slope, None, None,
                    abs(slope - want) <= tol, f"|deep slope − closed form| ≤ max(2e-4, 3 log ℓ/ℓ) = {tol:.1g} at ℓ = {L_deep}",
                    "resolution",
                ))  # fmt: skip
                if a == "tanh" and g2 in DIGEST_TANH and p.deep_depth >= DIGEST_DEPTH:
                    printed = DIGEST_TANH[g2]
                    i = _deep_grid(p.deep_depth).index(DIGEST_DEPTH)
                    got = float(pt.deep_ratio.values[i])
                    checks.append(Check(
                        f"digest tanh γ²={g2:g}: V/(K²ℓ) at ℓ = 2e5", float(printed), got, None, None,
                        abs(got - float(printed)) <= 5e-6 * (1 + 1e-9), "|computed − printed| ≤ 5e-6 (printed precision)",
                        "regression",
                    ))  # fmt: skip
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        acts = list(p.activations)
        ell = ds.layer.values
        fig = Figure(figsize=(4.2 * len(acts) + 4.2, 3.6), layout="constrained")
        axes = fig.subplots(1, len(acts) + 1, squeeze=False)[0]
        for ax, a in zip(axes, acts, strict=False):
            for k, g2 in enumerate(p.gamma2):
                pt = ds.sel(activation=a, gamma2=g2)
                K2l = pt.K.values**2 * ell
                ax.plot(ell[1:], (pt.V.values / K2l)[1:], "-", color=f"C{k}", label=f"γ² = {g2:g}")
                if a == "relu" and g2 > 0:
                    ax.plot(ell[1:], (pt.V_book.values / K2l)[1:], ":", color=f"C{k}")
                ax.errorbar(ell[1:], (pt.simulation.values / K2l)[1:], (pt.stderr.values / K2l)[1:], fmt="o", ms=3,
                            ls="none", color=f"C{k}")  # fmt: skip
            ax.set_xlabel("layer ℓ")
            ax.set_ylabel("V/(K²ℓ)")
            ax.set_title(f"{a}, n = {p.width}: theory (lines), printed (B.24) (dotted), ensembles (dots)", fontsize=7)
            ax.legend(fontsize=7)
        ax = axes[-1]
        grid = ds.deep_layer.values
        for a, ls in zip(acts, ("-", "--", "-.", ":"), strict=False):
            for k, g2 in enumerate(p.gamma2):
                ax.plot(grid, ds.sel(activation=a, gamma2=g2).deep_ratio.values, ls, color=f"C{k}", label=f"{a} γ²={g2:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layer ℓ")
        ax.set_title("deep recursion: V/(K²ℓ) → ν(γ) (tanh), ν₃(γ) (ReLU)", fontsize=8)
        ax.legend(fontsize=6)
        return {"residual_vertex.png": fig}


def _deep_grid(depth: int) -> list[int]:
    """Log-spaced layers 2..depth for the deep curves, always including the digest's ℓ = 2×10⁵ when reached."""
    g = set(np.unique(np.geomspace(2, depth, 40).astype(int)).tolist())
    if depth >= DIGEST_DEPTH:
        g.add(DIGEST_DEPTH)
    return sorted(g)
