"""Moments of the single-input stochastic metric Ĝ^{(ℓ)} to next-to-leading order in 1/n: the 1/n correction of
x = V/(nG²) (book (4.70)–(4.76), (A.68)), which the leading-order vertex V^{(ℓ)} (4.119) leaves out.

For one input, the n_ℓ preactivations of layer ℓ are, given layer ℓ − 1, iid N(0, Ĝ^{(ℓ)}) (4.70)–(4.71), so
s = Ĝ^{(ℓ)} is a Markov chain on one number: given s, Ĝ^{(ℓ+1)} = C_b + (C_W/n_ℓ) Σ_j σ(z_j)², z_j iid N(0, s),
with conditional mean f(s), variance g(s)/n_ℓ and third cumulant h(s)/n_ℓ²,

    f(s) = C_b + C_W A₂(s),   g(s) = C_W²[A₄(s) − A₂(s)²],   h(s) = C_W³[A₆ − 3A₄A₂ + 2A₂³](s),   A_k(s) ≡ ⟨σ^k⟩_s.

With μ = E[s], v = Var(s) = O(1/n) and κ = E[(s − μ)³] = O(1/n²), expanding f, g around μ gives the exact
moments of the next layer to the stated order [derived here; at leading order these are (4.115) and (4.119) for
one input: μ = K + G^{1}/n, n v = V]:

    μ⁺ = f + ½ f″ v                                                     + O(1/n²)
    v⁺ = f′² v + f′f″ κ + (f′f‴ + ½ f″²) v² + (g + ½ g″ v)/n            + O(1/n³)
    κ⁺ = f′³ κ + 3 f′² f″ v² + 3 f′ g′ v/n + h/n²                      + O(1/n³)

(f, g, h and their s-derivatives at μ; n = n_ℓ). Hence x = v/μ² to relative O(1/n²): the remainder of x is
O(x·(ℓ/n)²) at criticality. The s-derivatives are Gaussian expectations, d^k⟨F⟩_s/ds^k = ⟨F He_{2k}(z/√s)⟩_s/(2s)^k
(He the probabilists' Hermite polynomials), from the engine's one-dimensional rule (split at σ's breakpoints).
For ReLU (C_b = 0) and linear σ, f is linear and g quadratic in s: the recursion is then exact at any width
(compare :func:`deepeft.theory.information_exact.exact_mixture`).

References:
    Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, (4.70)–(4.76),
    (4.115), (4.119), (A.68).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..gaussian.engine import breakpoints, expect1d

__all__ = ["MetricMoments", "stochastic_metric_moments"]


@dataclasses.dataclass(frozen=True, eq=False)
class MetricMoments:
    """E[Ĝ^{(ℓ)}] (to O(1/n)), Var(Ĝ^{(ℓ)}) and E[(Ĝ − E Ĝ)³] (to O(1/n²)) per layer ℓ (index ℓ − 1)."""

    mean: np.ndarray
    var: np.ndarray
    third: np.ndarray
    n_prev: np.ndarray  # n_{ℓ−1} (inf at ℓ = 1)

    @property
    def x(self) -> np.ndarray:
        """Var(Ĝ)/E[Ĝ]² = V/(n_{ℓ−1}G²) (A.68), to relative O(1/n²)."""
        return self.var / self.mean**2

    @property
    def vertex(self) -> np.ndarray:
        """n_{ℓ−1} Var(Ĝ^{(ℓ)}): the four-point vertex V^{(ℓ)} with its 1/n correction (0 at ℓ = 1)."""
        out = np.zeros_like(self.var)
        out[1:] = self.n_prev[1:] * self.var[1:]
        return out


def _he(k: int, u: np.ndarray) -> np.ndarray:
    """He_{2k}(u), k = 0..3."""
    u2 = u * u
    return (np.ones_like(u), u2 - 1.0, u2 * u2 - 6.0 * u2 + 3.0, u2**3 - 15.0 * u2 * u2 + 45.0 * u2 - 15.0)[k]


def _powers(act, s: float) -> np.ndarray:
    """D[p, k] = d^k⟨σ^p⟩_s/ds^k for p = 2, 4, 6 (rows 0, 1, 2), k = 0..3."""
    kinks = breakpoints(act)
    out = np.full((3, 4), np.nan)  # only the derivatives the recursion uses
    for i, p in enumerate((2, 4, 6)):
        for k in range(4 if p == 2 else (3 if p == 4 else 1)):

            def F(z: np.ndarray, p: int = p, k: int = k) -> np.ndarray:
                return act.numpy(z, 0) ** p * _he(k, z / np.sqrt(s))

            out[i, k] = float(expect1d(F, np.asarray(s), kinks)) / (2.0 * s) ** k
    return out


def stochastic_metric_moments(net, x=None, *, norm=None) -> MetricMoments:
    """Mean, variance and third central moment of the stochastic metric Ĝ^{(ℓ)} of an :class:`~deepeft.MLP` for
    one input ``x`` (n0,) (or its ``norm`` (1/n0)Σx², default 1), layer by layer from Ĝ^{(1)} = C_b + C_W·norm
    (deterministic), by the recursion of the module doc (any hidden widths, per-layer C_b, C_W)."""
    from ..activations import activation as _activation
    from ..network import check_net
    from .single_input import input_norm

    net = check_net(net)  # the one-number chain (4.70) is the MLP's; a ResidualMLP's skip term is not in it
    act = _activation(net.activation)
    nrm = input_norm(net, x, norm)
    L = net.L
    Cb = np.broadcast_to(np.asarray(net.C_b, dtype=np.float64), (L,))
    CW = np.broadcast_to(np.asarray(net.C_W, dtype=np.float64), (L,))
    n_prev = np.concatenate([[np.inf], np.asarray(net.n[1:L], dtype=np.float64)])
    mu, var, k3 = (np.zeros(L) for _ in range(3))
    mu[0] = Cb[0] + CW[0] * nrm
    if mu[0] <= 0:
        raise DeepEFTInputError("the first-layer metric C_b + C_W·|x|²/n0 is 0: use a nonzero input or C_b > 0.")
    for l in range(1, L):  # layer l + 1 from layer l (index l − 1); n = n_l
        m, v, k = mu[l - 1], var[l - 1], k3[l - 1]
        n = n_prev[l]
        c, cb = CW[l], Cb[l]
        D = _powers(act, m)
        A2, A4 = D[0], D[1]
        f = np.array([cb + c * A2[0], c * A2[1], c * A2[2], c * A2[3]])
        g0 = c * c * (A4[0] - A2[0] ** 2)
        g1 = c * c * (A4[1] - 2 * A2[0] * A2[1])
        g2 = c * c * (A4[2] - 2 * A2[1] ** 2 - 2 * A2[0] * A2[2])
        h0 = c**3 * (D[2, 0] - 3 * A4[0] * A2[0] + 2 * A2[0] ** 3)
        mu[l] = f[0] + 0.5 * f[2] * v
        var[l] = f[1] ** 2 * v + f[1] * f[2] * k + (f[1] * f[3] + 0.5 * f[2] ** 2) * v * v + (g0 + 0.5 * g2 * v) / n
        k3[l] = f[1] ** 3 * k + 3 * f[1] ** 2 * f[2] * v * v + 3 * f[1] * g1 * v / n + h0 / n**2
    return MetricMoments(mean=mu, var=var, third=k3, n_prev=n_prev)
