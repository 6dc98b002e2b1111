"""Bayesian inference at infinite width: NNGP posterior and evidence (book §6.3).

Notation: α̃ ∈ 𝒜 training inputs, β̇ ∈ ℬ test inputs; K = K^{(L)} the output-layer kernel (4.118);
K̃ its 𝒜×𝒜 block and K̃^{α̃1α̃2} the inverse *of that block* (6.35) (not a block of K⁻¹).

    evidence      log p(y_𝒜|ℋ) = −(n_L/2) log|2πK̃| − ½ Σ_i y_iᵀ K̃⁻¹ y_i                       (6.34)
    posterior     m^∞_{i;β̇} = K_{β̇α̃} K̃⁻¹ y_i                                                  (6.64)
                  𝕂_{β̇1β̇2} = K_{β̇1β̇2} − K_{β̇1α̃} K̃⁻¹ K_{α̃β̇2}                               (6.57)

The same covariance 𝕂 holds for every output component, independently of y; components are
independent (6.66)–(6.67). Every solve uses one Cholesky factor K̃ = C Cᵀ (never an inverse):
with A = C⁻¹K_𝒜ℬ and a = C⁻¹y, m = Aᵀa, 𝕂 = K_ℬℬ − AᵀA, log|K̃| = 2 Σ log C_ii.

Observation noise σ_ε² (``noise``), two models:

* ``noise_model="diagonal"`` (default) — the uncertain hypothesis (6.10): y = z + ε with independent
  ε ~ N(0, σ_ε²) per training sample: K̃ → K̃ + σ_ε² I. The posterior is that of the noise-free outputs z
  at the test points (add σ_ε² I to ``cov`` for a noisy test observation).
* ``noise_model="bias_shift"`` — footnote 6 of §6.2: C_b^{(L)} → C_b^{(L)} + σ_ε², i.e. σ_ε² added to
  *every* entry of K (train, cross and test blocks). For one input this equals the diagonal model; for
  more inputs it is a different model (one noise draw shared by all inputs, like a bias). The
  posterior then describes z + ε at the test points.

Two inputs (§6.3.1): in the γ basis (5.15) K̃ = K̃_[0]γ⁰ + K̃_[1]γ¹ + K̃_[2]γ², so K̃_{±±} = K̃_[0] ± K̃_[1] + K̃_[2]
(erratum: the book's (6.46) prints K̃_[0] + K̃_[1] + K̃_[2] for both diagonal entries) and K̃_{+−} = K̃_[0] − K̃_[2];
the evidence is (6.48), and for equal norms (K̃_[1] = 0) it factorizes as (6.45) with maxima at
K̃_[a] = 𝕐_[a]/n_L — the "evidence for criticality": both components O(1) at depth needs χ_∥ = χ_⊥ = 1.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §6.3.
  Rasmussen & Williams, *Gaussian Processes for Machine Learning* (2006), Alg. 2.1 (Cholesky route).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import scipy.linalg as sla

from .. import _validate as v
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..network import MLP, check_net
from .kernel import kernel
from .learning_inputs import (
    SingularKernelError,
    add_to_diagonal,
    check_conventions,
    cholesky,
    kernel_block,
    noise_variance,
    nt_diag_reg_to_variance,
    symmetric_rank_update,
    targets,
)
from .two_input import gamma_components

__all__ = [
    "INADMISSIBLE",
    "NOISE_MODELS",
    "Posterior",
    "bayes_factor",
    "evidence_for_criticality",
    "evidence_grid",
    "evidence_optimal",
    "kernel_gamma_components",
    "log_evidence",
    "log_evidence_from_kernel",
    "nngp_posterior",
    "optimize_evidence",
    "posterior_from_kernels",
    "posterior_parts",
    "relu_evidence_optimal_C_W",
    "target_gamma_components",
    "two_input_log_evidence",
    "two_input_log_evidence_equal_norm",
]

NOISE_MODELS = ("diagonal", "bias_shift")
_LOG_2PI = math.log(2.0 * math.pi)
_MAX_LOG_FLOAT = math.log(np.finfo(np.float64).max)  # ≈ 709.78
# Why a hypothesis gets log evidence −inf (evidence_grid's and evidence_for_criticality's ``inadmissible``):
INADMISSIBLE = {
    0: "admissible",
    1: "training kernel singular at this noise (degenerate Gaussian prior: no density on generic targets)",
    2: "kernel not finite (overflow: the kernel grows exponentially with depth off criticality)",
}


@dataclasses.dataclass(frozen=True)
class Posterior:
    """NNGP posterior at infinite width.

    mean : (N_test, n_out) m^∞ (6.64).
    cov : (N_test, N_test) 𝕂 (6.57), shared by every output component (None if not requested).
    log_evidence : log p(y_𝒜|ℋ) (6.34) of the training targets under the same (noisy) kernel.
    noise : the absolute noise variance σ_ε² that was added (after any convention conversion).
    """

    mean: np.ndarray
    cov: np.ndarray | None
    log_evidence: float
    noise: float = 0.0
    noise_model: str = "diagonal"

    @property
    def var(self) -> np.ndarray:
        """Marginal posterior variances diag 𝕂, shape (N_test,)."""
        if self.cov is None:
            raise DeepEFTInputError(
                "this posterior has no covariance (K_test was None); pass K_test to posterior_from_kernels "
                "to get the variances."
            )
        return np.diagonal(self.cov).copy()


def _check_noise_model(noise_model: str) -> str:
    if noise_model not in NOISE_MODELS:
        raise DeepEFTInputError(
            f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}: 'diagonal' adds σ_ε² to the training "
            "diagonal (6.10); 'bias_shift' shifts C_b^(L) by σ_ε² (footnote 6 of §6.2)."
        )
    return noise_model


def _log_evidence_chol(C: np.ndarray, a: np.ndarray) -> float:
    """(6.34) from the Cholesky factor C of K̃ and a = C⁻¹Y (N, n_out)."""
    N, n_out = a.shape
    logdet = 2.0 * float(np.sum(np.log(np.diagonal(C))))
    return -0.5 * n_out * (N * _LOG_2PI + logdet) - 0.5 * float(np.sum(a * a))


def _noisy_train(K_train: np.ndarray, noise: float, noise_model: str) -> np.ndarray:
    if noise == 0.0:
        return K_train
    if noise_model == "diagonal":
        return add_to_diagonal(K_train, noise)
    return K_train + noise


def log_evidence_from_kernel(K_train, Y, noise: float = 0.0, *, noise_model: str = "diagonal") -> float:
    """log p(y_𝒜|ℋ) (6.34) for a given N×N training kernel K̃ and targets Y (N, n_out), by Cholesky."""
    Kt = kernel_block(K_train, "K_train", (None, None), symmetric=True)
    Y = targets(Y, Kt.shape[0], "Y")
    noise = noise_variance(noise)
    C = cholesky(_noisy_train(Kt, noise, _check_noise_model(noise_model)))
    a = sla.solve_triangular(C, Y, lower=True, check_finite=False)
    return _log_evidence_chol(C, a)


def posterior_from_kernels(
    K_train, K_test_train, K_test, Y, noise: float = 0.0, *, noise_model: str = "diagonal"
) -> Posterior:
    """NNGP posterior (6.57), (6.64) and evidence (6.34) from kernel blocks.

    K_train : (N, N) K̃ on the training inputs; K_test_train : (M, N) K_{β̇α̃}; K_test : (M, M) K_ℬℬ, or
    None to skip the covariance; Y : (N,) or (N, n_out). Works with any kernel (e.g. empirical ones).
    """
    Kt = kernel_block(K_train, "K_train", (None, None), symmetric=True)
    N = Kt.shape[0]
    Kx = kernel_block(K_test_train, "K_test_train", (None, N))
    M = Kx.shape[0]
    Kb = None if K_test is None else kernel_block(K_test, "K_test", (M, M), symmetric=True)
    Y = targets(Y, N, "Y_train")
    noise = noise_variance(noise)
    noise_model = _check_noise_model(noise_model)
    if noise_model == "bias_shift" and noise:
        Kx = Kx + noise
        Kb = None if Kb is None else Kb + noise
    C = cholesky(_noisy_train(Kt, noise, noise_model))
    return posterior_parts(C, Kx, Kb, Y, noise, noise_model)[0]


def posterior_parts(C, K_test_train, K_test, Y, noise: float = 0.0, noise_model: str = "diagonal"):
    """(Posterior, A = C⁻¹K_𝒜ℬ) from the Cholesky factor C of the (noisy) training kernel — the shared core
    of :func:`posterior_from_kernels` and the GD covariance (kernel_learning). Inputs are trusted."""
    a = sla.solve_triangular(C, Y, lower=True, check_finite=False)  # C⁻¹y
    A = sla.solve_triangular(C, K_test_train.T, lower=True, check_finite=False)  # C⁻¹K_𝒜ℬ  (N, M)
    mean = A.T @ a
    cov = None
    if K_test is not None:
        cov = symmetric_rank_update(0.5 * (K_test + K_test.T), A.T, -1.0)  # K_ℬℬ − AᵀA by dsyrk (M²N flops)
    return Posterior(mean, cov, _log_evidence_chol(C, a), noise, noise_model), A


def _nt_noise(noise: float, K_train: np.ndarray, conventions: str) -> float:
    """NT's relative ``diag_reg`` → absolute σ_ε² = diag_reg × mean diag K̃ (NT's default scaling)."""
    return nt_diag_reg_to_variance(noise, K_train) if conventions == "neural_tangents" else noise


def nngp_posterior(
    net: MLP,
    X_train,
    Y_train,
    X_test,
    noise: float = 0.0,
    *,
    noise_model: str = "diagonal",
    conventions: str = "deepeft",
) -> Posterior:
    """NNGP posterior of the output-layer outputs at X_test given (X_train, Y_train): (6.57), (6.64), (6.34).

    ``noise`` is σ_ε² (absolute) under ``conventions="deepeft"``; under ``"neural_tangents"`` it is NT's
    relative ``diag_reg`` (σ_ε² = diag_reg × mean diag K̃), matching ``nt.predict.gp_inference(get="nngp")``.
    Returns :class:`Posterior` with ``.mean`` (N_test, n_out), ``.cov`` (N_test, N_test), ``.log_evidence``.
    """
    net = check_net(net)
    conventions = check_conventions(conventions)
    XA = net.check_inputs(X_train, "X_train")
    XB = net.check_inputs(X_test, "X_test")
    Y = targets(Y_train, XA.shape[0], "Y_train", net.output_dim)
    noise = noise_variance(noise)
    K = kernel(net, np.concatenate([XA, XB]))[-1]
    N = XA.shape[0]
    Kt = K[:N, :N]
    return posterior_from_kernels(Kt, K[N:, :N], K[N:, N:], Y, _nt_noise(noise, Kt, conventions),
                                  noise_model=noise_model)


def log_evidence(
    net: MLP, X, Y, noise: float = 0.0, *, noise_model: str = "diagonal", conventions: str = "deepeft"
) -> float:
    """log p(y_𝒜|ℋ) (6.34) of targets Y (N, n_out) at inputs X under the infinite-width prior of ``net``."""
    net = check_net(net)
    conventions = check_conventions(conventions)
    X = net.check_inputs(X, "X")
    Y = targets(Y, X.shape[0], "Y", net.output_dim)
    noise = noise_variance(noise)
    Kt = kernel(net, X)[-1]
    return log_evidence_from_kernel(Kt, Y, _nt_noise(noise, Kt, conventions), noise_model=noise_model)


# ---------------------------------------------------------------------------------------------
# Two inputs: γ-basis forms (6.41)–(6.48)
# ---------------------------------------------------------------------------------------------


def target_gamma_components(y_plus, y_minus) -> np.ndarray:
    """(𝕐_[0], 𝕐_[1], 𝕐_[2]) (6.44), (6.47) for the targets of two inputs (each of length n_L)."""
    yp = np.atleast_1d(np.asarray(y_plus, dtype=np.float64))
    ym = np.atleast_1d(np.asarray(y_minus, dtype=np.float64))
    if yp.shape != ym.shape or yp.ndim != 1:
        raise DeepEFTInputError(f"y_plus and y_minus must be vectors of equal length n_L, got {yp.shape}, {ym.shape}.")
    Y = np.stack([yp, ym])
    return gamma_components(Y @ Y.T)  # 𝕐_{αβ} = Σ_i y_{i;α} y_{i;β} in the γ basis (5.20)


def two_input_log_evidence(K_gamma, Y_gamma, n_L: int) -> float:
    """log of (6.48): [4π²(4K̃0K̃2 − K̃1²)]^{−n_L/2} exp[−(4K̃0𝕐2 + 4K̃2𝕐0 − 2K̃1𝕐1)/(2(4K̃0K̃2 − K̃1²))].

    Uses K̃_{±±} = K̃_[0] ± K̃_[1] + K̃_[2] (the (6.46) erratum); K_gamma = (K̃_[0], K̃_[1], K̃_[2]).
    """
    K0, K1, K2 = (float(c) for c in np.asarray(K_gamma, dtype=np.float64))
    Y0, Y1, Y2 = (float(c) for c in np.asarray(Y_gamma, dtype=np.float64))
    det4 = 4.0 * K0 * K2 - K1 * K1
    if det4 <= 0:
        raise DeepEFTInputError(f"the 2×2 kernel is not positive definite (4K0K2 − K1² = {det4:.3e}).")
    n_L = v.positive_int(n_L, "n_L")
    return -0.5 * n_L * math.log(4 * math.pi**2 * det4) - (4 * K0 * Y2 + 4 * K2 * Y0 - 2 * K1 * Y1) / (2 * det4)


def two_input_log_evidence_equal_norm(K0: float, K2: float, Y0: float, Y2: float, n_L: int) -> float:
    """log of (6.45): the evidence factorizes into a γ⁰ and a γ² factor, each maximal at K̃_[a] = 𝕐_[a]/n_L."""
    if K0 <= 0 or K2 <= 0:
        raise DeepEFTInputError(f"K̃_[0] and K̃_[2] must be > 0 for a non-degenerate pair, got {K0}, {K2}.")
    n_L = v.positive_int(n_L, "n_L")
    return float(_equal_norm_factor(K0, Y0, n_L) + _equal_norm_factor(K2, Y2, n_L))


def _equal_norm_factor(K_a, Y_a: float, n_L: int):
    """One factor of (6.45) in logs: −(n_L/2) log(4πK̃_[a]) − 𝕐_[a]/(2K̃_[a]) (elementwise; K̃_[a] > 0)."""
    K_a = np.asarray(K_a, dtype=np.float64)
    return -0.5 * n_L * np.log(4 * np.pi * K_a) - Y_a / (2 * K_a)


def kernel_gamma_components(net: MLP, x_plus, x_minus) -> np.ndarray:
    """(K̃_[0], K̃_[1], K̃_[2]) (5.17)–(5.19) of the output-layer kernel for the pair (x₊, x₋)."""
    X = np.stack([np.asarray(x_plus, dtype=np.float64).ravel(), np.asarray(x_minus, dtype=np.float64).ravel()])
    return gamma_components(kernel(check_net(net), X)[-1])


# ---------------------------------------------------------------------------------------------
# Hypotheses: grids, Bayes factors, evidence-optimal hyperparameters (6.29)–(6.31)
# ---------------------------------------------------------------------------------------------


def bayes_factor(log_evidence_1: float, log_evidence_2: float) -> float:
    """p(y|ℋ₁)/p(y|ℋ₂) (6.30); equals the posterior odds for a uniform hypothesis prior (6.31).

    Evidences are usually far beyond float range: when the ratio itself overflows (a finite log ratio > ~709.8)
    this raises and points to the log Bayes factor log_evidence_1 − log_evidence_2, which is always representable."""
    d = float(log_evidence_1) - float(log_evidence_2)
    if math.isnan(d):
        raise DeepEFTInputError(
            f"the log evidences {log_evidence_1!r}, {log_evidence_2!r} give no defined ratio (NaN, or both ±inf)."
        )
    if _MAX_LOG_FLOAT < d < math.inf:  # +inf (ℋ₂ inadmissible, log evidence −inf) is a meaningful ∞
        raise DeepEFTInputError(
            f"the Bayes factor exp({d:.6g}) overflows a float; use the log Bayes factor "
            "log_evidence_1 − log_evidence_2 instead (as evidence_grid's log_bayes_factor does)."
        )
    return math.exp(d)


_GRID_AXES = ("activation", "C_b", "C_W", "depth", "noise")


def _with_depth(net: MLP, depth: int) -> MLP:
    """``net`` with L = depth (hidden width kept); needs layer-independent hyperparameters."""
    width = net.widths[0] if net.widths else 1
    fields = {}
    for name in ("C_b", "C_W", "lambda_b", "lambda_W"):
        vals = set(getattr(net, name))
        if len(vals) != 1:
            raise DeepEFTInputError(
                f"a depth axis needs layer-independent {name}; this net has {getattr(net, name)}. "
                f"Give {name} as a scalar (or as a grid axis)."
            )
        fields[name] = vals.pop()
    return net.replace(widths=[width] * (depth - 1), **fields)


def evidence_grid(net: MLP, X, Y, *, noise_model: str = "diagonal", **axes):
    """log evidence (6.34) over a grid of hypotheses, as an ``xarray.Dataset``.

    ``axes``: any of ``activation`` (names), ``C_b``, ``C_W`` (uniform over layers), ``depth`` (L),
    ``noise`` (σ_ε²), each a sequence; unspecified ones are taken from ``net`` (``noise`` defaults to 0).
    Variables: ``log_evidence``; ``posterior`` = p(ℋ|y) for a uniform prior over the grid (6.29);
    ``log_bayes_factor`` = log p(y|ℋ) − max over the grid (so 0 at the evidence-optimal point).
    ``inadmissible`` (int, same dims) says why a hypothesis has log evidence −inf (codes in attrs and in
    :data:`INADMISSIBLE`): 1 — its training kernel is singular at that noise (e.g. depth 1 with N > n₀ + 1
    inputs and zero noise; a degenerate Gaussian puts no density on generic y); 2 — its kernel overflowed
    (not finite). Only these two conditions become −inf; any other error raises.
    One kernel recursion per (activation, C_b, C_W) serves every depth (K^{(ℓ)} for all ℓ). Off-critical
    hypotheses are scanned on purpose, so the kernel's depth warning (DeepEFTWarning) is silenced here.
    """
    import xarray as xr

    net = check_net(net)
    unknown = sorted(set(axes) - set(_GRID_AXES))
    if unknown:
        raise DeepEFTInputError(f"unknown grid axes {unknown}; choose from {list(_GRID_AXES)}.")
    X = net.check_inputs(X, "X")
    Y = targets(Y, X.shape[0], "Y", net.output_dim)
    noise_model = _check_noise_model(noise_model)
    coords = {}
    for name in _GRID_AXES:
        if name in axes:
            vals = list(np.atleast_1d(np.asarray(axes[name], dtype=object)))
            if not vals:
                raise DeepEFTInputError(f"grid axis {name!r} is empty.")
            coords[name] = vals
    acts = coords.get("activation", [net.activation])
    cbs = coords.get("C_b", [None])
    cws = coords.get("C_W", [None])
    depths = [v.positive_int(d, "depth") for d in coords.get("depth", [net.L])]
    noises = [noise_variance(s) for s in coords.get("noise", [0.0])]
    shape = (len(acts), len(cbs), len(cws), len(depths), len(noises))
    out = np.empty(shape)
    why = np.zeros(shape, dtype=np.int8)
    for (ia, act), (ib, cb), (iw, cw) in itertools.product(enumerate(acts), enumerate(cbs), enumerate(cws)):
        changes = {"activation": act}
        if cb is not None:
            changes["C_b"] = float(cb)
        if cw is not None:
            changes["C_W"] = float(cw)
        base = _with_depth(net.replace(**changes), max(depths)) if "depth" in coords else net.replace(**changes)
        with warnings.catch_warnings():  # a grid scans off-critical hypotheses on purpose: no per-point warning
            warnings.simplefilter("ignore", DeepEFTWarning)
            with np.errstate(over="ignore", invalid="ignore"):  # an overflowing K is recorded (code 2) below
                Ks = kernel(base, X)
        for (idp, d), (ins, s) in itertools.product(enumerate(depths), enumerate(noises)):
            at = (ia, ib, iw, idp, ins)
            if not np.all(np.isfinite(Ks[d - 1])):
                out[at], why[at] = -np.inf, 2
                continue
            try:
                out[at] = log_evidence_from_kernel(Ks[d - 1], Y, s, noise_model=noise_model)
            except SingularKernelError:  # a degenerate prior, y off its support; nothing else is caught
                out[at], why[at] = -np.inf, 1
    dims = ("activation", "C_b", "C_W", "depth", "noise")
    keep = [i for i, d in enumerate(dims) if d in coords]
    out = out.reshape([shape[i] for i in keep]) if keep else out.reshape(())
    why = why.reshape(out.shape)
    kdims = [dims[i] for i in keep]
    kcoords = {d: [a if isinstance(a, str) else (getattr(a, "name", a)) for a in coords[d]] if d == "activation"
               else np.asarray(coords[d], dtype=float if d != "depth" else int) for d in kdims}
    finite = np.isfinite(out)
    best = np.max(out[finite]) if finite.any() else 0.0
    w = np.where(finite, np.exp(out - best), 0.0)
    ds = xr.Dataset(
        {
            "log_evidence": (kdims, out),
            "posterior": (kdims, w / w.sum()),
            "log_bayes_factor": (kdims, out - best),
            "inadmissible": (kdims, why),
        },
        coords=kcoords,
        attrs={"equation": "(6.34), (6.29)-(6.31)", "noise_model": noise_model, "net": repr(net),
               "n_out": int(Y.shape[1]), "N": int(X.shape[0]), "inadmissible_codes": _codes_text()},
    )
    return ds


def _codes_text() -> str:
    return "; ".join(f"{k}: {t}" for k, t in INADMISSIBLE.items())


def evidence_optimal(grid) -> dict:
    """The evidence-optimal hypothesis of an :func:`evidence_grid` result: {axis: value, "log_evidence": …}."""
    le = grid["log_evidence"]
    idx = np.unravel_index(int(np.nanargmax(le.values)), le.shape) if le.ndim else ()
    best = {d: le.coords[d].values[i].item() for d, i in zip(le.dims, idx)}
    best["log_evidence"] = float(le.values[idx]) if le.ndim else float(le.values)
    return best


def optimize_evidence(net: MLP, X, Y, param: str, bounds, noise: float = 0.0, *, noise_model: str = "diagonal",
                      xatol: float = 1e-10) -> dict:
    """Evidence-optimal value of one hyperparameter (``C_b``, ``C_W`` or ``noise``) in ``bounds`` by bounded
    Brent maximization of (6.34); returns {param: value, "log_evidence": value}."""
    from scipy.optimize import minimize_scalar

    net = check_net(net)
    if param not in ("C_b", "C_W", "noise"):
        raise DeepEFTInputError(f"param must be 'C_b', 'C_W' or 'noise', got {param!r}.")
    if np.ndim(bounds) != 1 or np.size(bounds) != 2:
        raise DeepEFTInputError(f"bounds must be a pair (lo, hi) with 0 <= lo < hi, got {bounds!r}.")
    lo, hi = (v.finite_scalar(b, f"bounds[{i}] of {param}", minimum=0.0) for i, b in enumerate(bounds))
    if not lo < hi:
        raise DeepEFTInputError(f"bounds must satisfy 0 <= lo < hi, got {bounds!r}.")
    X = net.check_inputs(X, "X")
    Y = targets(Y, X.shape[0], "Y", net.output_dim)

    def neg(value):
        if param == "noise":
            return -log_evidence(net, X, Y, value, noise_model=noise_model)
        return -log_evidence(net.replace(**{param: value}), X, Y, noise, noise_model=noise_model)

    res = minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    return {param: float(res.x), "log_evidence": float(-res.fun)}


def evidence_for_criticality(net: MLP, x_plus, x_minus, y_plus, y_minus, *, C_W, depth):
    """The "evidence for criticality" analysis (6.41)–(6.48) for one input pair over C_W × depth, as xarray.

    Variables: ``K_gamma`` (…, component) the output kernel's γ components K̃_[0,1,2]; ``log_evidence`` (6.48)
    (with the corrected (6.46)), −inf exactly where ``inadmissible`` ≠ 0 (1: the 2×2 K̃ is not positive
    definite, 2: the kernel overflowed; codes as in :func:`evidence_grid`); for equal norms also
    ``log_factor_0``, ``log_factor_2``, the two factors of (6.45) (each maximal at K̃_[a] = 𝕐_[a]/n_L);
    attrs: 𝕐_[a] (6.44)/(6.47) and ``K_star`` = 𝕐_[a]/n_L.
    ``best_C_W`` (depth) is the grid argmax: at depth it approaches the critical C_W (χ_∥ = χ_⊥ = 1).
    """
    import xarray as xr

    net = check_net(net)
    cws = np.atleast_1d(np.asarray(C_W, dtype=np.float64))
    depths = np.atleast_1d(np.asarray(depth, dtype=int))
    if np.any(cws < 0) or np.any(depths < 1):
        raise DeepEFTInputError("C_W must be >= 0 and depth >= 1.")
    X = np.stack([np.asarray(x_plus, dtype=np.float64).ravel(), np.asarray(x_minus, dtype=np.float64).ravel()])
    X = net.check_inputs(X, "x_plus/x_minus")
    Yg = target_gamma_components(y_plus, y_minus)
    n_L = int(np.atleast_1d(y_plus).size)
    equal = abs(X[0] @ X[0] - X[1] @ X[1]) <= 1e-12 * (X[0] @ X[0])
    Kg = np.empty((cws.size, depths.size, 3))
    for i, cw in enumerate(cws):
        Ks = kernel(_with_depth(net.replace(C_W=float(cw)), int(depths.max())), X)
        Kg[i] = gamma_components(Ks[depths - 1])
    finite = np.all(np.isfinite(Kg), axis=-1)
    pd = finite & (4 * Kg[..., 0] * Kg[..., 2] > Kg[..., 1] ** 2)  # the 2×2 K̃ positive definite
    why = np.where(finite, np.where(pd, 0, 1), 2).astype(np.int8)
    le = np.full(pd.shape, -np.inf)
    for i, j in zip(*np.nonzero(pd)):
        le[i, j] = two_input_log_evidence(Kg[i, j], Yg, n_L)
    data = {"K_gamma": (("C_W", "depth", "component"), Kg), "log_evidence": (("C_W", "depth"), le),
            "inadmissible": (("C_W", "depth"), why)}
    if equal:
        f = []
        for a in (0, 2):
            ok = finite & (Kg[..., a] > 0)
            f.append(np.where(ok, _equal_norm_factor(np.where(ok, Kg[..., a], 1.0), Yg[a], n_L), -np.inf))
        data.update({"log_factor_0": (("C_W", "depth"), f[0]), "log_factor_2": (("C_W", "depth"), f[1])})
    ds = xr.Dataset(data, coords={"C_W": cws, "depth": depths, "component": [0, 1, 2]},
                    attrs={"equation": "(6.41)-(6.48)", "Y_gamma": Yg.tolist(), "K_star": (Yg / n_L).tolist(),
                           "equal_norms": bool(equal), "net": repr(net), "inadmissible_codes": _codes_text()})
    ds["best_C_W"] = ("depth", cws[np.argmax(np.where(np.isfinite(le), le, -np.inf), axis=0)])
    return ds


def relu_evidence_optimal_C_W(y, x, L: int) -> float:
    """ReLU, C_b = 0, one input [derived, digest]: K^{(L)} = C_W (C_W/2)^{L−1} x̄² (x̄² = |x|²/n₀) equals the
    evidence maximizer Σ_i y_i²/n_L of (6.36) at C_W* = 2 (Ȳ/(2x̄²))^{1/L}, Ȳ = Σ y²/n_L; → 2 as L → ∞."""
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    xbar2 = float(x @ x) / x.size
    ybar = float(y @ y) / y.size
    if xbar2 <= 0 or ybar <= 0:
        raise DeepEFTInputError("x and y must be nonzero for a finite evidence-optimal C_W.")
    return 2.0 * (ybar / (2.0 * xbar2)) ** (1.0 / v.positive_int(L, "L"))

