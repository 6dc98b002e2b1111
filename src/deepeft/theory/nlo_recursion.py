"""One step of the NLO-metric recursion (4.115): G^{1}(ℓ+1) from G^{1}(ℓ), V^{(ℓ)} and the sparse derivatives of the
two-point map (derivation in :mod:`deepeft.theory.nlo_metric`). Used by :func:`deepeft.theory.vertex.vertex_flow`;
:func:`deepeft.theory.nlo_metric.nlo_metric` wraps that flow (so this module sits below both: no import cycle).
"""

from __future__ import annotations

import numpy as np

__all__ = ["hessian_contract", "jacobian_apply", "nlo_step"]


def jacobian_apply(grad: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Σ_γ ∂f_{ab}/∂K_γ G_γ over the block parameters γ ∈ {(a,a), (b,b), (a,b)} → (N, N)."""
    dg = np.diagonal(G)
    return grad[0] * dg[:, None] + grad[1] * dg[None, :] + grad[2] * G


def hessian_contract(hess: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Σ_{γ,δ} ∂²f_{ab}/∂K_γ∂K_δ V_{γδ} over γ, δ ∈ {(a,a), (b,b), (a,b)} → (N, N)."""
    N = V.shape[0]
    a, b = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    par = ((a, a), (b, b), (a, b))
    out = np.zeros((N, N))
    for p in range(3):
        for q in range(3):
            out += hess[p, q] * V[par[p][0], par[p][1], par[q][0], par[q][1]]
    return out


def nlo_step(pd, G1_prev: np.ndarray, V_prev: np.ndarray, C_W: float, ratio: float) -> np.ndarray:
    """G^{1}(ℓ+1) from G^{1}(ℓ), V^{(ℓ)} and the pair derivatives ``pd`` at K^{(ℓ)}; ratio = n_ℓ/n_{ℓ−1} (4.115)."""
    return ratio * C_W * (jacobian_apply(pd.grad, G1_prev) + 0.5 * hessian_contract(pd.hess, V_prev))
