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
from .teacher_student import TeacherStudent, from_user_layout, losses, mse, sample_problem, student_outputs
from .trainer import continue_ensemble

__all__ = [
    "per_sample_factors",
    "drift_and_variance",
    "spacing_coefficients",
    "level_spacing",
    "spacing_rate",
    "convergence_lhs",
    "DBMResult",
    "spacing_drift",
    "dbm_analysis",
    "DRIFTS",
    "boundary_temperature",
    "integrate_level_spacing",
    "spacing_finite_differences",
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


#: the three readings of the drift in (4.15) (docs/sgd.md): at the last SGD step, averaged over a window of
#: continued SGD, or after removing the SGD noise by a few full-batch GD steps from the t_f weights
DRIFTS = ("instantaneous", "time_averaged", "quenched")
#: quenched reading: full-batch GD steps from the t_f weights (issue 17 item 4: 25)
QUENCH_STEPS = 25
#: quenched reading: each point's GD learning rate is min(ε, QUENCH_LR_MAX) — large-ε points (ε = T|B| up to
#: 256 on the paper grid) would make full-batch GD unstable; the linear-scaling study found discretisation
#: effects only for ε > 0.5 (docs/sgd.md)
QUENCH_LR_MAX = 0.5
#: time-averaged reading: checkpoints of continued SGD (the first at t_f) and their spacing in steps
#: (K_S decorrelates within ~50 SGD steps in the ordered corner, docs/sgd.md)
AVERAGE_CHECKPOINTS = 20
AVERAGE_SPACING = 50


@dataclasses.dataclass(frozen=True)
class DBMResult:
    """Level-spacing analysis of an :class:`~deepeft.sgd.trainer.EnsembleRun` ((M, P) unless noted).

    K_S, V_S, D_S (B.7)–(B.9) in the chosen ``drift`` reading; rhs = −K_S/V_S; lhs (P,) (4.15);
    converged = lhs ≤ rhs; fraction (P,) of converged members; S (R, M, P) (4.5) and rate λ̄ (R, M, P)
    per SGD step (4.7) of the run itself.

    time_averaged: K_S_se, V_S_se, D_S_se — standard errors of the window means (checkpoint
    scatter/√n, the checkpoints treated as independent). quenched: quench_lr (P,) the GD learning rate,
    S_quench (q + 1, M, P) the level spacing along the GD quench (step 0 = t_f) and K_S_trajectory
    (M, P) = (S_q − S_h)/((q − h)ε_q), h = ⌊q/2⌋, the spacing drift measured on the second half of that
    noise-free trajectory (for q = 1 the one step; basis "X": equal to K_S to first order in ε_q, tested).
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
    drift: str = "instantaneous"
    K_S_se: np.ndarray | None = None
    V_S_se: np.ndarray | None = None
    D_S_se: np.ndarray | None = None
    quench_lr: np.ndarray | None = None
    S_quench: np.ndarray | None = None
    K_S_trajectory: np.ndarray | None = None


#: members per compiled call of the coefficient kernel (one vmapped batch; memory ∝ |D|·P·n_ℓ per member)
MEMBER_CHUNK = 8


def spacing_drift(run, final_params=None, *, basis: str = "X", member_chunk: int = MEMBER_CHUNK, dtype=None):
    """(K_S, V_S, D_S) (B.7)–(B.9), each (M, P), of every model of ``run`` at the weights ``final_params``
    (user layout as :attr:`EnsembleRun.final_params`; default the run's own), over its training set.

    The teachers and data are regenerated from the run's seed (identical by construction). dtype: default the
    run's; float64 evaluates the coefficients of a float32 run in double precision.
    """
    if basis not in BASES:
        raise DeepEFTInputError(f"basis must be one of {BASES}, got {basis!r}.{suggest(str(basis), BASES)}")
    setup: TeacherStudent = run.setup
    final_params = run.final_params if final_params is None else final_params
    kern = _analysis_kernel(setup, basis)
    M = run.members
    c = min(v.positive_int(member_chunk, "member_chunk"), run.members)
    dtype = jnp.dtype(run.dtype if dtype is None else dtype)
    out = {k: np.empty((M, run.learning_rate.size)) for k in ("K_S", "V_S", "D_S")}
    with jax.enable_x64(dtype == jnp.float64):
        for lo in range(0, M, c):
            ids = np.arange(lo, lo + c)
            hi = min(M, lo + c)
            rows = np.minimum(ids, hi - 1)  # pad the last chunk with copies (results dropped)
            prob = sample_problem(setup, ids, run.seed, dtype)
            params = from_user_layout(jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[rows], dtype), final_params))
            K_S, V_S, D_S = kern(tuple(params), prob.frozen, prob.a_train, prob.y_train)
            for k, val in zip(("K_S", "V_S", "D_S"), (K_S, V_S, D_S)):
                out[k][lo:hi] = np.asarray(val, np.float64)[: hi - lo]
    return out["K_S"], out["V_S"], out["D_S"]


#: relative step of the central differences in :func:`spacing_finite_differences`: η_α = FD_REL_STEP·‖W‖/‖G_α‖
#: (truncation error O(η²): ≈ 1e-8 relative on the paper setup, rounding ≈ 1e-12 in float64)
FD_REL_STEP = 1e-4


@functools.lru_cache(maxsize=8)
def _per_sample_weight_gradients(setup: TeacherStudent):
    """G_α = ∂ℓ(x_α)/∂W^{(ℓ)} of one member by autodiff of the loss (2.6) on the one-sample set {x_α} with respect to
    the spectral layer's weights themselves: (N, n_{ℓ−1}, P, n_ℓ) in the internal layout."""
    j = setup.tracked_layer - setup.first_trainable

    def one_sample(Wj, params, frozen, a1, y1):
        ps = list(params)
        ps[j] = {**ps[j], "W": Wj}
        return losses(setup, tuple(ps), frozen, a1[None], y1[None]).sum()  # points are independent

    grad = jax.grad(one_sample)
    return jax.jit(lambda params, frozen, a, y: jax.vmap(grad, in_axes=(None, None, None, 0, 0))(
        params[j]["W"], params, frozen, a, y))


def spacing_finite_differences(run, points=None, *, rel_step: float = FD_REL_STEP):
    """(K_S, D_S) of the level spacing at the run's final weights by finite differences of the spectrum — an
    implementation path independent of :func:`spacing_drift` (no eigenvectors, no basis, no contractions).

    Per model and training sample α: the per-sample gradient G_α = ∂ℓ(x_α)/∂W by autodiff of the loss (2.6) with
    respect to W^{(ℓ)} itself (not the backpropagated error δ of :func:`per_sample_factors`), the eigenvalues of
    (W ∓ η_α G_α)(W ∓ η_α G_α)ᵀ by LAPACK, and the rate of each extreme eigenvalue along the descent step
    r_i,α = [x_i(W − η_α G_α) − x_i(W + η_α G_α)]/(2η_α) (central difference, η_α = rel_step·‖W‖/‖G_α‖). Then the
    drift of S = (x_N − x_1)/(N − 1) (4.5) is the mean rate of S, K_S = E_α[r_N,α − r_1,α]/(N − 1) (the rate of S
    under full-batch gradient flow), and D_S = (Var_α r_1 + Var_α r_N)/(2(N − 1)²): the diffusion of S when x_1 and
    x_N move independently, as (B.9) assumes. Equal to (4.4), (B.9) in the basis "X" up to O(η²) (tested).

    points: indices of the hyperparameter points (default all). Returns two (M, len(points)) float64 arrays.
    Cost: 2|D| eigendecompositions per model and point (≈ 0.1 s for |D| = 4000, n_ℓ = 16).
    """
    setup: TeacherStudent = run.setup
    rel_step = v.finite_scalar(rel_step, "rel_step", strict=True)
    if not 0.0 < rel_step < 0.1:
        raise DeepEFTInputError(f"rel_step is a relative finite-difference step: 0 < rel_step < 0.1, got {rel_step}.")
    P = run.learning_rate.size
    pts = np.arange(P) if points is None else np.asarray(points, dtype=np.int64).ravel()
    if pts.size == 0 or np.any((pts < 0) | (pts >= P)):
        raise DeepEFTInputError(f"points must be indices in 0..{P - 1}, got {pts.tolist()}.")
    grads = _per_sample_weight_gradients(setup)
    j = setup.tracked_layer - setup.first_trainable
    K_S = np.empty((run.members, pts.size))
    D_S = np.empty((run.members, pts.size))
    with jax.enable_x64(True):
        for m in range(run.members):
            prob = sample_problem(setup, [m], run.seed, jnp.float64)
            params = from_user_layout(jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[m], jnp.float64),
                                                   run.final_params))
            frozen = jax.tree.map(lambda x: x[0], prob.frozen)
            G = np.asarray(grads(params, frozen, prob.a_train[0], prob.y_train[0]))  # (N, n_in, P, n_out)
            W = np.asarray(params[j]["W"])
            for c, p in enumerate(pts):
                Wp, Gp = W[:, p, :].T, G[:, :, p, :].transpose(0, 2, 1)  # (n_out, n_in), (N, n_out, n_in)
                gn = np.linalg.norm(Gp, axis=(1, 2))
                eta = rel_step * np.linalg.norm(Wp) / np.where(gn > 0, gn, 1.0)
                down = Wp[None] - eta[:, None, None] * Gp
                up = Wp[None] + eta[:, None, None] * Gp
                x_dn = np.linalg.eigvalsh(down @ down.transpose(0, 2, 1))[:, [0, -1]]
                x_up = np.linalg.eigvalsh(up @ up.transpose(0, 2, 1))[:, [0, -1]]
                r = np.where(gn[:, None] > 0, (x_dn - x_up) / (2 * eta[:, None]), 0.0)  # (N, 2): x_1, x_N
                n = Wp.shape[0]
                K_S[m, c] = np.mean(r[:, 1] - r[:, 0]) / (n - 1)
                D_S[m, c] = (r[:, 0].var() + r[:, 1].var()) / (2 * (n - 1) ** 2)
    return K_S, D_S


