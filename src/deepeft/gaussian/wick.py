"""Wick's theorem: moments of a zero-mean Gaussian as sums over pairings   (book (1.45), (1.69)).

E[z_{μ1} ⋯ z_{μ2m}] = Σ_{pairings} K_{μk1 μk2} ⋯ K_{μk(2m−1) μk(2m)}   — (2m−1)!! terms; odd moments vanish.
E.g. the 4-point function (1.44): K12 K34 + K13 K24 + K14 K23.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError

__all__ = ["double_factorial", "gaussian_moment", "pairings", "wick_tensor"]

_MAX_ORDER = 16  # 15!! = 2 027 025 pairings


def double_factorial(k: int) -> int:
    """k!! (with (−1)!! = 0!! = 1); (2m−1)!! counts the pairings of 2m points."""
    out = 1
    while k > 1:
        out *= k
        k -= 2
    return out


@functools.cache
def _pairing_table(n: int) -> np.ndarray:
    """All perfect matchings of positions 0..n−1 as an int array (P, n/2, 2); P = (n−1)!!."""
    if n % 2 or n == 0:  # no pairing of an odd set; exactly one (empty) pairing of the empty set
        return np.zeros((0 if n % 2 else 1, n // 2, 2), dtype=np.intp)

    def rec(rest: tuple[int, ...]):
        if not rest:
            yield ()
            return
        first, others = rest[0], rest[1:]
        for j, partner in enumerate(others):
            for tail in rec(others[:j] + others[j + 1 :]):
                yield ((first, partner),) + tail

    table = np.array(list(rec(tuple(range(n)))), dtype=np.intp).reshape(-1, n // 2, 2)
    table.setflags(write=False)
    return table


def pairings(indices: Sequence) -> list[tuple[tuple, ...]]:
    """All (2m−1)!! perfect matchings of the entries of ``indices`` (by position; repeats allowed).

    ``pairings((1, 2, 3, 4))`` → ``[((1, 2), (3, 4)), ((1, 3), (2, 4)), ((1, 4), (2, 3))]``.
    An odd number of entries has no pairing (empty list); the empty tuple has one (empty) pairing.
    """
    items = tuple(indices)
    if len(items) > _MAX_ORDER:
        raise DeepEFTInputError(
            f"pairings of {len(items)} entries ({double_factorial(len(items) - 1)} terms) is too many; "
            f"use at most {_MAX_ORDER} entries."
        )
    table = _pairing_table(len(items))
    return [tuple((items[a], items[b]) for a, b in p) for p in table]


def gaussian_moment(K, indices: Sequence[int]) -> float | np.ndarray:
    """E[z_{μ1} ⋯ z_{μ2m}] for z ~ N(0, K) by Wick's theorem (1.45)/(1.69).

    K : covariance, shape (k, k) or a batch (..., k, k) (symmetric; evaluated for every batch entry).
    indices : variable indices μ_i in [0, k), repeats allowed (e.g. (0, 0, 1, 1) → K00 K11 + 2 K01²).
    Returns a float (or an array of the batch shape). An odd number of indices gives 0.
    """
    Karr = v.kernel_matrix(K, "K", check_psd=False)
    k = Karr.shape[-1]
    try:
        idx = np.asarray(tuple(indices))
    except TypeError:
        raise DeepEFTInputError(f"indices must be a sequence of integers, got {indices!r}.") from None
    if idx.size and (idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer)):
        raise DeepEFTInputError(f"indices must be a flat sequence of integers, got {indices!r}.")
    if idx.size and (idx.min() < 0 or idx.max() >= k):
        raise DeepEFTInputError(
            f"indices must lie in [0, {k}) for a {k}×{k} covariance K, got {tuple(int(i) for i in idx)}."
        )
    if idx.size > _MAX_ORDER:
        raise DeepEFTInputError(f"moments of order > {_MAX_ORDER} are not supported (got order {idx.size}).")
    batch = Karr.shape[:-2]
    if idx.size % 2:
        out = np.zeros(batch)
        return float(out) if out.ndim == 0 else out
    table = _pairing_table(idx.size)  # (P, m, 2) positions
    mu = idx.astype(np.intp)[table]  # (P, m, 2) variable indices
    terms = Karr[..., mu[..., 0], mu[..., 1]]  # (..., P, m)
    out = np.prod(terms, axis=-1).sum(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def wick_tensor(K, order: int) -> np.ndarray:
    """The full Gaussian moment tensor E[z_{μ1} ⋯ z_{μorder}] of shape (k,)*order (1.45), e.g. order 4 (1.44).

    Sum over the (order−1)!! pairings of outer products of K; zeros for odd order. Keep k**order small.
    """
    Karr = v.kernel_matrix(K, "K", check_psd=False)
    if Karr.ndim != 2:
        raise DeepEFTInputError(f"wick_tensor needs one (k, k) matrix K, got shape {Karr.shape}.")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 8:
        raise DeepEFTInputError(f"order must be an integer in [0, 8], got {order!r}.")
    k = Karr.shape[0]
    out = np.zeros((k,) * order)
    if order % 2:
        return out
    letters = "abcdefgh"[:order]
    for p in _pairing_table(order):
        spec = ",".join(letters[a] + letters[b] for a, b in p) + "->" + letters
        out += np.einsum(spec, *([Karr] * len(p))) if len(p) else 1.0
    return out
