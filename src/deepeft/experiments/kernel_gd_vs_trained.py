"""kernel-gd-vs-trained: ensembles of wide MLPs trained by full-batch GD (MSE) against the frozen-NTK
prediction at infinite width (``de.gd_prediction``, §10.2): test-output mean m_t and covariance at several
step counts t, and the 1/n shrinking of the trained networks' discrepancy from it.

One task per width n (≥ 512): an MLP of depth L at the activation's critical (C_b, C_W), λ_b = λ_W = 1,
trained on fixed data with η = eta_factor/λ_max(Θ̃) by :func:`deepeft.train_ensemble` (networks s start as
``sample_params(net, seed, s)``). Theory from ``de.gd_prediction`` (mean, cov) and the linear map
M_t = Θ_ℬ𝒜Θ̃⁻¹[I − (I − ηΘ̃)^t] (``gd_from_kernels`` with Y = I), so m_t = M_t y.

Estimators. Frozen-NTK dynamics is linear in the initial outputs: z_ℬ(t) = c + M_t y with
c = z_ℬ(0) − M_t z_𝒜(0), and E[c] = 0 exactly at any width (z → −z symmetry of the last layer). So each
network's **residual** r_s(t) = z_ℬ,s(t) − c_s − m_t is its departure from the infinite-width dynamics started
at its own initialisation, and the mean is estimated as m_t + mean_s r_s (control variate: unbiased, with the
small spread of r, O(1/√n), instead of that of z). The covariance is the plain sample covariance of z_ℬ(t)
(:mod:`deepeft.simulate.estimators`, with its standard error).

Checks (kind in each rule):
* prediction — mean, every t > 0 and test input: |m̂ − m_t| < max_z·se + c·√K_ββ·L/n;
* prediction — covariance, every t and test pair: |Σ̂ − Σ_t| < max_z·se + c·√(Σ_αα Σ_ββ)·L/n;
* prediction + resolution — the discrepancy D(n) = E[Σ_β r_β(t_last)²] shrinks like 1/n: exponent p of a
  weighted log–log fit over the widths, |p − 1| < max_z·se_p, and se_p ≤ max_se_p.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..errors import DeepEFTInputError
from ..simulate import estimators as est
from ..statistics import Z_MAX
from . import _foundation as fd
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register


def _theory(net, XA, Y, XB, times, eta):
    """(mean (T, N_test), cov (T, N_test, N_test), M_t (T, N_test, N_train)) of frozen-NTK GD (§10.2)."""
    from ..theory.kernel import kernel_and_ntk
    from ..theory.kernel_learning import gd_from_kernels, gd_prediction

    pred = gd_prediction(net, XA, Y, XB, times, eta=eta)
    N = XA.shape[0]
    K, Th = kernel_and_ntk(net, np.concatenate([XA, XB]))
    assert Th is not None  # ntk=True
    K, Th = K[-1], Th[-1]
    Mt = gd_from_kernels(Th[:N, :N], Th[N:, :N], K[:N, :N], K[N:, :N], None, np.eye(N), times, eta).mean
    return pred.mean[..., 0], pred.cov, Mt


@register
class KernelGDVsTrained(Experiment):
    name = "kernel-gd-vs-trained"
    description = "trained wide MLPs (GD, MSE) vs frozen-NTK prediction m_t, cov_t (§10.2); 1/n discrepancy"
    references = "PDLT (7.11), (8.6), (10.3), (10.33)–(10.41); gd_prediction"
    order = 410

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("relu", "activation, at its critical (C_b, C_W)")
        widths: tuple[int, ...] = param((512, 1024, 2048), "hidden widths n (≥ 512, at least two for the 1/n fit)", min=512)
        depth: int = param(2, "number of layers L (2: one hidden layer)", min=2, max=12)
        input_dim: int = param(4, "n_0", min=2)
        n_train: int = param(4, "training inputs N", min=1, max=32)
        n_test: int = param(3, "test inputs", min=1, max=16)
        n_networks: int = param(4096, "trained networks per width", min=16)
        times: tuple[int, ...] = param((0, 1, 2, 3, 5, 10), "GD steps t at which outputs are recorded (first 0)", min=0)
        eta_factor: float = param(1.0, "η = eta_factor / λ_max(Θ̃) (stable below 2)", min=0.01, max=1.99)
        bias_coef: float = param(1.0, "c in the finite-width allowance c·scale·L/n", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        max_se_p: float = param(0.35, "largest acceptable standard error of the fitted exponent", min=0.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations((self.activation,), "activation")
            if len(set(self.widths)) != len(self.widths) or len(self.widths) < 2:
                raise DeepEFTInputError(
                    f"parameter 'widths' needs at least two distinct widths for the 1/n fit, got {list(self.widths)}."
                )
            t = list(self.times)
            if t[0] != 0 or any(b <= a for a, b in itertools.pairwise(t)):
                raise DeepEFTInputError(f"parameter 'times' must start at 0 and strictly increase, got {t}.")

    presets = {
        "quick": {},
        "paper": {"widths": (512, 1024, 2048), "n_networks": 16384, "times": (0, 1, 2, 3, 5, 10, 20, 50, 100), "depth": 3},
    }

    def sweep(self, p):
        return {"width": list(p.widths)}

    def coords(self, p):
        return {"time": list(p.times), "test": list(range(p.n_test)), "test2": list(range(p.n_test)),
                "train": list(range(p.n_train)), "network": list(range(p.n_networks))}

    def _net(self, p, n):
        return fd.critical_net(p.activation, n, p.depth, p.input_dim, output_dim=1)

    def compute(self, p, task, ctx):
        from ..simulate.training import train_ensemble
        from ..theory.kernel import frozen_ntk, kernel

        net = self._net(p, task["width"])
        XA, Y, XB = lc.learning_data(p.n_train, p.n_test, p.input_dim)
        Th = frozen_ntk(net, XA)[-1]
        eta = p.eta_factor / float(np.linalg.eigvalsh(Th)[-1])
        times = np.asarray(p.times)
        mean, cov, Mt = _theory(net, XA, Y, XB, times, eta)
        K = kernel(net, XB)[-1]
        run = train_ensemble(net, XA, Y, p.n_networks, times=times, eta=eta, X_test=XB, seed=fd.ensemble_seed(ctx))
        assert run.train_outputs is not None and run.test_outputs is not None  # store="outputs"
        return {
            "theory_mean": (("time", "test"), mean),
            "theory_cov": (("time", "test", "test2"), cov),
            "Mt": (("time", "test", "train"), Mt),
            "K_test": (("test", "test2"), K),
            "z_train0": (("network", "train"), run.train_outputs[:, 0, :, 0]),
            "z_test": (("network", "time", "test"), run.test_outputs[..., 0]),
            "eta": eta,
        }

    # -- estimators -------------------------------------------------------------------------------

    @staticmethod
    def residuals(pt):
        """r_s(t) = z_ℬ,s(t) − [z_ℬ,s(0) − M_t z_𝒜,s(0)] − m_t, (network, time, test)."""
        zB = pt.z_test.values
        c = zB[:, :1, :] - np.einsum("tba,ma->mtb", pt.Mt.values, pt.z_train0.values)
        return zB - c - pt.theory_mean.values[None]

    @classmethod
    def estimates(cls, pt) -> dict:
        r = cls.residuals(pt)
        M = r.shape[0]
        zB = pt.z_test.values
        d = zB - zB[:1].mean(0)
        S = {"S1": d.sum(0), "S2": np.einsum("mta,mtb->tab", d, d), "S3": np.einsum("mta,mtb->tab", d * d, d),
             "S4": np.einsum("mta,mtb->tab", d * d, d * d)}
        cov, cov_se = est.covariance(M, S["S1"], S["S2"], S["S3"], S["S4"])
        D = np.sum(r**2, axis=2)  # (network, time)
        return {
            "mean": pt.theory_mean.values + r.mean(0), "mean_se": r.std(0, ddof=1) / np.sqrt(M),
            "cov": cov, "cov_se": cov_se,
            "D": D.mean(0), "D_se": D.std(0, ddof=1) / np.sqrt(M),
        }

    def analyze(self, p, ds):
        checks = []
        Ds, Dse = [], []
        for n in p.widths:
            pt = ds.sel(width=n)
            e = self.estimates(pt)
            K = pt.K_test.values
            L_over_n = p.depth / n
            for ti, t in enumerate(p.times):
                for b in range(p.n_test):
                    if t > 0:
                        al = p.bias_coef * np.sqrt(K[b, b]) * L_over_n
                        checks.append(lc.allowance_check(
                            f"n={n} t={t}: mean z_{b}", pt.theory_mean.values[ti, b], e["mean"][ti, b], e["mean_se"][ti, b],
                            allowance=al, max_z=p.max_z, what="m_t (gd_prediction)", allowance_text=f"{p.bias_coef:g}·√K_ββ·L/n"))
                    for b2 in range(b, p.n_test):
                        S = pt.theory_cov.values[ti]
                        al = p.bias_coef * np.sqrt(S[b, b] * S[b2, b2]) * L_over_n
                        checks.append(lc.allowance_check(
                            f"n={n} t={t}: cov z_{b} z_{b2}", S[b, b2], e["cov"][ti, b, b2], e["cov_se"][ti, b, b2],
                            allowance=al, max_z=p.max_z, what="cov_t (gd_prediction)",
                            allowance_text=f"{p.bias_coef:g}·√(Σ_αα Σ_ββ)·L/n"))
            Ds.append(e["D"][-1])
            Dse.append(e["D_se"][-1])
        checks += lc.power_law_check(f"D = E[Σ r²] at t={p.times[-1]}", p.widths, Ds, Dse, expected=1.0,
                                     max_z=p.max_z, max_se=p.max_se_p)
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        t = np.asarray(p.times)
        nb = min(p.n_test, 3)
        fig = Figure(figsize=(3.4 * nb, 3.2 * len(p.widths)), layout="constrained")
        axes = fig.subplots(len(p.widths), nb, squeeze=False)
        for i, n in enumerate(p.widths):
            pt = ds.sel(width=n)
            e = self.estimates(pt)
            for b in range(nb):
                ax = axes[i, b]
                m, s = pt.theory_mean.values[:, b], np.sqrt(pt.theory_cov.values[:, b, b])
                ax.fill_between(t, m - 2 * s, m + 2 * s, color="C0", alpha=0.2, label="theory m_t ± 2√cov_t")
                ax.plot(t, m, "-", color="C0", lw=1.2)
                ax.errorbar(t, e["mean"][:, b], yerr=2 * np.sqrt(np.maximum(e["cov"][:, b, b], 0)), fmt="o", ms=3,
                            color="C3", capsize=2, label="trained: mean ± 2 sd")
                ax.set_title(f"n = {n}, test input {b}", fontsize=8)
                ax.set_xlabel("GD step t")
        axes[0, 0].set_ylabel("z_β(t)")
        axes[0, 0].legend(fontsize=6)
        out = {"bands.png": fig}

        rfig = Figure(figsize=(4.2, 3.4), layout="constrained")
        ax = rfig.subplots()
        Ds = np.array([self.estimates(ds.sel(width=n))["D"] for n in p.widths])
        Dse = np.array([self.estimates(ds.sel(width=n))["D_se"] for n in p.widths])
        w = np.asarray(p.widths, float)
        for ti in range(1, len(t)):
            ax.errorbar(w, Ds[:, ti], yerr=Dse[:, ti], fmt="o-", ms=3, label=f"t={t[ti]}")
        pf, sp, la, _ = lc.exponent_fit(w, Ds[:, -1], Dse[:, -1])
        ax.plot(w, np.exp(la) * w**-pf, "k--", lw=0.8, label=f"fit n^-p, p = {pf:.2f} ± {sp:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel("E[Σ_β r_β²]")
        ax.set_title("departure from frozen-NTK dynamics ∝ 1/n", fontsize=8)
        ax.legend(fontsize=6)
        out["discrepancy.png"] = rfig
        return out
