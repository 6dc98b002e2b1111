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
MLP's. In general C_W Â(·)Âᵀ is the layer map 𝓜(S) = c_self S + c_nbr Â S Âᵀ of :meth:`deepeft.graph.GCN.mixing`
(message passing z⁺ = σW + ÂσU + b: (c_self, c_nbr) = (C_W, C_U)); the residual vertex (B.24) with its three-point
feed and the NLO metric (4.115) follow by the same substitution (:func:`node_vertex`, docs/gnn.md).
Every Gaussian expectation comes from the engine (:mod:`deepeft.gaussian.engine`) and, for V, from
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
from .nlo_recursion import jacobian_apply, nlo_step
from .residual_recursions import intralayer_cross
from .vertex import VertexFlow, four_sigma, jacobian_contract, pair_derivatives

__all__ = [
    "CollapseFluctuations",
    "CollapseRate",
    "NodeVertexFlow",
    "check_gcn",
    "collapse_fluctuations",
    "collapse_rate",
    "mean_decorrelation",
    "node_four_point_vertex",
    "node_kernels",
    "node_vertex",
    "node_vertex_flow",
    "rank_one_distance",
    "spectral_gap",
]

RHO_SINGULAR = 1.0 - 1e-12  # |ρ| beyond this: a 2×2 block is singular (the vertex derivatives are undefined)


def check_gcn(net) -> GCN:
    if not isinstance(net, GCN):
        raise DeepEFTInputError(f"net must be a deepeft.GCN, got {type(net).__name__}; build one with de.GCN(...).")
    return net


def _first_layer(net: GCN, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, Â G Âᵀ) with G = X Xᵀ/n_0, symmetrised: the layer-1 Gram over nodes, unmixed and mixed."""
    G = (X @ X.T) / X.shape[1]
    G = 0.5 * (G + G.T)
    AG = net.mix(G)
    return G, 0.5 * (AG + AG.T)


def node_kernels(net: GCN, X: ArrayLike, X2=None, *, ntk: bool = True, rtol: float = 1e-12) -> Kernels:
    """K^{(ℓ)} and Θ^{(ℓ)} over the nodes, arrays (L, N_nodes, N_nodes), layer ℓ at index ℓ − 1 (module doc).

    ``Theta`` is None when ``ntk=False``. One engine call (closed form or Mehler series) per layer for the
    two-point maps, then two products with Â (sparse when Â is); the message-passing variant adds the unmixed
    self terms (c_self of :meth:`deepeft.graph.GCN.mixing`).
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
    G, AG = _first_layer(net, X)
    Ks = np.empty((L, N, N))
    Ts = np.empty((L, N, N)) if ntk else None
    Ks[0] = p["C_b"][0] + p["C_nbr"][0] * AG + p["C_self"][0] * G
    if Ts is not None:
        Ts[0] = p["lambda_b"][0] + p["lambda_nbr"][0] * AG + p["lambda_self"][0] * G
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    fused = engine.fused_mode(act, pairs) == "closed"
    mp = net.message_passing
    for l in range(1, L):
        K = Ks[l - 1]
        d = np.diagonal(K).copy()
        h = np.array([p["C_b"][l], p["C_nbr"][l], p["lambda_b"][l], p["lambda_nbr"][l], p["gamma"][l] ** 2,
                      p["C_self"][l], p["lambda_self"][l]])
        T = None if Ts is None else Ts[l - 1]
        if fused and np.all(d > 0):  # closed-form maps in one jitted pass (exact 1-D integrals on the diagonal)
            diag = np.stack([engine.one_point_core(act, pr, d, rtol) for pr in pairs])
            with x64():
                pre = list(np.asarray(_closed_maps(act, ntk, mp)(K, T, d, diag, h)))
        else:
            maps = engine.two_point_core(act, d, d, K, pairs, same=True, rtol=rtol)
            pre = [maps[0]]
            if T is not None:
                DT = maps[1] * T
                pre += [h[3] * maps[0] + h[1] * DT] + ([h[6] * maps[0] + h[5] * DT] if mp else [])
        # K⁺ = C_b + c_nbr Â⟨σσ⟩Âᵀ + c_self⟨σσ⟩ + γ²K
        _mix_into(net, pre[0], Ks[l], h[1], h[0], h[4], K, h[5] * pre[0] if mp else None)
        if Ts is not None and T is not None:  # Θ⁺ = λ_b + Â(λ_nbr⟨σσ⟩ + c_nbr⟨σ'σ'⟩Θ)Âᵀ + (λ_self⟨σσ⟩ + c_self⟨σ'σ'⟩Θ) + γ²Θ
            _mix_into(net, pre[1], Ts[l], 1.0, h[2], h[4], T, pre[2] if mp else None)
    return Kernels(Ks, Ts)


