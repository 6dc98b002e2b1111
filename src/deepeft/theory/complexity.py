"""Model complexity from the macroscopic perspective (book Ch. ε): counting the data-dependent couplings and
the six-point vertex U, the first O(1/n²) coupling.

Counting (ε.14): the infinite-width trained distribution (ε.9) is fixed by the labels y_{i;α̃} and the symmetric
kernel K_{δ₁δ₂} and frozen NTK Θ_{δ₁δ₂} on the N_D = N_A + N_B samples:

    n_out N_A + N_D(N_D + 1)/2 + N_D(N_D + 1)/2 = O(N_D²).

Truncating the 1/n expansion after order 1/n^k, the couplings with the most sample indices have 2k + 2 of them:
O(N_D⁴) at 1/n (ε.15), O(N_D⁶) at 1/n² (ε.23). ((ε.25) writes O(N_D^{2k}) for "accuracy L^k/n^k", i.e. a
truncation after 1/n^{k−1}: the same statement.)

Six-point vertex, one input: the stochastic metric Ĝ^{(ℓ)} (4.70) has Var(Ĝ) = V/n (4.76) and third cumulant
κ₃(Ĝ) = U/n², so that E[z_i²z_j²z_k²] − 3E[z_i²z_j²]E[z²] + 2E[z²]³ = U/n² (i, j, k distinct). For ReLU
(ε.20), with τ = C_W/2,

    U⁺ = τ³[U + 30VK + 44K³],   V⁺ = τ²[V + 5K²],   K⁺ = C_b + τK,

and at criticality (C_b = 0, C_W = 2) U^{(ℓ)} = [75(ℓ − 1)(ℓ − 2) + 44(ℓ − 1)]K³ (digest), so U/(n²K³) = 75ℓ²/n²
+ O(ℓ/n²) (ε.21). [derived] The ReLU recursion is exact at finite width: Ĝ⁺ = C_b + Ĝ·T with
T = (C_W/n)Σ_j g_j²1(g_j > 0) independent of Ĝ (g_j iid N(0, 1)), κ₂(T) = 5τ²/n, κ₃(T) = 44τ³/n², so

    V⁺ = τ²[5K² + V(1 + 5/n)],   U⁺ = τ³[44K³ + 30KV(1 + 22/(5n)) + U(1 + 15/n + 44/n²)]

with K, V, U the exact cumulants (K = E[Ĝ]); the leading order drops the 1/n terms. Other activations: measure U
from ensembles (:func:`deepeft.simulate.metric_cumulants.metric_cumulants`).

References:
    Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), Ch. ε, (4.70)–(4.76).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError

__all__ = ["SixPointVertex", "count_reals", "coupling_index_count", "six_point_vertex_relu", "six_point_relu_critical"]


def count_reals(N_D: int, n_out: int = 1, N_A: int | None = None) -> int:
    """Numbers specifying the infinite-width trained distribution (ε.14): n_out N_A (labels) + N_D(N_D + 1)/2
    (kernel K) + N_D(N_D + 1)/2 (frozen NTK Θ). ``N_A`` (training samples) defaults to N_D."""
    nd = v.positive_int(N_D, "N_D")
    na = nd if N_A is None else v.positive_int(N_A, "N_A")
    if na > nd:
        raise DeepEFTInputError(f"N_A = {na} training samples cannot exceed N_D = {nd} (N_D = N_A + N_B).")
    return v.positive_int(n_out, "n_out") * na + nd * (nd + 1)


def coupling_index_count(order: int) -> int:
    """Sample indices of the largest data-dependent couplings when the 1/n expansion is kept to 1/n^order:
    2·order + 2, so the count grows as O(N_D^{2·order+2}) ((ε.14), (ε.15), (ε.23))."""
    return 2 * v.positive_int(order, "order", minimum=0) + 2


@dataclasses.dataclass(frozen=True, eq=False)
class SixPointVertex:
    """Single-input K^{(ℓ)}, V^{(ℓ)}, U^{(ℓ)} for ℓ = 1..L (index ℓ − 1); ``n`` the hidden width (None at leading
    order); U/(n²K³) is :meth:`normalized`."""

    K: np.ndarray
    V: np.ndarray
    U: np.ndarray
    n: int | None

    def normalized(self, n=None) -> np.ndarray:
        """U^{(ℓ)}/(n² K^{(ℓ)3}) (ε.21)."""
        nn = self.n if n is None else v.positive_int(n, "n")
        if nn is None:
            raise DeepEFTInputError("this is the leading-order recursion: pass the width, e.g. .normalized(n=64).")
        return self.U / (nn**2 * self.K**3)


def six_point_vertex_relu(depth: int, *, K1: float = 1.0, C_b=0.0, C_W=2.0, n: int | None = None) -> SixPointVertex:
    """K, V, U of a ReLU MLP for one input through ``depth`` = L layers from K^{(1)} = ``K1`` (V^{(1)} = U^{(1)} = 0).

    ``n=None``: the leading-order recursion (ε.20) (with (5.109) for V); ``n`` = the (equal) hidden width: the
    exact finite-width cumulant recursion [derived, module doc]. ``C_b``, ``C_W``: scalars or length-L sequences.
    """
    L = v.positive_int(depth, "depth")
    k1 = v.finite_scalar(K1, "K1", minimum=0.0, strict=True)
    Cb = v.per_layer(C_b, "C_b", L)
    CW = v.per_layer(C_W, "C_W", L)
    w = None if n is None else v.positive_int(n, "n")
    e = 0.0 if w is None else 1.0 / w
    K, V, U = np.zeros(L), np.zeros(L), np.zeros(L)
    K[0] = k1
    for l in range(1, L):
        t = CW[l] / 2.0
        k, vv, u = K[l - 1], V[l - 1], U[l - 1]
        K[l] = Cb[l] + t * k
        V[l] = t**2 * (5.0 * k * k + vv * (1.0 + 5.0 * e))
        U[l] = t**3 * (44.0 * k**3 + 30.0 * k * vv * (1.0 + 22.0 / 5.0 * e) + u * (1.0 + 15.0 * e + 44.0 * e * e))
    return SixPointVertex(K, V, U, w)


def six_point_relu_critical(ell, K: float = 1.0) -> float | np.ndarray:
    """Closed form at criticality (C_b = 0, C_W = 2) of (ε.20): U^{(ℓ)} = [75(ℓ − 1)(ℓ − 2) + 44(ℓ − 1)]K³ (→ (ε.21))."""
    l = np.asarray(ell, dtype=np.float64)
    if np.any(l < 1) or not np.all(np.isfinite(l)):
        raise DeepEFTInputError("ell must be layer indices ℓ >= 1.")
    kk = v.finite_scalar(K, "K", minimum=0.0, strict=True)
    out = (75.0 * (l - 1) * (l - 2) + 44.0 * (l - 1)) * kk**3
    return out.item() if out.ndim == 0 else out
