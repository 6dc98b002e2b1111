"""Infinite-width theory of graph-convolution networks over nodes: K, Θ, V and oversmoothing [derived].

The nodes α of the graph play the role of the book's inputs; Â (N × N) mixes them after every layer.
Conditional on layer ℓ, z^{(ℓ+1)} = Â σ(z^{(ℓ)}) W + b is Gaussian in (W, b) with the stochastic metric
Ĝ⁺ = C_b + Â [C_W (1/n_ℓ) Σ_j σ_j σ_jᵀ] Âᵀ — the MLP's (4.70) sandwiched by Â. Hence (docs/gnn.md):

    K^{(1)}   = C_b + C_W Â (X Xᵀ/n_0) Âᵀ                                                (4.8) with Â
    K^{(ℓ+1)} = C_b + C_W Â ⟨σσ⟩_{K^{(ℓ)}} Âᵀ + γ² K^{(ℓ)}                                (4.118), (B.11) with Â
    Θ^{(1)}   = λ_b + λ_W Â (X Xᵀ/n_0) Âᵀ
    Θ^{(ℓ+1)} = λ_b + λ_W Â⟨σσ⟩Âᵀ + C_W Â(⟨σ'σ'⟩ ∘ Θ^{(ℓ)})Âᵀ + γ² Θ^{(ℓ)}                 (9.5) with Â
    V^{(ℓ+1)} = (Â⊗Â⊗Â⊗Â) · [C_W²(⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩) + C_W² (n_ℓ/n_{ℓ−1}) Σ J J V^{(ℓ)}]    (4.119) with Â (γ = 0)

(γ on hidden-to-hidden layers only, see :class:`deepeft.graph.GCN`). With Â = I and γ = 0 every line is the
MLP's. Every Gaussian expectation comes from the engine (:mod:`deepeft.gaussian.engine`) and, for V, from
the MLP vertex's public building blocks (:func:`~deepeft.theory.vertex.pair_derivatives`, ``four_sigma``,
``jacobian_contract``).

Oversmoothing. Near the collapsed state (all nodes perfectly correlated, variance k) of a row-stochastic Â
(Â1 = 1, e.g. ``kind="rw"``) the distances Δ_αβ = E[(z_α − z_β)²] obey, to linear order,
Δ⁺ = dist(χ_⊥ Â D Âᵀ) + γ²Δ with χ_⊥ = C_W⟨σ'σ'⟩_k (5.51) (the perpendicular susceptibility,
δδK_[2]⁺ = χ_⊥δδK_[2] (5.48)) and D the centred kernel, so 1 − ρ decays per layer by

    r^{(ℓ)} = (χ_⊥^{(ℓ)} λ₂² + γ²) · k^{(ℓ)}/k^{(ℓ+1)},     k⁺ = C_b + C_W⟨σ²⟩_k + γ² k       [derived]

with λ₂ the second-largest |eigenvalue| of Â (the spectral gap 1 − λ₂): collapse is exponential with depth
scale ξ = −1/ln r, absent when r > 1, and power-law on the critical line r = 1.

References:
  Kipf & Welling, Semi-supervised classification with graph convolutional networks (arXiv:1609.02907).
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (arXiv:2106.10165), (4.118), (4.119), (9.5), (B.11).
  Epping, René, Helias & Schaub, Graph neural networks do not always oversmooth (NeurIPS 2024).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from .. import dispatch
from .._x64 import x64
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..gaussian import engine
from ..graph import GCN
from .kernel import Kernels
from .vertex import VertexFlow, four_sigma, jacobian_contract, pair_derivatives

__all__ = [
    "CollapseRate",
    "check_gcn",
    "collapse_rate",
    "mean_decorrelation",
    "node_four_point_vertex",
    "node_kernels",
    "node_vertex_flow",
    "rank_one_distance",
    "spectral_gap",
]

RHO_SINGULAR = 1.0 - 1e-12  # |ρ| beyond this: a 2×2 block is singular (the vertex derivatives are undefined)


def check_gcn(net) -> GCN:
    if not isinstance(net, GCN):
        raise DeepEFTInputError(f"net must be a deepeft.GCN, got {type(net).__name__}; build one with de.GCN(...).")
    return net


def _first_layer(net: GCN, X: np.ndarray) -> np.ndarray:
    """Â (X Xᵀ/n_0) Âᵀ, symmetrised (the layer-1 Gram over nodes)."""
    G = net.mix((X @ X.T) / X.shape[1])
    return 0.5 * (G + G.T)


def node_kernels(net: GCN, X: ArrayLike, X2=None, *, ntk: bool = True, rtol: float = 1e-12) -> Kernels:
    """K^{(ℓ)} and Θ^{(ℓ)} over the nodes, arrays (L, N_nodes, N_nodes), layer ℓ at index ℓ − 1 (module doc).

    ``Theta`` is None when ``ntk=False``. One engine call (closed form or Mehler series) per layer for the
    two-point maps, then two products with Â (sparse when Â is).
    """
    net = check_gcn(net)
    if X2 is not None:
        raise DeepEFTInputError(
            "a GCN's kernel is over the nodes of its one graph: pass the node features X only (no X2); for a "
            "different graph build another de.GCN."
        )
    X = net.check_inputs(X)
    p = net.arrays()
    act = net.activation
    L, N = net.L, net.N_nodes
    G = _first_layer(net, X)
    Ks = np.empty((L, N, N))
    Ts = np.empty((L, N, N)) if ntk else None
    Ks[0] = p["C_b"][0] + p["C_W"][0] * G
    if Ts is not None:
        Ts[0] = p["lambda_b"][0] + p["lambda_W"][0] * G
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    fused = engine.fused_mode(act, pairs) == "closed"
    for l in range(1, L):
        K = Ks[l - 1]
        d = np.diagonal(K).copy()
        h = np.array([p["C_b"][l], p["C_W"][l], p["lambda_b"][l], p["lambda_W"][l], p["gamma"][l] ** 2])
        T = None if Ts is None else Ts[l - 1]
        if fused and np.all(d > 0):  # closed-form maps in one jitted pass (exact 1-D integrals on the diagonal)
            diag = np.stack([engine.one_point_core(act, pr, d, rtol) for pr in pairs])
            with x64():
                pre = list(np.asarray(_closed_maps(act, ntk)(K, T, d, diag, h)))
        else:
            maps = engine.two_point_core(act, d, d, K, pairs, same=True, rtol=rtol)
            pre = [maps[0]] if T is None else [maps[0], h[3] * maps[0] + h[1] * maps[1] * T]
        _mix_into(net, pre[0], Ks[l], h[1], h[0], h[4], K)  # K⁺ = C_b + C_W Â⟨σσ⟩Âᵀ + γ²K
        if Ts is not None and T is not None:
            _mix_into(net, pre[1], Ts[l], 1.0, h[2], h[4], T)  # Θ⁺ = λ_b + Â(λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩Θ)Âᵀ + γ²Θ
    return Kernels(Ks, Ts)


def _mix_into(net: GCN, M, out: np.ndarray, scale: float, shift: float, g2: float, prev: np.ndarray) -> None:
    """out ← shift + scale·Â M Âᵀ + g2·prev for a symmetric M, symmetrised, with few N×N temporaries."""
    R = net.propagate(np.asarray(M))  # Â M
    R = net.propagate(np.ascontiguousarray(R.T))  # Â (ÂM)ᵀ = Â M Âᵀ (M symmetric)
    np.add(R, R.T, out=out)  # symmetrised (rounding), in one pass
    out *= 0.5 * scale
    out += shift
    if g2:
        out += g2 * prev


@functools.lru_cache(maxsize=32)
def _closed_maps(act, ntk: bool):
    """jit: ⟨σσ⟩_K and, with the NTK, λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩∘Θ (the matrices Â mixes), stacked; closed forms off the
    diagonal, the exact 1-D integrals ``diag`` on it; ``h`` = (C_b, C_W, λ_b, λ_W, γ²)."""
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)

    def maps(K, T, d, diag, h):
        eye = jnp.eye(K.shape[0], dtype=bool)
        m = engine.closed_two_point_jax(act, pairs, d, d, K)
        S = jnp.where(eye, diag[0][:, None], m[0])
        if not ntk:
            return S[None]
        D = jnp.where(eye, diag[1][:, None], m[1])
        return jnp.stack([S, h[3] * S + h[1] * D * T])

    return jax.jit(maps)


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.T)


def _mix4(net: GCN, T: np.ndarray) -> np.ndarray:
    """(Â⊗Â⊗Â⊗Â)·T: Â applied to each of the four node axes of T (N, N, N, N)."""
    A = net.A_hat
    for axis in range(4):
        T = np.moveaxis(np.tensordot(A, T, axes=([1], [axis])), 0, axis)
    return T


def _check_pairs(K: np.ndarray, layer: int) -> None:
    d = np.diagonal(K)
    if np.any(d <= 0):
        a = int(np.argmin(d))
        raise DeepEFTInputError(
            f"K^({layer}) has variance {d[a]:g} at node {a}: a node without fluctuations (zero features and C_b = 0, "
            "or an isolated node); give it features or use C_b > 0."
        )
    rho = K / np.sqrt(np.outer(d, d))
    np.fill_diagonal(rho, 0.0)
    if np.max(np.abs(rho)) > RHO_SINGULAR:
        a, b = (int(i) for i in np.unravel_index(int(np.argmax(np.abs(rho))), rho.shape))
        raise DeepEFTInputError(
            f"nodes {a} and {b} are perfectly correlated at layer {layer} (ρ = {rho[a, b]:.15f}): the graph has "
            "oversmoothed them (or they are structurally identical with identical features), their 2×2 kernel block "
            "is singular and the vertex derivatives of (4.119) are undefined. Use fewer layers, C_b > 0, or "
            "distinct node features."
        )


def node_four_point_vertex(net: GCN, X: ArrayLike, *, resolution: float = 1.0) -> np.ndarray:
    """V^{(ℓ)}_{(α1α2)(α3α4)} over nodes, (L, N, N, N, N), layer ℓ at index ℓ − 1 (zeros at ℓ = 1) [derived].

    Normalisation as the MLP's (4.117): the connected four-point function of layer ℓ is V^{(ℓ)}/n_{ℓ−1}.
    Needs γ = 0 (the residual GCN's vertex adds the cross terms of (B.24), not implemented).
    Cost per layer: the MLP vertex's C(N+3, 4) Gaussian integrals plus four N⁵ contractions with Â.
    """
    net = check_gcn(net)
    if net.gamma != 0.0:
        raise DeepEFTInputError(
            f"the four-point vertex of a residual GCN (gamma = {net.gamma}) is not implemented (it needs the γ² cross "
            "terms of (B.24) mixed by Â); use gamma=0, or sample_ensemble for a measured vertex."
        )
    K = node_kernels(net, X, ntk=False).K
    act = net.activation
    n = np.asarray(net.n, dtype=np.float64)
    L, N = net.L, net.N_nodes
    V = np.zeros((L, N, N, N, N))
    for l in range(1, L):
        Kl = K[l - 1]
        _check_pairs(Kl, l)
        CW = net.C_W[l]
        pd = pair_derivatives(act, Kl, second=False, resolution=resolution)
        P = pd.f
        U = CW**2 * (four_sigma(act, Kl, resolution=resolution) - P[:, :, None, None] * P[None, None, :, :])
        if l > 1:
            U += (n[l] / n[l - 1]) * CW**2 * jacobian_contract(pd.grad, V[l - 1])
        V[l] = _mix4(net, U)
    return V


@dispatch.register("vertex_flow", GCN)
def node_vertex_flow(net: GCN, X: ArrayLike, *, nlo: bool = False, resolution: float = 1.0) -> VertexFlow:
    """K and V over nodes as a :class:`~deepeft.theory.vertex.VertexFlow` (what ``de.vertex_flow`` and
    ``de.four_point_vertex`` return for a GCN); the NLO metric G^{1} of GCNs is not implemented."""
    if nlo:
        raise DeepEFTInputError("the NLO metric G^{1} of a GCN is not implemented; use nlo=False (K and V only).")
    net = check_gcn(net)
    X = net.check_inputs(X)
    V = node_four_point_vertex(net, X, resolution=resolution)
    K = node_kernels(net, X, ntk=False).K
    return VertexFlow(net, X, K, V, None, np.asarray(net.n[:-1], dtype=np.float64))  # type: ignore[arg-type]


dispatch.register("kernels", GCN)(node_kernels)


# ----------------------------------------------------------------------------------------------
# Oversmoothing: collapse measures and the spectral-gap prediction
# ----------------------------------------------------------------------------------------------
def _kernels_array(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim < 2 or K.shape[-1] != K.shape[-2] or K.shape[-1] < 2:
        raise DeepEFTInputError(f"K must be node kernels of shape (..., N, N) with N >= 2, got {K.shape}.")
    return K


def mean_decorrelation(K: ArrayLike) -> np.ndarray:
    """1 − ρ̄: one minus the mean correlation ρ_αβ = K_αβ/√(K_αα K_ββ) over node pairs α ≠ β, for K (..., N, N).

    0 when every node carries the same representation up to scale (collapse); scale-free, so a kernel that
    grows or shrinks with depth does not count as (anti-)collapse. Equals Σ_{α≠β} E[(ẑ_α − ẑ_β)²]/(2N(N−1)),
    the mean squared distance of the normalised preactivations ẑ = z/√K_αα (a Dirichlet energy on the
    complete graph).
    """
    K = _kernels_array(K)
    d = np.sqrt(np.diagonal(K, axis1=-2, axis2=-1))
    rho = K / (d[..., :, None] * d[..., None, :])
    N = K.shape[-1]
    off = (rho.sum(axis=(-2, -1)) - np.trace(rho, axis1=-2, axis2=-1)) / (N * (N - 1))
    return 1.0 - off


def rank_one_distance(K: ArrayLike) -> np.ndarray:
    """‖K − K₁‖_F/‖K‖_F with K₁ the best rank-one approximation (top eigenpair): √(Σ_{i≥2} μ_i²/Σ_i μ_i²)."""
    K = _kernels_array(K)
    mu = np.linalg.eigvalsh(0.5 * (K + np.swapaxes(K, -1, -2)))
    tot = np.sum(mu**2, axis=-1)
    return np.sqrt(np.maximum(tot - mu[..., -1] ** 2, 0.0) / tot)


def spectral_gap(A_hat) -> tuple[float, float]:
    """(λ₁, λ₂): the largest and second-largest |eigenvalue| of Â (a GCN or a matrix). 1 − λ₂/λ₁ is the gap."""
    A = A_hat.A_hat if isinstance(A_hat, GCN) else np.asarray(A_hat, dtype=np.float64)
    lam = np.sort(np.abs(np.linalg.eigvals(A)))[::-1]
    if lam.size < 2:
        raise DeepEFTInputError("the spectral gap needs a graph with at least 2 nodes.")
    return float(lam[0]), float(lam[1])


@dataclasses.dataclass(frozen=True)
class CollapseRate:
    """Predicted per-layer contraction of 1 − ρ (module doc), arrays over layers ℓ = 1..L−1 (and the grid's shape).

    ``k``: collapsed node variance k^{(ℓ)} (ℓ = 1..L); ``chi_perp``: C_W⟨σ'σ'⟩_{k^{(ℓ)}}; ``r``: r^{(ℓ)};
    ``r_inf``: the last r (the asymptotic rate when the recursion has settled); ``xi``: depth scale −1/ln r_inf
    (inf where r_inf ≥ 1: no exponential collapse).
    """

    k: np.ndarray
    chi_perp: np.ndarray
    r: np.ndarray
    r_inf: np.ndarray
    xi: np.ndarray


def collapse_rate(activation, C_W, C_b, gamma, lambda2, *, depth: int = 200, k1=1.0) -> CollapseRate:
    """The spectral-gap prediction r^{(ℓ)} = (χ_⊥ λ₂² + γ²) k^{(ℓ)}/k^{(ℓ+1)} of the collapse rate [derived].

    Broadcasts over arrays of ``C_W``, ``C_b``, ``gamma``, ``lambda2`` (a phase diagram in one call) for
    ``depth`` layers from the collapsed variance ``k1`` at layer 1; exact for row-stochastic Â (Â1 = 1) in the
    collapsed regime, where every node has the variance k⁺ = C_b + C_W⟨σ²⟩_k + γ²k (B.11).
    """
    from ..activations import activation as _activation

    act = _activation(activation)
    CW, Cb, g, lam, k = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (C_W, C_b, gamma, lambda2, k1)))
    if np.any(CW < 0) or np.any(Cb < 0) or np.any(k <= 0) or not np.all(np.isfinite(CW + Cb + g + lam + k)):
        raise DeepEFTInputError("C_W, C_b must be >= 0, k1 > 0, and all of C_W, C_b, gamma, lambda2, k1 finite.")
    depth = int(depth)
    if depth < 2:
        raise DeepEFTInputError(f"depth must be >= 2, got {depth}.")
    shape = CW.shape
    ks = np.empty((depth,) + shape)
    chi = np.empty((depth - 1,) + shape)
    ks[0] = k
    for l in range(depth - 1):
        flat = ks[l].ravel()
        s2 = engine.one_point_core(act, (0, 0), flat).reshape(shape)
        d2 = engine.one_point_core(act, (1, 1), flat).reshape(shape)
        chi[l] = CW * d2
        ks[l + 1] = Cb + CW * s2 + g**2 * ks[l]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = (chi * lam**2 + g**2) * ks[:-1] / ks[1:]
        r_inf = r[-1]
        xi = np.where(r_inf < 1, -1.0 / np.log(np.where(r_inf < 1, r_inf, 0.5)), math.inf)
    if not np.all(np.isfinite(ks)):
        warnings.warn("collapse_rate: the collapsed variance k overflowed for some parameters.", DeepEFTWarning, stacklevel=2)
    return CollapseRate(ks, chi, r, r_inf, xi)
