"""cross-entropy-vs-trained: ensembles of MLPs trained by full-batch GD on the softmax cross-entropy against the
infinite-width function-space dynamics (``de.function_space_gd``, (10.3)–(10.6)): mean test probabilities at
several steps, and the 1/n shrinking of each network's departure from its own infinite-width trajectory.

For a loss other than MSE the frozen-NTK dynamics z ← z − ηΘ_{·𝒜}ε_𝒜, ε = softmax(z) − p (10.6), is nonlinear in
the initial outputs, so the infinite-width prediction is a Monte Carlo average over the prior z(0) ~ N(0, K^{(L)})
(``function_space_gd``, its own standard error). One task per width n: an MLP of depth L at the activation's
critical (C_b, C_W), λ_b = λ_W = 1, ``n_classes`` outputs, trained on fixed data (one-hot labels) with
η = eta_factor/λ_max(Θ̃) by :func:`deepeft.train_ensemble` (``loss="cross_entropy"``).

Checks (kind in each rule):

* prediction — for every step t > 0, test input and class (the last class is redundant: probabilities sum to
  one) the n → ∞ intercept a_0 of p̂(n) = a_0 + a_1/n (plain ensemble means p̂ over the widths; exact line for
  two widths, errors propagated) equals the infinite-width mean probability:
  |a_0 − p_∞| < max_z·√(se(a_0)² + se(p_∞)²) — no allowance (paper, 4 widths: + a_2/n², ``fit_degree``);
* each network s is also run through the infinite-width dynamics from its OWN initial outputs
  (:func:`deepeft.theory.function_space_outputs`, Θ = Θ^{(L)} frozen), giving p_s^∞(t); the residual
  r_s = p_s − p_s^∞ isolates the dynamics (the initial outputs cancel), with a spread O(1/√n) instead of O(1):
  - prediction — for every t > 0, test input and class, the n → ∞ intercept of mean_s r_s = a_0 + a_1/n is 0
    (trained networks follow the frozen-NTK function-space dynamics (10.3), (10.6)): |a_0| < max_z·se(a_0);
  - prediction + resolution — D(n) = E[Σ_{β,i} r²] at the last step shrinks as n^−p with p = 1 (NTK fluctuations
    O(1/√n)): weighted log–log fit over the widths, |p − 1| < max_z·se_p, se_p ≤ max_se_p (as kernel-gd-vs-trained;
    paper: D = A n^−p e^{c/n}, ``exponent_correction``, since n·D still grows from n = 64 to 256).

The per-width discrepancies max |p̂ − p_∞| are in the data (``mean_prob`` − ``theory_prob``) and the figure.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from . import _foundation as fd
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register


def labels(n_train: int, n_test: int, n0: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, one-hot Y_train (N, n_classes), X_test): the learning data with label argmax_i y_i of the smooth
    targets of :func:`_learning_common.learning_data`."""
    XA, Y, XB = lc.learning_data(n_train, n_test, n0, n_out=n_classes)
    return XA, np.eye(n_classes)[np.argmax(Y, axis=1)], XB


def _theory(net, XA, Y, XB, steps, eta, n_samples, seed):
    """(mean probabilities (T, M, n_classes), their standard errors) of infinite-width GD (function_space_gd)."""
    from ..theory.function_space_gd import function_space_gd

    fs = function_space_gd(net, XA, Y, XB, steps, eta, loss="cross_entropy", n_samples=n_samples, seed=seed)
    return fs.probabilities.value, fs.probabilities.stderr


def _own_trajectories(z0, Theta, Y, N, steps, eta):
    """Probabilities (S, T, M, n_classes) of the infinite-width dynamics started from the given initial outputs."""
    from ..theory.function_space_gd import function_space_outputs

    return function_space_outputs(z0, Theta, Y, N, steps, eta, loss="cross_entropy")["probabilities"]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@register
