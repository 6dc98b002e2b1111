"""finite-width-bayes: the O(1/n) Bayesian posterior (6.88) and representation learning (6.104) of finite-width
networks (``de.finite_width_posterior``, ``de.representation_update``) against exact importance sampling.

One task per width n: an MLP of depth L at the activation's critical (C_b, C_W), hidden widths n, n_L outputs.
The reference is exact (``deepeft.simulate.posterior_sampling``): S prior networks drawn from the exact layer laws
(4.70)–(4.71), the output layer integrated out — likelihood Π_i N(y_i; 0, Ĝ_𝒜𝒜 + σ_ε² I) (6.94) as importance
weight, conditional mean Ĝ_ℬ𝒜(Ĝ_𝒜𝒜 + σ_ε² I)⁻¹y — with jackknife standard errors and the effective sample size.

Targets with a controlled Hebbian source: Σ_i y_i y_iᵀ = n_L K̃ + t K̃^{1/2} E K̃^{1/2} (E = diag(1, −1, …)/√N_A,
:func:`controlled_targets`), so the source B = t K̃^{−1/2} E K̃^{−1/2} is set by the strength t. The expansion
parameter of (6.96)–(6.98) is the variance of the log-likelihood, ε_n = ¼ B·V·B/n (reported): the 1/n theory is
tested where ε_n ≪ 1 (and ESS ≈ S). With generic targets on nearly-parallel inputs ε_n can be O(1) at n ≈ 100:
there the weights are degenerate and the 1/n expansion is not accurate (a property of the data, not of the code).

Checks (kind in each rule):
* prediction — d̄𝒪 (6.104): for every entry, the n → ∞ intercept of n·d̄𝒪_IS(n) = a + b/n fitted over the widths
  equals the theory coefficient n·d̄𝒪 (the O(1/n²) remainder is the fitted b/n; no allowance);
* prediction — the reweighting part of the mean, E_post[m_s] − E_prior[m_s] (``mean_learning`` of (6.88)): same fit;
* prediction — the posterior mean itself at each width: |m_IS − (m^∞ + δm)| < max_z·se + v_n·max|δm|, the
  allowance v_n = max_{ab} |V_(aa)(bb)|/(n K_aa K_bb) times the correction being the stated O(1/n²) budget;
* prediction + resolution — the update ∝ 1/n: exponent p of the projection of d̄𝒪_IS on the theory pattern,
  fitted as A n^{−p} e^{c/n} (power_law_check);
* finding — the 1/n-corrected mean describes the sampled posterior better than m^∞: χ²_NNGP − χ²_fw ≥ Z_CLAIM²
  (χ² = Σ z² over the N_test·n_L entries, summed over the widths);
* resolution — the importance sampling is efficient: ESS ≥ min_ess_fraction·S at every width.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_CLAIM, Z_MAX
from . import _foundation as fd
from . import _learning_common as lc
from .base import Experiment
from .config import param
from .registry import register

__all__ = ["FiniteWidthBayes", "controlled_targets", "well_spread_inputs"]


def well_spread_inputs(N: int, n0: int) -> np.ndarray:
    """N fixed inputs (N, n0), |x|² = n0, from a fixed generator (part of the experiment's definition): for
    N ≤ n0 generic directions have moderate correlations, so the kernel is well conditioned."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, n0))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X * np.sqrt(n0)


def _sqrtm_psd(M: np.ndarray) -> np.ndarray:
    lam, U = np.linalg.eigh(0.5 * (M + M.T))
    return (U * np.sqrt(np.maximum(lam, 0.0))) @ U.T


def controlled_targets(K_train, n_out: int, strength: float, angle: float = 0.7) -> np.ndarray:
    """Targets Y (N_A, n_out) with Σ_i y_i y_iᵀ = n_out K̃ + t K̃^{1/2} E K̃^{1/2}, E = diag(±1)/√N_A (alternating
    signs), i.e. Hebbian source B = t K̃^{−1/2} E K̃^{−1/2}; components mixed by a fixed rotation (``angle``) so
    every component carries every input. Needs n_out ≥ N_A and |t| < n_out √N_A."""
    K = np.asarray(K_train, np.float64)
    NA = K.shape[0]
    if n_out < NA:
        raise DeepEFTInputError(f"controlled targets need n_out >= n_train (got {n_out} < {NA}).")
    E = np.diag([(-1.0) ** a for a in range(NA)]) / np.sqrt(NA)
    M = n_out * np.eye(NA) + strength * E
    if np.linalg.eigvalsh(M).min() <= 0:
        raise DeepEFTInputError(f"strength {strength} too large: n_out·I + t·E must be positive definite.")
    Q = np.eye(n_out)
    for k in range(n_out - 1):  # a fixed rotation mixing the components
        c, s = np.cos(angle), np.sin(angle)
        R = np.eye(n_out)
        R[k : k + 2, k : k + 2] = [[c, -s], [s, c]]
        Q = Q @ R
    return _sqrtm_psd(K) @ _sqrtm_psd(M) @ Q[:NA]


@register
class FiniteWidthBayes(Experiment):
    name = "finite-width-bayes"
    description = "finite-width Bayesian posterior mean (6.88) and representation learning (6.104) vs importance sampling"
    references = "PDLT (6.78), (6.87)-(6.89), (6.94)-(6.104), (4.70)-(4.71); finite_width_posterior, representation_update"
    order = 402

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("relu", "activation, at its critical (C_b, C_W)")
        widths: tuple[int, ...] = param((64, 128, 256), "hidden widths n (at least three: 1/n fits)", min=2)
        depth: int = param(3, "number of layers L", min=2, max=12)
        input_dim: int = param(4, "n_0", min=1)
        n_train: int = param(2, "training inputs N_A (≤ n_out)", min=1, max=6)
        n_test: int = param(2, "test inputs", min=1, max=6)
        n_out: int = param(2, "output components n_L (≥ n_train)", min=1, max=8)
        strength: float = param(1.25, "Hebbian source strength t of the controlled targets")
        noise: float = param(0.0, "observation noise variance σ_ε² (6.10)", min=0.0)
        n_networks: int = param(32768, "prior networks per width", min=1024)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        min_ess_fraction: float = param(0.5, "smallest acceptable ESS/S", min=0.0, analysis=True)
        max_se_p: float = param(0.2, "largest acceptable standard error of the fitted exponent", min=0.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations((self.activation,), "activation")
            if len(set(self.widths)) != len(self.widths) or len(self.widths) < 3:
                raise DeepEFTInputError(f"parameter 'widths' needs at least three distinct widths, got {list(self.widths)}.")
            if self.n_out < self.n_train:
                raise DeepEFTInputError("parameter 'n_out' must be >= 'n_train' (controlled targets).")

    presets = {"quick": {}, "paper": {"widths": (64, 128, 256, 512, 1024), "n_networks": 131072}}

    def sweep(self, p):
        return {"width": list(p.widths)}

    def coords(self, p):
        N = p.n_train + p.n_test
        return {"test": list(range(p.n_test)), "out": list(range(p.n_out)), "d1": list(range(N)), "d2": list(range(N))}

    def _setup(self, p, n):
        from ..theory.kernel import kernel

        net = fd.critical_net(p.activation, n, p.depth, p.input_dim, output_dim=p.n_out)
        X = well_spread_inputs(p.n_train + p.n_test, p.input_dim)
        XA, XB = X[: p.n_train], X[p.n_train :]
        Y = controlled_targets(kernel(net, XA)[-1], p.n_out, p.strength)
        return net, XA, Y, XB

    def compute(self, p, task, ctx):
        from ..simulate.posterior_sampling import importance_posterior
        from ..theory import bayes_finite_width as bfw
        from ..theory.vertex import vertex_flow

        n = task["width"]
        net, XA, Y, XB = self._setup(p, n)
        th = bfw.finite_width_posterior(net, XA, Y, XB, p.noise)
        ru = bfw.representation_update(net, XA, Y, XB, p.noise)
        flow = vertex_flow(net, np.concatenate([XA, XB]))
        K, V = flow.K[-1], flow.V[-1]
        NA = p.n_train
        eps = 0.25 * float(np.einsum("ab,abcd,cd->", ru.source, V[:NA, :NA, :NA, :NA], ru.source)) / n
        d = np.diag(K)
        v_n = float(np.max(np.abs(np.einsum("aabb->ab", V)) / np.outer(d, d))) / n
        s = importance_posterior(net, XA, Y, XB, p.n_networks, fd.ensemble_seed(ctx), noise=p.noise)
        T = ru.d_O * n  # the width-independent pattern: proj ≈ 1/n
        P, m_inf = th.mean_correction * n, th.mean_nngp  # projection of the sampled mean correction: ≈ 1/n
        proj_m = s.reweight(lambda w, m, o: np.sum((w @ m.reshape(len(w), -1) - m_inf.ravel()) * P.ravel())
                            / np.sum(P * P))
        proj = s.reweight(lambda w, m, o: np.sum((w @ o.reshape(len(w), -1) - o.reshape(len(w), -1).mean(0))
                                                 * T.ravel()) / np.sum(T * T))
        tb, dd = ("test", "out"), ("d1", "d2")
        return {
            "theory_nngp": (tb, th.mean_nngp), "theory_mean": (tb, th.mean), "theory_learning": (tb, th.mean_learning),
            "theory_dO": (dd, ru.d_O),
            "mean": (tb, s.mean.value), "mean_se": (tb, s.mean.stderr),
            "shift": (tb, s.mean_shift.value), "shift_se": (tb, s.mean_shift.stderr),
            "dO": (dd, s.d_O.value), "dO_se": (dd, s.d_O.stderr),
            "proj": float(proj.value), "proj_se": float(proj.stderr),
            "proj_m": float(proj_m.value), "proj_m_se": float(proj_m.stderr),
            "ess": s.ess, "eps": eps, "v_n": v_n,
        }

    def analyze(self, p, ds):
        checks = []
        n = np.asarray(p.widths, np.float64)
        N = p.n_train + p.n_test
        dO_c, dO_se, dO_th = ds["dO"].values * n[:, None, None], ds.dO_se.values * n[:, None, None], \
            ds.theory_dO.values * n[:, None, None]
        for a, b in fd.upper_pairs(N):
            checks.append(lc.extrapolation_check(
                f"d̄𝒪_{a}{b} (6.104): n·d̄𝒪 at n → ∞", dO_th[0, a, b], n, dO_c[:, a, b], dO_se[:, a, b], degree=1,
                max_z=p.max_z, what="n·d̄𝒪 of (6.104)"))
        sh_c, sh_se = ds["shift"].values * n[:, None, None], ds.shift_se.values * n[:, None, None]
        sh_th = ds.theory_learning.values * n[:, None, None]
        for b in range(p.n_test):
            for i in range(p.n_out):
                checks.append(lc.extrapolation_check(
                    f"E_post − E_prior of m_s, test {b}, out {i}: n·shift at n → ∞", sh_th[0, b, i], n, sh_c[:, b, i],
                    sh_se[:, b, i], degree=1, max_z=p.max_z, what="n·mean_learning of (6.88)"))
        chi_fw = chi_inf = 0.0
        for k, w in enumerate(p.widths):
            m, se = ds["mean"].values[k], ds.mean_se.values[k]
            fw, inf = ds.theory_mean.values[k], ds.theory_nngp.values[k]
            corr = np.abs(fw - inf).max()
            allow = float(ds.v_n.values[k]) * corr
            for b in range(p.n_test):
                for i in range(p.n_out):
                    checks.append(lc.allowance_check(
                        f"posterior mean n={w}, test {b}, out {i}", fw[b, i], m[b, i], se[b, i], allowance=allow,
                        max_z=p.max_z, what="m^∞ + δm (6.88)", allowance_text="v_n·max|δm|"))
            chi_fw += float(np.sum(((m - fw) / se) ** 2))
            chi_inf += float(np.sum(((m - inf) / se) ** 2))
            checks.append(lc.kind_check(
                "resolution", f"effective sample size n={w}", None, float(ds.ess.values[k]) / p.n_networks, None,
                float(ds.ess.values[k]) >= p.min_ess_fraction * p.n_networks,
                f"ESS/S ≥ {p.min_ess_fraction:g} (Kish ESS of the importance weights; ε_n = {float(ds.eps.values[k]):.3g})"))
        checks.append(lc.kind_check(
            "finding", "1/n-corrected mean beats m^∞ (all widths)", None, chi_inf - chi_fw, None,
            chi_inf - chi_fw >= Z_CLAIM**2,
            f"χ²_NNGP − χ²_fw ≥ {Z_CLAIM**2:g} (χ² = Σ z² over {p.n_test * p.n_out * len(p.widths)} entries; "
            f"χ²_fw = {chi_fw:.1f}, χ²_NNGP = {chi_inf:.1f})"))
        for key, what in (("proj", "d̄𝒪 (6.104)"), ("proj_m", "E[z|y] − m^∞ (6.88)")):
            checks.append(lc.extrapolation_check(
                f"{what} projected on the theory pattern: n·projection at n → ∞", 1.0, n, ds[key].values * n,
                ds[key + "_se"].values * n, degree=1, max_z=p.max_z, what="1 (the theory's own pattern and size)"))
        checks += lc.power_law_check("E[z|y] − m^∞ projected on (6.88)", n, ds.proj_m.values, ds.proj_m_se.values,
                                     expected=1.0, max_z=p.max_z, max_se=p.max_se_p)
        checks += lc.power_law_check("d̄𝒪 projected on (6.104)", n, ds.proj.values, ds.proj_se.values, expected=1.0,
                                     max_z=p.max_z, max_se=p.max_se_p, correction=True)
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        n = np.asarray(p.widths, float)
        x = 1.0 / n
        fig = Figure(figsize=(8.0, 3.4), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        dm = (ds["mean"].values - ds.theory_nngp.values) * n[:, None, None]
        dse = ds.mean_se.values * n[:, None, None]
        corr = (ds.theory_mean.values - ds.theory_nngp.values) * n[:, None, None]
        for b in range(p.n_test):
            for i in range(p.n_out):
                (ln,) = a1.plot([0, x.max()], [corr[0, b, i]] * 2, "-", lw=0.8)
                a1.errorbar(x, dm[:, b, i], yerr=2 * dse[:, b, i], fmt="o", ms=3, color=ln.get_color(),
                            label=f"test {b}, out {i}")
        a1.axhline(0.0, color="k", lw=0.5)
        a1.set_xlabel("1/n")
        a1.set_ylabel("n·(E[z|y] − m^∞): IS (points), (6.88) (lines)")
        a1.legend(fontsize=6)
        a1.set_title("posterior-mean correction", fontsize=8)
        N = p.n_train + p.n_test
        for a, b in fd.upper_pairs(N):
            th = ds.theory_dO.values[0, a, b] * n[0]
            (ln,) = a2.plot([0, x.max()], [th, th], "-", lw=0.8)
            a2.errorbar(x, ds["dO"].values[:, a, b] * n, yerr=2 * ds.dO_se.values[:, a, b] * n, fmt="o", ms=3,
                        color=ln.get_color())
        a2.set_xlabel("1/n")
        a2.set_ylabel("n·dO: IS (points), (6.104) (lines)")
        a2.set_title("representation learning of O = (1/n)Σσσ", fontsize=8)
        return {"finite_width_bayes.png": fig}
