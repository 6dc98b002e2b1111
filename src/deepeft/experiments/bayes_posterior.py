"""bayes-posterior: the infinite-width NNGP posterior (6.57), (6.64) (``de.nngp_posterior``) against the exact
posterior of last-layer-only Bayesian inference on finite-width random features, and its 1/n convergence.

One task per width n: an MLP of depth L at the activation's critical (C_b, C_W) with hidden widths n.
Each random network s (drawn layer by layer from the exact conditional laws, ``sample_ensemble(method="metric")``)
provides features φ_s(x) = σ(z^{(L−1)}_s(x)) of width n; with the
last layer (b^{(L)}, W^{(L)}) ~ N(0, C_b), N(0, C_W/n) (2.19)–(2.20) integrated out, its output is Gaussian
with kernel k_s(x, x') = C_b + (C_W/n) φ_s(x)·φ_s(x'), and Bayes' rule with observation noise σ_ε² (6.10)
gives the exact finite-width posterior (Gaussian conditioning)

    m_s = k_s,ℬ𝒜 (k̃_s + σ_ε² I)⁻¹ y,     𝕂_s = k_s,ℬℬ − k_s,ℬ𝒜 (k̃_s + σ_ε² I)⁻¹ k_s,𝒜ℬ

(batched over networks here; one network is checked against ``theory.bayes.posterior_from_kernels`` in the
tests). As n → ∞, k_s → K^{(L)} (4.118) and m_s, 𝕂_s → the NNGP posterior.

Checks (kind in each rule):
* prediction — the 1/n convergence of E_s[m_s] and E_s[𝕂_s]: the intercept a_0 of a_0 + a_1/n + a_2/n² fitted
  over the widths equals m^∞, 𝕂 within max_z·se(a_0). The finite-width bias is large for the covariance
  (finding, quick preset: E[𝕂_n] ≈ 𝕂(1 − 8.7/n) — a Schur complement of a random Gram matrix loses about
  N_train of n degrees of freedom, (n − N)/n for Gaussian features — so a fixed-width comparison would fail);
* prediction + resolution — D(n) = E_s|m_s − m^∞|² (the posterior's spread across random-feature draws)
  shrinks like 1/n: asymptotic exponent of log D = log A − p log n + c/n, |p − 1| < max_z·se_p, se_p ≤ max_se_p.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX
from . import _foundation as fd
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register


def _theory(net, XA, Y, XB, noise):
    """NNGP posterior (mean (N_test,), cov (N_test, N_test)) of ``de.nngp_posterior``."""
    from ..theory.bayes import nngp_posterior

    post = nngp_posterior(net, XA, Y, XB, noise)
    return post.mean[:, 0], post.cov


def features(net: MLP, X, seed: int, n: int) -> np.ndarray:
    """Penultimate-layer activations σ(z^{(L−1)}) (n, N, n_{L−1}) of n random networks (float64), drawn by
    ``sample_ensemble(..., method="metric")`` — the exact conditional law of each layer given the previous one
    (4.70)–(4.71), so the features have exactly the law of the networks' (with n_ℓ/N times fewer random numbers)."""
    import jax.numpy as jnp

    from ..simulate.ensemble import sample_ensemble

    head = net.replace(widths=net.widths[:-1], output_dim=net.widths[-1], C_b=net.C_b[:-1], C_W=net.C_W[:-1],
                       lambda_b=net.lambda_b[:-1], lambda_W=net.lambda_W[:-1])
    ens = sample_ensemble(head, X, n, seed, dtype="float64", method="metric", keep_preactivations=n, vertex=False)
    with x64():
        return np.asarray(net.activation.fn(jnp.asarray(ens.preactivations[-1])))


def random_feature_posterior(phi, C_b: float, C_W: float, n_train: int, Y, noise: float):
    """Exact last-layer posterior per network: phi (M, N_tot, n) → (mean (M, N_test), cov (M, N_test, N_test))."""
    n = phi.shape[-1]
    k = C_b + (C_W / n) * np.einsum("mai,mbi->mab", phi, phi)
    kt = k[:, :n_train, :n_train] + noise * np.eye(n_train)
    kx = k[:, n_train:, :n_train]
    sol = np.linalg.solve(kt, np.concatenate([np.broadcast_to(Y, (k.shape[0],) + Y.shape), np.swapaxes(kx, 1, 2)], axis=2))
    mean = np.einsum("mba,ma->mb", kx, sol[:, :, 0])
    cov = k[:, n_train:, n_train:] - np.einsum("mba,mac->mbc", kx, sol[:, :, 1:])
    return mean, cov


