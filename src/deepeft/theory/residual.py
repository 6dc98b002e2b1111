"""Residual-MLP criticality, the optimal aspect ratio r*(γ) and the block tuner ξ (book App. B).

    χ_∥(K) = γ² + (C_W/2K²)⟨σσ(z² − K)⟩_K,   χ_⊥(K) = γ² + C_W⟨σ′σ′⟩_K                       (B.15)–(B.16)
    C_b = 0, C_W(γ) = (1 − γ²)/A₂ (scale-invariant), (1 − γ²)/σ₁² (K* = 0)                       (B.20)–(B.21)
    ν(γ) = (1 − γ²)[(1 − γ²)(3A₄/A₂² − 1) + 4γ²] (scale-invariant),  (2/3)(1 − γ⁴) (K* = 0)       (B.29), (B.35)
    r*(γ) = [4/(20 + 3n_L)]/ν(γ)                                                                (B.36)
    γ*(r): the γ ≥ 0 with r*(γ) = r; 0 for r ≤ r*(0) (residual connections do not help there)   (§B.3)
    ξ = [−γḠ_Rz + √(γ²Ḡ_Rz² + (1 − γ²)Ḡ_zzḠ_RR)]/Ḡ_RR  solves (1 − γ²)Ḡ_zz = ξ²Ḡ_RR + 2γξḠ_Rz   (B.44)–(B.45)

Erratum [derived, confirmed by ensembles]: for a scale-invariant σ that is not odd (a₊² ≠ a₋², e.g. ReLU) the
skip carries a three-point correlator into V (:mod:`deepeft.theory.residual_recursions`), and at criticality

    ν₃(γ) = ν(γ) + (4/π) γ(1 − γ)(1 + γ)² (a₊² − a₋²)²/A₂²      (ReLU: ν(γ) + (16/π)γ(1 − γ)(1 + γ)²)

(K* = 0 class: the extra term is O(K³), so ν₃ = ν). ``three_point=True`` selects ν₃. The mutual information
(A.67) behind r* neglects three-point cumulants, which for such σ and γ > 0 are of the same order, so r*(γ)
keeps the book's ν unless asked otherwise.

No critical solution exists at γ² ≥ 1 (B.20)–(B.21): the functions that need one raise a
:class:`~deepeft.DeepEFTInputError` saying so. The correlators Ḡ of (B.42)–(B.43) are measured by
:func:`deepeft.simulate.residual_block.block_correlators` (averaged over neurons *and* inputs; (B.43) as
printed misses the average over δ).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, App. B (arXiv:2106.10165).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numpy.typing import ArrayLike

from .. import _validate as v
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .aspect_ratio import nu_for_aspect_ratio, optimal_aspect_ratio_from_nu
from .criticality import criticality
from .single_input import helper_functions

__all__ = [
    "ResidualCriticalPoint",
    "XiSolution",
    "critical_xi",
    "residual_aspect_ratio",
    "residual_critical_point",
    "residual_gamma_for_aspect_ratio",
    "residual_nu",
    "residual_susceptibilities",
]


def _gamma(gamma, *, critical: bool = True) -> float:
    g = v.finite_scalar(gamma, "gamma", minimum=0.0)
    if critical and g >= 1.0:
        raise DeepEFTInputError(
            f"gamma = {g} has no critical solution: C_W(γ) ∝ (1 − γ²) (B.20)–(B.21) vanishes at γ = 1 (and is "
            "negative beyond), so the residual MLP cannot be tuned to criticality. Use 0 <= gamma < 1."
        )
    return g


def residual_susceptibilities(activation, K: ArrayLike, C_W: ArrayLike, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(χ_∥, χ_⊥) of a residual layer at kernel value(s) K (B.15)–(B.16): the MLP's plus γ²."""
    g = _gamma(gamma, critical=False)
    hf = helper_functions(activation, K, C_W)
    return g**2 + hf.chi_parallel, g**2 + hf.chi_perp


@dataclasses.dataclass(frozen=True)
class ResidualCriticalPoint:
    """C_b = 0, C_W(γ) (B.20)–(B.21), ν(γ) (B.29)/(B.35) of one activation's universality class at γ, and
    ν₃(γ) with the three-point feed (module doc; equal to ν for odd σ and for the K* = 0 class)."""

    universality_class: str
    gamma: float
    C_b: float
    C_W: float
    nu: float
    nu_three_point: float


def _class_constants(activation) -> tuple[str, dict[str, float]]:
    return _constants_of(_activation(activation))


@functools.lru_cache(maxsize=64)
def _constants_of(act) -> tuple[str, dict[str, float]]:
    crit = criticality(act, exponents=False)
    cls = crit.universality_class
    if cls == "scale-invariant":
        k = crit.constants
        return cls, {"A2": k["A2"], "A4": k["A4"], "asym": k["a_plus"] ** 2 - k["a_minus"] ** 2}
    if cls == "K*=0" and crit.taylor is not None:
        return cls, {"sigma1": crit.taylor.sigma[1]}
    raise DeepEFTInputError(
        f"{act!r} is in universality class {cls!r}: App. B gives the residual critical point and ν(γ) only for the "
        "scale-invariant (ReLU, linear, leaky ReLU) and K* = 0 (tanh, sin, …) classes."
    )


