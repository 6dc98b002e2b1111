"""The multi-input four-point vertex V^{(ℓ)}_{(α1α2)(α3α4)} (4.119) and its observables (4.117).

Recursion (4.119), layer ℓ → ℓ + 1, C_W = C_W^{(ℓ+1)}, expectations ⟨·⟩ over N(0, K^{(ℓ)}):

    V^{(ℓ+1)}_{(α1α2)(α3α4)} = C_W² [⟨σα1σα2σα3σα4⟩ − ⟨σα1σα2⟩⟨σα3σα4⟩]
        + (n_ℓ/n_{ℓ−1}) Σ_{γ,δ} J_{(α1α2),γ} J_{(α3α4),δ} V^{(ℓ)}_{γδ},          V^{(1)} = 0,

where J_{(α1α2),(γ1γ2)} = ∂K^{(ℓ+1)}_{α1α2}/∂K^{(ℓ)}_{γ1γ2} (entries treated as independent) is the
"Jacobian" form [derived] of the book's raised-index term ¼ C_W² (n_ℓ/n_{ℓ−1}) Σ_β V^{(β1β2)(β3β4)}
⟨σσ(z_β1 z_β2 − K)⟩⟨σσ(z_β3 z_β4 − K)⟩: a Gaussian expectation moves with its covariance as
d⟨F⟩ = ½ Σ δK_{γ1γ2} K^{γ1β1}K^{γ2β2}⟨F(z_β1 z_β2 − K_β1β2)⟩. Since ⟨σ(z_a)σ(z_b)⟩ depends only on
K_aa, K_bb, K_ab, J is sparse: 3 nonzero derivatives per pair (1 on the diagonal), so the second term
is 9 broadcast products over the N⁴ tensor. (The raised-index form is computed independently in the tests.)

Derivatives without σ″: Price's theorem would give ∂/∂K_aa = ½⟨σ″σ⟩, meaningless for ReLU's kink
(σ″ = δ). Here every derivative is a moment of the *undifferentiated* integrand in the 2×2 block
Σ = K_{ab-block}, Λ = Σ⁻¹, y = Λu, u = (z_a, z_b):

    ∂f/∂Σ_ij        = ½ ⟨F (y_i y_j − Λ_ij)⟩                              (first order, as in (4.112))
    ∂²f/∂Σ_ij∂Σ_kl  = ¼ ⟨F H_ijkl(y)⟩, H = yyyy − Σ₆ Λ yy + Σ₃ ΛΛ         (Hermite tensor; used by (4.115))

so only ⟨σ(z_a)σ(z_b) z_a^p z_b^q⟩ (p + q ≤ 4) are needed — exact for kinked and jumping σ.

Marginalization (§4.4): ⟨σα1σα2σα3σα4⟩ is symmetric in all four indices, so it is integrated once
per multiset {α1..α4}: the coincident indices are merged into one variable with a power of σ
(patterns σ⁴; σ³σ and σ²σ²; σ²σσ; σσσσ), each pattern type in ONE batched call per layer.

Integrals: ⟨σσσσ⟩ (≤ 4 variables) and the σσ·z-moments come from the engine's batched, jitted
product rule (:func:`deepeft.gaussian.engine.batched_expect`, the same path ``engine.expect`` uses for
k ≥ 3 batches, docs/engine.md); 1-D integrals from :func:`deepeft.gaussian.engine.expect1d`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

from ..activations import activation as _activation
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..gaussian.engine import batched_expect, expect1d
from ..network import MLP, check_net
from ..network_residual import ResidualMLP
from . import kernel as kernel_module
from .criticality import warn_on_exponential_kernel
from .kernel import kernel as _kernel
from .nlo_recursion import nlo_step
from .single_input import single_input

__all__ = [
    "PairDerivatives",
    "VertexFlow",
    "connected_four_point",
    "excess_kurtosis",
    "four_point_vertex",
    "four_sigma",
    "jacobian_contract",
    "pair_derivatives",
    "sigma_power_moments",
    "unique_rows",
    "vertex_flow",
]

def sigma_power_moments(act, terms, K, *, resolution: float = 1.0) -> np.ndarray:
    """⟨Π_a σ(z_a)^{p_a} z_a^{q_a}⟩ for z ~ N(0, K), K (B, k, k), k ≤ 4; returns (B, len(terms)).

    ``terms``: sequence of per-variable tuples ((p_0, q_0), …, (p_{k−1}, q_{k−1})). The integral is computed by
    the engine's batched product rule (:func:`deepeft.gaussian.engine.batched_expect`).
    """
    terms = tuple(tuple(((0,) * int(p), int(q)) for p, q in tm) for tm in terms)
    return batched_expect(act, terms, K, resolution=resolution)


product_expect = sigma_power_moments  # old name (it collided with the gaussian layer's product_expect)


# ----------------------------------------------------------------------------------------------
# Sparse derivatives of the two-point map ⟨σ(z_a)σ(z_b)⟩ with respect to its 2×2 block
# ----------------------------------------------------------------------------------------------
_POWS4 = tuple((4 - c, c) for c in range(5))  # z_a^{4−c} z_b^c
_PAIR_TERMS = (
    ((1, 0), (1, 0)),  # ⟨σσ⟩
    ((1, 2), (1, 0)),
    ((1, 1), (1, 1)),
    ((1, 0), (1, 2)),  # ⟨σσ u u⟩
) + tuple(((1, i), (1, j)) for i, j in _POWS4)  # ⟨σσ u u u u⟩
_ENTRIES = (((0, 0),), ((1, 1),), ((0, 1), (1, 0)))  # parameters K_aa, K_bb, K_ab of the block


@dataclasses.dataclass(frozen=True, eq=False)
class PairDerivatives:
    """Derivatives of f_{ab} = ⟨σ(z_a)σ(z_b)⟩_K in the block parameters (K_aa, K_bb, K_ab).

    ``f`` (N, N); ``grad`` (3, N, N): ∂f/∂K_aa, ∂f/∂K_bb, ∂f/∂K_ab; ``hess`` (3, 3, N, N).
    On the diagonal a = b, f = ⟨σ²⟩_{K_aa} has one parameter: grad[0] = g′, hess[0, 0] = g″, the rest 0.
    """

    f: np.ndarray
    grad: np.ndarray
    hess: np.ndarray


def _raise2(Lam, M):
    return np.einsum("bij,bjk,bkl->bil", Lam, M, Lam)


def pair_derivatives(act, K, *, second: bool = True, resolution: float = 1.0, deriv: int = 0) -> PairDerivatives:
    """∂⟨σ_aσ_b⟩/∂(K_aa, K_bb, K_ab) and second derivatives for all pairs of an (N, N) kernel K.

    Moments of the undifferentiated integrand (Hermite form, module doc) — valid for kinked σ.
    ``deriv`` = d differentiates the map ⟨σ^{(d)}_a σ^{(d)}_b⟩ instead (d = 1: ⟨σ′σ′⟩ of the NTK recursions (8.63),
    still without σ^{(d+1)}; for ReLU σ′ is a step, handled by the kink-split rules).
    """
    act = _activation(act)
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    d = np.diagonal(K).copy()
    grad = np.zeros((3, N, N))
    hess = np.zeros((3, 3, N, N))
    f = np.zeros((N, N))
    # diagonal: f = g(K) = ⟨σ²⟩_K, g′ = ⟨σ²(z² − K)⟩/2K², g″ = ⟨σ²(z⁴ − 6Kz² + 3K²)⟩/4K⁴   (5.49), (5.111)
    deriv = int(deriv)

    def s(z):
        return act.numpy(z, deriv)

    kk = act.breakpoints
    g0 = expect1d(lambda z: s(z) ** 2, d, kk)
    g2 = expect1d(lambda z: s(z) ** 2 * z**2, d, kk)
    g4 = expect1d(lambda z: s(z) ** 2 * z**4, d, kk)
    ii = np.arange(N)
    f[ii, ii] = g0
    grad[0, ii, ii] = (g2 - d * g0) / (2 * d**2)
    hess[0, 0, ii, ii] = (g4 - 6 * d * g2 + 3 * d**2 * g0) / (4 * d**4)
    ia, ib = np.triu_indices(N, 1)
    if ia.size == 0:
        return PairDerivatives(f, grad, hess)
    S = np.empty((ia.size, 2, 2))
    S[:, 0, 0], S[:, 1, 1], S[:, 0, 1] = d[ia], d[ib], K[ia, ib]
    S[:, 1, 0] = S[:, 0, 1]
    pair_terms = _PAIR_TERMS if second else _PAIR_TERMS[:4]
    terms = tuple(tuple(((deriv,) * p, q) for p, q in tm) for tm in pair_terms)
    mom = batched_expect(act, terms, S, resolution=resolution)
    Lam = np.linalg.inv(S)
    M0 = mom[:, 0]
    M2 = np.empty((ia.size, 2, 2))
    M2[:, 0, 0], M2[:, 0, 1], M2[:, 1, 1] = mom[:, 1], mom[:, 2], mom[:, 3]
    M2[:, 1, 0] = M2[:, 0, 1]
    Y2 = _raise2(Lam, M2)  # ⟨F y_i y_j⟩
    D1 = 0.5 * (Y2 - Lam * M0[:, None, None])  # ∂f/∂Σ_ij
    g = np.stack([sum(D1[:, i, j] for i, j in e) for e in _ENTRIES])
    f[ia, ib] = f[ib, ia] = M0
    for p in range(3):  # K_aa, K_bb swap roles under a ↔ b
        q = (1, 0, 2)[p]
        grad[p, ia, ib] = g[p]
        grad[q, ib, ia] = g[p]
    if second:
        M4 = np.empty((ia.size, 2, 2, 2, 2))
        for idx in np.ndindex(2, 2, 2, 2):
            M4[(slice(None),) + idx] = mom[:, 4 + sum(idx)]
        Y4 = np.einsum("bia,bjc,bke,blg,baceg->bijkl", Lam, Lam, Lam, Lam, M4)
        H = Y4.copy()
        for (i, j, kx, l) in np.ndindex(2, 2, 2, 2):
            H[:, i, j, kx, l] -= (
                Lam[:, i, j] * Y2[:, kx, l]
                + Lam[:, i, kx] * Y2[:, j, l]
                + Lam[:, i, l] * Y2[:, j, kx]
                + Lam[:, j, kx] * Y2[:, i, l]
                + Lam[:, j, l] * Y2[:, i, kx]
                + Lam[:, kx, l] * Y2[:, i, j]
            )
            H[:, i, j, kx, l] += M0 * (
                Lam[:, i, j] * Lam[:, kx, l] + Lam[:, i, kx] * Lam[:, j, l] + Lam[:, i, l] * Lam[:, j, kx]
            )
        D2 = 0.25 * H
        perm = (1, 0, 2)
        for p in range(3):
            for q in range(3):
                val = sum(D2[:, i, j, kx, l] for i, j in _ENTRIES[p] for kx, l in _ENTRIES[q])
                hess[p, q, ia, ib] = val
                hess[perm[p], perm[q], ib, ia] = val
    return PairDerivatives(f, grad, hess)


# ----------------------------------------------------------------------------------------------
# ⟨σα1σα2σα3σα4⟩ over all index multisets (marginalization, §4.4)
# ----------------------------------------------------------------------------------------------
def _multisets(N: int):
    """Unique sorted index 4-tuples, the inverse map from all N⁴ tuples, and a pattern description.

    Returns (uniq (U, 4), inverse (N⁴,), groups: list of (pows, rows, variables (R, k))).
    """
    idx = np.indices((N,) * 4).reshape(4, -1).T
    srt = np.sort(idx, axis=1)
    uniq, inv = np.unique(srt, axis=0, return_inverse=True)
    groups: dict[tuple, list] = {}
    for r, row in enumerate(uniq):
        vals, counts = np.unique(row, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        pows = tuple(int(c) for c in counts[order])
        groups.setdefault(pows, []).append((r, vals[order]))
    out = [(p, np.array([r for r, _ in g]), np.array([v for _, v in g])) for p, g in sorted(groups.items())]
    return uniq, inv.ravel(), out


def four_sigma(act, K, *, resolution: float = 1.0) -> np.ndarray:
    """The fully symmetric tensor ⟨σα1σα2σα3σα4⟩_K (N, N, N, N), one batched call per pattern type."""
    act = _activation(act)
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    uniq, inv, groups = _multisets(N)
    vals = np.empty(len(uniq))
    for pows, rows, var in groups:
        if len(pows) == 1:  # σ⁴ on one sample: exact 1-D
            s = act.numpy
            vals[rows] = expect1d(lambda z: s(z) ** 4, K[var[:, 0], var[:, 0]], act.breakpoints)
            continue
        sub = K[var[:, :, None], var[:, None, :]]
        term = (tuple((p, 0) for p in pows),)
        vals[rows] = sigma_power_moments(act, term, sub, resolution=resolution)[:, 0]
    return vals[inv].reshape((N,) * 4)


# ----------------------------------------------------------------------------------------------
# The recursion
# ----------------------------------------------------------------------------------------------
def jacobian_contract(grad: np.ndarray, V: np.ndarray, grad2: np.ndarray | None = None) -> np.ndarray:
    """Σ_{γ,δ} J_{(ab),γ} J′_{(cd),δ} V_{γδ} with the sparse J = grad (3, N, N) of (K_aa, K_bb, K_ab).

    γ ranges over the block parameters of (a, b): (a,a), (b,b), (a,b); δ likewise for (c, d).
    J′ = ``grad2`` (default J): two different maps, e.g. ⟨σσ⟩ and ⟨Ω̂⟩ in the NTK recursion (8.77).
    """
    Ga, Gb, Gr = grad
    Ha, Hb, Hr = grad if grad2 is None else grad2
    Vd = np.einsum("aacc->ac", V)  # V_{(aa)(cc)}
    Vh = np.einsum("aacd->acd", V)  # V_{(aa)(cd)}
    Vt = np.einsum("abcc->abc", V)  # V_{(ab)(cc)}
    out = np.einsum("ab,cd,ac->abcd", Ga, Ha, Vd)
    out += np.einsum("ab,cd,ad->abcd", Ga, Hb, Vd)
    out += np.einsum("ab,cd,bc->abcd", Gb, Ha, Vd)
    out += np.einsum("ab,cd,bd->abcd", Gb, Hb, Vd)
    out += np.einsum("ab,cd,acd->abcd", Ga, Hr, Vh)
    out += np.einsum("ab,cd,bcd->abcd", Gb, Hr, Vh)
    out += np.einsum("ab,cd,abc->abcd", Gr, Ha, Vt)
    out += np.einsum("ab,cd,abd->abcd", Gr, Hb, Vt)
    out += np.einsum("ab,cd,abcd->abcd", Gr, Hr, V)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class VertexFlow:
    """Per-layer kernel K (L, N, N), vertex V (L, N, N, N, N) and NLO metric G1 (L, N, N) or None.

    Layer ℓ at index ℓ − 1. ``n_prev`` = n_{ℓ−1} for ℓ = 1..L (n_0 at ℓ = 1, where V = G1 = 0).
    """

    net: MLP
    X: np.ndarray
    K: np.ndarray
    V: np.ndarray
    G1: np.ndarray | None
    n_prev: np.ndarray

    def metric(self) -> np.ndarray:
        """G^{(ℓ)} = K^{(ℓ)} + G^{1}(ℓ)/n_{ℓ−1} (4.104), (4.116)."""
        if self.G1 is None:
            raise DeepEFTInputError("this flow was computed without the NLO metric; use vertex_flow(..., nlo=True).")
        return self.K + self.G1 / self.n_prev[:, None, None]


def unique_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X_u, inverse): the distinct rows of X (N, n_0) in order of first occurrence and, per row of X, the
    index of its row in X_u (X = X_u[inverse]). Recursions run on X_u (a repeated input would make the 2×2
    blocks singular) and the caller expands the result with ``np.ix_(inverse, …)``."""
    Xu, first, inv = np.unique(X, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the user's order of first occurrences
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return Xu[order], rank[inv.ravel()]


def _check_blocks(K: np.ndarray, layer: int):
    d = np.diagonal(K)
    if np.any(d <= 0):
        a = int(np.argmin(d))
        raise DeepEFTInputError(
            f"K^({layer})_αα = {d[a]:g} for input α = {a}: a preactivation with zero variance (e.g. a zero input with "
            "C_b = 0) has no fluctuations to propagate; remove that input or use C_b > 0."
        )
    rho = K / np.sqrt(np.outer(d, d))
    np.fill_diagonal(rho, 0.0)
    if np.any(np.abs(rho) > 1 - 1e-12):
        a, b = (int(i) for i in np.unravel_index(int(np.argmax(np.abs(rho))), rho.shape))
        raise DeepEFTInputError(
            f"inputs {a} and {b} are (anti)parallel at layer {layer} (correlation {rho[a, b]:.15f}): their 2×2 kernel "
            "block is singular and the derivatives of (4.119) are undefined there. Remove one of them, or use C_b > 0."
        )
    if np.any(np.abs(rho) > 1 - 1e-6):
        warnings.warn(
            f"nearly parallel inputs at layer {layer} (max |correlation| = {np.max(np.abs(rho)):.9f}): the vertex "
            "derivatives lose about log10(1/(1−ρ)) digits.",
            stacklevel=3,
        )


def _single_input_flow(net: MLP, X: np.ndarray, x: np.ndarray, nlo: bool) -> VertexFlow | None:
    """K, V, G^{1} of copies of one input from the scanned single-input recursion (5.108)–(5.110), which
    is (4.119), (4.115) for N = 1; None where it does not apply (zero or unresolved kernel)."""
    norm = float(x @ x) / x.size
    if net.C_b[0] + net.C_W[0] * norm <= 0:
        return None  # the general path explains the zero-variance input
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = single_input(net, norm=norm)
    for w in caught:
        if issubclass(w.category, DeepEFTWarning):
            return None
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not (np.all(np.isfinite(rec.K) & (rec.K > 0)) and np.all(np.isfinite(rec.V)) and np.all(np.isfinite(rec.G1))):
        return None
    N, L = X.shape[0], net.L
    n = np.asarray(net.n, dtype=np.float64)
    K = np.broadcast_to(rec.K[:, None, None], (L, N, N)).copy()
    V = np.broadcast_to(rec.V[:, None, None, None, None], (L, N, N, N, N)).copy()
    G1 = np.broadcast_to(rec.G1[:, None, None], (L, N, N)).copy() if nlo else None
    return VertexFlow(net, X, K, V, G1, n[:-1].copy())


@warn_on_exponential_kernel(lambda flow, a, kw: flow.K)
def vertex_flow(net: MLP | ResidualMLP, X: ArrayLike, *, nlo: bool = False, resolution: float = 1.0) -> VertexFlow:
    """K, V (4.119) and optionally G^{1} (4.115) for every layer, in one pass.

    ``resolution`` (≥ 1) scales the quadrature node density (accuracy check / hard activations).
    """
    if isinstance(net, ResidualMLP):  # (B.24): deepeft.theory.residual_recursions
        if nlo:
            raise DeepEFTInputError("the NLO metric G^{1} is not derived for residual MLPs; use nlo=False.")
        from .residual_recursions import residual_vertex_flow

        return residual_vertex_flow(net, X, resolution=resolution)
    net = check_net(net)
    X = net.check_inputs(X, "X")
    try:
        resolution = float(resolution)
    except (TypeError, ValueError):
        resolution = float("nan")
    if not math.isfinite(resolution) or resolution < 0.25:
        raise DeepEFTInputError(f"resolution must be a finite number >= 0.25 (1 = default), got {resolution!r}.")
    Xu, inv = unique_rows(X)
    N = Xu.shape[0]
    if N == 1 and kernel_module.SCAN_SINGLE_INPUT:
        flow = _single_input_flow(net, X, Xu[0], nlo)
        if flow is not None:
            return flow
    K = _kernel(net, Xu)
    L = net.L
    act = net.activation
    n = np.asarray(net.n, dtype=np.float64)
    V = np.zeros((L, N, N, N, N))
    G1 = np.zeros((L, N, N)) if nlo else None
    for l in range(1, L):  # step ℓ = l → ℓ + 1 = l + 1 (array index l − 1 → l)
        Kl = K[l - 1]
        _check_blocks(Kl, l)
        CW = net.C_W[l]  # C_W^{(ℓ+1)}
        ratio = n[l] / n[l - 1]  # n_ℓ / n_{ℓ−1}
        pd = pair_derivatives(act, Kl, second=nlo, resolution=resolution)
        S4 = four_sigma(act, Kl, resolution=resolution)
        P = pd.f
        V[l] = CW**2 * (S4 - P[:, :, None, None] * P[None, None, :, :])  # (4.119), first term
        if l > 1:
            V[l] += ratio * CW**2 * jacobian_contract(pd.grad, V[l - 1])  # (4.119), second term
            if G1 is not None:
                G1[l] = nlo_step(pd, G1[l - 1], V[l - 1], CW, ratio)  # (4.115)
    sel = np.ix_(inv, inv, inv, inv)
    Vfull = V[(slice(None),) + sel]
    G1full = G1[:, inv][:, :, inv] if G1 is not None else None
    return VertexFlow(net, X, K[:, inv][:, :, inv], Vfull, G1full, n[:-1].copy())


@warn_on_exponential_kernel(lambda V, a, kw: None)  # the message comes from vertex_flow inside
def four_point_vertex(net: MLP | ResidualMLP, X: ArrayLike, *, resolution: float = 1.0) -> np.ndarray:
    """V^{(ℓ)}_{(α1α2)(α3α4)} for ℓ = 1..L (4.119): array (L, N, N, N, N), layer ℓ at index ℓ − 1 (zeros at ℓ = 1).

    Normalisation of (4.117): the connected four-point function of layer ℓ is V^{(ℓ)}/n_{ℓ−1} × (δδ terms);
    unequal widths enter as n_ℓ/n_{ℓ−1} in the recursion. Cost per layer: C(N+3, 4) Gaussian
    integrals over ≤ 4 variables (C(N, 4) of them 4-dimensional).
    """
    return vertex_flow(net, X, resolution=resolution).V


def connected_four_point(V: ArrayLike, n_prev: ArrayLike) -> np.ndarray:
    """E[z_{i1;α1} z_{i2;α2} z_{i3;α3} z_{i4;α4}]_connected (4.117) for neurons (i1, i2, i3, i4).

    ``V``: (…, N, N, N, N) vertex; ``n_prev``: n_{ℓ−1} (scalar or broadcastable to V's leading axes).
    Returns an array (…, 3, N, N, N, N): the coefficient tensors of δ_{i1i2}δ_{i3i4}, δ_{i1i3}δ_{i2i4},
    δ_{i1i4}δ_{i2i3} — e.g. for i1 = i2 = i3 = i4 sum over axis −5; for i1 = i2 ≠ i3 = i4 take [..., 0, …].
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim < 4 or len(set(V.shape[-4:])) != 1:
        raise DeepEFTInputError(f"V must have shape (..., N, N, N, N), got {V.shape}.")
    n = np.asarray(n_prev, dtype=np.float64)
    if np.any(~np.isfinite(n)) or np.any(n <= 0):
        raise DeepEFTInputError(f"n_prev (the previous layer's width n_(ℓ−1)) must be finite and > 0, got {n_prev!r}.")
    terms = np.stack(
        [V, np.swapaxes(V, -3, -2), np.moveaxis(V, (-4, -3, -2, -1), (-4, -1, -3, -2))], axis=-5
    )  # [a,b,c,d] → V_(ab)(cd), V_(ac)(bd), V_(ad)(bc)
    return terms / n.reshape(n.shape + (1,) * (terms.ndim - n.ndim))


def excess_kurtosis(V: ArrayLike, K: ArrayLike, n_prev: ArrayLike) -> np.ndarray:
    """Single-neuron excess kurtosis E[z⁴]/E[z²]² − 3 = 3 V_{(αα)(αα)}/(n_{ℓ−1} K_αα²) (4.117), for every input α.

    ``V`` (…, N, N, N, N), ``K`` (…, N, N), ``n_prev`` broadcastable to the leading axes.
    """
    V = np.asarray(V, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[-1]
    i = np.arange(N)
    Vd = V[..., i, i, i, i]
    Kd = K[..., i, i]
    n = np.asarray(n_prev, dtype=np.float64)
    n = n.reshape(n.shape + (1,) * (Vd.ndim - n.ndim))
    return 3.0 * Vd / (n * Kd**2)