def _mix_into(net: GCN, M, out: np.ndarray, scale: float, shift: float, g2: float, prev: np.ndarray, own=None) -> None:
    """out ← shift + scale·Â M Âᵀ + own + g2·prev for a symmetric M, symmetrised, with few N×N temporaries."""
    R = net.propagate(np.asarray(M))  # Â M
    R = net.propagate(np.ascontiguousarray(R.T))  # Â (ÂM)ᵀ = Â M Âᵀ (M symmetric)
    np.add(R, R.T, out=out)  # symmetrised (rounding), in one pass
    out *= 0.5 * scale
    out += shift
    if own is not None:
        out += own
    if g2:
        out += g2 * prev


@functools.lru_cache(maxsize=32)
def _closed_maps(act, ntk: bool, mp: bool = False):
    """jit: ⟨σσ⟩_K and, with the NTK, λ_nbr⟨σσ⟩ + c_nbr⟨σ'σ'⟩∘Θ (and, message passing, λ_self⟨σσ⟩ + c_self⟨σ'σ'⟩∘Θ),
    stacked; closed forms off the diagonal, the exact 1-D integrals ``diag`` on it; ``h`` = (C_b, c_nbr, λ_b,
    λ_nbr, γ², c_self, λ_self)."""
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)

    def maps(K, T, d, diag, h):
        eye = jnp.eye(K.shape[0], dtype=bool)
        m = engine.closed_two_point_jax(act, pairs, d, d, K)
        S = jnp.where(eye, diag[0][:, None], m[0])
        if not ntk:
            return S[None]
        DT = jnp.where(eye, diag[1][:, None], m[1]) * T
        out = [S, h[3] * S + h[1] * DT]
        if mp:
            out.append(h[6] * S + h[5] * DT)
        return jnp.stack(out)

    return jax.jit(maps)


def _pair_map(net: GCN, T: np.ndarray, l: int, first: bool) -> np.ndarray:
    """The layer map 𝓜: S ↦ c_self S + c_nbr Â S Âᵀ (coefficients of layer ℓ + 1 = index ``l``) applied to the first
    two node axes of T (``first``) or to axes 2, 3."""
    p = net.mixing()
    cs, cn = p["C_self"][l], p["C_nbr"][l]
    axes = (0, 1) if first else (2, 3)
    out = cs * T if cs else np.zeros_like(T)
    if cn:
        M = T
        for axis in axes:
            M = np.moveaxis(np.tensordot(net.A_hat, M, axes=([1], [axis])), 0, axis)
        out = out + cn * M
    return out


