"""generalization: robustness (10.57) and *-polation (10.99)–(10.105) of infinite-width networks trained to
the end (``theory.generalization``), vs depth, tanh vs ReLU — theory against trained ensembles.

One task per (activation, depth): MLPs of hidden width n at the activation's critical (C_b, C_W),
λ_b = λ_W = 1, trained by full-batch GD (MSE, :func:`deepeft.train_ensemble`) for ``steps`` steps:

* robustness — trained on the single pair (x₊, y₊) with η = 1/Θ₊₊, tested at x₋: the theory mean is
  (Θ₋₊/Θ₊₊) y₊ (10.56), i.e. robustness Θ₋₊/Θ₊₊ − 1 (10.57), with variance K₋₋ − 2(Θ₋₊/Θ₊₊)K₋₊ + (Θ₋₊/Θ₊₊)²K₊₊ (10.63);
* *-polation — trained on (x₊, y₊), (x₋, y₋) with η = 2/(λ_max + λ_min) of Θ̃, tested at x_(2s−1) = s x₊ + (1−s) x₋
  for s in ``s_values`` (s > 1 or < 0 extrapolates): the exact kernel prediction (10.105) (``star_polation``).
x± have equal norms (|x|²/n₀ = 1) and cos angle ``cos_angle``.

Estimators: the end-of-training map is linear in the initial outputs, z_ℬ(∞) = z_ℬ(0) − M(z_𝒜(0) − y) with
M = Θ_ℬ𝒜Θ̃⁻¹, and c = z_ℬ(0) − M z_𝒜(0) has zero mean at any width; the mean is estimated as mean(z_ℬ(t) − c)
(control variate; se from its spread) and the variance by the plain sample variance of z_ℬ(t) (with its se).

Checks (kind in each rule): prediction — trained robustness, its variance, *-polation means and variances vs
theory, |sim − theory| < max_z·se + c·scale·L/n (the O(1/n) finite-width order, scale y for means and
K for variances).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..simulate import estimators as est
from ..statistics import Z_MAX
from . import _foundation as fd
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register


def _theory(net, xp, xm, yp, ym, s):
    """(robustness, variance at x₋ from x₊ alone, *-polation mean (S,), *-polation variance (S,), M₁ (1,), M₂ (S, 2))."""
    from ..theory.generalization import one_point_prediction, robustness, star_polation
    from ..theory.kernel import frozen_ntk, kernel_and_ntk

    K, Th = kernel_and_ntk(net, np.stack([xp, xm]))
    assert Th is not None  # ntk=True
    K, Th = K[-1], Th[-1]
    rob = robustness(Th)
    _, var1 = one_point_prediction(K, Th, yp)
    sp = star_polation(net, xp, xm, yp, ym, s)
    XB = s[:, None] * xp[None] + (1 - s)[:, None] * xm[None]
    ThB = frozen_ntk(net, np.concatenate([np.stack([xp, xm]), XB]))[-1]
    M2 = np.linalg.solve(Th, ThB[2:, :2].T).T  # Θ_ℬ𝒜 Θ̃⁻¹ (control variate only)
    return rob, var1, sp.mean[:, 0], sp.var, np.array([Th[1, 0] / Th[0, 0]]), M2


def pair(n0: int, cos_angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-norm inputs x₊, x₋ (|x|²/n₀ = 1) with cos angle ``cos_angle``."""
    e1, e2 = np.zeros(n0), np.zeros(n0)
    e1[0], e2[1] = 1.0, 1.0
    return np.sqrt(n0) * e1, np.sqrt(n0) * (cos_angle * e1 + np.sqrt(1 - cos_angle**2) * e2)


