"""The NLO metric G^{1}(ℓ) (4.115): E[z_{i;α1} z_{i;α2}] = K_{α1α2} + G^{1}_{α1α2}/n_{ℓ−1} + O(1/n²) (4.104).

The book's recursion, layer ℓ → ℓ + 1 (C_W = C_W^{(ℓ+1)}, ⟨·⟩ over N(0, K^{(ℓ)}), indices raised with K⁻¹):

    (1/n_ℓ) G^{1}(ℓ+1)_{α1α2} = C_W (1/n_{ℓ−1}) Σ_β [ ½ K^{β1β3}K^{β2β4} G^{1}_{β3β4} ⟨σσ(z_β1 z_β2 − K_β1β2)⟩
        + ⅛ V^{(β1β2)(β3β4)} ⟨σσ(z_β1 z_β2 − K)(z_β3 z_β4 − K)⟩ + ¼ V^{(β1β3)(β2β4)} K_β3β4 ⟨σσ(−2z_β1 z_β2 + K_β1β2)⟩ ].

[derived] With f = ⟨σα1σα2⟩_K, D_γ = ∂f/∂K_γ and D²_{γδ} = ∂²f/∂K_γ∂K_δ (entries independent) one has
½K⁻¹⟨F(zz − K)⟩K⁻¹ = D and ¼⟨F H₄(K⁻¹z)⟩ = D² (Hermite tensor). Expanding ⟨F(yy − K⁻¹)(yy − K⁻¹)⟩
in H₄, the ⅛-term gives ½ V:D² + Σ V_{ijkl}K^{ik}D_{jl} + ¼ V_{ijkl}K^{ik}K^{jl} f, and the ¼-term gives exactly
−Σ V_{ijkl}K^{ik}D_{jl} − ¼ V_{ijkl}K^{ik}K^{jl} f (V's symmetries), so

    G^{1}(ℓ+1) = (n_ℓ/n_{ℓ−1}) C_W [ Σ_γ D_γ G^{1}(ℓ)_γ + ½ Σ_{γ,δ} D²_{γδ} V^{(ℓ)}_{γδ} ],    G^{1}(1) = 0,

the second-order Taylor expansion of the kernel map around K^{(ℓ)}. For one input it is (5.110):
G^{1}⁺ = χ_∥ G^{1} + (1/8) j V/K² (C_W g′ = χ_∥, ½C_W g″ = j/8K²). As for the vertex, D and D² of the
two-point map are sparse (block parameters K_aa, K_bb, K_ab) and come from moments of σσ without σ″
(:func:`deepeft.theory.vertex.pair_derivatives`), so kinked σ are exact. The literal form above is
evaluated independently in the tests.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..network import MLP
from .nlo_recursion import hessian_contract, jacobian_apply, nlo_step
from .vertex import vertex_flow

__all__ = ["hessian_contract", "jacobian_apply", "nlo_metric", "nlo_step"]


def nlo_metric(net: MLP, X: ArrayLike, *, resolution: float = 1.0) -> np.ndarray:
    """G^{1}(ℓ) for ℓ = 1..L (4.115): array (L, N, N), layer ℓ at index ℓ − 1 (zeros at ℓ = 1, 2).

    The metric is E[z_{i;α}z_{i;β}] = K^{(ℓ)}_{αβ} + G^{1}(ℓ)_{αβ}/n_{ℓ−1} + O(1/n²) (4.104); the recursion carries
    the width ratio n_ℓ/n_{ℓ−1}, so unequal widths are exact at this order. Computes V along the way
    (use :func:`deepeft.theory.vertex.vertex_flow` with ``nlo=True`` to get K, V and G^{1} together).
    """
    G1 = vertex_flow(net, X, nlo=True, resolution=resolution).G1
    assert G1 is not None  # nlo=True
    return G1
