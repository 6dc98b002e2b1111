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

import numpy as np

from ..errors import DeepEFTInputError
from ..gaussian.engine import one_point_core, two_point_core
from ..network import MLP

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
    for l in range(1, L):
        maps = two_point_core(act, Kaa, Kbb, Kab, pairs, same=same, rtol=rtol)
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
        if same:
            Kaa = Kbb = np.diagonal(Kab).copy()
        else:
            Kaa = p["C_b"][l] + p["C_W"][l] * one_point_core(act, (0, 0), Kaa, rtol)
            Kbb = p["C_b"][l] + p["C_W"][l] * one_point_core(act, (0, 0), Kbb, rtol)
    return Ks, Ts


def kernel(net: MLP, X, X2=None, *, rtol: float = 1e-12) -> np.ndarray:
    """K^{(ℓ)} for ℓ = 1..L (4.118): shape (L, N, N), or (L, N, N2) between X and X2."""
    return kernel_and_ntk(net, X, X2, ntk=False, rtol=rtol)[0]


def frozen_ntk(net: MLP, X, X2=None, *, rtol: float = 1e-12) -> np.ndarray:
    """Θ^{(ℓ)} for ℓ = 1..L (9.5): shape (L, N, N), or (L, N, N2) between X and X2."""
    return kernel_and_ntk(net, X, X2, ntk=True, rtol=rtol)[1]