def residual_critical_point(activation, gamma: float) -> ResidualCriticalPoint:
    """The critical initialization of a residual MLP, C_b = 0, C_W(γ) (B.20)–(B.21), with ν(γ) (B.29)/(B.35)."""
    g = _gamma(gamma)
    cls, c = _class_constants(activation)
    u = 1.0 - g**2
    if cls == "scale-invariant":
        C_W = u / c["A2"]  # (B.20)
        nu = u * (u * (3 * c["A4"] / c["A2"] ** 2 - 1) + 4 * g**2)  # (B.29)
        nu3 = nu + (4 / math.pi) * g * (1 - g) * (1 + g) ** 2 * c["asym"] ** 2 / c["A2"] ** 2  # [derived]
    else:
        C_W = u / c["sigma1"] ** 2  # (B.21)
        nu = nu3 = (2.0 / 3.0) * (1 - g**4)  # (B.35)
    return ResidualCriticalPoint(cls, g, 0.0, C_W, nu, nu3)


def residual_nu(activation, gamma: float, *, three_point: bool = False) -> float:
    """ν(γ), the slope of V^{(ℓ)}/(n K²) = ν ℓ/n at criticality (B.22), (B.29), (B.35); ``three_point``: ν₃(γ)
    with the three-point feed (module doc) — what ensembles of non-odd σ (ReLU) show."""
    cp = residual_critical_point(activation, gamma)
    return cp.nu_three_point if three_point else cp.nu


def residual_aspect_ratio(activation, output_dim: int, gamma: float = 0.0) -> float:
    """r*(γ) = [4/(20 + 3n_L)]/ν(γ) (B.36); γ = 0 is the MLP's optimal aspect ratio (A.73). The same number as
    ``de.optimal_aspect_ratio(activation, output_dim, gamma)`` (one formula, :mod:`.aspect_ratio`)."""
    nL = v.positive_int(output_dim, "output_dim")
    return optimal_aspect_ratio_from_nu(residual_nu(activation, gamma), nL)


def residual_gamma_for_aspect_ratio(activation, output_dim: int, r: float) -> float:
    """γ*(r), the inverse of (B.36): the γ ∈ [0, 1) with r*(γ) = r; 0 where r ≤ r*(0) (§B.3: no residual
    connection beats the vanilla MLP there). As r → ∞, 1 − γ*² ~ 1/r (footnote 7)."""
    from scipy.optimize import brentq  # lazily: scipy.optimize costs ~0.3 s at `import deepeft`
    r = v.finite_scalar(r, "r", minimum=0.0, strict=True)
    target = nu_for_aspect_ratio(r, v.positive_int(output_dim, "output_dim"))  # the ν that gives r* = r
    nu0 = residual_nu(activation, 0.0)
    if target >= nu0:
        return 0.0

    def f(g2):
        return residual_nu(activation, math.sqrt(g2)) - target

    hi = 1.0 - 1e-15
    g2 = brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return math.sqrt(g2)


@dataclasses.dataclass(frozen=True)
class XiSolution:
    """ξ solving (B.45) and its standard error (delta method from the correlators' covariance; 0 without one)."""

    xi: float
    stderr: float
    gamma: float


def critical_xi(gamma: float, G_zz: float, G_RR: float, G_Rz: float = 0.0, cov: ArrayLike | None = None) -> XiSolution:
    """ξ(γ) that preserves the diagonal two-point correlator of a general residual network (B.44)–(B.45).

    ``G_zz``, ``G_RR``, ``G_Rz``: the averaged correlators (B.42)–(B.43), e.g. measured by
    :func:`deepeft.simulate.residual_block.block_correlators`; ``cov``: their 3×3 covariance (order
    zz, RR, Rz) for the standard error of ξ.
    """
    g = _gamma(gamma)
    zz = v.finite_scalar(G_zz, "G_zz", minimum=0.0, strict=True)
    RR = v.finite_scalar(G_RR, "G_RR", minimum=0.0, strict=True)
    Rz = v.finite_scalar(G_Rz, "G_Rz", minimum=None)

    def xi(t):
        a, b, c = t
        return (-g * c + math.sqrt(g**2 * c**2 + (1 - g**2) * a * b)) / b

    x = xi((zz, RR, Rz))
    se = 0.0
    if cov is not None:
        C = np.asarray(cov, dtype=np.float64)
        if C.shape != (3, 3) or not np.all(np.isfinite(C)):
            raise DeepEFTInputError(f"cov must be a finite 3×3 covariance of (G_zz, G_RR, G_Rz), got shape {C.shape}.")
        t0 = np.array([zz, RR, Rz])
        grad = np.empty(3)
        for i in range(3):
            h = 1e-6 * max(abs(t0[i]), 1e-3)
            tp, tm = t0.copy(), t0.copy()
            tp[i] += h
            tm[i] -= h
            grad[i] = (xi(tp) - xi(tm)) / (2 * h)
        se = math.sqrt(max(float(grad @ C @ grad), 0.0))
    return XiSolution(x, se, g)
