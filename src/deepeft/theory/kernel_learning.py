"""Kernel learning at infinite width: frozen-NTK gradient descent with MSE (book Ch. 10).

At infinite width the NTK is frozen, Θ = Θ^{(L)} (9.5), and with the MSE loss (10.5)
L_𝒜 = ½ Σ_i Σ_α̃ (z_{i;α̃} − y_{i;α̃})² each GD step (10.3) is z ← z − η Θ_{δα̃} ε_α̃, ε = z − y, exactly.
Hence, for every realization (initial outputs z(0) ~ N(0, K), K = K^{(L)}) [derived from (10.33)]:

    ε_𝒜(t) = E_t ε_𝒜(0),          E_t = (I − ηΘ̃)^t   (t steps)   or  e^{−Θ̃ t}  (gradient flow, time t = η·steps)
    z_ℬ(t) = z_ℬ(0) − M_t (z_𝒜(0) − y),   M_t = Θ_ℬ𝒜 Θ̃⁻¹ (I − E_t)

so the ensemble of trained networks is Gaussian with

    mean  m_t = M_t y                                                    → (10.40) as t → ∞
    cov   K_ℬℬ − M_t K_𝒜ℬ − K_ℬ𝒜 M_tᵀ + M_t K̃ M_tᵀ                      → (10.41) as t → ∞

(the covariance needs both K and Θ). t → ∞ gives the algorithm-independent kernel prediction
(10.39)–(10.41) = one Newton step (10.24)–(10.31). Θ → K (last-layer-only training (10.44)–(10.49),
:func:`last_layer_only`) recovers the NNGP posterior (6.57), (6.64).

Numerics (no loop over t, no explicit inverse): one eigendecomposition Θ̃ = U diag(λ) Uᵀ;
Θ̃⁻¹(I − E_t) = U diag(f_t(λ)) Uᵀ with f_t(λ) = −expm1(t log1p(−ηλ))/λ (steps) or −expm1(−λt)/λ (flow),
which stays finite (→ ηt, t) as λ → 0, so finite-t predictions never invert Θ̃. With the Cholesky factor
K̃ = C Cᵀ, A = C⁻¹K_𝒜ℬ and W = UᵀC the covariance is a sum of squares:

    cov_t = 𝕂 + X_t X_tᵀ,   𝕂 = K_ℬℬ − AᵀA (the NNGP posterior covariance (6.57)),   X_t = Aᵀ − (Θ_ℬ𝒜U) diag(f_t) W

— GD's ensemble covariance is the Bayesian one plus a PSD excess from the initialization.
Stability: GD with constant η converges iff η < 2/λ_max(Θ̃); larger η raises an error naming 2/λ_max.

Observation noise σ_ε² (``noise``, conventions="deepeft"): each training output carries its own trainable
noise variable, z_α̃ = f(x_α̃) + σ_ε u_α̃, u ~ N(0, 1), trained with λ = 1: K̃ → K̃ + σ_ε² I *and*
Θ̃ → Θ̃ + σ_ε² I. This keeps last-layer-only GD ≡ the Bayesian posterior with noise (6.10), and
t → ∞ is kernel ridge regression (10.124) with ridge σ_ε².

Conventions "neural_tangents" (``nt.predict.gradient_descent_mse_ensemble``, ``get="ntk"``): NT's loss is
normalised by y_train.size = N·n_out and their time t is in units of the learning rate, so their flow
at time t equals ours at τ = learning_rate·t/(N·n_out) (``eta`` is their learning_rate, default 1, and the
dynamics is always continuous); ``noise`` is their relative ``diag_reg``: Θ̃ → Θ̃ + diag_reg·(tr Θ̃/N) I
while K̃ stays unregularized in the covariance (as in their code).

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §10.2, §10.4.
  Jacot, Gabriel, Hongler, *Neural Tangent Kernel* (arXiv:1806.07572).
  Lee et al., *Wide Neural Networks of Any Depth Evolve as Linear Models* (arXiv:1902.06720), §2.3.
  Novak et al., *Neural Tangents* (arXiv:1912.02803): predict.gradient_descent_mse_ensemble.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg as sla

from ..errors import DeepEFTInputError
from ..network import MLP, check_net
from .bayes import Posterior, posterior_parts
from .kernel import kernel_and_ntk
from .learning_inputs import (
    PSD_RTOL,
    SINGULAR_RTOL,
    add_to_diagonal,
    check_conventions,
    cholesky,
    kernel_block,
    noise_variance,
    nt_diag_reg_to_variance,
    nt_time_to_tau,
    singular_message,
    symmetric_rank_update,
    targets,
)

__all__ = [
    "GDPrediction",
    "gd_from_kernels",
    "gd_prediction",
    "kernel_regression",
    "last_layer_only",
    "max_stable_eta",
    "newton_step",
    "ridge_regression",
]

_CHUNK_BYTES = 1 << 28  # time-batched GEMM blocks of ≤ 256 MB
_DELTA_FRACTION = 0.9  # update X_t from the latest time's X when fewer than this fraction of modes differ


@dataclasses.dataclass(frozen=True)
class GDPrediction:
    """Ensemble of infinite-width networks trained by GD/gradient flow on MSE, at times t.

    mean : (N_test, n_out), or (T, N_test, n_out) when t is an array (leading time axis, t's shape).
    cov : (N_test, N_test) or (T, N_test, N_test), shared by all output components (None if skipped).
    train_mean : mean outputs on the training inputs, same leading axes as ``mean``.
    train_loss : expected MSE training loss (10.5) over the ensemble, E[½ Σ (z − y)²], shape of t.
    t : the times as given; tau : the deepeft time actually used (steps if ``eta`` is given and
        ``continuous`` is False, else gradient-flow time in units where dz/dτ = −Θ̃ ε).
    max_stable_eta : 2/λ_max(Θ̃): GD with η ≥ this diverges.
    posterior : the NNGP posterior (6.57), (6.64), (6.34) from the same K blocks and noise (a by-product of
        the covariance: cov_t = posterior.cov + X_t X_tᵀ); None when K̃ is singular or cov was skipped.
    """

    mean: np.ndarray
    cov: np.ndarray | None
    train_mean: np.ndarray
    train_loss: np.ndarray
    t: np.ndarray
    tau: np.ndarray
    eta: float | None
    continuous: bool
    max_stable_eta: float
    posterior: Posterior | None = None


def max_stable_eta(Theta_train) -> float:
    """2/λ_max(Θ̃): the largest constant learning rate for which GD on MSE converges (strictly below it)."""
    T = kernel_block(Theta_train, "Theta_train", (None, None), symmetric=True)
    lam = float(np.linalg.eigvalsh(T)[-1])
    if lam <= 0:
        raise DeepEFTInputError("Theta_train has no positive eigenvalue: nothing is learned (all λ_b, λ_W zero?).")
    return 2.0 / lam


def _times(t, eta, continuous: bool):
    arr = np.asarray(t, dtype=np.float64) if not isinstance(t, str) else None
    if arr is None or arr.dtype.kind not in "fiu":
        raise DeepEFTInputError(f"t must be a number or an array of numbers (inf allowed), got {t!r}.")
    if np.any(np.isnan(arr)) or np.any(arr < 0) or np.any(np.isneginf(arr)):
        raise DeepEFTInputError(f"t must be >= 0 (training time or steps; inf for the end of training), got {t!r}.")
    if not continuous:
        fin = arr[np.isfinite(arr)]
        if np.any(fin != np.round(fin)):
            raise DeepEFTInputError(
                f"with eta given, t counts GD steps and must be integers (or inf), got {t!r}; "
                "for continuous time (gradient flow) pass eta=None."
            )
    return arr


def _f(lam: np.ndarray, tau: np.ndarray, eta: float | None) -> np.ndarray:
    """f_t(λ) = [1 − (1 − ηλ)^t]/λ (steps) or [1 − e^{−λτ}]/λ (flow), shape (T, N); finite as λ → 0.

    The eigenvalues of Θ̃⁻¹(I − E_t): the geometric sum η Σ_{s<t} (1 − ηλ)^s of the step-by-step updates
    (10.21), (10.33) with κ = I [derived, module docstring]; f_∞ = 1/λ gives (10.39)–(10.40)."""
    lam = lam[None, :]
    tt = tau.reshape(-1, 1)
    inf = np.isinf(tt)
    tfin = np.where(inf, 0.0, tt)
    safe = np.where(lam > 0, lam, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if eta is None:
            one_minus_d = -np.expm1(-lam * tfin)
            small = tfin
        else:
            base = 1.0 - eta * lam
            pos = base > 0
            lg = np.log1p(-eta * np.where(pos, lam, 0.0))
            d_neg = np.where(np.mod(tfin, 2) == 0, 1.0, -1.0) * np.abs(base) ** tfin
            one_minus_d = np.where(pos, -np.expm1(tfin * lg), 1.0 - d_neg)
            small = eta * tfin
        f = np.where(lam > 0, one_minus_d / safe, small)
    return np.where(inf, 1.0 / safe, f)


def gd_from_kernels(
    Theta_train,
    Theta_test_train,
    K_train,
    K_test_train,
    K_test,
    Y,
    t,
    eta: float | None = None,
    noise: float = 0.0,
    *,
    conventions: str = "deepeft",
) -> GDPrediction:
    """Frozen-NTK GD/gradient-flow ensemble prediction from kernel blocks (any kernels, e.g. empirical).

    Theta_train (N, N) Θ̃, Theta_test_train (M, N) Θ_ℬ𝒜, K_train (N, N) K̃, K_test_train (M, N) K_ℬ𝒜,
    K_test (M, M) K_ℬℬ or None (mean only), Y (N,) or (N, n_out). ``t``: steps if ``eta`` is given, else
    gradient-flow time (η absorbed); scalar or array; ``np.inf`` = end of training (10.40)–(10.41).
    """
    conventions = check_conventions(conventions)
    Tt = kernel_block(Theta_train, "Theta_train", (None, None), symmetric=True)
    N = Tt.shape[0]
    Tx = kernel_block(Theta_test_train, "Theta_test_train", (None, N))
    M = Tx.shape[0]
    Kt = kernel_block(K_train, "K_train", (N, N), symmetric=True)
    Kx = kernel_block(K_test_train, "K_test_train", (M, N))
    Kb = None if K_test is None else kernel_block(K_test, "K_test", (M, M), symmetric=True)
    Y = targets(Y, N, "Y_train")
    noise = noise_variance(noise)
    n_out = Y.shape[1]

    if conventions == "neural_tangents":
        lr = 1.0 if eta is None else _eta(eta)
        t_in = _times(t, None, True)
        tau = nt_time_to_tau(t_in, lr, N * n_out)
        step_eta, continuous = None, True
        reg_T, reg_K = nt_diag_reg_to_variance(noise, Tt), 0.0
    else:
        continuous = eta is None
        step_eta = None if continuous else _eta(eta)
        t_in = _times(t, step_eta, continuous)
        tau = t_in
        reg_T = reg_K = noise

    Tt = add_to_diagonal(Tt, reg_T)  # a private contiguous copy: eigh may overwrite it
    Kt = add_to_diagonal(Kt, reg_K) if reg_K else Kt
    lam, U = _eigh(Tt)
    lmax = float(lam[-1])
    if lmax <= 0:
        raise DeepEFTInputError("Theta_train has no positive eigenvalue: nothing is learned (all λ_b, λ_W zero?).")
    if lam[0] < -PSD_RTOL * lmax:
        raise DeepEFTInputError(
            f"Theta_train is not positive semi-definite (smallest eigenvalue {lam[0]:.3e}, largest {lmax:.3e})."
        )
    lam = np.maximum(lam, 0.0)
    eta_max = 2.0 / lmax
    if step_eta is not None and step_eta >= eta_max:
        raise DeepEFTInputError(
            f"eta = {step_eta:g} is too large: GD on MSE diverges for eta >= 2/λ_max(Θ̃) = {eta_max:.6g}; "
            f"use eta < {eta_max:.6g} (e.g. eta = {0.5 * eta_max:.3g}), or eta=None for gradient flow."
        )
    if np.any(np.isinf(tau)) and lam[0] <= SINGULAR_RTOL * lmax:
        raise DeepEFTInputError(
            singular_message("NTK Θ̃", f"smallest eigenvalue {lam[0]:.2e} vs largest {lmax:.2e}")
            + " (only t = inf needs Θ̃⁻¹; finite t works as is)."
        )

    F = _f(lam, tau.ravel(), step_eta)  # (T, N)
    P = Tx @ U  # Θ_ℬ𝒜 U
    UY = U.T @ Y
    mean = np.einsum("bi,ti,io->tbo", P, F, UY, optimize=True)  # m_t = Θ_ℬ𝒜 U f_t Uᵀ y: (10.33) summed, → (10.40)
    D = 1.0 - lam[None, :] * F  # eigenvalues of E_t = (I − ηΘ̃)^t, iterating (10.21)
    D = np.where(np.isinf(tau.ravel())[:, None], 0.0, D)
    res = np.einsum("ai,ti,io->tao", U, D, UY, optimize=True)  # E_t(−y) up to sign: ε mean = −E_t y
    train_mean = Y[None] - res
    order = np.argsort(np.argsort(tau.ravel(), kind="stable"), kind="stable")
    # t = 1 step: f_1 = η for every mode, so P f_1 W = η Θ_ℬ𝒜 U Uᵀ C = η Θ_ℬ𝒜 C (a triangular product, MN² flops)
    one = (tau.ravel() == 1) if step_eta is not None else np.zeros(tau.size, bool)
    cov, Sdiag, post = (
        _covariance(Kt, Kx, Kb, Y, U, P, F, reg_K, order, Tx, step_eta, one) if Kb is not None else (None, None, None)
    )
    if Sdiag is None:
        Sdiag = np.einsum("ai,ab,bi->i", U, Kt, U, optimize=True)
    # E[L_𝒜(t)] of the MSE loss (10.5) over z_𝒜(0) ~ N(0, K̃): ε(t) = E_t ε(0), ε(0) ~ N(−y, K̃) per output, so
    # E[½Σε²] = ½|E_t y|² + ½ n_L tr(E_t K̃ E_t) [derived from (10.21), (10.33)]; Sdiag = diag(Uᵀ K̃ U)
    train_loss = 0.5 * np.sum(res * res, axis=(1, 2)) + 0.5 * n_out * (D * D) @ Sdiag
    shape = tau.shape
    out_mean = mean.reshape(shape + mean.shape[1:])
    out_cov = None if cov is None else cov.reshape(shape + cov.shape[1:])
    return GDPrediction(
        out_mean, out_cov, train_mean.reshape(shape + train_mean.shape[1:]), train_loss.reshape(shape),
        t_in, tau, None if eta is None else float(eta), continuous, eta_max, post,
    )


def _eigh(T: np.ndarray):
    """Θ̃ = U diag(λ) Uᵀ, λ ascending, by LAPACK syevd (divide and conquer) on the lower triangle of ``T``.

    (Handing LAPACK the F-ordered view ``T.T`` with ``lower=False`` would save one N × N copy, but its upper-triangle
    tridiagonalization measured ≈ 1 s slower at N = 4000 on 2 threads: the copy stays.)"""
    return sla.eigh(T, overwrite_a=True, check_finite=False, driver="evd")


def _eta(eta) -> float:
    try:
        e = float(eta)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"eta must be a positive learning rate or None (gradient flow), got {eta!r}.") from None
    if not np.isfinite(e) or e <= 0:
        raise DeepEFTInputError(f"eta must be a finite learning rate > 0 (or None for gradient flow), got {e}.")
    return e


def _covariance(Kt, Kx, Kb, Y, U, P, F, noise, order, Tx, eta, one):
    """cov_t for all t: 𝕂 + X_t X_tᵀ via Cholesky of K̃ (fast path), else the direct four-term form.

    X_t = Aᵀ − (P diag f_t) W costs one (M × N)(N × N) GEMM per time (all such times in one stacked GEMM);
    modes whose f_t equals the latest time's f (converged to machine precision, f = 1/λ) are shared, so late
    times cost 2M|J_t|N with J_t = {i : f_t(λ_i) ≠ f_latest(λ_i)} (exact: the same numbers, re-associated), and
    a time with J_t = ∅ has the latest time's covariance. ``order`` ranks the times. Times flagged in ``one``
    (t = 1 step, f_1 ≡ η) use P f_1 W = η Θ_ℬ𝒜 C: X_1 = Aᵀ − η Θ_ℬ𝒜 C by one dtrmm (MN² flops, no eigenvectors).

    Also returns diag(Uᵀ K̃ U) (= row norms² of W) for the expected training loss, and the NNGP posterior
    that the fast path computes on the way (None on the direct path)."""
    T, N = F.shape
    M = P.shape[0]
    try:
        C = cholesky(Kt)
    except DeepEFTInputError:
        C = None
    cov = np.empty((T, M, M))
    if C is None:  # singular K̃ (duplicate inputs, zero noise): finite t is still well defined
        KU = Kt @ U
        S = U.T @ KU
        XK = Kx @ U
        for i in range(T):
            PF = P * F[i]
            cross = PF @ XK.T
            cov[i] = Kb - cross - cross.T + PF @ S @ PF.T
            cov[i] = 0.5 * (cov[i] + cov[i].T)
        return cov, np.diagonal(S).copy(), None
    posterior, A = posterior_parts(C, Kx, Kb, Y, noise)
    post = posterior.cov
    # W = Uᵀ C by dtrmm (N³ flops): b = Uᵀ, a = Cᵀ (the F-ordered view of the C-ordered lower factor: upper)
    W = sla.blas.dtrmm(1.0, C.T, U.T, side=1, lower=0, trans_a=1)
    At = A.T  # (M, N)
    live = [i for i in range(T) if np.any(F[i])]  # f_t ≡ 0 (t = 0): cov = K_ℬℬ, no GEMM
    for i in set(range(T)) - set(live):
        cov[i] = Kb
    unit = [i for i in live if one[i]]
    if unit:
        X1 = np.subtract(At, sla.blas.dtrmm(eta, C.T, Tx, side=1, lower=0, trans_a=1), order="C")
        for i in unit:
            cov[i] = symmetric_rank_update(post, X1)
        del X1
        live = [i for i in live if not one[i]]
    if not live:
        return cov, np.einsum("ij,ij->i", W, W), posterior
    # modes converged to machine precision share f_t = f_ref (the latest time): update only the others
    ref = max(live, key=lambda i: order[i])
    full: list[int] = [ref]
    same: list[int] = []
    delta: list[tuple[int, slice | np.ndarray]] = []
    for i in live:
        if i == ref:
            continue
        J = np.flatnonzero(F[i] != F[ref])
        if J.size == 0:
            same.append(i)
        elif J.size > _DELTA_FRACTION * N:
            full.append(i)
        else:  # eigh sorts λ, so J is usually one run of modes: a slice (views, no gathered copies)
            delta.append((i, slice(J[0], J[-1] + 1) if J[-1] - J[0] + 1 == J.size else J))
    per = max(1, int(_CHUNK_BYTES // max(1, 8 * M * N)))
    X_ref = None
    for s in range(0, len(full), per):
        idx = full[s : s + per]
        PF = (P[None, :, :] * F[idx, None, :]).reshape(len(idx) * M, N)
        X = (PF @ W).reshape(len(idx), M, N)
        del PF
        for j, i in enumerate(idx):
            Xi = np.subtract(At, X[j], out=X[j])  # X_t = Aᵀ − P f_t W
            cov[i] = symmetric_rank_update(post, Xi)  # 𝕂 + X Xᵀ by dsyrk (M²N flops)
            if i == ref:
                X_ref = Xi
    for i in same:
        cov[i] = cov[ref]
    for i, cols in delta:
        cov[i] = symmetric_rank_update(post, X_ref - (P[:, cols] * (F[i, cols] - F[ref, cols])) @ W[cols, :])
    return cov, np.einsum("ij,ij->i", W, W), posterior


def gd_prediction(
    net: MLP,
    X_train,
    Y_train,
    X_test,
    t,
    eta: float | None = None,
    noise: float = 0.0,
    *,
    conventions: str = "deepeft",
    compute_cov: bool = True,
) -> GDPrediction:
    """Ensemble prediction of infinite-width ``net`` trained on (X_train, Y_train) with MSE, at X_test.

    ``t``: number of GD steps with learning rate ``eta`` (constant), or gradient-flow time when
    ``eta is None``; ``np.inf`` gives the end of training (10.39)–(10.41); an array gives a leading time axis.
    The NTK includes the learning-rate tensor (8.6) of ``net`` (λ_b, λ_W). ``noise``: σ_ε² (see module doc).
    ``conventions="neural_tangents"``: ``t`` is NT's time, ``eta`` their learning_rate and ``noise`` their
    relative diag_reg, reproducing ``nt.predict.gradient_descent_mse_ensemble(..., get="ntk")``.
    """
    net = check_net(net)
    XA = net.check_inputs(X_train, "X_train")
    XB = net.check_inputs(X_test, "X_test")
    Y = targets(Y_train, XA.shape[0], "Y_train", net.output_dim)
    K_all, Th_all = kernel_and_ntk(net, np.concatenate([XA, XB]))
    assert Th_all is not None  # ntk=True (the default)
    K, Th = K_all[-1], Th_all[-1]
    N = XA.shape[0]
    return gd_from_kernels(
        Th[:N, :N], Th[N:, :N], K[:N, :N], K[N:, :N], K[N:, N:] if compute_cov else None, Y, t, eta, noise,
        conventions=conventions,
    )


def last_layer_only(net: MLP) -> MLP:
    """``net`` with λ_b^{(L)} = C_b^{(L)}, λ_W^{(L)} = C_W^{(L)} (10.46) and λ = 0 below (10.48): then Θ^{(L)} = K^{(L)}
    (10.49) and GD's ensemble is the exact Bayesian posterior."""
    net = check_net(net)
    L = net.L
    lb = (0.0,) * (L - 1) + (net.C_b[-1],)
    lw = (0.0,) * (L - 1) + (net.C_W[-1],)
    return net.replace(lambda_b=lb, lambda_W=lw)


def newton_step(Theta_train, Theta_test_train, z_train, z_test, Y) -> np.ndarray:
    """One Newton step (10.31) for one realization: z_ℬ(1) = z_ℬ − Θ_ℬ𝒜 Θ̃⁻¹ (z_𝒜 − y) (Cholesky solve).

    z_train (N, n_out), z_test (M, n_out) the initial outputs; the training outputs land on y (10.14)."""
    Tt = kernel_block(Theta_train, "Theta_train", (None, None), symmetric=True)
    N = Tt.shape[0]
    Tx = kernel_block(Theta_test_train, "Theta_test_train", (None, N))
    Y = targets(Y, N, "Y")
    zA = targets(z_train, N, "z_train", Y.shape[1])
    zB = targets(z_test, Tx.shape[0], "z_test", Y.shape[1])
    C = cholesky(Tt, "NTK Θ̃")
    sol = sla.cho_solve((C, True), zA - Y, check_finite=False)
    return zB - Tx @ sol


def kernel_regression(k_train, k_test_train, Y, ridge: float = 0.0) -> np.ndarray:
    """Kernel method prediction (10.132): k_{β̇α̃} (k̃ + ridge·I)⁻¹ y, by Cholesky; ridge → 0⁺ is the
    a → 0⁺ limit of the regularized linear model (10.124) with ridge = 2a."""
    Kt = kernel_block(k_train, "k_train", (None, None), symmetric=True)
    N = Kt.shape[0]
    Kx = kernel_block(k_test_train, "k_test_train", (None, N))
    Y = targets(Y, N, "Y")
    ridge = noise_variance(ridge, "ridge")
    C = cholesky(Kt + ridge * np.eye(N) if ridge else Kt, "kernel k̃")
    return Kx @ sla.cho_solve((C, True), Y, check_finite=False)


def ridge_regression(phi_train, phi_test, Y, a: float) -> np.ndarray:
    """Linear model (10.119) fitted by regularized least squares: W* from M = 2a I + Σ_α̃ φφᵀ (10.124),
    (10.123); returns the test predictions (10.125). phi_* are feature matrices (N, n_f) (include a
    constant column for the bias). Equals :func:`kernel_regression` with k = φφᵀ and ridge = 2a."""
    Pa = np.asarray(phi_train, dtype=np.float64)
    Pb = np.asarray(phi_test, dtype=np.float64)
    if Pa.ndim != 2 or Pb.ndim != 2 or Pa.shape[1] != Pb.shape[1]:
        raise DeepEFTInputError(f"phi_train (N, n_f) and phi_test (M, n_f) must share n_f; got {Pa.shape}, {Pb.shape}.")
    Y = targets(Y, Pa.shape[0], "Y")
    a = noise_variance(a, "a")
    Mf = 2.0 * a * np.eye(Pa.shape[1]) + Pa.T @ Pa
    C = cholesky(Mf, "feature matrix M (10.124)")
    Wt = sla.cho_solve((C, True), Pa.T @ Y, check_finite=False)  # (n_f, n_out) = W*ᵀ (10.123)
    return Pb @ Wt
