"""Information theory of the preactivation distribution (book App. A; residual ν(γ) from App. B).

Infinite width (§A.2): the m-neuron distribution is Gaussian with kernel K (N × N over inputs):

    𝒮 = (m/2) log|2πeK|                                                       (A.26)
    KL[p‖q] for two Gaussians (the closed form of (A.12))
    I[𝓜₁, 𝓜₂] = 0 between neuron groups                                      (A.27)
    I[z₊, z₋] = ½ log[K₊₊K₋₋/(K₊₊K₋₋ − K₊₋²)]  (one neuron, two inputs)         (A.28)
             = ½ log[(1 + K_[2]/K_[0])²/(4K_[2]/K_[0])]  (equal norms)          (A.29)

Finite width, one input (§A.3), with x ≡ V^{(ℓ)}/(n_{ℓ−1} G^{(ℓ)2}) (G the exact metric, V the exact vertex):

    𝒮_m = (m/2) log(2πeG) − ((m² + 2m)/16) x² + ((m³ + 10m² + 16m)/48) x³       (A.66)
    I[𝓜₁, 𝓜₂] = (m₁m₂/8) x² − (m₁m₂(20 + 3m₁ + 3m₂)/48) x³                    (A.53), (A.67)
    I₃[𝓜₁, 𝓜₂, 𝓜₃] = (m₁m₂m₃/8) x³                                           (A.75)

Optimal aspect ratio: x = ν r at the output (A.68) with ν = 2/3 (K* = 0) (A.69), 3A₄/A₂² − 1
(scale-invariant) (A.70); residual networks ν(γ) (B.29), (B.35) (from :mod:`.residual`). Maximising (A.71) over r:
r* = [4/(20 + 3m₁ + 3m₂)]/ν (A.72), r* = [4/(20 + 3n_L)]/ν for m₁ = m₂ = n_L/2 (A.73), and
I_max = (1/6)(n_L/(20 + 3n_L))² (A.74).

Finding (docs/information.md, :mod:`.information_exact`): the single-input output distribution is exactly a
Gaussian scale mixture, and its exact mutual information increases monotonically with x — r* is the maximum
of the NLO-truncated series (A.71), where its x³ term is 2/3 of its x² term, not a maximum of the exact
information. (A.67) itself is confirmed to O(x⁴) by the exact computation.

References:
    Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), App. A, App. B.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from .aspect_ratio import optimal_aspect_ratio_from_nu
from .residual import residual_nu

__all__ = [
    "FiniteWidthInformation",
    "finite_width_entropy",
    "finite_width_information",
    "finite_width_mutual_information",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_mutual_information",
    "equal_norm_mutual_information",
    "max_mutual_information",
    "optimal_aspect_ratio",
    "tripartite_information",
    "vertex_coefficient",
]

_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


# ----------------------------------------------------------------------------------------------
# Infinite width (§A.2)
# ----------------------------------------------------------------------------------------------


def _cov(K, name: str) -> np.ndarray:
    arr = np.asarray(K, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    arr = v.kernel_matrix(arr, name)
    return arr


def _logdet(K: np.ndarray, name: str) -> float:
    sign, ld = np.linalg.slogdet(K)
    if sign <= 0:
        raise DeepEFTInputError(
            f"{name} is singular (determinant {np.linalg.det(K):.3g}): the Gaussian has no density and its "
            "differential entropy is −∞; drop duplicate inputs or add C_b > 0."
        )
    return float(ld)


def _m(m, name: str = "m") -> int:
    return v.positive_int(m, name)


def gaussian_entropy(K, m: int = 1) -> float:
    """𝒮 = (m/2) log|2πeK| of m independent neurons with input covariance K (N × N, or a scalar) (A.26)."""
    Km = _cov(K, "K")
    return 0.5 * _m(m) * (Km.shape[0] * _LOG_2PI_E + _logdet(Km, "K"))


def gaussian_kl(K_p, K_q, m: int = 1, mean_p=None, mean_q=None) -> float:
    """KL[p‖q] (A.12) for p = N(mean_p, K_p), q = N(mean_q, K_q) per neuron, m independent neurons:
    (m/2)[tr(K_q⁻¹K_p) − N + log(|K_q|/|K_p|)] + ½ Σ_i Δμ_iᵀK_q⁻¹Δμ_i (means (N,) or (m, N); default 0)."""
    P, Q = _cov(K_p, "K_p"), _cov(K_q, "K_q")
    if P.shape != Q.shape:
        raise DeepEFTInputError(f"K_p and K_q must have the same shape, got {P.shape} and {Q.shape}.")
    m = _m(m)
    N = P.shape[0]
    Qinv = np.linalg.inv(Q)
    kl = 0.5 * m * (np.trace(Qinv @ P) - N + _logdet(Q, "K_q") - _logdet(P, "K_p"))
    if mean_p is not None or mean_q is not None:
        mp = np.zeros(N) if mean_p is None else np.asarray(mean_p, dtype=np.float64)
        mq = np.zeros(N) if mean_q is None else np.asarray(mean_q, dtype=np.float64)
        try:
            d = np.broadcast_to(mp - mq, (m, N))
        except ValueError:
            raise DeepEFTInputError(f"means must have shape (N,) or (m, N) = ({m}, {N}).") from None
        if not np.all(np.isfinite(d)):
            raise DeepEFTInputError("means must be finite.")
        kl += 0.5 * float(np.einsum("ia,ab,ib->", d, Qinv, d))
    return float(kl)


def gaussian_mutual_information(K, group_a, group_b, m: int = 1) -> float:
    """I between the preactivations on input sets ``group_a`` and ``group_b`` (index lists into K) of the same
    m neurons: (m/2)[log|K_aa| + log|K_bb| − log|K_(a∪b)|] (A.14) with (A.26); for two inputs this is (A.28).
    Between disjoint groups of *neurons* it is 0 at infinite width (A.27)."""
    Km = _cov(K, "K")
    N = Km.shape[0]
    a, b = (np.asarray(g, dtype=int).ravel() for g in (group_a, group_b))
    if a.size == 0 or b.size == 0:
        raise DeepEFTInputError("group_a and group_b must each name at least one input.")
    if np.intersect1d(a, b).size or np.any(np.r_[a, b] < 0) or np.any(np.r_[a, b] >= N):
        raise DeepEFTInputError(f"group_a and group_b must be disjoint lists of input indices in [0, {N}).")
    ab = np.r_[a, b]
    ld = _logdet(Km[np.ix_(a, a)], "K[a, a]") + _logdet(Km[np.ix_(b, b)], "K[b, b]")
    return 0.5 * _m(m) * (ld - _logdet(Km[np.ix_(ab, ab)], "K[a∪b, a∪b]"))


def equal_norm_mutual_information(ratio) -> np.ndarray | float:
    """I[z₊, z₋] = ½ log[(1 + ρ)²/(4ρ)] with ρ = K_[2]/K_[0] ∈ (0, 1] (A.29) (elementwise)."""
    r = np.asarray(ratio, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r > 1):
        raise DeepEFTInputError("ratio = K_[2]/K_[0] must lie in (0, 1] (K_+- = K_[0] − K_[2] ≥ 0 ... K_[0]).")
    out = 0.5 * np.log((1.0 + r) ** 2 / (4.0 * r))
    return out.item() if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------------
# Finite width, one input (§A.3)
# ----------------------------------------------------------------------------------------------


def _x(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DeepEFTInputError(
            "x = V/(n G²) must be finite and >= 0 (V is a variance of the stochastic metric); got " f"{x!r}."
        )
    return arr


def _out(a: np.ndarray):
    return a.item() if a.ndim == 0 else a


def finite_width_entropy(m: int, x, G=1.0):
    """𝒮 of m neurons of one layer, one input, to O(1/n³) (A.66); x = V/(n G²), G the metric."""
    m = _m(m)
    xx = _x(x)
    g = v.finite_scalar(G, "G (the metric)", minimum=0.0, strict=True)
    s = 0.5 * m * math.log(2 * math.pi * math.e * g) - (m * m + 2 * m) / 16 * xx**2
    return _out(s + (m**3 + 10 * m * m + 16 * m) / 48 * xx**3)


def finite_width_mutual_information(m1: int, m2: int, x, order: str = "nlo"):
    """I[𝓜₁, 𝓜₂] between disjoint groups of m₁, m₂ neurons: (m₁m₂/8)x² (``order="lo"``, (A.53)) minus
    (m₁m₂(20 + 3m₁ + 3m₂)/48)x³ (``"nlo"``, (A.67)); x = V/(nG²). Equals 𝒮₁ + 𝒮₂ − 𝒮₁₂ from (A.66)."""
    m1, m2 = _m(m1, "m1"), _m(m2, "m2")
    xx = _x(x)
    if order not in ("lo", "nlo"):
        raise DeepEFTInputError(f"order must be 'lo' (A.53) or 'nlo' (A.67), got {order!r}.")
    out = m1 * m2 / 8 * xx**2
    if order == "nlo":
        out = out - m1 * m2 * (20 + 3 * m1 + 3 * m2) / 48 * xx**3
    return _out(out)


def tripartite_information(m1: int, m2: int, m3: int, x):
    """I₃ = (m₁m₂m₃/8) x³ of three disjoint neuron groups (A.75), from (A.24) with (A.66)."""
    m = (_m(m1, "m1"), _m(m2, "m2"), _m(m3, "m3"))
    return _out(m[0] * m[1] * m[2] / 8 * _x(x) ** 3)


@dataclasses.dataclass(frozen=True, eq=False)
class FiniteWidthInformation:
    """Per-layer single-input information of an MLP (layer ℓ at index ℓ − 1); see :func:`finite_width_information`."""

    groups: tuple[int, int]
    x: np.ndarray  # V^{(ℓ)}/(n_{ℓ−1} G^{(ℓ)2}) (A.68)
    mutual_information_lo: np.ndarray  # (A.53)
    mutual_information: np.ndarray  # (A.67)
    tripartite: np.ndarray | None  # (A.75), when three groups were given
    aspect_ratio: np.ndarray  # ℓ/n_{ℓ−1}


def finite_width_information(
    net, groups=None, x=None, *, norm=None, metric: str = "nlo", vertex: str = "lo"
) -> FiniteWidthInformation:
    """Mutual (and tripartite) information between neuron groups in every layer of ``net`` for one input
    (``x`` or its ``norm``), from the single-input recursion: x^{(ℓ)} = V^{(ℓ)}/(n_{ℓ−1} G^{(ℓ)2}) (A.68).

    ``groups``: (m₁, m₂) or (m₁, m₂, m₃) neuron counts (default: the output split in halves, ⌊n_L/2⌋, ⌈n_L/2⌉).
    ``metric``: "nlo" uses G = K + G^{1}/n (5.110), "lo" uses K. ``vertex``: "lo" uses the leading-order vertex
    (4.119), whose own 1/n correction shifts x by O(x·ℓ/n); "nlo" takes x = Var(Ĝ)/E[Ĝ]² with that correction
    (:func:`deepeft.theory.metric_moments.stochastic_metric_moments`; relative remainder O((ℓ/n)²); needs
    ``metric="nlo"``).
    """
    from .single_input import single_input  # local: keep `import deepeft.theory.information` light

    if groups is None:
        nL = net.output_dim
        if nL < 2:
            raise DeepEFTInputError("the output has one neuron: pass groups=(m1, m2) explicitly (e.g. of a hidden layer).")
        groups = (nL // 2, nL - nL // 2)
    gs = tuple(_m(g, "groups[i]") for g in v.sequence_of(groups, "groups"))
    if len(gs) not in (2, 3):
        raise DeepEFTInputError(f"groups must give 2 or 3 neuron counts, got {groups!r}.")
    if metric not in ("lo", "nlo"):
        raise DeepEFTInputError(f"metric must be 'lo' (K) or 'nlo' (K + G¹/n), got {metric!r}.")
    if vertex not in ("lo", "nlo") or (vertex == "nlo" and metric != "nlo"):
        raise DeepEFTInputError(f"vertex must be 'lo' (4.119) or 'nlo' (with metric='nlo'), got vertex={vertex!r}, "
                                f"metric={metric!r}.")
    n_prev = np.concatenate([[np.inf], np.asarray(net.widths, dtype=np.float64)])
    if vertex == "nlo":
        from .metric_moments import stochastic_metric_moments

        xs = stochastic_metric_moments(net, x, norm=norm).x
    else:
        rec = single_input(net, x, norm=norm)
        G = rec.metric() if (metric == "nlo" and net.widths) else rec.K
        xs = rec.V / (n_prev * G**2)
    return FiniteWidthInformation(
        groups=(gs[0], gs[1]),
        x=xs,
        mutual_information_lo=np.asarray(finite_width_mutual_information(gs[0], gs[1], xs, "lo")),
        mutual_information=np.asarray(finite_width_mutual_information(gs[0], gs[1], xs, "nlo")),
        tripartite=np.asarray(tripartite_information(*gs, xs)) if len(gs) == 3 else None,
        aspect_ratio=np.arange(1, net.L + 1) / n_prev,
    )


# ----------------------------------------------------------------------------------------------
# Optimal aspect ratio (A.68)–(A.74), residual ν(γ) (B.29), (B.35)
# ----------------------------------------------------------------------------------------------


def vertex_coefficient(activation, gamma=0.0) -> float:
    """ν in V^{(L)}/(n G²) = ν r (A.68): 2/3 for K* = 0 (A.69), 3A₄/A₂² − 1 scale-invariant (A.70) (ReLU 5,
    linear 2); with a residual γ ≠ 0: ν(γ) (B.29), (B.35) — one formula, :func:`.residual.residual_nu`."""
    return residual_nu(activation, gamma)


def _groups(output_dim, groups) -> tuple[float, float]:
    if groups is None:
        nL = _m(output_dim, "output_dim")
        return nL / 2.0, nL / 2.0  # the book's best split (A.73), also for odd n_L (r* depends on m₁ + m₂ only)
    gs = v.sequence_of(groups, "groups")
    if len(gs) != 2:
        raise DeepEFTInputError(f"groups must be (m1, m2), got {groups!r}.")
    m1, m2 = _m(gs[0], "m1"), _m(gs[1], "m2")
    if output_dim is not None and m1 + m2 > _m(output_dim, "output_dim"):
        raise DeepEFTInputError(f"m1 + m2 = {m1 + m2} exceeds output_dim = {output_dim}.")
    return float(m1), float(m2)


def optimal_aspect_ratio(activation, output_dim: int, gamma=0.0, *, groups=None) -> float:
    """r* = [4/(20 + 3m₁ + 3m₂)]/ν, the maximum of the NLO mutual information (A.71) (A.72); with the default
    split m₁ = m₂ = n_L/2: r* = [4/(20 + 3n_L)]/ν (A.73). ν per universality class (A.69)–(A.70); γ ≠ 0: the
    residual r*(γ) with ν(γ) (B.36). Examples: n_L = 2: tanh 3/13, linear 1/13, ReLU 2/65.

    r* is where the x³ term of (A.71) is 2/3 of the x² term; the exact mutual information has no maximum there
    (see the module docstring)."""
    m1, m2 = _groups(output_dim, groups)
    return optimal_aspect_ratio_from_nu(vertex_coefficient(activation, gamma), m1 + m2)


def max_mutual_information(output_dim: int, *, groups=None) -> float:
    """(A.71) at r*: (2/3) m₁m₂/(20 + 3m₁ + 3m₂)², = (1/6)(n_L/(20 + 3n_L))² for m₁ = m₂ = n_L/2 (A.74);
    independent of the activation. n_L = 2: 1/1014, 10: 1/150, ∞: 1/54."""
    m1, m2 = _groups(output_dim, groups)
    return 2.0 / 3.0 * m1 * m2 / (20.0 + 3.0 * (m1 + m2)) ** 2