def dbm_analysis(run, *, basis: str = "X", drift: str = "instantaneous", member_chunk: int = MEMBER_CHUNK,
                 quench_steps: int = QUENCH_STEPS, quench_lr=None, checkpoints: int = AVERAGE_CHECKPOINTS,
                 spacing: int = AVERAGE_SPACING, dtype=None) -> DBMResult:
    """K_S, V_S, D_S per model at the end of training (over its training set) and the test (4.15).

    drift — which K_S, V_S, D_S enter (4.15):

    * ``"instantaneous"``: at the t_f weights (appendix B as written; dominated by the SGD noise of
      the last steps, docs/sgd.md);
    * ``"time_averaged"``: mean over ``checkpoints`` weights of continued SGD (the run's own
      minibatch stream, i.e. longer training), ``spacing`` steps apart, the first at t_f;
    * ``"quenched"``: after ``quench_steps`` full-batch GD steps from the t_f weights, learning rate
      ``quench_lr`` (default min(ε, QUENCH_LR_MAX) per point): the noise-free drift of the spacing.

    The left side of (4.15) always uses the run's T and σ_W. dtype: precision of the coefficients, the
    continued SGD and the quench (default the run's; the continued SGD of ``time_averaged`` always keeps the
    run's precision, so that it is the run's own longer training). Near a minimum the mean drift is a
    small difference of large per-sample terms: float64 is advisable for the quenched reading.
    """
    if drift not in DRIFTS:
        raise DeepEFTInputError(f"drift must be one of {DRIFTS}, got {drift!r}.{suggest(str(drift), DRIFTS)}")
    if basis not in BASES:
        raise DeepEFTInputError(f"basis must be one of {BASES}, got {basis!r}.{suggest(str(basis), BASES)}")
    if run.method == "gd" and drift != "instantaneous":
        raise DeepEFTInputError(f"drift={drift!r} reads an SGD/Langevin run; a full-batch GD run has no noise to "
                                "remove or average: use drift='instantaneous'.")
    extra: dict = {}
    if drift == "instantaneous":
        K_S, V_S, D_S = spacing_drift(run, basis=basis, member_chunk=member_chunk, dtype=dtype)
    elif drift == "time_averaged":
        n = v.positive_int(checkpoints, "checkpoints")
        gap = v.positive_int(spacing, "spacing")
        samples, cur = [], run
        for k in range(n):
            if k:
                cur = continue_ensemble(cur, gap)
            samples.append(spacing_drift(cur, basis=basis, member_chunk=member_chunk, dtype=dtype))
        arr = np.asarray(samples)  # (n, 3, M, P)
        K_S, V_S, D_S = arr.mean(0)
        se = arr.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(arr.shape[1:], np.nan)
        extra = {"K_S_se": se[0], "V_S_se": se[1], "D_S_se": se[2]}
    else:
        q = v.positive_int(quench_steps, "quench_steps")
        if quench_lr is None:
            lr = np.minimum(run.learning_rate, QUENCH_LR_MAX)
        else:
            lr = np.broadcast_to(np.asarray(quench_lr, np.float64), run.learning_rate.shape).copy()
            if np.any(~np.isfinite(lr)) or np.any(lr <= 0):
                raise DeepEFTInputError("quench_lr must be finite and > 0 (a scalar or one value per point).")
        qr = continue_ensemble(run, q, method="gd", learning_rate=lr, times=run.steps + np.arange(q + 1), dtype=dtype)
        K_S, V_S, D_S = spacing_drift(qr, basis=basis, member_chunk=member_chunk)
        Sq = level_spacing(qr.eigenvalues)
        h = q // 2  # the second half of the quench: the fast thermal modes have relaxed
        extra = {"quench_lr": lr, "S_quench": Sq, "K_S_trajectory": (Sq[-1] - Sq[h]) / ((q - h) * lr[None, :])}
    with np.errstate(divide="ignore", invalid="ignore"):
        rhs = -K_S / V_S
    lhs = convergence_lhs(run.setup, run.temperature, run.sigma_W)
    converged = lhs[None, :] <= rhs
    S = level_spacing(run.eigenvalues)
    rate = spacing_rate(S, S[0:1], run.times[:, None, None])
    return DBMResult(K_S, V_S, D_S, rhs, lhs, converged, converged.mean(0), S, rate, basis, drift, **extra)


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
