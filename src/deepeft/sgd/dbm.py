"""Dyson Brownian motion of the eigenvalues of X = W Wᵀ (Park, Lucini & Aarts 2025, §4, appendix B).

Per-sample gradient of a dense layer: Δ_α = ∂ℓ(x_α)/∂W = δ_α a_αᵀ (δ_α the backpropagated error at
z^{(ℓ)}, a_α the layer's input), so Δ^X_α = W Δ_αᵀ + Δ_α Wᵀ = u_α δ_αᵀ + δ_α u_αᵀ with u_α = W a_α (4.4).
Its mean and variance over the training set, in an orthonormal basis U (ũ = Uᵀu, δ̃ = Uᵀδ):

    K_ij = −E[ũ_i δ̃_j + δ̃_i ũ_j],   V_ij = E[(ũ_i δ̃_j + δ̃_i ũ_j)²] − K_ij²           (4.4)

computed from five |D|-contractions (no per-sample n×n matrices). Basis "X" (default): the
eigenvectors of X, ordered by eigenvalue x_1 ≤ … ≤ x_N — then K_i = K_ii is the drift of x_i in
(4.3) (first-order perturbation theory). Basis "K": the eigenvectors of K as appendix B
describes, each labelled by the eigenvalue of X it carries (Rayleigh quotient vᵀXv), so that
index N still means "largest x". V is the variance of the rotated per-sample matrices (rotating
a table of variances as a matrix would be meaningless).

Level-spacing theory: S = (x_N − x_1)/(N − 1) (4.5), λ̄(t) = log(S(t)/S(0))/t (4.7),
K_S = (K_N − K_1)/(N − 1), D_S = (V_11 + V_NN)/(2(N − 1)²) (B.9),
V_S = 2V_{N1}/(N − 1)² + (1/(N − 1)) Σ_{k=1}^{N−2} (V_{N,N−k} + V_{1,k+1})/k (B.7);
convergence when ((N − 1)/(4√r)) T/σ_W² ≤ −K_S/V_S (4.15), r = n_ℓ/n_{ℓ−1}.

Time units: K, V are rates per unit of the continuous time of (2.30), in which one SGD step lasts ε.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError, suggest
from .observables import gram
from .teacher_student import TeacherStudent, mse, sample_problem, student_outputs

__all__ = [
    "per_sample_factors",
    "drift_and_variance",
    "spacing_coefficients",
    "level_spacing",
    "spacing_rate",
    "convergence_lhs",
    "DBMResult",
    "dbm_analysis",
    "boundary_temperature",
    "integrate_level_spacing",
]

BASES = ("X", "K")


def per_sample_factors(setup: TeacherStudent, params, frozen, a, y):
    """u_α = W a_α and δ_α = ∂ℓ_α/∂z^{(ℓ)}_α at the spectral layer, each (N, P, n_ℓ) (one member)."""
    n = setup.n[setup.tracked_layer]
    P = next(p for p in params if p is not None)["W"].shape[1]
    e0 = jnp.zeros((a.shape[0], P, n), a.dtype)

    def total(e):  # Σ_p Σ_α ℓ_α(p): its gradient in e_α is δ_α
        _, out, u = student_outputs(setup, params, frozen, a, e, capture=True)
        return mse(out, y).sum() * a.shape[0], u

    delta, u = jax.grad(total, has_aux=True)(e0)
    return u, delta


def drift_and_variance(u, delta, X, basis: str = "X"):
    """K_ij, V_ij (4.4) of one model in the chosen basis, and that basis' X-eigenvalue labels.

    u, δ: (N, n); X: (n, n). Returns (K (n, n), V (n, n), x (n,)) with indices ordered by x ascending.
    """
    N = u.shape[0]
    M1 = u.T @ delta / N
    if basis == "X":
        x, U = jnp.linalg.eigh(X)
    else:
        _, U = jnp.linalg.eigh(-(M1 + M1.T))
        x = jnp.einsum("ki,kl,li->i", U, X, U)
        order = jnp.argsort(x)
        U, x = U[:, order], x[order]
    ut, dt = u @ U, delta @ U
    K = -(ut.T @ dt + dt.T @ ut) / N
    E2 = ((ut**2).T @ dt**2 + (dt**2).T @ ut**2 + 2 * (ut * dt).T @ (ut * dt)) / N
    return K, jnp.maximum(E2 - K**2, 0.0), x


def spacing_coefficients(K, V):
    """(K_S, V_S, D_S) of the level-spacing SDE (4.8) from K, V in an x-ordered basis, (B.7), (B.9)."""
    N = K.shape[-1]
    if N < 2:
        raise DeepEFTInputError("the level spacing needs at least two eigenvalues (n_ℓ ≥ 2).")
    Kd = jnp.diagonal(K, axis1=-2, axis2=-1)
    K_S = (Kd[..., -1] - Kd[..., 0]) / (N - 1)
    k = jnp.arange(1, N - 1)
    coulomb = jnp.sum((V[..., N - 1, N - 1 - k] + V[..., 0, k]) / k, axis=-1) if N > 2 else 0.0
    V_S = 2 * V[..., N - 1, 0] / (N - 1) ** 2 + coulomb / (N - 1)
    D_S = (V[..., 0, 0] + V[..., N - 1, N - 1]) / (2 * (N - 1) ** 2)
    return K_S, V_S, D_S


def level_spacing(eigenvalues):
    """Average level spacing S = (x_N − x_1)/(N − 1) (4.5) along the last axis (sorted or not)."""
    x = np.asarray(eigenvalues, dtype=np.float64)
    return (x.max(-1) - x.min(-1)) / (x.shape[-1] - 1)


def spacing_rate(S, S0, t):
    """Time-averaged rate λ̄(t) = log(S(t)/S(0))/t (4.7) (t in the caller's unit, e.g. SGD steps)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, np.log(np.asarray(S) / np.asarray(S0)) / np.where(t > 0, t, 1.0), np.nan)


def convergence_lhs(setup: TeacherStudent, temperature, sigma_W):
    """((n_ℓ − 1)/(4√r)) T/σ_W², r = n_ℓ/n_{ℓ−1}: the left side of (4.15)."""
    n_out, n_in = setup.spectral_shape
    r = n_out / n_in
    T, s = np.asarray(temperature, np.float64), np.asarray(sigma_W, np.float64)
    return (n_out - 1) / (4 * math.sqrt(r)) * T / s**2


@functools.lru_cache(maxsize=8)
def _analysis_kernel(setup: TeacherStudent, basis: str):
    def one_member(params, frozen, a, y):
        u, delta = per_sample_factors(setup, params, frozen, a, y)
        Wt = params[setup.tracked_layer - setup.first_trainable]["W"]
        X = gram(Wt)
        K, V, x = jax.vmap(lambda uu, dd, XX: drift_and_variance(uu, dd, XX, basis), in_axes=(1, 1, 0))(u, delta, X)
        return spacing_coefficients(K, V)

    return jax.jit(jax.vmap(one_member))


@dataclasses.dataclass(frozen=True)
class DBMResult:
    """Level-spacing analysis of an :class:`~deepeft.sgd.trainer.EnsembleRun` ((M, P) unless noted).

    K_S, V_S, D_S (B.7)–(B.9) at t_f; rhs = −K_S/V_S; lhs (P,) (4.15); converged = lhs ≤ rhs;
    fraction (P,) of converged members; S (R, M, P) (4.5); rate λ̄ (R, M, P) per SGD step (4.7).
    """

    K_S: np.ndarray
    V_S: np.ndarray
    D_S: np.ndarray
    rhs: np.ndarray
    lhs: np.ndarray
    converged: np.ndarray
    fraction: np.ndarray
    S: np.ndarray
    rate: np.ndarray
    basis: str


def dbm_analysis(run, *, basis: str = "X", member_chunk: int = 1) -> DBMResult:
    """K_S, V_S, D_S per model at the end of training (over its training set) and the test (4.15).

    The teachers and data are regenerated from the run's seed (identical by construction).
    """
    if basis not in BASES:
        raise DeepEFTInputError(f"basis must be one of {BASES}, got {basis!r}.{suggest(str(basis), BASES)}")
    setup: TeacherStudent = run.setup
    kern = _analysis_kernel(setup, basis)
    M = run.members
    c = v.positive_int(member_chunk, "member_chunk")
    dtype = jnp.dtype(run.dtype)
    out = {k: np.empty((M, run.learning_rate.size)) for k in ("K_S", "V_S", "D_S")}
    with jax.enable_x64(dtype == jnp.float64):
        for lo in range(0, M, c):
            ids = np.arange(lo, lo + c)
            hi = min(M, lo + c)
            prob = sample_problem(setup, ids, run.seed, dtype)
            params: list[dict[str, jax.Array | None] | None] = []
            for layer in run.final_params:
                if layer is None:
                    params.append(None)
                    continue
                W = np.zeros((c, *layer["W"].shape[1:]), layer["W"].dtype)
                W[: hi - lo] = layer["W"][lo:hi]
                b: jax.Array | None = None
                if layer["b"] is not None:
                    b_host = np.zeros((c, *layer["b"].shape[1:]), layer["b"].dtype)
                    b_host[: hi - lo] = layer["b"][lo:hi]
                    b = jnp.asarray(b_host, dtype)
                params.append({"W": jnp.asarray(np.transpose(W, (0, 3, 1, 2)), dtype), "b": b})
            K_S, V_S, D_S = kern(tuple(params), prob.frozen, prob.a_train, prob.y_train)
            for k, val in zip(("K_S", "V_S", "D_S"), (K_S, V_S, D_S)):
                out[k][lo:hi] = np.asarray(val, np.float64)[: hi - lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        rhs = -out["K_S"] / out["V_S"]
    lhs = convergence_lhs(setup, run.temperature, run.sigma_W)
    converged = lhs[None, :] <= rhs
    S = level_spacing(run.eigenvalues)
    rate = spacing_rate(S, S[0:1], run.times[:, None, None])
    return DBMResult(out["K_S"], out["V_S"], out["D_S"], rhs, lhs, converged, converged.mean(0), S, rate, basis)


def boundary_temperature(fraction, temperatures, level: float, *, relative: bool = False):
    """Per 1/σ_W column of a (nT, nσ) converged-fraction grid: the T where the fraction drops below
    ``level`` (log-linear interpolation between grid points). NaN: below already at the lowest T;
    inf: never below within the grid. Levels 0.68, 0.95, 0.997 give the Fig. 8 boundaries.

    relative: the threshold of a column is ``level`` × the column's largest fraction (its low-T
    plateau), e.g. level ½: where the converged fraction falls to half its plateau. In our runs the
    plateau is ≈ ½, not ≈ 1 as in the paper's Fig. 8 (docs/sgd.md), so this is the boundary that exists.
    """
    f = np.asarray(fraction, np.float64)
    T = np.log(np.asarray(temperatures, np.float64))
    if f.ndim != 2 or f.shape[0] != T.size:
        raise DeepEFTInputError(f"fraction must have shape (nT, nσ) with nT = {T.size}, got {f.shape}.")
    level = v.finite_scalar(level, "level", strict=True)
    if not 0.0 < level <= 1.0:
        raise DeepEFTInputError(f"level is a fraction of models (or of the plateau): 0 < level ≤ 1, got {level}.")
    out = np.empty(f.shape[1])
    thresholds = level * np.nanmax(f, axis=0) if relative else np.full(f.shape[1], level)
    for j in range(f.shape[1]):
        col, thr = f[:, j], thresholds[j]
        if not thr > 0 or col[0] < thr:
            out[j] = np.nan
            continue
        below = np.nonzero(col < thr)[0]
        if below.size == 0:
            out[j] = np.inf
            continue
        i = below[0]
        w = (col[i - 1] - thr) / (col[i - 1] - col[i])
        out[j] = np.exp(T[i - 1] + w * (T[i] - T[i - 1]))
    return out


def integrate_level_spacing(S0, K_S, V_S, D_S, temperature, t_end, *, n_steps: int = 10_000,
                            n_paths: int = 1, seed: int = 0):
    """Euler–Maruyama paths of Ṡ = K_S + V_S T/S + √(2TD_S) η (4.8) with constant coefficients.

    Continuous time of (2.30): t_end = (SGD steps) × ε. S is reflected at 0. Returns (times (n_steps+1,),
    S (n_steps+1, n_paths)) in float64.
    """
    T = v.finite_scalar(temperature, "temperature")
    t_end = v.finite_scalar(t_end, "t_end", strict=True)
    n_steps = v.positive_int(n_steps, "n_steps")
    rng = np.random.default_rng(seed)
    dt = t_end / n_steps
    S = np.full(v.positive_int(n_paths, "n_paths"), float(S0))
    path = np.empty((n_steps + 1, S.size))
    path[0] = S
    noise = math.sqrt(2 * T * max(float(D_S), 0.0) * dt)
    for i in range(n_steps):
        S = np.abs(S + (K_S + V_S * T / np.maximum(S, 1e-300)) * dt + noise * rng.standard_normal(S.size))
        path[i + 1] = S
    return np.linspace(0.0, t_end, n_steps + 1), path
