"""Connected correlators (joint cumulants) from samples, with jackknife standard errors   (book §1.2).

Set-partition (Möbius) inversion of the moments (1.56):

    κ(z_1, …, z_M) = Σ_π (−1)^{|π|−1} (|π|−1)! Π_{B ∈ π} E[Π_{i ∈ B} z_i],

summed over all set partitions π of the M positions. For zero-mean variables this is the book's
connected correlator, e.g. M = 4 (1.54) and M = 6 (1.61); it vanishes for Gaussians (1.55).
Orders 1..6 are supported (Bell(6) = 203 partitions).

Standard errors: delete-one-block jackknife over contiguous blocks of samples (the 2^M − 1 subset
moments are accumulated per block once, so the jackknife costs no extra passes over the data).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Estimate, block_count, check_samples

__all__ = ["connected", "excess_kurtosis", "moment", "set_partitions"]

_MAX_ORDER = 6


@functools.cache
def set_partitions(M: int) -> tuple[tuple[int, ...], ...]:
    """All set partitions of positions 0..M−1, each a tuple of block bitmasks (Bell(M) of them)."""

    def rec(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for part in rec(rest):
            yield [[first]] + part  # first in its own block
            for i in range(len(part)):  # or added to an existing block
                yield part[:i] + [[first] + part[i]] + part[i + 1 :]

    return tuple(tuple(sum(1 << i for i in block) for block in p) for p in rec(list(range(M))))


@functools.cache
def _mobius(M: int):
    """(coefficients, block-mask table padded with mask 0) for the cumulant of order M (1.56)."""
    parts = set_partitions(M)
    coef = np.array([(-1) ** (len(p) - 1) * math.factorial(len(p) - 1) for p in parts], dtype=np.float64)
    table = np.zeros((len(parts), M), dtype=np.intp)  # mask 0 ↦ moment 1 (empty product)
    for r, p in enumerate(parts):
        table[r, : len(p)] = p
    return coef, table


def _validate(samples, indices) -> tuple[np.ndarray, np.ndarray]:
    arr = check_samples(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DeepEFTInputError(f"samples must have shape (S, k) (or (S,) for one variable), got {arr.shape}.")
    k = arr.shape[1]
    if isinstance(indices, (int, np.integer)):
        raise DeepEFTInputError(
            f"indices must be a tuple of variable indices, e.g. (0, 0, 0, 0) for the 4th cumulant of "
            f"variable 0; got the integer {indices}."
        )
    idx = np.asarray(tuple(indices))
    if idx.size == 0 or idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DeepEFTInputError(f"indices must be a non-empty flat tuple of integers, got {indices!r}.")
    if idx.size > _MAX_ORDER:
        raise DeepEFTInputError(f"cumulants up to order {_MAX_ORDER} are supported, got order {idx.size}.")
    if idx.min() < 0 or idx.max() >= k:
        raise DeepEFTInputError(f"indices must lie in [0, {k}) for samples with {k} variables, got {tuple(idx)}.")
    return arr, idx.astype(np.intp)


def _subset_block_sums(cols: np.ndarray, B: int) -> np.ndarray:
    """Per-block sums (B, 2^M) of Π_{i∈A} cols[:, i] for every bitmask A (mask 0 ↦ block size)."""
    S, M = cols.shape
    edges = np.linspace(0, S, B + 1).astype(int)
    sums = np.empty((B, 1 << M))
    for b in range(B):
        c = cols[edges[b] : edges[b + 1]]
        prods = np.empty((1 << M, c.shape[0]))
        prods[0] = 1.0
        for mask in range(1, 1 << M):
            low = mask & -mask
            prods[mask] = prods[mask ^ low] * c[:, low.bit_length() - 1]
        sums[b] = prods.sum(axis=1)
    return sums


def _moments(cols: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-sample subset moments (2^M,) and the B leave-one-block-out replicates (B, 2^M); None for B = 1
    (no standard error asked for)."""
    sums = _subset_block_sums(cols, B)
    total = sums.sum(axis=0)
    loo = (total - sums) / (total[0] - sums[:, :1]) if B > 1 else None
    return total / total[0], loo


def _jackknife_se(reps: np.ndarray) -> float:
    B = reps.shape[0]
    return float(np.sqrt((B - 1) / B * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0)))


def _combine(moments: np.ndarray, M: int) -> np.ndarray:
    """Möbius sum (1.56) over the leading axes of moments (..., 2^M) (moments[..., 0] = 1)."""
    coef, table = _mobius(M)
    return np.einsum("p,...p->...", coef, np.prod(moments[..., table], axis=-1))


