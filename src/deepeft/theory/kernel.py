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

Speed. One distinct input (N = 1, or N copies of one row) runs the scanned single-input recursion
(:func:`deepeft.theory.single_input.single_input_recursion`: one jitted ``lax.scan`` over the layers,
10⁴ layers in milliseconds) — the kernel of N identical inputs has every entry equal to K_αα.
Otherwise each layer is one fused XLA update of (K, Θ) from the engine's traceable two-point maps
(closed forms or the Mehler series), with N padded to a few bucket sizes and the series to one
coefficient length, so that a new N or a new series degree reuses the compiled update.
"""

from __future__ import annotations

import functools
import typing
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from .._x64 import x64
from ..errors import DeepEFTWarning
from ..gaussian import engine
from ..network import MLP, check_net
from ..network_residual import ResidualMLP
from .criticality import warn_on_exponential_kernel
from .single_input import single_input

__all__ = ["Kernels", "frozen_ntk", "kernel", "kernel_and_ntk", "kernels"]

SCAN_SINGLE_INPUT = True  # one distinct input → the scanned single-input recursion (tests switch it off)


class Kernels(typing.NamedTuple):
    """K^{(ℓ)} (4.118) and Θ^{(ℓ)} (9.5), arrays (L, N, N) (or (L, N, N2)), layer ℓ at index ℓ − 1.

    A named tuple: ``K, Theta = de.kernels(net, X)`` or ``res.K``, ``res.Theta`` (None without the NTK).
    """

    K: np.ndarray
    Theta: np.ndarray | None


def _first_layer_gram(X, X2):
    n0 = X.shape[1]
    return (X @ X2.T) / n0, np.einsum("ai,ai->a", X, X) / n0, np.einsum("ai,ai->a", X2, X2) / n0


def _check(net, X, X2) -> tuple[np.ndarray, np.ndarray | None]:
    net = check_net(net)
    X = net.check_inputs(X, "X")
    X2 = None if X2 is None else net.check_inputs(X2, "X2")
    return X, X2


def _bucket(n: int) -> int:
    """Padded size for n inputs: 16, then the next of 2^k·{1, 5/4, 3/2, 7/4} (≤ 1.25² the work of n)."""
    if n <= 16:
        return 16
    e = 1 << (n.bit_length() - 1)
    return next(b for b in (e, e * 5 // 4, e * 3 // 2, e * 7 // 4, 2 * e) if b >= n)


def _finish(ss, dd, T, V, h, n_valid, want_rho):
    """Stacked (K⁺, Θ⁺): K⁺ = C_b + C_W⟨σσ⟩ (4.118), Θ⁺ = λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩Θ (9.5), and max |ρ|
    of K⁺ over the first ``n_valid`` inputs off the diagonal (for the next layer's series degree; 0 unless
    ``want_rho``).

    ``h`` = (C_b, C_W, λ_b, λ_W) of the layer; ``V`` = (K_αα, ⟨σ²⟩, K⁺_αα, ⟨σ'²⟩) stacked (4, N): the
    diagonals are the exact 1-D integrals, K⁺_αα computed in NumPy (bitwise the variance the next
    layer uses). One output array: XLA then fuses the whole update into one pass (two outputs made it
    materialise the shared intermediates). Rows ≥ ``n_valid`` are padding (independent inputs).
    """
    cb, cw, lb, lw = h[0], h[1], h[2], h[3]
    dss, dK, ddd = V[1], V[2], V[3]
    n = ss.shape[0]
    idx = jnp.arange(n)
    eye = idx[:, None] == idx[None, :]
    ss = jnp.where(eye, dss[:, None], ss)
    Kn = jnp.where(eye, dK[:, None], cb + cw * ss)
    rmax: Any = 0.0
    if want_rho:
        pad = (idx[:, None] >= n_valid) | (idx[None, :] >= n_valid)
        den = jnp.sqrt(dK[:, None] * dK[None, :])
        skip = eye | pad | (den <= 0)
        rmax = jnp.minimum(jnp.max(jnp.where(skip, 0.0, jnp.abs(Kn) / jnp.where(den > 0, den, 1.0))), 1.0)
    if T is None:
        return Kn[None], rmax
    dd = jnp.where(eye, ddd[:, None], dd)
    return jnp.stack([Kn, lb + lw * ss + cw * dd * T]), rmax


@functools.partial(jax.jit, static_argnames=("ntk",))
def _mehler_step(V, KT, A, n_blocks, h, n_valid, ntk):
    """One fused layer update of the stacked (K, Θ) from the Mehler series (one compiled shape per N bucket)."""
    maps = engine.mehler_two_point_jax(V[0], KT[0], A, n_blocks)
    return _finish(maps[0], maps[1] if ntk else None, KT[1] if ntk else None, V, h, n_valid, True)


@functools.partial(jax.jit, static_argnames=("act", "ntk"))
def _closed_step(act, V, KT, h, ntk):
    """One fused layer update of the stacked (K, Θ) from the closed-form two-point maps."""
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    maps = engine.closed_two_point_jax(act, pairs, V[0], V[0], KT[0])
    return _finish(maps[0], maps[1] if ntk else None, KT[1] if ntk else None, V, h, 0, False)


def _fused_layer(act, mode, Kaa, KT, rho_max, h, ntk, n_valid, rtol):
    """((K⁺, Θ⁺) stacked, max|ρ⁺|) as JAX arrays and the new variances K⁺_αα, for one (padded) input set
    in one fused XLA pass; None where the general path is needed (no fused mode, zero variances, entries
    failing the Mehler truncation bound)."""
    if mode is None or np.any(Kaa <= 0):
        return None
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    if mode == "closed":
        dss = engine.one_point_core(act, (0, 0), Kaa, rtol)
        ddd = engine.one_point_core(act, (1, 1), Kaa, rtol) if ntk else dss
    else:
        plan = engine.mehler_plan(act, pairs, Kaa, rho_max(), 0.1 * rtol)
        if plan is None:
            return None
        dss = plan.diag[(0, 0)]
        ddd = plan.diag[(1, 1)] if ntk else dss
    dK = h[0] + h[1] * dss
    V = jax.device_put(np.stack([Kaa, dss, dK, ddd]))  # one transfer for the per-input vectors
    if mode == "closed":
        return _closed_step(act, V, KT, h, ntk), dK
    assert plan is not None  # mode "mehler"
    step = _mehler_step(V, KT, jax.device_put(plan.A), np.int32(plan.n_blocks), h, np.int32(n_valid), ntk)
    return step, dK


def _single_input_kernels(net: MLP, X: np.ndarray, ntk: bool):
    """(K, Θ) of N copies of one input from the scanned single-input recursion (5.108), and
    Θ^{(ℓ+1)} = λ_b + λ_W g(K^{(ℓ)}) + χ_⊥ Θ^{(ℓ)} (9.5); None where that recursion does not apply
    (zero first-layer kernel, a jump with the NTK, or a kernel beyond its resolved range)."""
    act = net.activation
    p = net.arrays()
    N, n0 = X.shape
    norm = float(X[0] @ X[0]) / n0
    K1 = p["C_b"][0] + p["C_W"][0] * norm
    if K1 <= 0 or (ntk and act.jumps):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = single_input(net, norm=norm)
    for w in caught:  # the general path decides (and warns) where the scanned recursion is out of range
        if issubclass(w.category, DeepEFTWarning):
            return None
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    K = rec.K
    if not np.all(np.isfinite(K) & (K > 0)):
        return None
    T = None
    if ntk:
        T = np.empty(net.L)
        T[0] = p["lambda_b"][0] + p["lambda_W"][0] * norm  # Θ^{(1)}
        lb, lw, g, chi = p["lambda_b"], p["lambda_W"], rec.g, rec.chi_perp
        for l in range(1, net.L):
            T[l] = lb[l] + lw[l] * g[l - 1] + chi[l - 1] * T[l - 1]
        T = np.broadcast_to(T[:, None, None], (net.L, N, N)).copy()
    return Kernels(np.broadcast_to(K[:, None, None], (net.L, N, N)).copy(), T)


def _one_set(args, kwargs) -> bool:
    """No X2: the result holds K^{(ℓ)}_{αα} on its diagonal (what the depth warning tests)."""
    return (args[2] if len(args) > 2 else kwargs.get("X2")) is None


@warn_on_exponential_kernel(lambda KT, a, kw: KT[0] if _one_set(a, kw) else None)
def kernels(
    net: MLP | ResidualMLP, X: ArrayLike, X2: ArrayLike | None = None, *, ntk: bool = True, rtol: float = 1e-12
) -> Kernels:
    """K^{(ℓ)} (4.118) and Θ^{(ℓ)} (9.5) in one pass (the two-point maps are shared): a :class:`Kernels`
    named tuple of arrays (L, N, N) — or (L, N, N2) for the Gram between X and X2 — layer ℓ at index ℓ−1.

    ``Theta`` is ``None`` when ``ntk=False`` (then only K is computed, as :func:`kernel`).
    Cost: one fused XLA pass per layer over the N×N array; one distinct input runs the scanned
    single-input recursion instead (any depth in milliseconds).
    """
    if isinstance(net, ResidualMLP):  # (B.11) and its NTK: deepeft.theory.residual_recursions
        from .residual_recursions import residual_kernels

        return residual_kernels(net, X, X2, ntk=ntk, rtol=rtol)
    X, X2 = _check(net, X, X2)
    same = X2 is None
    if same and SCAN_SINGLE_INPUT and np.all(X == X[0]):
        out = _single_input_kernels(net, X, ntk)
        if out is not None:
            return out
    G, da, db = _first_layer_gram(X, X if same else X2)
    p = net.arrays()
    act = net.activation
    L = net.L
    Ks = np.empty((L,) + G.shape)
    Ts: np.ndarray | None = np.empty((L,) + G.shape) if ntk else None
    Kab = p["C_b"][0] + p["C_W"][0] * G  # (4.8)
    Kaa, Kbb = p["C_b"][0] + p["C_W"][0] * da, p["C_b"][0] + p["C_W"][0] * db
    if same:
        G = 0.5 * (G + G.T)  # BLAS need not return an exactly symmetric X Xᵀ
        Kab = p["C_b"][0] + p["C_W"][0] * G
        np.fill_diagonal(Kab, Kaa)
        Kbb = Kaa
    Ks[0] = Kab
    if Ts is not None:
        Ts[0] = p["lambda_b"][0] + p["lambda_W"][0] * G  # Θ^{(1)}
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    if same:
        _same_recursion(act, p, Ks, Ts, Kaa, pairs, ntk, rtol)
        return Kernels(Ks, Ts)
    for l in range(1, L):
        maps = engine.two_point_core(act, Kaa, Kbb, Kab, pairs, same=same, rtol=rtol)
        _update(maps, p, l, Ks, Ts, ntk)
        Kab = Ks[l]
        Kaa = p["C_b"][l] + p["C_W"][l] * engine.one_point_core(act, (0, 0), Kaa, rtol)
        Kbb = p["C_b"][l] + p["C_W"][l] * engine.one_point_core(act, (0, 0), Kbb, rtol)
    return Kernels(Ks, Ts)


def kernel_and_ntk(
    net: MLP, X: ArrayLike, X2: ArrayLike | None = None, *, ntk: bool = True, rtol: float = 1e-12
) -> Kernels:
    """Old name of :func:`kernels` (same arguments and result)."""
    return kernels(net, X, X2, ntk=ntk, rtol=rtol)


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


def _padded(Ks, Ts, l, Kaa, n_pad, ntk):
    """Layer l's (K, Θ) stacked and padded to n_pad inputs (extra inputs: variance K_00, uncorrelated)."""
    N = Kaa.size
    KT = np.zeros((2 if ntk else 1, n_pad, n_pad))
    KT[0, :N, :N] = Ks[l]
    if ntk:
        KT[1, :N, :N] = Ts[l]
    pad_var = np.concatenate([Kaa, np.full(n_pad - N, Kaa[0])])
    KT[0, np.arange(N, n_pad), np.arange(N, n_pad)] = pad_var[N:]
    return jax.device_put(KT), pad_var


def _same_recursion(act, p, Ks, Ts, Kaa, pairs, ntk, rtol):
    """Layers 2..L for one input set: fused jitted updates, the general engine path where needed."""
    mode = engine.fused_mode(act, pairs)
    N = Kaa.size
    n_pad = _bucket(N)
    with x64():
        KT, Kpad = _padded(Ks, Ts, 0, Kaa, n_pad, ntk)
        rmax = None  # max |ρ| of the current layer, computed when the Mehler degree needs it
        for l in range(1, Ks.shape[0]):
            h = np.array([p["C_b"][l], p["C_W"][l], p["lambda_b"][l], p["lambda_W"][l]])

            def rho_max(l=l, Kaa=Kaa, rmax=rmax):  # this layer's max |ρ|, only when the series needs it
                return engine.rho_max(Kaa, Kaa, Ks[l - 1], True) if rmax is None else float(rmax)

            fused = _fused_layer(act, mode, Kpad, KT, rho_max, h, ntk, N, rtol)
            if fused is None:
                maps = engine.two_point_core(act, Kaa, Kaa, Ks[l - 1], pairs, same=True, rtol=rtol)
                _update(maps, p, l, Ks, Ts, ntk)
                Kaa = np.diagonal(Ks[l]).copy()
                KT, Kpad = _padded(Ks, Ts, l, Kaa, n_pad, ntk)
                rmax = None
                continue
            (KT, rmax), Kpad = fused
            Kaa = Kpad[:N]
            rmax = rmax if mode == "mehler" else None
            out = np.asarray(KT)
            Ks[l] = out[0, :N, :N]
            if ntk:
                Ts[l] = out[1, :N, :N]
    return Ks, Ts


@warn_on_exponential_kernel(lambda K, a, kw: K if _one_set(a, kw) else None)
def kernel(net: MLP | ResidualMLP, X: ArrayLike, X2: ArrayLike | None = None, *, rtol: float = 1e-12) -> np.ndarray:
    """K^{(ℓ)} for ℓ = 1..L (4.118): shape (L, N, N), or (L, N, N2) between X and X2."""
    return kernels(net, X, X2, ntk=False, rtol=rtol).K


@warn_on_exponential_kernel(lambda T, a, kw: None)  # tested on K, by kernels inside
def frozen_ntk(net: MLP | ResidualMLP, X: ArrayLike, X2: ArrayLike | None = None, *, rtol: float = 1e-12) -> np.ndarray:
    """Θ^{(ℓ)} for ℓ = 1..L (9.5): shape (L, N, N), or (L, N, N2) between X and X2."""
    T = kernels(net, X, X2, ntk=True, rtol=rtol).Theta
    assert T is not None  # ntk=True
    return T