@register
class Generalization(Experiment):
    name = "generalization"
    description = "robustness (10.57) and *-polation (10.105) vs depth, tanh vs ReLU: theory vs trained ensembles"
    references = "PDLT §10.3: (10.56), (10.57), (10.63), (10.99)–(10.115); theory.generalization"
    order = 411

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "relu"), "activations, each at its critical point")
        depths: tuple[int, ...] = param((2, 3), "depths L of the trained networks", min=2, max=12)
        width: int = param(512, "hidden width n", min=16)
        input_dim: int = param(4, "n_0", min=2)
        cos_angle: float = param(0.5, "cos of the angle between x₊ and x₋", min=-0.99, max=0.99)
        y: tuple[float, ...] = param((1.0, -0.5), "targets (y₊, y₋)")
        s_values: tuple[float, ...] = param((-0.25, 0.25, 0.5, 0.75, 1.25), "*-polation points s (x = s x₊ + (1−s) x₋)")
        n_networks: int = param(256, "trained networks per task", min=16)
        steps: int = param(40, "GD steps (end of training; the slow mode of Θ̃ decays as ((κ−1)/(κ+1))^steps)", min=1)
        theory_depths: int = param(20, "deepest L of the theory curves in the figure", min=2, analysis=True)
        bias_coef: float = param(
            3.0, "c in the finite-width allowance c·scale·L/n (ReLU NTK fluctuations reach 7ℓ/(3n), digest)", min=0.0,
            analysis=True,
        )
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(self.y) != 2:
                raise DeepEFTInputError(f"parameter 'y' must be the two targets (y₊, y₋), got {list(self.y)}.")

    presets = {"quick": {}, "paper": {"depths": (2, 3, 4, 6), "width": 1024, "n_networks": 4096, "steps": 100}}

    def sweep(self, p):
        return {"activation": list(p.activations), "depth": list(p.depths)}

    def coords(self, p):
        return {"s": list(p.s_values)}

    def _net(self, p, a, L):
        C_b, C_W = fd.critical_hyperparameters(a)
        return MLP(p.input_dim, [p.width] * (L - 1), 1, a, C_b=C_b, C_W=C_W)

    def compute(self, p, task, ctx):
        from ..simulate.training import train_ensemble
        from ..theory.kernel import frozen_ntk, kernel

        net = self._net(p, task["activation"], task["depth"])
        xp, xm = pair(p.input_dim, p.cos_angle)
        yp, ym = np.array([p.y[0]]), np.array([p.y[1]])
        s = np.asarray(p.s_values, np.float64)
        rob, var1, sp_mean, sp_var, M1, M2 = _theory(net, xp, xm, yp, ym, s)
        Th = frozen_ntk(net, np.stack([xp, xm]))[-1]
        seed = fd.ensemble_seed(ctx)
        # robustness: train on x₊ alone (η = 1/Θ₊₊: one frozen-NTK step lands on y₊)
        r1 = train_ensemble(net, xp[None], yp[None], p.n_networks, times=[0, p.steps], eta=1.0 / Th[0, 0],
                            X_test=xm[None], seed=seed)
        assert r1.train_outputs is not None and r1.test_outputs is not None  # store="outputs"
        z0A, z0B, zB = r1.train_outputs[:, 0, 0, 0], r1.test_outputs[:, 0, 0, 0], r1.test_outputs[:, 1, 0, 0]
        u = zB - (z0B - M1[0] * z0A)  # control variate
        M = p.n_networks
        # *-polation: train on both, test on the line
        lam = np.linalg.eigvalsh(Th)
        XB = s[:, None] * xp[None] + (1 - s)[:, None] * xm[None]
        r2 = train_ensemble(net, np.stack([xp, xm]), np.stack([yp, ym]), p.n_networks, times=[0, p.steps],
                            eta=2.0 / (lam[0] + lam[-1]), X_test=XB, seed=(seed + 1) % 2**32)
        assert r2.train_outputs is not None and r2.test_outputs is not None  # store="outputs"
        zA0, zB0, zBt = r2.train_outputs[:, 0, :, 0], r2.test_outputs[:, 0, :, 0], r2.test_outputs[:, 1, :, 0]
        w = zBt - (zB0 - zA0 @ M2.T)

        def var_se(z):
            d = z - z[:1].mean(0)
            c, se = est.covariance(z.shape[0], d.sum(0), np.einsum("ma,mb->ab", d, d), np.einsum("ma,mb->ab", d * d, d),
                                   np.einsum("ma,mb->ab", d * d, d * d))
            return np.diagonal(c), np.diagonal(se)

        v1, v1se = var_se(zB[:, None])
        v2, v2se = var_se(zBt)
        return {
            "rob_theory": rob, "var_theory": var1, "K_minus": float(kernel(net, xm[None])[-1][0, 0]),
            "rob": u.mean() / p.y[0] - 1.0, "rob_se": u.std(ddof=1) / np.sqrt(M) / abs(p.y[0]),
            "var": v1[0], "var_se": v1se[0],
            "star_theory": (("s",), sp_mean), "star_var_theory": (("s",), sp_var),
            "star": (("s",), w.mean(0)), "star_se": (("s",), w.std(0, ddof=1) / np.sqrt(M)),
            "star_var": (("s",), v2), "star_var_se": (("s",), v2se),
        }

    def analyze(self, p, ds):
        checks = []
        ys = max(abs(p.y[0]), abs(p.y[1]))
        for a in p.activations:
            for L in p.depths:
                pt = ds.sel(activation=a, depth=L)
                f = p.bias_coef * L / p.width
                K = float(pt.K_minus)
                checks.append(lc.allowance_check(f"{a} L={L}: robustness Θ₋₊/Θ₊₊ − 1", float(pt.rob_theory), float(pt.rob),
                                                 float(pt.rob_se), allowance=f, max_z=p.max_z, what="(10.57)",
                                                 allowance_text=f"{p.bias_coef:g}·L/n"))
                checks.append(lc.allowance_check(f"{a} L={L}: variance at x₋ (one training input)", float(pt.var_theory),
                                                 float(pt["var"]), float(pt.var_se), allowance=f * K, max_z=p.max_z,
                                                 what="(10.63)", allowance_text=f"{p.bias_coef:g}·K₋₋·L/n"))
                for j, sv in enumerate(p.s_values):
                    checks.append(lc.allowance_check(
                        f"{a} L={L}: *-polation mean s={sv:g}", float(pt.star_theory[j]), float(pt.star[j]), float(pt.star_se[j]),
                        allowance=f * ys, max_z=p.max_z, what="(10.105)", allowance_text=f"{p.bias_coef:g}·max|y|·L/n"))
                    checks.append(lc.allowance_check(
                        f"{a} L={L}: *-polation variance s={sv:g}", float(pt.star_var_theory[j]), float(pt.star_var[j]),
                        float(pt.star_var_se[j]), allowance=f * K, max_z=p.max_z, what="exact 2×2 variance",
                        allowance_text=f"{p.bias_coef:g}·K₋₋·L/n"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..theory.generalization import robustness
        from ..theory.kernel import frozen_ntk

        xp, xm = pair(p.input_dim, p.cos_angle)
        fig = Figure(figsize=(10.0, 3.4), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        Ls = np.arange(1, p.theory_depths + 1)
        for k, a in enumerate(p.activations):
            C_b, C_W = fd.critical_hyperparameters(a)
            deep = MLP(p.input_dim, [p.width] * (p.theory_depths - 1), 1, a, C_b=C_b, C_W=C_W)
            Th = frozen_ntk(deep, np.stack([xp, xm]))
            a1.plot(Ls, [robustness(Th[l]) for l in range(len(Ls))], "-", color=f"C{k}", lw=1, label=f"{a}: (10.57)")
            sel = ds.sel(activation=a)
            a1.errorbar(sel.depth.values, sel.rob.values, yerr=2 * sel.rob_se.values, fmt="o", ms=3, color=f"C{k}",
                        label=f"{a}: trained, n={p.width}")
        a1.set_xlabel("depth L")
        a1.set_ylabel("robustness Θ₋₊/Θ₊₊ − 1")
        a1.legend(fontsize=6)
        a1.set_title(f"one training input, cos angle {p.cos_angle:g}", fontsize=8)
        s = np.asarray(p.s_values)
        for k, a in enumerate(p.activations):
            for j, L in enumerate(p.depths):
                pt = ds.sel(activation=a, depth=L)
                m, sd = pt.star_theory.values, np.sqrt(pt.star_var_theory.values)
                ls = ["-", "--", ":", "-."][j % 4]
                a2.plot(s, m, ls, color=f"C{k}", lw=1, label=f"{a} L={L}")
                a2.fill_between(s, m - sd, m + sd, color=f"C{k}", alpha=0.07)
                a2.errorbar(s + 0.01 * (j - 0.5), pt.star.values, yerr=2 * pt.star_se.values, fmt="o", ms=2.5, color=f"C{k}")
        a2.plot([0, 1], [p.y[1], p.y[0]], "k+", ms=8)
        a2.set_xlabel("s  (x = s x₊ + (1 − s) x₋)")
        a2.set_ylabel("mean output (bands ± 1 sd)")
        a2.legend(fontsize=6)
        a2.set_title("*-polation: exact kernel prediction (lines) vs trained (points)", fontsize=8)
        return {"generalization.png": fig}
