"""Input validation helpers shared by the public API (raise DeepEFTInputError)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import DeepEFTInputError


def finite_scalar(value, name: str, *, minimum: float | None = 0.0, strict: bool = False) -> float:
    """A finite float, optionally bounded below (``strict`` excludes the bound)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a real number, got {value!r}.") from None
    if not math.isfinite(v):
        raise DeepEFTInputError(f"{name} must be finite, got {v}.")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        rel = ">" if strict else ">="
        raise DeepEFTInputError(f"{name} must be {rel} {minimum} (it is a variance or rate), got {v}.")
    return v


def per_layer(value, name: str, L: int, *, minimum: float | None = 0.0) -> tuple[float, ...]:
    """A scalar or a length-L sequence → tuple of L validated floats (layer ℓ at index ℓ−1)."""
    if np.ndim(value) == 0:
        v = finite_scalar(value, name, minimum=minimum)
        return (v,) * L
    try:  # fast path for long numeric sequences (10⁵ layers); any failure falls through to the per-entry messages
        arr = np.asarray(value, dtype=np.float64).ravel()
        if arr.size == L and np.all(np.isfinite(arr)) and (minimum is None or np.all(arr >= minimum)):
            return tuple(arr.tolist())
    except (TypeError, ValueError):
        pass
    seq = list(np.asarray(value, dtype=object).ravel())
    if len(seq) != L:
        raise DeepEFTInputError(
            f"{name} must be a scalar or a sequence of length L = {L} (one per layer ℓ = 1..L), "
            f"got length {len(seq)}."
        )
    return tuple(finite_scalar(s, f"{name}[{i}] (layer {i + 1})", minimum=minimum) for i, s in enumerate(seq))


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise DeepEFTInputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise DeepEFTInputError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def inputs(X, n0: int | None = None, name: str = "X") -> np.ndarray:
    """Validate a data matrix of shape (N, n0): 2-D, finite, float64."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array of shape (N, n0).") from None
    if arr.ndim == 1 and n0 is not None and arr.shape[0] == n0:
        raise DeepEFTInputError(
            f"{name} must have shape (N, n0) = (N, {n0}); got a 1-D array. For one input use X[None, :]."
        )
    if arr.ndim != 2:
        raise DeepEFTInputError(f"{name} must have shape (N, n0) (samples × input_dim), got shape {arr.shape}.")
    if arr.shape[0] < 1:
        raise DeepEFTInputError(f"{name} has no samples (shape {arr.shape}).")
    if n0 is not None and arr.shape[1] != n0:
        raise DeepEFTInputError(
            f"{name} has {arr.shape[1]} features per sample but the network's input_dim is {n0}; "
            f"pass X of shape (N, {n0})."
        )
    return finite_rows(arr, name)


def finite_rows(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` (rows = samples) unchanged if finite, else an error naming the first NaN/inf's row and column."""
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DeepEFTInputError(
            f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); clean or drop those samples."
        )
    return arr


def kernel_matrix(K, name: str = "K", *, check_psd: bool = True, tol: float = 1e-10) -> np.ndarray:
    """Validate a (batch of) covariance matrices (..., k, k): symmetric, finite, PSD."""
    arr = np.asarray(K, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise DeepEFTInputError(f"{name} must be a square matrix (..., k, k), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name} contains NaN or inf.")
    scale = np.maximum(np.abs(arr).max(axis=(-1, -2), keepdims=True), 1e-300)
    if np.any(np.abs(arr - np.swapaxes(arr, -1, -2)) > 1e-10 * scale):
        raise DeepEFTInputError(f"{name} must be symmetric (K[a, b] == K[b, a]).")
    if check_psd:
        eig = np.linalg.eigvalsh(0.5 * (arr + np.swapaxes(arr, -1, -2)))
        lo = eig.min(axis=-1)
        if np.any(lo < -tol * scale[..., 0, 0]):
            raise DeepEFTInputError(
                f"{name} is not positive semi-definite (smallest eigenvalue {lo.min():.3e}); "
                "a covariance of jointly Gaussian variables must be PSD."
            )
    return arr


def sequence_of(value, name: str) -> Sequence:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise DeepEFTInputError(f"{name} must be a sequence, got {value!r}.")
    return value
