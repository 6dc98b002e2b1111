"""Hermite (Mehler) series for two-point maps over many inputs.

For (u, v) jointly Gaussian with variances K_αα, K_ββ and correlation ρ = K_αβ/√(K_αα K_ββ),
Mehler's formula gives

    ⟨f(u) g(v)⟩ = Σ_k a_k(K_αα) b_k(K_ββ) ρ^k,   a_k(K) = E[f(√K x) He_k(x)]/√k!,  x ~ N(0, 1),

with f = σ^{(da)}, g = σ^{(db)}. The coefficients need one 1-D quadrature per distinct variance
(a GEMM against the normalised Hermite polynomials); the pair sum is a jitted Horner loop with a
static degree that XLA fuses into one pass over the N×N2 array (float64).

Truncation: by Cauchy–Schwarz the error of stopping at degree D is at most
√(t_α(D) t_β(D)) |ρ|^{D+1}, with t(D) = Σ_{k>D} a_k² (Parseval: Σ_k a_k² = ⟨f²⟩). The degree is the
smallest (bucketed) D meeting rtol·√(⟨f²⟩_α⟨g²⟩_β) for every pair; entries where even the largest
degree fails are flagged for the caller's fallback (2-D quadrature).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from .gauss1d import gauss1d_nodes

__all__ = ["MAX_DEGREE", "hermite_coefficients", "horner_sum", "mehler_two_point", "series_plan", "rho_max_of"]

_DEGREES = (15, 31, 47, 63, 79, 95, 127, 159, 191, 255, 319, 383, 511)  # degree + 1 = multiple of 16
MAX_DEGREE = _DEGREES[-1]  # the largest truncation degree of the series
_CHUNK = 128
_U = 16  # Horner steps unrolled per loop iteration (XLA fuses them into one pass)


def _hermite_matrix(x: np.ndarray, D: int) -> np.ndarray:
    """h_k(x) = He_k(x)/√k!, k = 0..D, by the stable three-term recurrence; shape (D+1,) + x.shape."""
    H = np.empty((D + 1,) + x.shape)
    H[0] = 1.0
    if D >= 1:
        H[1] = x
    for k in range(1, D):
        H[k + 1] = (x * H[k] - math.sqrt(k) * H[k - 1]) / math.sqrt(k + 1)
    return H


@functools.lru_cache(maxsize=16)
def _shared_rule(kinks: tuple, P: int, D: int):
    """Nodes x, weights w (standard normal density included) and h_k(x) for kinks at 0 only."""
    x, w = gauss1d_nodes(np.ones(1), kinks, panels=P)
    x, w = x[0], w[0]
    H = _hermite_matrix(x, D)
    for arr in (x, w, H):
        arr.setflags(write=False)
    return x, w, H


@functools.lru_cache(maxsize=16)
def _shared_rule_device(kinks: tuple, P: int, D: int):
    """:func:`_shared_rule` as float64 device arrays (H is up to 8 MB: transferred once, not at every layer)."""
    with x64():
        return tuple(jax.device_put(a) for a in _shared_rule(kinks, P, D))


_P_BUCKETS = (24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4000)


def _panels(K: np.ndarray, D: int) -> int:
    """Panels of the coefficient rule, rounded up to a bucket (few jit shapes; more panels = more accurate)."""
    kmax = float(np.sqrt(np.max(K))) if K.size else 1.0
    P = int(min(max(24, np.ceil(24.0 * kmax), np.ceil(3.0 * math.sqrt(D))), 4000))
    return next(b for b in _P_BUCKETS if b >= P)


@functools.partial(jax.jit, static_argnames=("act", "ds"))
def _coef_gemm(act, ds, sq, x, w, H):
    """For each d in ``ds``: a = (σ^{(d)}(√K x) w) h(x)ᵀ (M, D+1) and s2 = σ^{(d)}(√K x)² · w (M,), fused in XLA."""
    z = sq[:, None] * x[None, :]
    out = []
    for d in ds:
        f = act.derivative(d)(z) if d else act.fn(z)
        out.append((jnp.dot(f * w[None, :], H.T, precision="highest"), jnp.dot(f * f, w, precision="highest")))
    return tuple(out)


def _coefficients_shared(act, ds: tuple, Kp: np.ndarray, D: int, kinks: tuple) -> dict:
    """Coefficients for every d in ``ds`` at once when the nodes in x = z/√K are shared (kinks at 0 only)."""
    P = _panels(Kp, D)
    M = Kp.size
    Mp = max(8, 1 << int(math.ceil(math.log2(M))))  # bucketed batch (few jit shapes); padded rows K = 0
    sq = np.zeros(Mp)
    sq[:M] = np.sqrt(Kp)
    with x64():
        res = _coef_gemm(act, ds, jax.device_put(sq), *_shared_rule_device(kinks, P, D))
        return {d: (np.asarray(a)[:M], np.asarray(s2)[:M]) for d, (a, s2) in zip(ds, res, strict=True)}


def hermite_coefficients(act, d: int, K, D: int):
    """(a, s2): a (M, D+1) = E[σ^{(d)}(√K x) h_k(x)] and s2 (M,) = ⟨(σ^{(d)})²⟩_K, for K (M,) ≥ 0."""
    return _coefficients(act, (d,), K, D)[d]


def _coefficients(act, ds: tuple, K, D: int) -> dict:
    """{d: (a, s2)} of :func:`hermite_coefficients` for several derivative orders, sharing the nodes."""
    K = np.asarray(K, dtype=np.float64).ravel()
    out = {}
    pos = K > 0
    for d in ds:
        a = np.zeros((K.size, D + 1))
        s2 = np.zeros(K.size)
        if not pos.all():  # σ^{(d)}(0) only where needed: in a fresh process each order is a compilation
            f0 = float(act.numpy(np.zeros(1), d)[0])
            a[~pos, 0] = f0
            s2[~pos] = f0 * f0
        out[d] = (a, s2)
    if not np.any(pos):
        return out
    Kp = K[pos]
    kinks = act.breakpoints
    if all(c == 0.0 for c in kinks):
        # kinks only at 0 (or none): the nodes in x = z/√K are shared by every K
        for d, (ap, s2p) in _coefficients_shared(act, tuple(ds), Kp, D, kinks).items():
            out[d][0][pos] = ap
            out[d][1][pos] = s2p
        return out
    P = _panels(Kp, D)
    for d in ds:
        a, s2 = out[d]
        _coefficients_general(act, d, K, pos, kinks, P, D, a, s2)
    return out


def _coefficients_general(act, d, K, pos, kinks, P, D, a, s2):
    """Per-K nodes (kinks away from 0 move with √K), in chunks; fills a and s2 in place."""
    idx = np.nonzero(pos)[0]
    for s in range(0, idx.size, _CHUNK):
        ids = idx[s : s + _CHUNK]
        z, w = gauss1d_nodes(K[ids], kinks, panels=P)
        x = z / np.sqrt(K[ids])[:, None]
        f = act.numpy(z, d)
        H = _hermite_matrix(x, D)  # (D+1, m, Q)
        a[ids] = np.einsum("mq,kmq->mk", f * w, H)
        s2[ids] = np.sum(f * f * w, axis=1)


def _tails(a: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """t(D) = Σ_{k>D} a_k² for D = 0..Dmax (Parseval residual beyond Dmax included), (M, Dmax+1)."""
    sq = a * a
    rev = np.cumsum(sq[:, ::-1], axis=1)[:, ::-1]  # Σ_{k>=D}
    beyond = np.maximum(s2 - rev[:, 0], 0.0)
    t = np.concatenate([rev[:, 1:], np.zeros((a.shape[0], 1))], axis=1)
    return t + beyond[:, None]




def _rho(Kaa, Kbb, Kab, same):
    """ρ = K_αβ/√(K_αα K_ββ), clipped to [−1, 1]; 0 where a variance vanishes and, if ``same``, on the diagonal."""
    den = jnp.sqrt(Kaa[:, None] * Kbb[None, :])
    rho = jnp.clip(jnp.where(den > 0, Kab / jnp.where(den > 0, den, 1.0), 0.0), -1.0, 1.0)
    if same:
        n = rho.shape[0]
        rho = jnp.where(jnp.arange(n)[:, None] == jnp.arange(n)[None, :], 0.0, rho)
    return rho


def horner_sum(Kaa, Kbb, Kab, A, B, same: bool, n_blocks=None, unit: int = _U):
    """Σ_k A[m,k,α] B[m,k,β] ρ^k for every map m (traceable JAX; call it inside a jit).

    A (maps, T, N), B (maps, T, N2), T a multiple of ``unit`` (Horner steps unrolled per loop
    iteration, fused by XLA into one pass). ``n_blocks`` (may be traced): only the first
    unit·n_blocks coefficients enter (default all), so one compiled shape serves every degree < T.
    """
    rho = _rho(Kaa, Kbb, Kab, same)
    n_maps, T = A.shape[0], A.shape[1]
    nb = T // unit if n_blocks is None else n_blocks

    def block(i, acc):
        start = (nb - 1 - i) * unit
        Ab = jax.lax.dynamic_slice_in_dim(A, start, unit, axis=1)
        Bb = jax.lax.dynamic_slice_in_dim(B, start, unit, axis=1)
        out = []
        for m in range(n_maps):
            s = acc[m]
            for k in range(unit - 1, -1, -1):
                s = s * rho + Ab[m, k][:, None] * Bb[m, k][None, :]
            out.append(s)
        return tuple(out)

    init = tuple(jnp.zeros_like(rho) for _ in range(n_maps))
    return jax.lax.fori_loop(0, nb, block, init)


@functools.partial(jax.jit, static_argnames=("same",))
def _horner(Kaa, Kbb, Kab, A, B, same):
    """Jitted :func:`horner_sum` over all of A's coefficients."""
    return horner_sum(Kaa, Kbb, Kab, A, B, same)


