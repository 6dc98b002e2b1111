"""gaussian-moments: ⟨σ(z)^p⟩_K by quadrature (theory) against Monte Carlo sample means (simulation).

The Gaussian expectation ⟨F(z)⟩_K = ∫ dz e^{−z²/2K}/√(2πK) F(z) (book (1.7), (4.25)) underlies every
kernel recursion; here F = σ^p for each activation σ and variance K. Theory: ``expect1d``
(Gauss–Legendre split at kinks). Simulation: mean of σ(√K ε)^p over ε ~ N(0, 1), with the sample
standard error. One task per (activation, K); the moments p share the task's samples.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..activations import activation, available_activations
from ..errors import DeepEFTInputError
from ..gaussian.gauss1d import expect1d
from ..statistics import Z_MAX
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register

_CHUNK = 1 << 16  # samples per vectorised block (fixed: results do not depend on memory settings)


def _moment_fn(act, p: int):
    return lambda z: act.numpy(z) ** p


@register
class GaussianMoments(Experiment):
    name = "gaussian-moments"
    description = "Gaussian expectations <sigma(z)^p>_K: quadrature (expect1d) vs Monte Carlo, per activation and K"
    references = "PDLT (1.7), (4.25): one-dimensional Gaussian expectations"
    order = 10

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(
            ("relu", "tanh", "gelu", "swish", "erf", "sin"), "activation names (deepeft.available_activations())"
        )
        variances: tuple[float, ...] = param((0.25, 1.0, 4.0), "variances K of the Gaussian", min=0.0)
        orders: tuple[int, ...] = param((1, 2, 4), "moments p of <sigma(z)^p>_K", min=1, max=8)
        n_samples: int = param(200_000, "Monte Carlo samples per (activation, K)", min=2)
        max_z: float = param(Z_MAX, "a check passes when |z| < max_z", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            for a in self.activations:
                activation(a)  # raises DeepEFTInputError with suggestions for unknown names
            for key in ("activations", "variances", "orders"):
                values = getattr(self, key)
                if len(set(values)) != len(values):
                    raise DeepEFTInputError(f"parameter {key!r} has repeated entries {list(values)}; list each once.")

    presets = {
        "quick": {},
        "paper": {
            "activations": tuple(a for a in available_activations() if a not in ("monomial", "scale_invariant")),
            "variances": (0.1, 0.3, 1.0, 3.0, 10.0),
            "n_samples": 10_000_000,
        },
    }

    def sweep(self, p):
        return {"activation": list(p.activations), "K": list(p.variances)}

    def coords(self, p):
        return {"moment": list(p.orders)}

    def compute(self, p, task, ctx):
        """Sample means and standard errors of σ(z)^p, z ~ N(0, K), streamed in fixed-size blocks."""
        act = activation(task["activation"])
        rng = ctx.rng()
        orders = np.asarray(p.orders)
        n_tot, mean, m2 = 0, np.zeros(orders.size), np.zeros(orders.size)
        for start in range(0, p.n_samples, _CHUNK):
            m = min(_CHUNK, p.n_samples - start)
            s = act.numpy(np.sqrt(task["K"]) * rng.standard_normal(m))
            v = s[None, :] ** orders[:, None]
            cm = v.mean(axis=1)
            cm2 = ((v - cm[:, None]) ** 2).sum(axis=1)
            delta = cm - mean  # Chan et al. pairwise update of mean and sum of squared deviations
            n_new = n_tot + m
            mean = mean + delta * (m / n_new)
            m2 = m2 + cm2 + delta**2 * (n_tot * m / n_new)
            n_tot = n_new
        stderr = np.sqrt(m2 / (n_tot - 1) / n_tot)
        return {"simulation": (("moment",), mean), "stderr": (("moment",), stderr)}

    def theory(self, p, act_name: str, K) -> np.ndarray:
        """⟨σ^p⟩_K by quadrature for every K (…) and order p → array (…, len(orders))."""
        act = activation(act_name)
        kinks = tuple(act.kinks) + tuple(act.jumps)
        return np.stack([expect1d(_moment_fn(act, q), np.asarray(K), kinks) for q in p.orders], axis=-1)

    def assemble(self, p, tasks, results):
        ds = super().assemble(p, tasks, results)
        th = np.stack([self.theory(p, a, np.asarray(p.variances)) for a in p.activations])
        ds["theory"] = (("activation", "K", "moment"), th)
        return ds

    def analyze(self, p, ds):
        checks = []
        for a in p.activations:
            for K in p.variances:
                for q in p.orders:
                    pt = ds.sel(activation=a, K=K, moment=q)
                    checks.append(
                        zcheck(f"{a}: <sigma^{q}> at K={K:g}", pt.theory, pt.simulation, pt.stderr, max_z=p.max_z)
                    )
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        ks = np.asarray(p.variances)
        lo, hi = ks.min(), ks.max()
        grid = np.geomspace(max(lo, 1e-3), hi, 60) if hi > lo else ks
        fig = Figure(figsize=(4.2 * len(p.orders), 3.6), layout="constrained")
        axes = fig.subplots(1, len(p.orders), squeeze=False)[0]
        for a in p.activations:
            curve = self.theory(p, a, grid)
            for j, q in enumerate(p.orders):
                pt = ds.sel(activation=a, moment=q)
                (line,) = axes[j].plot(grid, curve[:, j], lw=1.2, label=a)
                axes[j].errorbar(ks, pt.simulation, yerr=pt.stderr, fmt="o", ms=3.5, color=line.get_color())
        for j, q in enumerate(p.orders):
            axes[j].set_xscale("log")
            axes[j].set_xticks(ks, [f"{k:g}" for k in ks])
            axes[j].minorticks_off()
            axes[j].set_xlabel("K")
            axes[j].set_title(f"<sigma(z)^{q}>_K: lines theory, dots Monte Carlo", fontsize=9)
        axes[0].legend(fontsize=7)

        zfig = Figure(figsize=(7.0, 3.2), layout="constrained")
        ax = zfig.subplots()
        z = ((ds.simulation - ds.theory) / ds.stderr).transpose("activation", "K", "moment").values
        for i in range(len(p.activations)):
            ax.plot(np.full(z[i].size, i) + np.linspace(-0.25, 0.25, z[i].size), z[i].ravel(), "o", ms=4)
        ax.axhline(p.max_z, color="crimson", lw=0.8)
        ax.axhline(-p.max_z, color="crimson", lw=0.8)
        ax.set_xticks(range(len(p.activations)), list(p.activations), rotation=30, fontsize=8)
        ax.set_ylabel("z = (MC − theory) / stderr")
        ax.set_title(f"z-scores of all checks (pass: |z| < {p.max_z:g})", fontsize=9)
        return {"moments.png": fig, "zscores.png": zfig}
