"""One-dimensional Gaussian expectations ⟨F(z)⟩_K = ∫ dz e^{−z²/2K}/√(2πK) F(z)   (book (1.7), (4.25)).

Composite Gauss–Legendre quadrature in x = z/√K on [−T, T], split at the kinks and jumps of F
(so piecewise-smooth integrands converge geometrically), with panels no wider than the scale on
which F varies (≈ 1 in z, i.e. 1/√K in x). Vectorised over many variances K at once; float64.

K = 0 is handled exactly: ⟨F⟩_0 = F(0) (the right-continuous value at a jump).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["NODES_PER_PANEL", "X_MAX", "expect1d", "fold_even", "gauss1d_nodes", "gauss1d_nodes_jax"]

_T = 12.0  # |x| > 12 carries Gaussian mass < 4e-33
_M = 20  # Gauss–Legendre nodes per panel
X_MAX, NODES_PER_PANEL = _T, _M


@functools.lru_cache(maxsize=8)
def _legendre(m: int):
    return np.polynomial.legendre.leggauss(m)


def gauss1d_nodes(K: np.ndarray, kinks: Sequence[float] = (), *, panels: int | None = None, m: int = _M):
    """Nodes z (…, Q) and weights w (…, Q) such that ⟨F⟩_K ≈ Σ w F(z) for every K in the batch.

    The weights include the Gaussian density, so Σ w = 1 up to ~1e-16.
    """
    K = np.asarray(K, dtype=np.float64)
    sq = np.sqrt(np.maximum(K, 0.0))
    if panels is None:
        kmax = float(sq.max()) if sq.size else 1.0
        panels = int(min(max(24, np.ceil(24.0 * kmax)), 40_000))
    edges = np.linspace(-_T, _T, panels + 1)
    # Break points in x: uniform edges plus kinks c/√K (clipped to the interval), sorted per K.
    safe = np.where(sq > 0, sq, 1.0)
    kx = np.asarray(list(kinks), dtype=np.float64)
    kx = np.clip(kx[None, :] / safe.reshape(-1, 1), -_T, _T) if kx.size else np.zeros((sq.size, 0))
    br = np.sort(np.concatenate([np.broadcast_to(edges, (sq.size, edges.size)), kx], axis=1), axis=1)
    a, b = br[:, :-1], br[:, 1:]
    t, wt = _legendre(m)
    half = 0.5 * (b - a)
    x = (0.5 * (a + b))[..., None] + half[..., None] * t  # (B, P, m)
    w = half[..., None] * wt * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    x = x.reshape(sq.size, -1)
    w = w.reshape(sq.size, -1)
    z = x * sq.reshape(-1, 1)
    shape = K.shape + (z.shape[-1],)
    return z.reshape(shape), w.reshape(shape)


def fold_even(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rule (x, w) (1-D, one K) symmetric under x → −x folded onto x ≥ 0 for integrands even in x: the nodes
    x > 0 carry w(x) + w(−x) (= 2w(x)), nodes at 0 keep theirs, so Σ w F = Σ w′ F up to rounding with half the
    evaluations. A rule that is not exactly mirror-symmetric (e.g. split at a kink c ≠ 0) is returned unchanged."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    pos, neg = x > 0, x < 0
    op, on = np.argsort(x[pos]), np.argsort(-x[neg])
    xp, wp, xn, wn = x[pos][op], w[pos][op], -x[neg][on], w[neg][on]
    if xp.shape != xn.shape or not np.array_equal(xp, xn) or not np.allclose(wp, wn, rtol=1e-13, atol=0.0):
        return x, w
    zero = x == 0
    return np.concatenate([x[zero], xp]), np.concatenate([w[zero], wp + wn])


def expect1d(F: Callable[[np.ndarray], np.ndarray], K, kinks: Sequence[float] = ()) -> np.ndarray:
    """⟨F(z)⟩_K for every entry of K (any shape). ``F`` maps float64 arrays elementwise.

    ``kinks``: points in z where F (or a derivative) is non-smooth; quadrature splits there.
    """
    K = np.asarray(K, dtype=np.float64)
    z, w = gauss1d_nodes(K, kinks)
    vals = np.asarray(F(z), dtype=np.float64)
    out = np.sum(w * vals, axis=-1)
    zero = K == 0
    if np.any(zero):
        out = np.where(zero, np.asarray(F(np.zeros(1)), dtype=np.float64)[0], out)
    return out


def gauss1d_nodes_jax(K, kinks: Sequence[float], panels: int):
    """The rule of :func:`gauss1d_nodes` in x = z/√K as traced JAX code for one (traced) variance K:
    nodes x (Q,) and weights w (Q,), for kinks at c ≠ 0 whose position c/√K moves with K."""
    import math

    import jax.numpy as jnp

    t, wt = _legendre(_M)
    edges = jnp.linspace(-_T, _T, panels + 1)
    kx = jnp.clip(jnp.asarray(kinks) / jnp.sqrt(K), -_T, _T)
    br = jnp.sort(jnp.concatenate([edges, kx]))
    a, b = br[:-1], br[1:]
    half = 0.5 * (b - a)
    x = (0.5 * (a + b))[:, None] + half[:, None] * jnp.asarray(t)
    w = half[:, None] * jnp.asarray(wt) * jnp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x.ravel(), w.ravel()
