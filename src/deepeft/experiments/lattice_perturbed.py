"""lattice-perturbed: the lattice model (9) beyond J_D = 0 — the loss (J_D/2)Σ_i|z^{L−1}_i − t_i|² as a perturbation of the
stochastic neural network, several inputs, sampled by Metropolis-within-Gibbs (``lattice.perturbed.sample_perturbed``).

One task per J_D. The MCMC overlaps E[z^l_i·z^l_j/N] (every layer, every pair of inputs i ≤ j) are compared with an
independent path: for J_D > 0 the importance-reweighted exact J_D = 0 ancestral draws (``reweighted_moments``: the last
layer integrated out analytically), for J_D = 0 the exact conditional sampler (``sample_conditional``). Standard errors:
MCMC √(Var/ESS), reweighting delta method; z = difference/√(SE₁² + SE₂²).

Checks: z-scores per (layer, i ≤ j) (prediction: two exact descriptions of the same law); split-R̂ < 1.01 and ESS ≥
``min_ess`` on every overlap (finding: convergence of this run); at the largest J_D the loss pulls the last layer
toward the targets — |E_{J_D}[z^{L−1}_i·z^{L−1}_i/N] − E_0| resolved at z ≥ 3 (finding).

References:
  Schoenholz, Pennington & Sohl-Dickstein (2017), arXiv:1710.06570, eqs. (6)–(9), (38) (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import lattice as dl
from ..errors import DeepEFTInputError
from ..lattice import perturbed as lp
from ..statistics import Z_CLAIM, Z_MAX
from . import _lattice_common as lc
from .base import Experiment
from .checks import Check, greater_check, zcheck
from .config import param
from .registry import register

__all__ = ["LatticePerturbed", "lattice_inputs"]


def lattice_inputs(P: int, n0: int = 3) -> np.ndarray:
    """P fixed inputs (P, n0) with |x|²/n0 = 1 and pairwise overlaps away from ±1 (part of the experiment's definition)."""
    rng = np.random.default_rng(20251206)
    X = rng.standard_normal((P, n0))
    return X / np.linalg.norm(X, axis=1, keepdims=True) * np.sqrt(n0)


def lattice_targets(P: int, N: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(20251207)
    return scale * rng.standard_normal((P, N))


@register
class LatticePerturbed(Experiment):
    name = "lattice-perturbed"
    description = "lattice model with the loss J_D > 0 (eq. 9) by Metropolis-within-Gibbs vs exact reweighting; R-hat, ESS"
    references = "Schoenholz et al. 2017 (arXiv:1710.06570) eqs. (6)–(9), (38); Vehtari et al. 2021 (split-R̂, ESS)"
    order = 203

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("tanh", "activation φ")
        sigma_w2: float = param(0.6, "weight variance σ_w²", min=0.0)
        sigma_b2: float = param(0.1, "bias variance σ_b²", min=1e-12)
        N: int = param(20, "width N", min=2)
        L: int = param(4, "lattice layers L (the loss acts on layer L − 1)", min=2)
        n_inputs: int = param(2, "inputs P (multi-input overlaps)", min=1, max=4)
        target_scale: float = param(0.7, "targets t ~ scale·N(0, 1) per component (fixed generator)", min=0.0)
        J_D: tuple[float, ...] = param((0.0, 0.5, 2.0), "data couplings J_D", min=0.0)
        chains: int = param(16, "MCMC chains", min=2)
        sweeps: int = param(2400, "checkerboard sweeps per chain", min=16)
        burn: int = param(200, "sweeps dropped", min=0)
        thin: int = param(1, "keep every thin-th sweep (memory of long runs)", min=1)
        n_reweight: int = param(10_000, "exact J_D = 0 draws of the reweighting path", min=100)
        max_rhat: float = param(1.01, "convergence: split-R̂ below this on every overlap", min=1.0, analysis=True)
        min_ess: float = param(400.0, "convergence: effective sample size at least this", min=1.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            if len(set(self.J_D)) != len(self.J_D) or not self.J_D:
                raise DeepEFTInputError("parameter 'J_D' must list distinct values, e.g. [0, 0.5, 2].")
            if self.sweeps - self.burn < 100:
                raise DeepEFTInputError("keep at least 100 sweeps after burn-in (sweeps − burn ≥ 100).")

    presets = {
        "quick": {},
        "paper": {"N": 200, "L": 16, "n_inputs": 3, "J_D": (0.0, 0.1, 0.5, 2.0), "chains": 32, "sweeps": 30_000,
                  "burn": 2000, "thin": 10, "n_reweight": 200_000},  # τ ≈ 300 sweeps at this size (docs/lattice.md)
    }

    def sweep(self, p):
        return {"J_D": list(p.J_D)}

    def coords(self, p):
        return {"layer": list(range(p.L)), "i": list(range(p.n_inputs)), "j": list(range(p.n_inputs)),
                "hidden": list(range(p.L - 1))}

    def compute(self, p, task, ctx):
        J = float(task["J_D"])
        X = lattice_inputs(p.n_inputs)
        t = lattice_targets(p.n_inputs, p.N, p.target_scale)
        seed = lc.sampler_seed(ctx)
        s = lp.sample_perturbed(p.activation, p.sigma_w2, p.sigma_b2, N=p.N, L=p.L, X=X, t=t, J_D=J, chains=p.chains,
                                sweeps=p.sweeps, burn=p.burn, thin=p.thin, seed=seed)
        est = s.estimate()
        if J > 0:
            ref, _ = lp.reweighted_moments(p.activation, p.sigma_w2, p.sigma_b2, N=p.N, L=p.L, X=X, t=t, J_D=J,
                                           n_networks=p.n_reweight, seed=seed + 1)
            ref_v, ref_se = ref.value, ref.stderr
        else:
            c = dl.sample_conditional(p.activation, p.sigma_w2, p.sigma_b2, N=p.N, L=p.L, n_networks=p.n_reweight,
                                      seed=seed + 1, X=X, dtype="float64")
            ov = lp.overlaps(c)
            ref_v, ref_se = ov.mean(0), ov.std(0, ddof=1) / np.sqrt(ov.shape[0])
        d3 = ("layer", "i", "j")
        return {"mcmc": (d3, est.value), "mcmc_se": (d3, est.stderr), "ref": (d3, ref_v), "ref_se": (d3, ref_se),
                "rhat": (d3, s.rhat), "ess": (d3, s.ess), "acceptance": (("hidden",), s.acceptance)}

    def analyze(self, p, ds):
        checks: list[Check] = []
        P = p.n_inputs
        for J in p.J_D:
            d = ds.sel(J_D=J)
            path = "reweighted J_D=0 draws" if J > 0 else "exact conditional sampler"
            for l in range(p.L):
                for i in range(P):
                    for j in range(i, P):
                        e = d.isel(layer=l, i=i, j=j)
                        se = float(np.hypot(e.mcmc_se, e.ref_se))
                        checks.append(zcheck(f"J_D={J:g}: E[z^{l}_{i}·z^{l}_{j}/N] MCMC vs {path}", float(e.ref),
                                             float(e.mcmc), se, max_z=p.max_z))
            rmax = float(d.rhat.max())
            checks.append(Check(f"J_D={J:g}: split-R̂ of every overlap < {p.max_rhat:g}", p.max_rhat, rmax, None, None,
                                bool(rmax < p.max_rhat), f"max split-R̂ < {p.max_rhat:g} ({p.chains} chains)", "finding"))
            emin = float(d.ess.min())
            checks.append(Check(f"J_D={J:g}: effective sample size of every overlap ≥ {p.min_ess:g}", p.min_ess, emin,
                                None, None, bool(emin >= p.min_ess), f"min ESS ≥ {p.min_ess:g}", "finding"))
        if 0.0 in p.J_D and max(p.J_D) > 0:
            hi, lo = ds.sel(J_D=max(p.J_D)).isel(layer=-1), ds.sel(J_D=0.0).isel(layer=-1)
            d0 = float(lo.ref.isel(i=0, j=0))
            d1 = float(hi.mcmc.isel(i=0, j=0))
            sign = 1.0 if d0 > d1 else -1.0
            checks.append(greater_check(f"J_D={max(p.J_D):g} moves the last layer: |E[z^(L−1)_0·z^(L−1)_0/N] − E_0|",
                                        sign * d0, float(lo.ref_se.isel(i=0, j=0)), sign * d1,
                                        float(hi.mcmc_se.isel(i=0, j=0)), min_z=Z_CLAIM,
                                        what="|E_J − E_0|"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        P = p.n_inputs
        fig = Figure(figsize=(4.0 * P, 3.4), layout="constrained")
        axes = fig.subplots(1, P, squeeze=False)[0]
        layers = np.arange(p.L)
        for k, J in enumerate(p.J_D):
            d = ds.sel(J_D=J)
            for i in range(P):
                j = (i + 1) % P
                for jj, ls in ((i, "-"), (j, ":")):
                    axes[i].plot(layers, d.ref.values[:, i, jj], ls, color=f"C{k}", lw=1)
                    axes[i].errorbar(layers + 0.05 * k, d.mcmc.values[:, i, jj], d.mcmc_se.values[:, i, jj], fmt="o",
                                     ms=3, color=f"C{k}", label=f"J_D={J:g}" if jj == i else None)
                axes[i].set_title(f"z_{i}·z_{i}/N (solid), z_{i}·z_{j}/N (dotted); points MCMC", fontsize=8)
                axes[i].set_xlabel("layer l")
        axes[0].legend(fontsize=7)
        return {"overlaps.png": fig}
