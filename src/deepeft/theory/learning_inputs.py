"""Shared boundary checks and factorizations for the learning modules (Bayes, kernel GD).

One place for: validating targets Y and kernel blocks, the observation-noise argument, the
``conventions`` switch, and the Cholesky factor of a training kernel with a clear error when it is
singular (duplicate inputs with zero noise).

Named numerical constants (dks style):

* ``SINGULAR_RTOL`` — a training kernel whose smallest Cholesky pivot² (or eigenvalue) is below
  ``SINGULAR_RTOL × max diag`` is treated as singular: solves with it would lose every digit.
* ``PSD_RTOL`` — eigenvalues below ``−PSD_RTOL × λ_max`` mean the matrix is not a covariance.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .. import _validate as v
from ..errors import DeepEFTInputError

__all__ = [
    "CONVENTIONS",
    "PSD_RTOL",
    "SINGULAR_RTOL",
    "SingularKernelError",
    "add_to_diagonal",
    "check_conventions",
    "cholesky",
    "kernel_block",
    "noise_variance",
    "nt_diag_reg_to_variance",
    "nt_time_to_tau",
    "singular_message",
    "targets",
    "symmetric_rank_update",
]

SINGULAR_RTOL = 1e-13
_FULL_SYMMETRY_CHECK = 1024  # above this size the symmetry check samples rows (see kernel_block)
PSD_RTOL = 1e-9
CONVENTIONS = ("deepeft", "neural_tangents")


def check_conventions(conventions: str) -> str:
    if conventions not in CONVENTIONS:
        raise DeepEFTInputError(
            f"conventions must be one of {CONVENTIONS}, got {conventions!r}. 'deepeft': the book's time, "
            "loss (10.5) and absolute noise variance; 'neural_tangents': NT's time, loss normalised by "
            "y_train.size and relative diag_reg (see docs/learning.md)."
        )
    return conventions


def noise_variance(noise, name: str = "noise") -> float:
    """The observation-noise variance σ_ε² (or a ridge): a finite float >= 0 (the shared scalar check)."""
    return v.finite_scalar(noise, name, minimum=0.0)


def targets(Y, N: int, name: str = "Y_train", n_out: int | None = None) -> np.ndarray:
    """Y of shape (N,) or (N, n_out) → float64 (N, n_out); finite; rows match the inputs."""
    try:
        arr = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array of shape (N, n_out) or (N,).") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DeepEFTInputError(f"{name} must have shape (N, n_out) or (N,), got shape {arr.shape}.")
    if arr.shape[0] != N:
        raise DeepEFTInputError(
            f"{name} has {arr.shape[0]} rows but there are {N} training inputs; pass one target row per input."
        )
    if n_out is not None and arr.shape[1] != n_out:
        raise DeepEFTInputError(
            f"{name} has {arr.shape[1]} output columns but the network has output_dim = {n_out}; "
            f"use net.replace(output_dim={arr.shape[1]}) or pass targets of shape ({N}, {n_out})."
        )
    return v.finite_rows(arr, name)


def kernel_block(K, name: str, shape: tuple[int | None, int | None], *, symmetric: bool = False) -> np.ndarray:
    """A kernel block as float64 with the expected shape (None = any), finite (and symmetric if asked)."""
    try:
        arr = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric matrix.") from None
    if arr.ndim != 2 or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = tuple("any" if s is None else s for s in shape)
        raise DeepEFTInputError(f"{name} must have shape {want}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name} contains NaN or inf.")
    if symmetric:
        n = arr.shape[0]
        if n <= _FULL_SYMMETRY_CHECK:
            rows, cols = arr, arr.T
        else:  # large: row sums vs column sums, plus a fixed sample of full rows (O(N²) reads, no N² temporary)
            idx = np.linspace(0, n - 1, _FULL_SYMMETRY_CHECK // 4).astype(int)
            rows = np.concatenate([arr[idx], arr.sum(axis=1)[None]])
            cols = np.concatenate([arr[:, idx].T, arr.sum(axis=0)[None]])
        scale = max(float(np.abs(rows).max(initial=0.0)), 1e-300)
        if np.abs(rows - cols).max(initial=0.0) > 1e-10 * scale:
            raise DeepEFTInputError(f"{name} must be symmetric (K[a, b] == K[b, a]).")
    return arr


def add_to_diagonal(K: np.ndarray, value: float) -> np.ndarray:
    """K + value·I as a new array (no N×N identity is built)."""
    out = np.array(K, dtype=np.float64, copy=True)
    if value:
        out.flat[:: out.shape[0] + 1] += value
    return out


def symmetric_rank_update(base: np.ndarray, X: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """base + alpha·X Xᵀ (M × M, exactly symmetric) by one BLAS ``dsyrk``: M²N flops, half of the GEMM X @ X.T.

    ``base`` (M, M) symmetric is not modified; X (M, N) may be C- or Fortran-ordered (no copy either way)."""
    X = np.asarray(X, dtype=np.float64)
    c = np.array(base, dtype=np.float64, order="F", copy=True)
    if X.flags.f_contiguous:
        out = sla.blas.dsyrk(alpha, X, beta=1.0, c=c, trans=0, lower=0, overwrite_c=1)
    else:
        out = sla.blas.dsyrk(alpha, np.ascontiguousarray(X).T, beta=1.0, c=c, trans=1, lower=0, overwrite_c=1)
    out = np.triu(out)  # dsyrk wrote the upper triangle only
    out += np.triu(out, 1).T
    return out


class SingularKernelError(DeepEFTInputError):
    """The (noisy) training kernel is numerically singular: raised by :func:`cholesky`. A hypothesis grid may
    catch this one condition (a degenerate Gaussian prior puts no density on generic targets) and nothing else."""


def singular_message(what: str, detail: str) -> str:
    return (
        f"the training {what} is singular ({detail}): duplicate or linearly dependent training inputs with "
        "zero noise. Pass noise > 0 (an observation-noise variance σ_ε², e.g. 1e-6 × the kernel scale), "
        "add a small jitter to the kernel diagonal, or remove the duplicate inputs."
    )


def cholesky(K: np.ndarray, what: str = "kernel K̃") -> np.ndarray:
    """Lower Cholesky factor C (K = C Cᵀ) with a clear error when K is (numerically) singular."""
    scale = float(np.max(np.diag(K), initial=0.0))
    if scale <= 0:
        raise SingularKernelError(singular_message(what, "its diagonal is zero"))
    try:
        C = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        raise SingularKernelError(singular_message(what, "Cholesky factorization failed")) from None
    pivot = float(np.min(np.diag(C))) ** 2
    if pivot < SINGULAR_RTOL * scale:
        raise SingularKernelError(
            singular_message(what, f"smallest Cholesky pivot² {pivot:.2e} vs largest diagonal {scale:.2e}")
        )
    return C


# -- neural-tangents conventions (read from nt.predict: gradient_descent_mse_ensemble, gp_inference) ------
#   NT's MSE loss is ½·mean over y_train.size = N·n_out entries and their t is in units of the learning rate:
#   their flow is exp(−Θ̃·lr·t/(N·n_out)) (predict._make_expm1_fn); ours (loss (10.5), a plain sum) is
#   exp(−Θ̃τ). Their diag_reg is relative by default: K + diag_reg·(tr K/N)·I (_add_diagonal_regularizer).


def nt_time_to_tau(t, learning_rate: float, y_train_size: int):
    """NT time t (with learning_rate) → deepeft gradient-flow time τ = learning_rate·t/(N·n_out)."""
    return np.asarray(t, dtype=np.float64) * float(learning_rate) / int(y_train_size)


def nt_diag_reg_to_variance(diag_reg: float, K_train: np.ndarray) -> float:
    """NT's relative diag_reg → the absolute diagonal shift diag_reg·(tr K̃/N) added to that kernel."""
    return float(diag_reg) * float(np.trace(K_train)) / K_train.shape[0]
