"""generalization: robustness (10.57) and *-polation (10.99)–(10.105) of infinite-width networks trained to
the end (``theory.generalization``), vs depth, tanh vs ReLU — theory against trained ensembles.

One task per (activation, depth, width n): MLPs of hidden width n at the activation's critical (C_b, C_W),
λ_b = λ_W = 1, trained by full-batch GD (MSE, :func:`deepeft.train_ensemble`) for ``steps`` steps:

* robustness — trained on the single pair (x₊, y₊) with η = 1/Θ₊₊, tested at x₋: the theory mean is
  (Θ₋₊/Θ₊₊) y₊ (10.56), i.e. robustness Θ₋₊/Θ₊₊ − 1 (10.57), with variance K₋₋ − 2(Θ₋₊/Θ₊₊)K₋₊ + (Θ₋₊/Θ₊₊)²K₊₊ (10.63);
* *-polation — trained on (x₊, y₊), (x₋, y₋) with η = 2/(λ_max + λ_min) of Θ̃, tested at x_(2s−1) = s x₊ + (1−s) x₋
  for s in ``s_values`` (s > 1 or < 0 extrapolates): the exact kernel prediction (10.105) (``star_polation``).
x± have equal norms (|x|²/n₀ = 1) and cos angle ``cos_angle``.

Estimators: the end-of-training map is linear in the initial outputs, z_ℬ(∞) = z_ℬ(0) − M(z_𝒜(0) − y) with
M = Θ_ℬ𝒜Θ̃⁻¹, and c = z_ℬ(0) − M z_𝒜(0) has zero mean at any width; the mean is estimated as mean(z_ℬ(t) − c)
(control variate; se from its spread) and the variance by the plain sample variance of z_ℬ(t) (with its se).

Finite width. A trained network of width n departs from the infinite-width map in two ways:
(i) a per-network fluctuation (its NTK differs by O(1/√n)), whose square D(n) = E[Σ r²] is O(1/n) for every
activation, r = z_ℬ(t) − [z_ℬ(0) − M z_𝒜(0)] − m the control-variate residual (robustness and *-polation
outputs together); (ii) a bias of the ensemble mean, O(1/n) for a smooth σ (dNTK, ddNTK: Ch. 11) but
**O(1/√n) for a kinked σ (ReLU)** [finding, measured: for ReLU L = 2, n = 128…8192, 4096 networks, the
robustness bias falls 2.2× per 4× in width, n^−0.56; derived heuristically: during training only active
neurons move, so neurons near the kink cross from active to inactive and never back — a one-sided drift of
the activation pattern by E|δz| = O(1/√n), which shifts the NTK by O(1/√n)]. No closed form of either term is
implemented here, so nothing is compared at one width with an allowance: the run has ≥ 2 widths and

* prediction — for each quantity (robustness, its variance, *-polation means and variances) the n → ∞
  intercept a_0 of q(n) = a_0 + a_1·n^−e, e = 1 for a smooth σ and e = ``kinked_exponent`` (½) for a kinked one,
  fitted over the widths (weighted; exact line for two widths, errors propagated) equals the infinite-width
  theory: |a_0 − theory| < max_z·se(a_0) — no allowance;
* prediction + resolution — D(n) ∝ n^−p with p = 1: weighted log–log fit over the widths,
  |p − 1| < max_z·se_p and se_p ≤ max_se_p (as in kernel-gd-vs-trained);
* finding + resolution (kinked σ only) — the mean bias of the antisymmetric *-polation contrast
  B(n) = E[Σ_s (s − ½)(z_s − m_s)] (per network, so its error includes the correlations between the s) falls as
  n^−p with p = ``kinked_exponent``: |p − ½| < max_z·se_p, se_p ≤ max_se_p. (For tanh B is O(1/n) and below the
  quick preset's resolution; it is recorded, not checked.)

The figure's right panel shows D(n) and |B(n)| with their fits.
"""

from __future__ import annotations

import dataclasses
import math

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