def _jacobian3(grad: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Σ_β J_{(ab),β} U_{βc} for the sparse Jacobian ``grad`` (3, N, N) and a pair-by-node tensor U (N, N, N)."""
    return np.stack([jacobian_apply(grad, U[:, :, c]) for c in range(U.shape[2])], axis=-1)


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


@dataclasses.dataclass(frozen=True, eq=False)
class NodeVertexFlow(VertexFlow):
    """:class:`~deepeft.theory.vertex.VertexFlow` over nodes plus the three-point tensor U (L, N, N, N) of a residual
    GCN (``U[ℓ−1, a, b, c]`` = U^{(ℓ)}_{(ab)c}; zeros for γ = 0 or odd σ)."""

    U: np.ndarray | None = None


def node_vertex(net: GCN, X: ArrayLike, *, nlo: bool = False, resolution: float = 1.0,
                three_point: bool = True) -> NodeVertexFlow:
    """K, V^{(ℓ)}_{(α1α2)(α3α4)} over nodes ((L, N, N, N, N), zeros at ℓ = 1) and, with ``nlo``, G^{1} [derived].

    With 𝓜 the layer map S ↦ c_self S + c_nbr Â S Âᵀ (:meth:`deepeft.graph.GCN.mixing`; the GCN has 𝓜 = C_W Â·Âᵀ) and
    J_𝓜 = 𝓜∘∂⟨σσ⟩/∂K + γ²𝟙, the MLP's (4.119) and the residual (B.24) with the three-point feed of
    :mod:`deepeft.theory.residual_recursions` become (docs/gnn.md)

        V⁺ = (𝓜⊗𝓜)[⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩] + γ²[(𝓜⊗1)C + (1⊗𝓜)Cᵀ] + r (J_𝓜⊗J_𝓜)V + Σ_γ[(J_𝓜U)_{(12)γ}(𝓜D)_{(34)γ} + (12)↔(34)],
        U⁺_{(12)3} = γ[𝓜⟨σ1σ2z3⟩ + r(J_𝓜U)_{(12)3}],       G^{1}⁺ = r 𝓜[J·G^{1} + ½ ∂²⟨σσ⟩:V]   (γ = 0 only),

    r = n_ℓ/n_{ℓ−1}, C_{(12)(34)} = ⟨σ1σ2(z3z4 − K34)⟩, D_{(34)γ} = ⟨∂_γ(σ3σ4)⟩. Normalisation as the MLP's (4.117): the
    connected four-point function of layer ℓ is V^{(ℓ)}/n_{ℓ−1}; E[zz] = K + G^{1}/n_{ℓ−1} (4.104).
    Cost per layer: the MLP vertex's C(N+3, 4) Gaussian integrals plus N⁵ contractions with Â.
    ``three_point=False`` drops the U feed (the residual (B.24) as printed; wrong for σ that are not odd).
    """
    net = check_gcn(net)
    X = net.check_inputs(X)
    g = net.gammas()
    if nlo and np.any(g):
        raise DeepEFTInputError(
            f"the NLO metric G^{{1}} of a residual GCN (gamma = {net.gamma}) is not derived (the three-point function adds "
            "third-derivative terms to ⟨σσ⟩); use nlo=False or gamma=0."
        )
    K = node_kernels(net, X, ntk=False).K
    act = net.activation
    n = np.asarray(net.n, dtype=np.float64)
    L, N = net.L, net.N_nodes
    V = np.zeros((L, N, N, N, N))
    U = np.zeros((L, N, N, N))
    G1 = np.zeros((L, N, N)) if nlo else None
    E = np.zeros((3, N, N))  # the identity map K ↦ K in the sparse Jacobian layout
    np.fill_diagonal(E[0], 1.0)
    E[2] = 1.0 - np.eye(N)
    for l in range(1, L):
        Kl = K[l - 1]
        _check_pairs(Kl, l)
        g2, ratio = g[l] ** 2, n[l] / n[l - 1]
        pd = pair_derivatives(act, Kl, second=nlo, resolution=resolution)
        P = pd.f
        inner = four_sigma(act, Kl, resolution=resolution) - P[:, :, None, None] * P[None, None, :, :]
        if l > 1:
            inner += ratio * jacobian_contract(pd.grad, V[l - 1])
        V[l] = _pair_map(net, _pair_map(net, inner, l, True), l, False)
        if g2:
            C = intralayer_cross(pd.grad, Kl)
            if l > 1:
                C = C + ratio * jacobian_contract(pd.grad, V[l - 1], E)
                V[l] += ratio * g2**2 * V[l - 1]
            B = g2 * _pair_map(net, C, l, True)
            V[l] += B + B.transpose(2, 3, 0, 1)
        if three_point and (g2 or np.any(U[l - 1])):
            d = np.diagonal(Kl).copy()
            m = engine.two_point_core(act, d, d, Kl, ((1, 0),), same=True)[0]  # m_ab = ⟨σ′_a σ_b⟩
            JU = ratio * (_pair_map(net, _jacobian3(pd.grad, U[l - 1])[..., None], l, True)[..., 0] + g2 * U[l - 1])
            T = np.einsum("abc,cd->abcd", JU, m) + np.einsum("abd,dc->abcd", JU, m)  # Σ_γ (J_𝓜U)_{abγ} D_{(cd)γ}
            T = _pair_map(net, T, l, False)
            V[l] += T + T.transpose(2, 3, 0, 1)
            Y = np.einsum("ca,ab->abc", Kl, m) + np.einsum("cb,ba->abc", Kl, m)  # ⟨σ_aσ_b z_c⟩ (Stein)
            U[l] = np.sqrt(g2) * (_pair_map(net, Y[..., None], l, True)[..., 0] + JU)
        if G1 is not None:
            G1[l] = _pair_map(net, nlo_step(pd, G1[l - 1], V[l - 1], 1.0, ratio)[:, :, None, None], l, True)[:, :, 0, 0]
    return NodeVertexFlow(net, X, K, V, G1, n[:-1].copy(), U)  # type: ignore[arg-type]


def node_four_point_vertex(net: GCN, X: ArrayLike, *, resolution: float = 1.0) -> np.ndarray:
    """V^{(ℓ)} over nodes, (L, N, N, N, N), layer ℓ at index ℓ − 1 (zeros at ℓ = 1) [derived]: :func:`node_vertex`."""
    return node_vertex(net, X, resolution=resolution).V


@dispatch.register("vertex_flow", GCN)
def node_vertex_flow(net: GCN, X: ArrayLike, *, nlo: bool = False, resolution: float = 1.0) -> VertexFlow:
    """K, V (and with ``nlo=True``, γ = 0, the NLO metric G^{1}) over nodes: what ``de.vertex_flow`` and
    ``de.four_point_vertex`` return for a GCN (:func:`node_vertex`)."""
    return node_vertex(net, X, nlo=nlo, resolution=resolution)


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


@dataclasses.dataclass(frozen=True)
class CollapseFluctuations:
    """Finite-width fluctuations of the node distances against their mean (:func:`collapse_fluctuations`).

    ``pairs`` (P, 2) node pairs α < β; ``delta`` (L, P) Δ_αβ = K_αα + K_ββ − 2K_αβ; ``rel_var`` (L, P) Var(Δ̂)/Δ² of
    one network's Δ̂ = M_αα + M_ββ − 2M_αβ, M = z zᵀ/n_ℓ, at order 1/n; ``noise_to_signal`` (L,) the root-mean-square
    over pairs of √rel_var; ``depth`` the first layer where it reaches 1 (None if it does not); ``growth`` (L,) the
    pair mean of 2 + V_eeee/Δ², width-free: n·Var(Δ̂)/Δ² of a network with all widths n (:meth:`depth_at_width`).
    """

    pairs: np.ndarray
    delta: np.ndarray
    rel_var: np.ndarray
    noise_to_signal: np.ndarray
    depth: int | None
    growth: np.ndarray

    def depth_at_width(self, n: float) -> int | None:
        """First layer ℓ where a network of equal widths n has mean relative variance growth(ℓ)/n ≥ 1 (fluctuations
        of the node distances as large as the distances), within the computed depth; None if not reached."""
        over = np.nonzero(self.growth / float(n) >= 1.0)[0]
        return int(over[0]) + 1 if over.size else None


def collapse_fluctuations(flow: VertexFlow) -> CollapseFluctuations:
    """How large the network-to-network fluctuations of the node distances are compared with the distances [derived].

    For e = e_α − e_β, one network's Δ̂ = eᵀMe = (1/n_ℓ) Σ_i (e·z_i)² has mean Δ = eᵀKe + O(1/n) and, at order 1/n,

        Var(Δ̂) = 2Δ²/n_ℓ + V_{eeee}/n_{ℓ−1},     V_{eeee} = Σ e_a e_b e_c e_d V^{(ℓ)}_{(ab)(cd)}

    (Gaussian sampling of n_ℓ channels, plus their connected four-point function (4.117)). Oversmoothing drives Δ to
    0 at the rate r (:func:`collapse_rate`); the relative fluctuation Var(Δ̂)/Δ² grows with depth (∝ ℓ/n for the
    vertex of a deep network), and where it reaches 1 a single network's collapse measure is dominated by
    finite-width fluctuations, not by the infinite-width kernel. ``flow`` from ``de.vertex_flow(gcn, X)``.
    """
    net = flow.net
    if not isinstance(net, GCN):
        raise DeepEFTInputError("collapse_fluctuations needs the vertex flow of a de.GCN: de.vertex_flow(gcn, X).")
    K, V = np.asarray(flow.K), np.asarray(flow.V)
    N = K.shape[-1]
    ia, ib = np.triu_indices(N, 1)
    E = np.zeros((ia.size, N))
    E[np.arange(ia.size), ia], E[np.arange(ia.size), ib] = 1.0, -1.0
    delta = np.einsum("pa,lab,pb->lp", E, K, E)
    Ve = np.einsum("pa,pb,pc,pd,labcd->lp", E, E, E, E, V)
    n_cur = np.asarray(net.n[1:], dtype=np.float64)[:, None]
    n_prev = np.asarray(flow.n_prev, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 2.0 / n_cur + Ve / (n_prev * delta**2)
    nts = np.sqrt(np.mean(rel, axis=1))
    over = np.nonzero(nts >= 1.0)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.mean(2.0 + Ve / delta**2, axis=1)
    return CollapseFluctuations(np.stack([ia, ib], 1), delta, rel, nts, int(over[0]) + 1 if over.size else None, growth)
