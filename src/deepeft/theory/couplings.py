"""Running couplings of the single-input preactivation action (book §4.4, (4.97)–(4.103)).

The distribution of m_ℓ neurons of layer ℓ (one input) is the quartic action (4.97)

    p(z_1..z_m) ∝ exp[ −(g_{(ℓ),m}/2) Σ_j z_j² + (v_{(ℓ)}/8) Σ_{j1,j2} z_{j1}² z_{j2}² ],

whose quadratic coupling *runs* with the number m of neurons kept (integrating out neurons, (4.100)):

    g_{(ℓ),m} = g_{(ℓ),n} − ((n − m)/2) v_{(ℓ)}/g_{(ℓ),n} + O(v²),                                     (4.100)

solved, from the metric G^{(ℓ)} = K^{(ℓ)} + G^{1}(ℓ)/n_{ℓ−1} (4.104) and the vertex V^{(ℓ)} (4.119), by

    1/g_{(ℓ),m} = G^{(ℓ)} − ((m + 2)/2) V^{(ℓ)}/(n_{ℓ−1} G^{(ℓ)}) + O(1/n²),                           (4.102)
    v_{(ℓ)}     = V^{(ℓ)}/(n_{ℓ−1} (G^{(ℓ)})⁴) + O(1/n²).                                                (4.103)

The flow of the quartic coupling with depth is best read in the dimensionless combination
v_{(ℓ)} (G^{(ℓ)})² = V^{(ℓ)}/(n_{ℓ−1} (G^{(ℓ)})²) (the size of the quartic term at |z|² ~ G): at criticality it grows
linearly in ℓ/n — (2/3) ℓ/n for the K* = 0 class (5.131), (3A₄/A₂² − 1)(ℓ − 1)/n for scale-invariant σ (5.130).

In the notation of the N-variable action of Ch. 1, S = ½ K^{μν} z z + (ε/4!) V^{μνρλ} z z z z (1.71), the m-neuron action
is K_{ij} = δ_ij/g_m and εV^{ijkl} = −v (δ_ij δ_kl + δ_ik δ_jl + δ_il δ_jk) [derived: (Σz²)² = T·zzzz/3]; its O(ε)
correlators (1.74), (1.78) give back E[z z] = G and the connected E[zzzz] = (V/n)·T (4.117), and the Ch. 1 inverse
map (:meth:`deepeft.gaussian.action.NearlyGaussianAction.from_correlators`) applied to measured correlators gives
the *fitted* couplings (:func:`deepeft.simulate.couplings.fit_couplings`).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, §4.4 (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..network import MLP, check_net
from .single_input import single_input

__all__ = ["RunningCouplings", "coupling_tensors", "running_couplings"]


def _check_m(m) -> np.ndarray:
    ms = np.atleast_1d(np.asarray(m))
    if ms.ndim != 1 or ms.size == 0:
        raise DeepEFTInputError(f"m must be a neuron count or a 1-D sequence of them, got {m!r}.")
    return np.asarray([v.positive_int(int(x) if float(x) == int(x) else x, "m (number of neurons kept)") for x in ms])


@dataclasses.dataclass(frozen=True, eq=False)
class RunningCouplings:
    """The couplings of the m-neuron action (4.97) per layer, layer ℓ = 1..L at index ℓ − 1.

    ``K``, ``V``, ``G1`` (L,) are the single-input kernel (5.108), vertex (5.109) and NLO metric (5.110);
    ``n_prev`` (L,) is n_{ℓ−1}; ``m`` the neuron counts; ``inv_g`` (L, len(m)) = 1/g_{(ℓ),m} (4.102) and ``v`` (L,)
    = v_{(ℓ)} (4.103).
    """

    m: np.ndarray
    n_prev: np.ndarray
    K: np.ndarray
    V: np.ndarray
    G1: np.ndarray
    inv_g: np.ndarray
    v: np.ndarray

    @property
    def L(self) -> int:
        return int(self.K.shape[0])

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.L + 1)

    @property
    def G(self) -> np.ndarray:
        """The metric G^{(ℓ)} = K + G^{1}/n_{ℓ−1} (4.104)."""
        return self.K + self.G1 / self.n_prev

    @property
    def g(self) -> np.ndarray:
        """The quadratic couplings g_{(ℓ),m} (L, len(m))."""
        return 1.0 / self.inv_g

    @property
    def dimensionless_v(self) -> np.ndarray:
        """v_{(ℓ)} (G^{(ℓ)})² = V/(n_{ℓ−1} G²): the flow of the quartic coupling with depth (→ (2/3)ℓ/n for tanh)."""
        return self.v * self.G**2

    @property
    def slope(self) -> np.ndarray:
        """d(1/g_m)/dm = −V/(2 n_{ℓ−1} G) (4.102): how fast the quadratic coupling runs with the neurons kept (L,)."""
        return -0.5 * self.V / (self.n_prev * self.G)

    def running_residual(self, m: int, m_full: int) -> np.ndarray:
        """g_m − [g_{m'} − ((m' − m)/2) v/g_{m'}] per layer, m' = ``m_full``: the running equation (4.100) applied to the
        solution (4.102) — zero at O(1/n), so the residual is O(1/n²) (compare widths n and 2n: ratio ≈ 4)."""
        g = lambda mm: 1.0 / _inv_g(self.G, self.V, self.n_prev, mm)  # noqa: E731
        return g(m) - (g(m_full) - 0.5 * (m_full - m) * self.v / g(m_full))


def _inv_g(G, V, n_prev, m):
    """1/g_m = G − ((m + 2)/2) V/(n G) (4.102)."""
    return G - 0.5 * (m + 2) * V / (n_prev * G)


def running_couplings(net: MLP, x=None, *, m=(1, 2, 3, 4), norm=None) -> RunningCouplings:
    """1/g_{(ℓ),m} (4.102) and v_{(ℓ)} (4.103) for every layer of ``net`` and every neuron count in ``m``.

    ``x`` (n0,) is the input (or give ``norm`` = |x|²/n0; default norm 1). Built from the landed single-input
    recursions K (5.108), V (5.109), G^{1} (5.110) (:func:`deepeft.theory.single_input.single_input`).
    ``m`` must not exceed the layer widths for the action to describe real neurons; larger m is still the
    formal solution of (4.100).
    """
    net = check_net(net)
    ms = _check_m(m)
    rec = single_input(net, x, norm=norm)
    n_prev = np.asarray(net.n[:-1], dtype=np.float64)
    G = rec.K + rec.G1 / n_prev
    if np.any(G <= 0):
        raise DeepEFTInputError("the metric G = K + G1/n is not positive at some layer: the width is too small for the "
                                "1/n expansion (|G1|/n ≥ K); use wider layers.")
    inv_g = np.stack([_inv_g(G, rec.V, n_prev, mm) for mm in ms], axis=1)
    vq = rec.V / (n_prev * G**4)
    return RunningCouplings(ms, n_prev, rec.K.copy(), rec.V.copy(), rec.G1.copy(), inv_g, vq)


def coupling_tensors(inv_g: float, v_coupling: float, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The m-neuron action (4.97) in the Ch. 1 form (1.71): (K_{ij} = δ_ij/g_m, εV^{ijkl} = −v (δδ + δδ + δδ)).

    ``NearlyGaussianAction(*coupling_tensors(1/g, v, m))`` reproduces (4.101) through (1.74) and the connected
    four-point function (V/n)(δδ + δδ + δδ) through (1.78), at first order in v.
    """
    m = v.positive_int(m, "m")
    eye = np.eye(m)
    T = (np.einsum("ij,kl->ijkl", eye, eye) + np.einsum("ik,jl->ijkl", eye, eye) + np.einsum("il,jk->ijkl", eye, eye))
    return float(inv_g) * eye, -float(v_coupling) * T