def _intercept_check(name, theory, n, y, se, e, max_z, what):
    """prediction: the n → ∞ intercept a_0 of y(n) = a_0 + a_1·n^−e (weighted fit) equals ``theory``."""
    coef, cov = lc.poly_fit(np.asarray(n, np.float64) ** -e, y, se, 1)
    a0, s0 = float(coef[0]), float(np.sqrt(cov[0, 0]))
    ok = math.isfinite(a0) and abs(a0 - theory) < max_z * s0
    return lc.kind_check("prediction", name, theory, a0, s0, ok,
                         f"|a_0 − {what}| < {max_z:g}·se(a_0), a_0 the intercept of a_0 + a_1·n^-{e:g} fitted over the "
                         "widths (weighted; se from the ensemble errors); no allowance")


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
        depths: tuple[int, ...] = param((3,), "depths L of the trained networks", min=2, max=12)
        widths: tuple[int, ...] = param((128, 512), "hidden widths n (≥ 2 distinct: n → ∞ fits and the 1/n exponent)",
                                        min=16)
        input_dim: int = param(4, "n_0", min=2)
        cos_angle: float = param(0.5, "cos of the angle between x₊ and x₋", min=-0.99, max=0.99)
        y: tuple[float, ...] = param((1.0, -0.5), "targets (y₊, y₋)")
        s_values: tuple[float, ...] = param((-0.25, 0.25, 0.5, 0.75, 1.25), "*-polation points s (x = s x₊ + (1−s) x₋)")
        n_networks: int = param(512, "trained networks per task", min=16)
        steps: int = param(40, "GD steps (end of training; the slow mode of Θ̃ decays as ((κ−1)/(κ+1))^steps)", min=1)
        theory_depths: int = param(20, "deepest L of the theory curves in the figure", min=2, analysis=True)
        max_se_p: float = param(0.3, "largest acceptable standard error of a fitted exponent", min=0.0, analysis=True)
        kinked_exponent: float = param(0.5, "e of the mean bias ∝ n^−e for a kinked σ (ReLU; smooth σ: e = 1)", min=0.1,
                                       max=2.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.widths)) < 2:
                raise DeepEFTInputError(f"parameter 'widths' needs at least two distinct widths (n → ∞ fits and the "
                                        f"1/n exponent), got {list(self.widths)}.")
            if len(self.y) != 2:
                raise DeepEFTInputError(f"parameter 'y' must be the two targets (y₊, y₋), got {list(self.y)}.")

    presets = {"quick": {}, "paper": {"depths": (2, 3, 4, 6), "widths": (256, 1024), "n_networks": 4096, "steps": 100}}

    def sweep(self, p):
        return {"activation": list(p.activations), "depth": list(p.depths), "width": list(p.widths)}

    def coords(self, p):
        return {"s": list(p.s_values)}

    def _net(self, p, a, L, n):
        C_b, C_W = fd.critical_hyperparameters(a)
        return MLP(p.input_dim, [n] * (L - 1), 1, a, C_b=C_b, C_W=C_W)

    def compute(self, p, task, ctx):
        from ..simulate.training import train_ensemble
        from ..theory.kernel import frozen_ntk, kernel

        net = self._net(p, task["activation"], task["depth"], task["width"])
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
        # departure from the infinite-width end-of-training map, per network (robustness and *-polation outputs)
        r2 = (u - M1[0] * yp[0]) ** 2 + np.sum((w - sp_mean[None]) ** 2, axis=1)
        b = (w - sp_mean[None]) @ (s - 0.5)  # antisymmetric *-polation contrast, per network
        return {
            "D": r2.mean(), "D_se": r2.std(ddof=1) / np.sqrt(M),
            "B": b.mean(), "B_se": b.std(ddof=1) / np.sqrt(M),
            "rob_theory": rob, "var_theory": var1, "K_minus": float(kernel(net, xm[None])[-1][0, 0]),
            "rob": u.mean() / p.y[0] - 1.0, "rob_se": u.std(ddof=1) / np.sqrt(M) / abs(p.y[0]),
            "var": v1[0], "var_se": v1se[0],
            "star_theory": (("s",), sp_mean), "star_var_theory": (("s",), sp_var),
            "star": (("s",), w.mean(0)), "star_se": (("s",), w.std(0, ddof=1) / np.sqrt(M)),
            "star_var": (("s",), v2), "star_var_se": (("s",), v2se),
        }

    QUANTITIES = (  # (data variable, its theory, label, equation)
        ("rob", "rob_theory", "robustness Θ₋₊/Θ₊₊ − 1", "(10.57)"),
        ("var", "var_theory", "variance at x₋ (one training input)", "(10.63)"),
        ("star", "star_theory", "*-polation mean", "(10.105)"),
        ("star_var", "star_var_theory", "*-polation variance", "exact 2×2 variance"),
    )

    def analyze(self, p, ds):
        from ..activations import activation

        checks = []
        n = np.asarray(p.widths, np.float64)
        for a in p.activations:
            e = 1.0 if activation(a).smooth else p.kinked_exponent
            for L in p.depths:
                pt = ds.sel(activation=a, depth=L)
                for var, th, label, eq in self.QUANTITIES:
                    sim, se, theory = pt[var].values, pt[f"{var}_se"].values, pt[th].values[0]  # (width[, s])
                    cols = [(f"{a} L={L}: {label} s={sv:g}", j) for j, sv in enumerate(p.s_values)] if sim.ndim == 2 \
                        else [(f"{a} L={L}: {label}", None)]
                    for name, j in cols:
                        sl = (slice(None),) if j is None else (slice(None), j)
                        checks.append(_intercept_check(f"{name}, n → ∞", float(theory if j is None else theory[j]),
                                                       n, sim[sl], se[sl], e, p.max_z, eq))
                checks += lc.power_law_check(f"{a} L={L}: D = E[Σ r²] (departure from the n = ∞ map)", n, pt.D.values,
                                             pt.D_se.values, expected=1.0, max_z=p.max_z, max_se=p.max_se_p)
                if e != 1.0:
                    pf, sp, _, _ = lc.exponent_fit(n, np.abs(pt.B.values), pt.B_se.values)
                    ok = bool(np.all(np.sign(pt.B.values) == np.sign(pt.B.values[0])) and math.isfinite(pf)
                              and abs(pf - e) < p.max_z * sp)
                    checks.append(lc.kind_check(
                        "finding", f"{a} L={L}: mean bias B of the *-polation contrast: exponent p of |B| ∝ n^-p", e, pf, sp,
                        ok, f"|p − {e:g}| < {p.max_z:g}·se_p (kinked σ: bias ∝ n^−½, not 1/n; weighted log–log fit, "
                        "B of one sign at every width)"))
                    checks.append(lc.kind_check("resolution", f"{a} L={L}: bias exponent resolved", None, sp, None,
                                                bool(math.isfinite(sp) and sp <= p.max_se_p),
                                                f"se_p ≤ {p.max_se_p:g} (the fit resolves the exponent)"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..theory.generalization import robustness
        from ..theory.kernel import frozen_ntk

        xp, xm = pair(p.input_dim, p.cos_angle)
        nmax = max(p.widths)
        fig = Figure(figsize=(14.0, 3.4), layout="constrained")
        a1, a2, a3 = fig.subplots(1, 3)
        Ls = np.arange(1, p.theory_depths + 1)
        for k, a in enumerate(p.activations):
            C_b, C_W = fd.critical_hyperparameters(a)
            deep = MLP(p.input_dim, [nmax] * (p.theory_depths - 1), 1, a, C_b=C_b, C_W=C_W)
            Th = frozen_ntk(deep, np.stack([xp, xm]))
            a1.plot(Ls, [robustness(Th[l]) for l in range(len(Ls))], "-", color=f"C{k}", lw=1, label=f"{a}: (10.57)")
            sel = ds.sel(activation=a, width=nmax)
            a1.errorbar(sel.depth.values, sel.rob.values, yerr=2 * sel.rob_se.values, fmt="o", ms=3, color=f"C{k}",
                        label=f"{a}: trained, n={nmax}")
        a1.set_xlabel("depth L")
        a1.set_ylabel("robustness Θ₋₊/Θ₊₊ − 1")
        a1.legend(fontsize=6)
        a1.set_title(f"one training input, cos angle {p.cos_angle:g}", fontsize=8)
        s = np.asarray(p.s_values)
        for k, a in enumerate(p.activations):
            for j, L in enumerate(p.depths):
                pt = ds.sel(activation=a, depth=L, width=nmax)
                m, sd = pt.star_theory.values, np.sqrt(pt.star_var_theory.values)
                ls = ["-", "--", ":", "-."][j % 4]
                a2.plot(s, m, ls, color=f"C{k}", lw=1, label=f"{a} L={L}")
                a2.fill_between(s, m - sd, m + sd, color=f"C{k}", alpha=0.07)
                a2.errorbar(s + 0.01 * (j - 0.5), pt.star.values, yerr=2 * pt.star_se.values, fmt="o", ms=2.5, color=f"C{k}")
        a2.plot([0, 1], [p.y[1], p.y[0]], "k+", ms=8)
        a2.set_xlabel("s  (x = s x₊ + (1 − s) x₋)")
        a2.set_ylabel("mean output (bands ± 1 sd)")
        a2.legend(fontsize=6)
        a2.set_title(f"*-polation: exact kernel prediction (lines) vs trained, n={nmax} (points)", fontsize=8)
        w = np.asarray(p.widths, np.float64)
        for k, a in enumerate(p.activations):
            for j, L in enumerate(p.depths):
                pt = ds.sel(activation=a, depth=L)
                a3.errorbar(w, pt.D.values, yerr=pt.D_se.values, fmt="o" + ["-", "--", ":", "-."][j % 4], ms=3,
                            color=f"C{k}", label=f"{a} L={L}")
                pf, sp, la, _ = lc.exponent_fit(w, pt.D.values, pt.D_se.values)
                if np.isfinite(pf):
                    a3.plot(w, np.exp(la) * w**-pf, "k:", lw=0.6)
                a3.errorbar(w, np.abs(pt.B.values), yerr=pt.B_se.values, fmt="s" + ["-", "--", ":", "-."][j % 4], ms=3,
                            color=f"C{k}", alpha=0.5, label=f"{a} L={L}: |B|")
        a3.set_xscale("log")
        a3.set_yscale("log")
        a3.set_xlabel("width n")
        a3.set_ylabel("D = E[Σ r²] (o), mean bias |B| (s)")
        a3.set_title("fluctuation D ∝ 1/n; ReLU bias |B| ∝ n^-1/2", fontsize=8)
        a3.legend(fontsize=6)
        return {"generalization.png": fig}