def _estimate(
    samples, indices, *, kind: str, stderr: bool, blocks: int, zero_mean: bool, symmetric: bool = False
) -> Estimate:
    arr, idx = _validate(samples, indices)
    M = idx.size
    if kind == "connected" and M == 1 and not zero_mean:
        col = arr[:, idx[0]]
        return Estimate(float(col.mean()), float(col.std(ddof=1) / np.sqrt(col.size)) if stderr else 0.0)
    cols = arr[:, idx]
    zero_mean = zero_mean or symmetric
    if kind == "connected" and not zero_mean:
        # cumulants of order ≥ 2 are shift invariant: centre for rounding; the Möbius sum stays exact
        cols = cols - arr.mean(axis=0)[idx]
    B = block_count(arr.shape[0], blocks) if stderr else 1
    full, loo = _moments(cols, B)
    if kind == "moment":
        stat = lambda m: m[..., (1 << M) - 1]  # noqa: E731
    else:

        known_zero = [mask for mask in range(1, 1 << M) if (symmetric and bin(mask).count("1") % 2)]
        if zero_mean and not symmetric:
            known_zero = [1 << i for i in range(M)]  # E[z] = 0: drop singleton blocks

        def stat(m):
            if known_zero:
                m = m.copy()
                m[..., known_zero] = 0.0
            return _combine(m, M)

    value = float(stat(full))
    return Estimate(value, _jackknife_se(stat(loo)) if stderr else 0.0)


def connected(
    samples,
    indices: Sequence[int],
    *,
    stderr: bool = True,
    blocks: int = 32,
    zero_mean: bool = False,
    symmetric: bool = False,
) -> Estimate:
    """Joint cumulant κ(z_{i1}, …, z_{iM}) (connected correlator, (1.56)) estimated from samples.

    samples : shape (S, k) (S draws of k variables) or (S,) for one variable.
    indices : which variables, with repeats, e.g. (0, 0, 0, 0) → 4th cumulant of z_0, (0, 0, 1, 1) →
        E[z0 z0 z1 z1]|_c. Order M = len(indices) ≤ 6.
    stderr : jackknife standard error over ``blocks`` contiguous blocks (else stderr = 0).
    zero_mean : the variables are known to have zero mean: singleton blocks are dropped, no centring.
        Default False estimates the means too.
    symmetric : the distribution is known to be parity symmetric (z → −z, e.g. network preactivations):
        all odd moments are set to zero, which gives exactly the book's (1.54) and (1.61) (lower variance;
        odd orders are then 0).
    The value is the plug-in estimate (bias O(1/S)); for order 1 the mean and its SE are returned.
    """
    return _estimate(
        samples, indices, kind="connected", stderr=stderr, blocks=blocks, zero_mean=zero_mean, symmetric=symmetric
    )


def moment(samples, indices: Sequence[int], *, stderr: bool = True, blocks: int = 32) -> Estimate:
    """Raw (full) correlator E[z_{i1} ⋯ z_{iM}] from samples, with a jackknife standard error."""
    return _estimate(samples, indices, kind="moment", stderr=stderr, blocks=blocks, zero_mean=True)


def excess_kurtosis(samples, index: int = 0, *, blocks: int = 32, zero_mean: bool = False) -> Estimate:
    """Excess kurtosis κ4/κ2² of variable ``index`` (footnote 8 of Ch. 1), jackknife SE; 0 for a Gaussian.

    ``zero_mean=True`` uses E[z] = 0 (book convention: connected 4-pt / variance²) without estimating the mean.
    """
    arr, idx = _validate(samples, (index,) * 4)
    col = arr[:, idx[0]]
    if not zero_mean:
        col = col - col.mean()
    full, loo = _moments(np.stack([col] * 4, axis=1), block_count(col.size, blocks))

    def kurt(m):  # masks 1, 3, 7, 15 ↦ E[z], E[z²], E[z³], E[z⁴]
        m1 = 0.0 if zero_mean else m[..., 1]
        m2, m3, m4 = m[..., 3], m[..., 7], m[..., 15]
        mu2 = m2 - m1**2
        mu4 = m4 - 4 * m3 * m1 + 6 * m2 * m1**2 - 3 * m1**4
        return mu4 / mu2**2 - 3.0

    return Estimate(float(kurt(full)), _jackknife_se(kurt(loo)))