def _degree(tA, sA, tB, sB, rho_max, rtol):
    """Smallest bucketed D with √(max τ_A(D) max τ_B(D)) ρ_max^{D+1} ≤ rtol, or None."""
    Dmax = tA.shape[1] - 1
    ta = np.max(tA / np.maximum(sA, 1e-300)[:, None], axis=0)
    tb = np.max(tB / np.maximum(sB, 1e-300)[:, None], axis=0)
    for D in _DEGREES:
        if D > Dmax:
            break
        if math.sqrt(ta[D] * tb[D]) * rho_max ** (D + 1) <= rtol:
            return D
    return None


def _probe_dmax(act, ds, Ks, rho_max, rtol):
    """Degree cap from the largest variances (slowest-decaying coefficients), before the full GEMM."""
    if Ks.size == 0:
        return _DEGREES[0]
    probe = np.unique(np.sort(Ks)[-4:])
    need = _DEGREES[0]
    for a, s2 in _coefficients(act, ds, probe, _DEGREES[-1]).values():
        t = _tails(a, s2)
        D = _degree(t, s2, t, s2, rho_max, rtol)
        need = max(need, D if D is not None else _DEGREES[-1])
    return next(D for D in _COEF_LENGTHS if D >= min(need + 16, _DEGREES[-1]))


