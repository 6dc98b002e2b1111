"""Infinite-width kernel K^{(ℓ)} (4.118) and frozen NTK Θ^{(ℓ)} (9.5), for many inputs at once.

    K^{(1)}_{αβ}   = C_b^{(1)} + C_W^{(1)} (1/n_0) Σ_i x_{i;α} x_{i;β}                       (4.8), (5.2)
    K^{(ℓ+1)}_{αβ} = C_b^{(ℓ+1)} + C_W^{(ℓ+1)} ⟨σ_α σ_β⟩_{K^{(ℓ)}}                            (4.118)
    Θ^{(1)}_{αβ}   = λ_b^{(1)} + λ_W^{(1)} (1/n_0) Σ_i x_{i;α} x_{i;β}                       (8.23), (9.5)
    Θ^{(ℓ+1)}_{αβ} = λ_b^{(ℓ+1)} + λ_W^{(ℓ+1)} ⟨σ_α σ_β⟩_{K^{(ℓ)}}
                     + C_W^{(ℓ+1)} ⟨σ'_α σ'_β⟩_{K^{(ℓ)}} Θ^{(ℓ)}_{αβ}                          (8.63) → (9.5)

(The book prints (9.5) with a layer-independent C_W; with per-layer hyperparameters the factor is
C_W^{(ℓ+1)}, as in the NTK-mean recursion (8.63) it is the leading piece of.)
Layer ℓ is stored at index ℓ − 1. The two-point maps come from the expectation engine
(closed forms, else the Mehler series) and are float64.

For a Gram between two input sets X (N) and X2 (N2) only the cross block is propagated, with the
diagonals K_αα of both sets carried alongside (they fix the variances in every ⟨·⟩).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..errors import DeepEFTInputError
from ..gaussian import closed_forms, mehler
from ..gaussian.engine import Factor, one_point_core, two_point_core
from ..network import MLP
from .criticality import warn_on_exponential_kernel

__all__ = ["kernel", "frozen_ntk", "kernel_and_ntk"]


def _first_layer_gram(X, X2):
    n0 = X.shape[1]
    return (X @ X2.T) / n0, np.einsum("ai,ai->a", X, X) / n0, np.einsum("ai,ai->a", X2, X2) / n0


def _check(net, X, X2):
    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"net must be a deepeft.MLP, got {type(net).__name__}; build one with de.MLP(...).")
    X = net.check_inputs(X, "X")
    X2 = None if X2 is None else net.check_inputs(X2, "X2")
    return X, X2


def _finish(ss, dd, T, V, h, want_rho):
    """Stacked (K⁺, Θ⁺): K⁺ = C_b + C_W⟨σσ⟩ (4.118), Θ⁺ = λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩Θ (9.5), and max |ρ|
    of K⁺ off the diagonal (for the next layer's series degree; 0 unless ``want_rho``).

    ``h`` = (C_b, C_W, λ_b, λ_W) of the layer; ``V`` = (K_αα, ⟨σ²⟩, K⁺_αα, ⟨σ'²⟩) stacked (4, N): the
    diagonals are the exact 1-D integrals, K⁺_αα computed in NumPy (bitwise the variance the next
    layer uses). One output array: XLA then fuses the whole update into one pass (two outputs made it
    materialise the shared intermediates).
    """
    cb, cw, lb, lw = h[0], h[1], h[2], h[3]
    dss, dK, ddd = V[1], V[2], V[3]
    n = ss.shape[0]
    eye = jnp.arange(n)[:, None] == jnp.arange(n)[None, :]
    ss = jnp.where(eye, dss[:, None], ss)
    Kn = jnp.where(eye, dK[:, None], cb + cw * ss)
    rmax = 0.0
    if want_rho:
        den = jnp.sqrt(dK[:, None] * dK[None, :])
        rmax = jnp.minimum(jnp.max(jnp.where(eye | (den <= 0), 0.0, jnp.abs(Kn) / jnp.where(den > 0, den, 1.0))), 1.0)
    if T is None:
        return Kn[None], rmax
    dd = jnp.where(eye, ddd[:, None], dd)
    return jnp.stack([Kn, lb + lw * ss + cw * dd * T]), rmax


@functools.partial(jax.jit, static_argnames=("ntk",))
def _mehler_step(V, KT, A, h, ntk):
    """One fused layer update of the stacked (K, Θ) from the Mehler series (Horner, static degree)."""
    maps = mehler._horner(V[0], V[0], KT[0], A, A, True)
    return _finish(maps[0], maps[1] if ntk else None, KT[1] if ntk else None, V, h, True)


# arcsin in float64 for XLA (Cephes asin: rational minimax fits, ≤ 1 ulp from np.arcsin on [−1, 1]);
# XLA's own CPU arcsin goes through atan2 and is ~10× slower, and it dominates the erf/ReLU layer update.
_ASIN_P = (4.253011369004428248960e-3, -6.019598008014123785661e-1, 5.444622390564711410273e0,
           -1.626247967210700244449e1, 1.956261983317594739197e1, -8.198089802484824371615e0)
_ASIN_Q = (1.0, -1.474091372988853791896e1, 7.049610280856842141659e1, -1.471791292232726029859e2,
           1.395105614657485689735e2, -4.918853881490881290097e1)
_ASIN_R = (2.967721961301243206100e-3, -5.634242780008963776856e-1, 6.968710824104713396794e0,
           -2.556901049652824852289e1, 2.853665548261061424989e1)
_ASIN_S = (1.0, -2.194779531642920639778e1, 1.470656354026814941758e2, -3.838770957603691357202e2,
           3.424398657913078477438e2)
_PIO4, _PIO2_LO = 0.78539816339744830962, 6.123233995736765886130e-17


def _horner1(c, x):
    r = c[0]
    for v in c[1:]:
        r = r * x + v
    return r


def _arcsin(x):
    """arcsin x: x + x³P(x²)/Q(x²) for |x| ≤ 0.625, else π/2 − √(2w)(1 + wR(w)/S(w)), w = 1 − |x|."""
    a = jnp.abs(x)
    zz = a * a
    small = a + a * (zz * _horner1(_ASIN_P, zz) / _horner1(_ASIN_Q, zz))
    w = 1.0 - a
    p = w * _horner1(_ASIN_R, w) / _horner1(_ASIN_S, w)
    s = jnp.sqrt(w + w)
    big = ((_PIO4 - s) - (s * p - _PIO2_LO)) + _PIO4
    return jnp.sign(x) * jnp.where(a > 0.625, big, small)


class _JnpFastArcsin:
    """``jax.numpy`` for the closed forms, with the fast float64 :func:`_arcsin`."""

    arcsin = staticmethod(_arcsin)

    def __getattr__(self, name):
        return getattr(jnp, name)


_XP = _JnpFastArcsin()


@functools.partial(jax.jit, static_argnames=("act", "ntk"))
def _closed_step(act, V, KT, h, ntk):
    """One fused layer update of the stacked (K, Θ) from the closed-form two-point maps."""
    Kaa, Kab = V[0], KT[0]
    Kl = [[Kaa[:, None], Kab], [Kab, Kaa[None, :]]]
    cache: dict = {}
    ss = closed_forms.closed_form(act, (Factor((0,)), Factor((0,))), Kl, xp=_XP, cache=cache)
    dd = closed_forms.closed_form(act, (Factor((1,)), Factor((1,))), Kl, xp=_XP, cache=cache) if ntk else None
    ss = jnp.broadcast_to(ss, Kab.shape)
    dd = jnp.broadcast_to(dd, Kab.shape) if ntk else None
    return _finish(ss, dd, KT[1] if ntk else None, V, h, False)


def _fused_mode(act, ntk):
    """"closed" when every map has a closed form, "mehler" when none has, else None (general path)."""
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    closed = [closed_forms.has_closed_form(act, (Factor((a,)), Factor((b,)))) for a, b in pairs]
    return "closed" if all(closed) else ("mehler" if not any(closed) else None)


def _one_point_closed(act, d, Kaa):
    """⟨σ^{(d)}(z)²⟩ for every variance K_αα > 0 from the closed form (what ``one_point_core`` dispatches to)."""
    v = closed_forms.closed_form(act, (Factor((d, d)),), [[Kaa]], xp=np)
    return np.broadcast_to(np.asarray(v, dtype=np.float64), Kaa.shape)


def _fused_layer(act, mode, Kaa, KT, rho_max, h, ntk, rtol):
    """((K⁺, Θ⁺) stacked, max|ρ⁺|) as JAX arrays and the new variances K⁺_αα, for one input set in one
    fused XLA pass; None where the general path is needed (no fused mode, zero variances, entries
    failing the Mehler truncation bound)."""
    if mode is None or np.any(Kaa <= 0):
        return None
    if mode == "closed":
        dss = _one_point_closed(act, 0, Kaa)
        ddd = _one_point_closed(act, 1, Kaa) if ntk else dss
    else:
        pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
        A, B, Ds, coef, _ = mehler.series_plan(act, pairs, Kaa, Kaa, rho_max(), 0.1 * rtol)
        if any(D is None for D in Ds):
            return None
        dss = coef[("a", 0)][1]
        ddd = coef[("a", 1)][1] if ntk else dss
    dK = h[0] + h[1] * dss
    V = jax.device_put(np.stack([Kaa, dss, dK, ddd]))  # one transfer for the per-input vectors
    if mode == "closed":
        return _closed_step(act, V, KT, h, ntk), dK
    return _mehler_step(V, KT, A, h, ntk), dK  # B is A: one input set


def _one_set(args, kwargs) -> bool:
    """No X2: the result holds K^{(ℓ)}_{αα} on its diagonal (what the depth warning tests)."""
    return (args[2] if len(args) > 2 else kwargs.get("X2")) is None


@warn_on_exponential_kernel(lambda KT, a, kw: KT[0] if _one_set(a, kw) else None)
def kernel_and_ntk(net: MLP, X, X2=None, *, ntk: bool = True, rtol: float = 1e-12):
    """(K, Θ): arrays (L, N, N) — or (L, N, N2) for the Gram with X2 — with layer ℓ at index ℓ−1.

    Θ is ``None`` when ``ntk=False``. One pass shares the two-point maps between K and Θ.
    """
    X, X2 = _check(net, X, X2)
    same = X2 is None
    G, da, db = _first_layer_gram(X, X if same else X2)
    p = net.arrays()
    act = net.activation
    L = net.L
    Ks = np.empty((L,) + G.shape)
    Ts = np.empty((L,) + G.shape) if ntk else None
    Kab = p["C_b"][0] + p["C_W"][0] * G  # (4.8)
    Kaa, Kbb = p["C_b"][0] + p["C_W"][0] * da, p["C_b"][0] + p["C_W"][0] * db
    if same:
        G = 0.5 * (G + G.T)  # BLAS need not return an exactly symmetric X Xᵀ
        Kab = p["C_b"][0] + p["C_W"][0] * G
        np.fill_diagonal(Kab, Kaa)
        Kbb = Kaa
    Ks[0] = Kab
    if ntk:
        Ts[0] = p["lambda_b"][0] + p["lambda_W"][0] * G  # Θ^{(1)}
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    if same:
        return _same_recursion(act, p, Ks, Ts, Kaa, pairs, ntk, rtol)
    for l in range(1, L):
        maps = two_point_core(act, Kaa, Kbb, Kab, pairs, same=same, rtol=rtol)
        _update(maps, p, l, Ks, Ts, ntk)
        Kab = Ks[l]
        Kaa = p["C_b"][l] + p["C_W"][l] * one_point_core(act, (0, 0), Kaa, rtol)
        Kbb = p["C_b"][l] + p["C_W"][l] * one_point_core(act, (0, 0), Kbb, rtol)
    return Ks, Ts


def _update(maps, p, l, Ks, Ts, ntk):
    """Ks[l], Ts[l] from the two-point maps of layer l (NumPy, in place)."""
    ss = maps[0]
    Kab = Ks[l]
    np.multiply(ss, p["C_W"][l], out=Kab)
    Kab += p["C_b"][l]  # (4.118)
    if ntk:  # (9.5), in place: Θ⁺ = λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩Θ
        t = Ts[l]
        np.multiply(maps[1], Ts[l - 1], out=t)
        t *= p["C_W"][l]
        ss *= p["lambda_W"][l]
        t += ss
        t += p["lambda_b"][l]


def _same_recursion(act, p, Ks, Ts, Kaa, pairs, ntk, rtol):
    """Layers 2..L for one input set: fused jitted updates, the general engine path where needed."""
    mode = _fused_mode(act, ntk)
    with x64():
        KT = jax.device_put(np.stack([Ks[0], Ts[0]]) if ntk else Ks[:1])
        rmax = None  # max |ρ| of the current layer, computed when the Mehler degree needs it
        for l in range(1, Ks.shape[0]):
            h = np.array([p["C_b"][l], p["C_W"][l], p["lambda_b"][l], p["lambda_W"][l]])

            def rho_max(KT=KT, Kaa=Kaa, rmax=rmax):  # this layer's max |ρ|, only when the series needs it
                return mehler.rho_max_of(Kaa, Kaa, KT[0], True) if rmax is None else float(rmax)

            fused = _fused_layer(act, mode, Kaa, KT, rho_max, h, ntk, rtol)
            if fused is None:
                maps = two_point_core(act, Kaa, Kaa, Ks[l - 1], pairs, same=True, rtol=rtol)
                _update(maps, p, l, Ks, Ts, ntk)
                KT = jax.device_put(np.stack([Ks[l], Ts[l]]) if ntk else Ks[l : l + 1])
                Kaa = np.diagonal(Ks[l]).copy()
                rmax = None
                continue
            (KT, rmax), Kaa = fused
            rmax = rmax if mode == "mehler" else None
            out = np.asarray(KT)
            Ks[l] = out[0]
            if ntk:
                Ts[l] = out[1]
    return Ks, Ts


@warn_on_exponential_kernel(lambda K, a, kw: K if _one_set(a, kw) else None)
def kernel(net: MLP, X, X2=None, *, rtol: float = 1e-12) -> np.ndarray:
    """K^{(ℓ)} for ℓ = 1..L (4.118): shape (L, N, N), or (L, N, N2) between X and X2."""
    return kernel_and_ntk(net, X, X2, ntk=False, rtol=rtol)[0]


@warn_on_exponential_kernel(lambda T, a, kw: None)  # tested on K, by kernel_and_ntk inside
def frozen_ntk(net: MLP, X, X2=None, *, rtol: float = 1e-12) -> np.ndarray:
    """Θ^{(ℓ)} for ℓ = 1..L (9.5): shape (L, N, N), or (L, N, N2) between X and X2."""
    return kernel_and_ntk(net, X, X2, ntk=True, rtol=rtol)[1]
