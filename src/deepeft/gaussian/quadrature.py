"""Nested Gauss–Legendre quadrature for ⟨Π_a g_a(z_a)⟩_K, k ≤ 4, split at kinks   (book (4.25)).

Rotate z = Lξ with a pivoted Cholesky factor L (rank r detected, so singular K — coincident,
parallel or antipodal inputs — is exact), then integrate the independent standard normals ξ_1
(outer), ξ_2 | ξ_1, …, ξ_r (inner) with composite Gauss–Legendre panels on [−T, T]. A factor
g_a with kinks at c is non-smooth on the hyperplane z_a = c; with L lower triangular, z_a
depends on ξ_1..ξ_{j(a)} only, so that kink is a split point of the ξ_{j(a)} integral at
(c − Σ_{i<j(a)} L_ai ξ_i)/L_{a j(a)}, a point that moves with the outer variables. Inner
integrals of kinked functions are smooth in the outer variables, so every 1-D rule sees a
piecewise-smooth integrand and converges geometrically.

The result is computed at increasing resolutions; the finest is returned with an error estimate
|Δ_i|·min(1, |Δ_i|/|Δ_{i−1}|) from the last two differences (geometric convergence), refining until
it meets ``rtol`` relative to ⟨|F|⟩ (or the finest level is reached).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["pivoted_cholesky", "nested_quadrature"]

_T = 10.0  # Gaussian mass beyond |ξ| = 10 is 1.5e-23
# Panel edges in ξ (mirrored), denser where the Gaussian mass is; each panel is subdivided by
# ⌈max_a |L_aj|⌉ so that features of unit width in z stay resolved for large variances.
_EDGES = np.array([0.0, 1.0, 2.0, 3.0, 4.5, 6.5, _T])
_BASE = np.concatenate([-_EDGES[::-1], _EDGES[1:]])
# Gauss–Legendre nodes per panel by rank; levels are tried in order until two agree to rtol.
_LEVELS = {1: (12, 16, 24, 32), 2: (8, 10, 12, 16, 20), 3: (5, 6, 8, 10, 12), 4: (4, 5, 6, 7, 8)}
_MAX_POINTS = 3_000_000  # grid points evaluated per chunk


@functools.lru_cache(maxsize=32)
def _legendre(m: int):
    return np.polynomial.legendre.leggauss(m)


def pivoted_cholesky(K: np.ndarray, tol: float = 1e-14):
    """Batched pivoted Cholesky of PSD matrices K (B, k, k).

    Returns L (B, k, k) lower triangular in pivoted order, perm (B, k) with
    z[perm] = L ξ, and rank (B,). Pivots below ``tol``·max diag end the factorisation
    (the remaining Schur complement is treated as exactly zero).
    """
    A = np.array(K, dtype=np.float64, copy=True)
    B, k, _ = A.shape
    L = np.zeros_like(A)
    perm = np.tile(np.arange(k), (B, 1))
    scale = np.max(np.diagonal(A, axis1=1, axis2=2), axis=1)
    active = scale > 0
    rank = np.zeros(B, dtype=int)
    rows = np.arange(B)
    for j in range(k):
        d = np.diagonal(A, axis1=1, axis2=2)[:, j:]
        p = j + np.argmax(d, axis=1)
        order = np.tile(np.arange(k), (B, 1))
        order[rows, j] = p
        order[rows, p] = j
        A = np.take_along_axis(np.take_along_axis(A, order[:, :, None], 1), order[:, None, :], 2)
        L = np.take_along_axis(L, order[:, :, None], 1)
        perm = np.take_along_axis(perm, order, 1)
        piv = A[:, j, j]
        active = active & (piv > tol * scale)
        rank += active
        ljj = np.sqrt(np.where(active, piv, 1.0))
        L[:, j, j] = np.where(active, ljj, 0.0)
        col = np.where(active[:, None], A[:, j + 1 :, j] / ljj[:, None], 0.0)
        L[:, j + 1 :, j] = col
        A[:, j + 1 :, j + 1 :] -= col[:, :, None] * col[:, None, :]
    return L, perm, rank


def _panel_rule(edges: np.ndarray, m: int):
    """GL nodes/weights (with the standard normal density) on the intervals between sorted edges."""
    t, wt = _legendre(m)
    a, b = edges[..., :-1], edges[..., 1:]
    half = 0.5 * (b - a)
    x = (0.5 * (a + b))[..., None] + half[..., None] * t
    w = half[..., None] * wt * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    shp = x.shape[:-2] + (x.shape[-2] * x.shape[-1],)
    return x.reshape(shp), w.reshape(shp)


def _integrate_group(funcs, kinks, L, m, scale):
    """Σ W Π g(z) and Σ W |Π g(z)| for one (permutation, rank) group; L (b, k, r)."""
    b, k, r = L.shape
    tiny = 1e-13 * np.sqrt(scale)[:, None, None]
    nonzero = np.abs(L) > tiny
    last = np.where(nonzero.any(-1), r - 1 - np.argmax(nonzero[..., ::-1], axis=-1), -1)  # (b, k)
    xis: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    for j in range(r):
        base = _subdivided(int(np.clip(np.ceil(np.max(np.abs(L[:, :, j]))), 1, 64)))
        outer = (b,) + tuple(x.shape[-1] for x in xis)
        splits = []
        nd_o = len(outer)

        def shifted(i, c):  # c − Σ_{l<j} L_il ξ_l on the outer grid
            num = np.full(outer, float(c))
            for l in range(j):
                num = num - _expand(L[:, i, l], nd_o) * _expand_to(xis[l], nd_o)
            return num

        for i in [j, *range(max(j + 1, r), k)]:  # own kink, or a dependent variable's last column
            for c in kinks[i]:
                lij = _expand(L[:, i, j], nd_o)
                act = _expand((last[:, i] == j) & nonzero[:, i, j], nd_o)
                s = np.where(act, shifted(i, c) / np.where(act, lij, 1.0), _T)
                splits.append(np.clip(s, -_T, _T))
        # Boundary layers: the next level's split point s' = (c − … − L_ij ξ_j)/L_{i,j+1} sweeps
        # through [−T, T] over a ξ_j-interval of width ~2T|L_{i,j+1}/L_ij|, which is tiny for nearly
        # singular K; panel edges where s' = −T, 0, T resolve the inner integral's transition.
        if j + 1 < r:
            for i in [j + 1, *range(r, k)]:
                for c in kinks[i]:
                    lij = _expand(L[:, i, j], nd_o)
                    lnext = _expand(L[:, i, j + 1], nd_o)
                    act = _expand((last[:, i] == j + 1) & nonzero[:, i, j] & nonzero[:, i, j + 1], nd_o)
                    for t in (-_T, 0.0, _T):
                        s = np.where(act, (shifted(i, c) - t * lnext) / np.where(act, lij, 1.0), _T)
                        splits.append(np.clip(s, -_T, _T))
        edges = np.broadcast_to(base, outer + base.shape)
        if splits:
            edges = np.sort(np.concatenate([edges, np.stack(splits, -1)], -1), -1)
        x, w = _panel_rule(edges, m)
        xis.append(x)
        ws.append(w)
    nd = r + 1
    W: Any = 1.0
    for w in ws:
        W = W * _expand_to(w, nd)
    F: Any = 1.0
    for i in range(k):
        z: Any = 0.0
        for j in range(r):
            if np.any(L[:, i, j] != 0):
                z = z + _expand(L[:, i, j], nd) * _expand_to(xis[j], nd)
        z = np.asarray(z) if np.ndim(z) else np.zeros((1,) * nd)
        F = F * np.asarray(funcs[i](z), dtype=np.float64)
    axes = tuple(range(1, nd))
    WF = W * F
    return np.sum(WF, axis=axes), np.sum(np.abs(WF), axis=axes)


@functools.lru_cache(maxsize=64)
def _subdivided(n: int) -> np.ndarray:
    a, b = _BASE[:-1], _BASE[1:]
    t = np.arange(n) / n
    return np.append((a[:, None] + (b - a)[:, None] * t).ravel(), _T)


def _expand(v, nd):
    return v.reshape(v.shape + (1,) * (nd - v.ndim))


def _expand_to(x, nd):
    return x.reshape(x.shape + (1,) * (nd - x.ndim))


def _integrate(funcs, kinks, K, L, perm, rank, level, scale):
    B, k, _ = K.shape
    out = np.empty(B)
    absout = np.empty(B)
    keys = np.concatenate([perm, rank[:, None]], axis=1)
    for key in np.unique(keys, axis=0):
        sel = np.nonzero(np.all(keys == key, axis=1))[0]
        pk, r = tuple(int(v) for v in key[:k]), int(key[k])
        fk = [funcs[a] for a in pk]
        kk = [kinks[a] for a in pk]
        if r == 0:
            val = np.prod([f(np.zeros(1))[0] for f in fk])
            out[sel], absout[sel] = val, abs(val)
            continue
        m = _LEVELS[r][min(level, len(_LEVELS[r]) - 1)]
        sub = int(np.clip(np.ceil(np.max(np.abs(L[sel]))), 1, 64))
        per = ((_BASE.size - 1) * sub + 4 * sum(len(c) for c in kk)) * m
        chunk = max(1, _MAX_POINTS // per**r)
        for s in range(0, sel.size, chunk):
            ids = sel[s : s + chunk]
            v, a = _integrate_group(fk, kk, L[ids][:, :, :r], m, scale[ids])
            out[ids], absout[ids] = v, a
    return out, absout


def nested_quadrature(
    funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    kinks: Sequence[Sequence[float]],
    K: np.ndarray,
    *,
    rtol: float = 1e-12,
):
    """⟨Π_a funcs[a](z_a)⟩_K for a batch K (B, k, k), k ≤ 4; returns (value, error) arrays (B,).

    ``funcs[a]`` maps float64 arrays elementwise; ``kinks[a]`` lists its non-smooth points in z.
    """
    K = np.asarray(K, dtype=np.float64)
    L, perm, rank = pivoted_cholesky(K)
    scale = np.maximum(np.max(np.diagonal(K, axis1=1, axis2=2), axis=1), 1e-300)
    r = int(rank.max()) if rank.size else 0
    nlev = len(_LEVELS[max(r, 1)])
    prev, _ = _integrate(funcs, kinks, K, L, perm, rank, 0, scale)
    err = np.full(prev.shape, np.inf)
    last_diff = np.full(prev.shape, np.inf)
    todo = np.arange(K.shape[0])
    for level in range(1, nlev):
        cur, absv = _integrate(funcs, kinks, K[todo], L[todo], perm[todo], rank[todo], level, scale[todo])
        e = np.abs(cur - prev[todo])
        # geometric convergence: the finer value's error ≈ e²/e_prev once the differences shrink
        ld = last_diff[todo]
        ratio = np.where(np.isfinite(ld) & (ld > e), e / np.where(np.isfinite(ld), np.maximum(ld, 1e-300), 1.0), 1.0)
        prev[todo] = cur
        err[todo] = e * ratio
        last_diff[todo] = e
        done = err[todo] <= rtol * np.maximum(absv, 1e-300)
        todo = todo[~done]
        if todo.size == 0:
            break
    return prev, err