# Degrees at which coefficients are computed (the series degree itself is still the smallest of _DEGREES
# meeting rtol): four lengths bound the compiled shapes of the coefficient GEMM (each compile costs ~0.3 s).
_COEF_LENGTHS = (63, 127, 255, _DEGREES[-1])


def rho_max_of(Kaa, Kbb, Kab, same: bool) -> float:
    """max |ρ_αβ| over the pairs (off-diagonal if ``same``); 0 for an empty block."""
    if np.size(Kab) == 0:
        return 0.0
    # NumPy, not a jitted reduction: called once per recursion (its compilation cost more than the pass)
    Kab = np.abs(np.asarray(Kab, dtype=np.float64))
    den = np.sqrt(np.outer(np.asarray(Kaa, dtype=np.float64), np.asarray(Kbb, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(den > 0, Kab / den, 0.0)
    if same:
        np.fill_diagonal(rho, 0.0)
    return float(min(np.max(rho), 1.0))


def series_plan(act, pairs, Kaa, Kbb, rho_max: float, rtol: float = 1e-12):
    """Coefficients and degree of the Mehler series for every map in ``pairs``.

    Returns (A, B, Ds, coef, tails): A (maps, D+1, N) and B (maps, D+1, N2) the coefficient
    stacks for :func:`_horner` at the common degree D; Ds the per-map degree meeting rtol (None
    where even the largest degree fails); coef[("a"|"b", d)] = (a, s2) and their tails.
    """
    Kaa = np.asarray(Kaa, dtype=np.float64)
    Kbb = np.asarray(Kbb, dtype=np.float64)
    shared = Kaa.shape == Kbb.shape and np.array_equal(Kaa, Kbb)
    ds = tuple(sorted({d for p in pairs for d in p}))
    first = _probe_dmax(act, ds, np.concatenate([Kaa, Kbb]), rho_max, rtol)
    for Dmax in dict.fromkeys((first, _DEGREES[-1])):
        ca = _coefficients(act, ds, Kaa, Dmax)
        cb = ca if shared else _coefficients(act, ds, Kbb, Dmax)
        coef = {("a", d): ca[d] for d in ds} | {("b", d): cb[d] for d in ds}
        tails = {key: _tails(*val) for key, val in coef.items()}
        Ds = [
            _degree(tails[("a", da)], coef[("a", da)][1], tails[("b", db)], coef[("b", db)][1], rho_max, rtol)
            for da, db in pairs
        ]
        if all(D is not None for D in Ds):
            break
    D = max((Dd if Dd is not None else Dmax) for Dd in Ds)
    A = np.stack([coef[("a", da)][0][:, : D + 1].T for da, _ in pairs])
    B = np.stack([coef[("b", db)][0][:, : D + 1].T for _, db in pairs])
    return A, B, Ds, coef, tails


def mehler_two_point(act, pairs, Kaa, Kbb, Kab, *, same: bool = False, rtol: float = 1e-12):
    """⟨σ^{(da)}(z_α) σ^{(db)}(z_β)⟩ for every (da, db) in ``pairs`` by the Mehler series.

    ``Kab`` (N, N2) is the cross covariance, ``Kaa``/``Kbb`` the variances; with ``same`` the
    diagonal is skipped (the caller sets it exactly). Returns (list of (N, N2) arrays, bad, diag)
    where ``bad`` flags entries whose truncation bound exceeds rtol (for the caller's fallback)
    and ``diag[(d, d)]`` = ⟨(σ^{(d)})²⟩ at K_aa (the exact 1-D integrals, a by-product).
    """
    Kaa = np.asarray(Kaa, dtype=np.float64)
    Kbb = np.asarray(Kbb, dtype=np.float64)
    rho_max = rho_max_of(Kaa, Kbb, Kab, same)
    A, B, Ds, coef, tails = series_plan(act, pairs, Kaa, Kbb, rho_max, rtol)
    D = A.shape[1] - 1
    with x64():
        jKaa, jKbb, jKab = jax.device_put(Kaa), jax.device_put(Kbb), jax.device_put(Kab)
        outs = _horner(jKaa, jKbb, jKab, jax.device_put(A), jax.device_put(B), same)
        outs = [np.array(o) for o in outs]
        rho = np.asarray(_rho(jKaa, jKbb, jKab, same)) if any(Dd is None for Dd in Ds) else None
    bad = np.zeros(np.shape(Kab), dtype=bool)
    for (da, db), Dd in zip(pairs, Ds, strict=True):
        if Dd is None and rho is not None:
            tA, sA = tails[("a", da)][:, D], coef[("a", da)][1]
            tB, sB = tails[("b", db)][:, D], coef[("b", db)][1]
            bound = np.sqrt(np.outer(tA, tB)) * np.abs(rho) ** (D + 1)
            bad |= bound > rtol * np.sqrt(np.outer(sA, sB))
    diag = {(d, d): coef[("a", d)][1] for d in {d for p in pairs for d in p}}
    return outs, bad, diag