@register
class BayesPosterior(Experiment):
    name = "bayes-posterior"
    description = "NNGP posterior (6.57), (6.64) vs exact last-layer Bayesian posterior on finite-width features; 1/n"
    references = "PDLT (6.10), (6.57), (6.64), (4.118); nngp_posterior"
    order = 400

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("relu", "activation, at its critical (C_b, C_W)")
        widths: tuple[int, ...] = param((32, 64, 128, 256), "hidden widths n (at least three for the 1/n fits)", min=2)
        depth: int = param(3, "number of layers L (features from layer L−1)", min=2, max=16)
        input_dim: int = param(4, "n_0", min=2)
        n_train: int = param(4, "training inputs N", min=1, max=32)
        n_test: int = param(3, "test inputs", min=1, max=16)
        noise: float = param(0.01, "observation noise variance σ_ε² (6.10)", min=0.0)
        n_networks: int = param(8192, "random-feature draws per width", min=16)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        max_se_p: float = param(0.2, "largest acceptable standard error of the fitted exponent", min=0.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations((self.activation,), "activation")
            if len(set(self.widths)) != len(self.widths) or len(self.widths) < 4:
                raise DeepEFTInputError(
                    "parameter 'widths' needs at least four distinct widths (quadratic fits in 1/n, one degree of "
                    f"freedom), got {list(self.widths)}."
                )

    presets = {"quick": {}, "paper": {"widths": (32, 64, 128, 256, 512, 1024), "n_networks": 65536, "depth": 4}}

    def sweep(self, p):
        return {"width": list(p.widths)}

    def coords(self, p):
        return {"test": list(range(p.n_test)), "test2": list(range(p.n_test))}

    def _net(self, p, n):
        return fd.critical_net(p.activation, n, p.depth, p.input_dim, output_dim=1)

    def compute(self, p, task, ctx):
        from ..theory.kernel import kernel

        net = self._net(p, task["width"])
        XA, Y, XB = lc.learning_data(p.n_train, p.n_test, p.input_dim)
        X = np.concatenate([XA, XB])
        m_inf, cov_inf = _theory(net, XA, Y, XB, p.noise)
        seed = fd.ensemble_seed(ctx)
        acc: dict[str, list] = {"m": [], "c": []}
        chunk = 2048
        for ci, lo in enumerate(range(0, p.n_networks, chunk)):
            phi = features(net, X, (seed + 7919 * ci) % 2**32, min(p.n_networks, lo + chunk) - lo)
            m, c = random_feature_posterior(phi, net.C_b[-1], net.C_W[-1], p.n_train, Y, p.noise)
            acc["m"].append(m)
            acc["c"].append(c)
        m, c = np.concatenate(acc["m"]), np.concatenate(acc["c"])
        M = m.shape[0]
        D = np.sum((m - m_inf) ** 2, axis=1)
        return {
            "theory_mean": (("test",), m_inf),
            "theory_cov": (("test", "test2"), cov_inf),
            "K_test": (("test", "test2"), kernel(net, XB)[-1]),
            "mean": (("test",), m.mean(0)),
            "mean_se": (("test",), m.std(0, ddof=1) / np.sqrt(M)),
            "cov": (("test", "test2"), c.mean(0)),
            "cov_se": (("test", "test2"), c.std(0, ddof=1) / np.sqrt(M)),
            "D": D.mean(),
            "D_se": D.std(ddof=1) / np.sqrt(M),
        }

    def analyze(self, p, ds):
        checks = []
        n = np.asarray(p.widths, np.float64)
        for b in range(p.n_test):
            checks.append(lc.extrapolation_check(
                f"posterior mean m_{b}: n → ∞", ds.theory_mean.values[0, b], n, ds["mean"].values[:, b],
                ds.mean_se.values[:, b], degree=2, max_z=p.max_z, what="m^∞ (6.64)"))
            for b2 in range(b, p.n_test):
                checks.append(lc.extrapolation_check(
                    f"posterior cov 𝕂_{b}{b2}: n → ∞", ds.theory_cov.values[0, b, b2], n, ds["cov"].values[:, b, b2],
                    ds.cov_se.values[:, b, b2], degree=2, max_z=p.max_z, what="𝕂 (6.57)"))
        checks += lc.power_law_check("D = E|m_n − m^∞|²", n, ds.D.values, ds.D_se.values, expected=1.0,
                                     max_z=p.max_z, max_se=p.max_se_p, correction=True)
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        w = np.asarray(p.widths, float)
        fig = Figure(figsize=(8.0, 3.4), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        for b in range(p.n_test):
            (ln,) = a1.plot(1.0 / w, np.full_like(w, ds.theory_mean.values[0, b]), "-", lw=0.8)
            a1.errorbar(1.0 / w, ds["mean"].values[:, b], yerr=2 * ds.mean_se.values[:, b], fmt="o", ms=3,
                        color=ln.get_color(), label=f"test {b}")
            sd = np.sqrt(ds.theory_cov.values[0, b, b])
            a1.fill_between([0, 1.0 / w.min()], ds.theory_mean.values[0, b] - sd, ds.theory_mean.values[0, b] + sd,
                            color=ln.get_color(), alpha=0.08)
        a1.set_xlabel("1/n")
        a1.set_ylabel("E[m_n] (points) vs m^∞ ± √𝕂 (lines, bands)")
        a1.legend(fontsize=6)
        a1.set_title("posterior mean over random features", fontsize=8)
        D, se = ds.D.values, ds.D_se.values
        a2.errorbar(w, D, yerr=se, fmt="o", ms=3)
        pf, sp, la, _ = lc.exponent_fit(w, D, se)
        a2.plot(w, np.exp(la) * w**-pf, "k--", lw=0.8, label=f"n^-p, p = {pf:.2f} ± {sp:.2f}")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("width n")
        a2.set_ylabel("E|m_n − m^∞|²")
        a2.legend(fontsize=7)
        a2.set_title("convergence to the NNGP posterior", fontsize=8)
        return {"posterior.png": fig}
