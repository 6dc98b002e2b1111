"""Monte Carlo estimates with standard errors: the currency in which theory meets experiment.

:class:`Estimate` holds a value and its standard error (scalars or arrays of one shape);
``est.z(theory)`` is the z-score (value − theory)/stderr used by every agreement check.
:func:`mean` and :func:`jackknife` make Estimates from samples (delete-one-block jackknife).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..errors import DeepEFTInputError

__all__ = ["Estimate", "block_count", "jackknife", "mean"]


@dataclasses.dataclass(frozen=True, eq=False)
class Estimate:
    """A measured quantity: ``value`` ± ``stderr`` (floats, or float64 arrays of the same shape).

    ``value`` may be complex (complex128, e.g. Fourier modes); ``stderr`` is then the combined real
    standard error √(se_re² + se_im²) and ``z`` is complex.
    """

    value: float | np.ndarray
    stderr: float | np.ndarray

    def __post_init__(self):
        v = np.asarray(self.value)
        v = v.astype(np.complex128 if np.iscomplexobj(v) else np.float64)
        s = np.asarray(self.stderr, dtype=np.float64)
        if v.shape != s.shape:
            try:
                s = np.broadcast_to(s, v.shape).copy()
            except ValueError:
                raise DeepEFTInputError(
                    f"Estimate value and stderr must have the same shape, got {v.shape} and {s.shape}."
                ) from None
        if np.any(s < 0):
            raise DeepEFTInputError("Estimate stderr must be >= 0.")
        object.__setattr__(self, "value", v.item() if v.ndim == 0 else v)
        object.__setattr__(self, "stderr", float(s) if s.ndim == 0 else s)

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.value)

    def z(self, theory) -> float | np.ndarray:
        """z-score (value − theory)/stderr (±inf where stderr = 0 and value ≠ theory, 0 where both agree)."""
        diff = np.asarray(self.value) - np.asarray(theory)
        diff = diff.astype(np.complex128 if np.iscomplexobj(diff) else np.float64)
        s = np.asarray(self.stderr, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(s > 0, diff / np.where(s > 0, s, 1.0),
                           np.where(diff == 0, 0.0, np.where(diff.real < 0, -np.inf, np.inf)))
        return out.item() if out.ndim == 0 else out

    def agrees(self, theory, nsigma: float = 4.0) -> bool:
        """True when every |z| ≤ nsigma."""
        return bool(np.all(np.abs(self.z(theory)) <= nsigma))

    def __getitem__(self, item) -> Estimate:
        return Estimate(np.asarray(self.value)[item], np.asarray(self.stderr)[item])

    def __repr__(self):
        if np.ndim(self.value) == 0:
            return f"Estimate({self.value:.6g} ± {self.stderr:.2g})"
        return f"Estimate(value={self.value!r}, stderr={self.stderr!r})"

    __str__ = __repr__


def _check_samples(samples, name: str = "samples", *, min_samples: int = 2) -> np.ndarray:
    try:
        arr = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array with samples along axis 0.") from None
    if arr.ndim == 0:
        raise DeepEFTInputError(f"{name} must be an array with samples along axis 0, got a scalar.")
    if arr.shape[0] < min_samples:
        raise DeepEFTInputError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} are needed to estimate a standard error."
        )
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; drop those samples first.")
    return arr


def block_count(n_samples: int, blocks: int) -> int:
    """Number of jackknife blocks actually used: min(blocks, n_samples), at least 2."""
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 2:
        raise DeepEFTInputError(f"blocks must be an integer >= 2, got {blocks!r}.")
    return int(min(blocks, n_samples))


def mean(samples, axis: int = 0) -> Estimate:
    """Sample mean along ``axis`` with standard error std/√S (ddof = 1)."""
    arr = _check_samples(np.moveaxis(np.asarray(samples, dtype=np.float64), axis, 0))
    S = arr.shape[0]
    return Estimate(arr.mean(axis=0), arr.std(axis=0, ddof=1) / np.sqrt(S))


def jackknife(statistic: Callable[..., object], *arrays, blocks: int = 32) -> Estimate:
    """Delete-one-block jackknife of ``statistic(*arrays)`` (samples along axis 0 of every array).

    The samples are split into ``blocks`` contiguous blocks; the statistic is recomputed with each
    block left out and SE² = (B−1)/B Σ_b (θ_{−b} − θ̄)². The value is the full-sample statistic.
    Costs B + 1 evaluations of ``statistic``; it may return a scalar or an array.
    """
    if not arrays:
        raise DeepEFTInputError("jackknife needs at least one array of samples.")
    arrs = [_check_samples(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    S = arrs[0].shape[0]
    if any(a.shape[0] != S for a in arrs):
        raise DeepEFTInputError(
            f"all arrays must have the same number of samples along axis 0, got {[a.shape[0] for a in arrs]}."
        )
    B = block_count(S, blocks)
    edges = np.linspace(0, S, B + 1).astype(int)
    full = np.asarray(statistic(*arrs), dtype=np.float64)
    reps = []
    for b in range(B):
        keep = np.r_[0 : edges[b], edges[b + 1] : S]
        reps.append(np.asarray(statistic(*(a[keep] for a in arrs)), dtype=np.float64))
    reps = np.stack(reps)
    se = np.sqrt((B - 1) / B * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))
    return Estimate(full, se)