class CrossEntropyVsTrained(Experiment):
    name = "cross-entropy-vs-trained"
    description = "GD-trained MLPs on softmax cross-entropy vs infinite-width function-space GD (10.3)–(10.6); 1/n departure"
    references = "PDLT (7.11), (8.6), (10.3)–(10.6); function_space_gd"
    order = 412

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("tanh", "activation, at its critical (C_b, C_W)")
        widths: tuple[int, ...] = param((64, 256), "hidden widths n (≥ 2 distinct: n → ∞ fits and the 1/n exponent)",
                                        min=16)
        depth: int = param(3, "number of layers L", min=2, max=12)
        input_dim: int = param(4, "n_0", min=2)
        n_classes: int = param(2, "classes (outputs n_L)", min=2, max=10)
        n_train: int = param(6, "training inputs N", min=1, max=64)
        n_test: int = param(3, "test inputs", min=1, max=32)
        n_networks: int = param(1024, "trained networks per width", min=16)
        steps: tuple[int, ...] = param((0, 5, 20, 40), "GD steps t at which outputs are recorded (first 0)", min=0)
        eta_factor: float = param(0.5, "η = eta_factor / λ_max(Θ̃)", min=0.01, max=1.99)
        dtype: str = param("float32", "training precision (float32 or float64)")
        theory_samples: int = param(16384, "prior draws of the infinite-width Monte Carlo", min=2)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        max_se_p: float = param(0.3, "largest acceptable standard error of the fitted exponent", min=0.0, analysis=True)
        fit_degree: int = param(1, "n → ∞ fits: a_0 + a_1/n (1) or + a_2/n² (2; needs ≥ 3 widths)", min=1, max=2,
                                analysis=True)
        exponent_correction: bool = param(False, "fit D = A n^-p e^(c/n) (next order absorbed; needs ≥ 3 widths)",
                                          analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations((self.activation,), "activation")
            if len(set(self.widths)) < 2:
                raise DeepEFTInputError(f"parameter 'widths' needs at least two distinct widths (n → ∞ fits and the "
                                        f"1/n exponent), got {list(self.widths)}.")
            t = list(self.steps)
            if t[0] != 0 or len(t) < 2 or any(b <= a for a, b in itertools.pairwise(t)):
                raise DeepEFTInputError(f"parameter 'steps' must start at 0 and strictly increase, got {t}.")
            if self.fit_degree >= len(set(self.widths)) or (self.exponent_correction and len(set(self.widths)) < 3):
                raise DeepEFTInputError(f"fit_degree = {self.fit_degree} needs more than {self.fit_degree} widths and "
                                        f"exponent_correction needs ≥ 3; got widths {list(self.widths)}.")
            if self.dtype not in ("float32", "float64"):
                raise DeepEFTInputError(f"parameter 'dtype' must be 'float32' or 'float64', got {self.dtype!r}.")

    presets = {
        "quick": {},
        "paper": {"widths": (64, 128, 256, 512), "n_networks": 8192, "steps": (0, 5, 20, 50, 100, 200),
                  "dtype": "float64", "theory_samples": 262144, "fit_degree": 2, "exponent_correction": True},
    }

    def sweep(self, p):
        return {"width": list(p.widths)}

    def coords(self, p):
        return {"step": list(p.steps), "test": list(range(p.n_test)), "cls": list(range(p.n_classes))}

    def compute(self, p, task, ctx):
        from ..simulate.training import train_ensemble
        from ..theory.kernel import frozen_ntk

        net = fd.critical_net(p.activation, task["width"], p.depth, p.input_dim, output_dim=p.n_classes)
        XA, Y, XB = labels(p.n_train, p.n_test, p.input_dim, p.n_classes)
        Th = frozen_ntk(net, np.concatenate([XA, XB]))[-1]
        eta = p.eta_factor / float(np.linalg.eigvalsh(Th[: p.n_train, : p.n_train])[-1])
        steps = np.asarray(p.steps)
        th_mean, th_se = _theory(net, XA, Y, XB, steps, eta, p.theory_samples, p.seed)
        run = train_ensemble(net, XA, Y, p.n_networks, times=steps, eta=eta, X_test=XB, loss="cross_entropy",
                             dtype=p.dtype, seed=fd.ensemble_seed(ctx))
        assert run.train_outputs is not None and run.test_outputs is not None  # store="outputs"
        zA, zB = np.asarray(run.train_outputs, np.float64), np.asarray(run.test_outputs, np.float64)
        prob = _softmax(zB)  # (network, step, test, class)
        z0 = np.concatenate([zA[:, 0], zB[:, 0]], axis=1)  # each network's own initial outputs on 𝒜 ∪ ℬ
        r = prob - _own_trajectories(z0, Th, Y, p.n_train, steps, eta)  # departure from the n = ∞ trajectory
        r2 = np.sum(r[:, -1] ** 2, axis=(1, 2))
        M = p.n_networks
        return {
            "theory_prob": (("step", "test", "cls"), th_mean),
            "theory_prob_se": (("step", "test", "cls"), th_se),
            "mean_prob": (("step", "test", "cls"), prob.mean(0)),
            "mean_prob_se": (("step", "test", "cls"), prob.std(0, ddof=1) / math.sqrt(M)),
            "resid": (("step", "test", "cls"), r.mean(0)),
            "resid_se": (("step", "test", "cls"), r.std(0, ddof=1) / math.sqrt(M)),
            "D": r2.mean(), "D_se": r2.std(ddof=1) / math.sqrt(M),
            "eta": eta,
        }

    def analyze(self, p, ds):
        checks = []
        n = np.asarray(p.widths, np.float64)
        th, th_se = ds.theory_prob.values[0], ds.theory_prob_se.values[0]  # the same at every width (n = ∞)
        sim, se = ds.mean_prob.values, ds.mean_prob_se.values  # (width, step, test, cls)
        for ti, t in enumerate(p.steps):
            if t == 0:
                continue
            for b in range(p.n_test):
                for c in range(p.n_classes - 1):
                    coef, cov = lc.poly_fit(1.0 / n, sim[:, ti, b, c], se[:, ti, b, c], p.fit_degree)
                    a0, s0 = float(coef[0]), float(np.sqrt(cov[0, 0]))
                    s_tot = math.hypot(s0, float(th_se[ti, b, c]))
                    ok = math.isfinite(a0) and abs(a0 - th[ti, b, c]) < p.max_z * s_tot
                    checks.append(lc.kind_check(
                        "prediction", f"t={t}: mean p_{c}(x_{b}), n → ∞", th[ti, b, c], a0, s_tot, ok,
                        f"|a_0 − p_∞| < {p.max_z:g}·√(se(a_0)² + se(p_∞)²), a_0 the intercept of a_0 + a_1/n"
                        f"{' + a_2/n²' if p.fit_degree == 2 else ''} fitted over "
                        "the widths (ensemble errors), p_∞ from function_space_gd (Monte Carlo over the prior); no allowance"))
                    checks.append(lc.extrapolation_check(
                        f"t={t}: mean of p_{c}(x_{b}) − p^∞ (own initialization), n → ∞", 0.0, n, ds.resid.values[:, ti, b, c],
                        ds.resid_se.values[:, ti, b, c], degree=p.fit_degree, max_z=p.max_z,
                        what="0 (frozen-NTK dynamics (10.3))"))
        checks += lc.power_law_check(f"D = E[Σ (p − p^∞)²] at t={p.steps[-1]}", n, ds.D.values, ds.D_se.values,
                                     expected=1.0, max_z=p.max_z, max_se=p.max_se_p, correction=p.exponent_correction)
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        t = np.asarray(p.steps)
        fig = Figure(figsize=(10.0, 3.4), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        th = ds.theory_prob.values[0]
        for b in range(p.n_test):
            a1.plot(t, th[:, b, 0], "-", color=f"C{b}", lw=1, label=f"x_{b}: n = ∞ (function_space_gd)")
            for k, n in enumerate(p.widths):
                pt = ds.sel(width=n)
                a1.errorbar(t + 0.3 * k, pt.mean_prob.values[:, b, 0], yerr=2 * pt.mean_prob_se.values[:, b, 0],
                            fmt="os^vD"[k % 5], ms=3, color=f"C{b}", label=f"trained n={n}" if b == 0 else None)
        a1.set_xlabel("GD step t")
        a1.set_ylabel("mean test probability of class 0")
        a1.legend(fontsize=6)
        a1.set_title("cross-entropy: trained ensembles vs infinite-width dynamics", fontsize=8)
        w = np.asarray(p.widths, np.float64)
        a2.errorbar(w, ds.D.values, yerr=ds.D_se.values, fmt="o", ms=3, color="C3", label="trained")
        pf, sp, la, _ = lc.exponent_fit(w, ds.D.values, ds.D_se.values)
        if np.isfinite(pf):
            a2.plot(w, np.exp(la) * w**-pf, "k--", lw=0.8, label=f"fit n^-p, p = {pf:.2f} ± {sp:.2f}")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("width n")
        a2.set_ylabel("E[Σ (p − p^∞)²]")
        a2.set_title("departure from each network's infinite-width trajectory", fontsize=8)
        a2.legend(fontsize=6)
        return {"cross_entropy.png": fig}
