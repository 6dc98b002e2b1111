"""Effective field theory of long-wavelength fluctuations (paper eqs. (16)–(17), (23); App. (67)–(72), (103)).

The lattice form U = ½ Σ_l [x_lᵀ D₀ x_l + 2 x_lᵀ B x_{l−1}] (:mod:`.fluctuations`) is expanded to second order
in gradients (x_{l−1} → x − ∂x + ½∂²x, sums → integrals, integration by parts):

    U_EFT = ½ ∫ dx [ xᵀ M x + (∂x)ᵀ K (∂x) + (∂x)ᵀ G x ],
    M = D₀ + B + Bᵀ,  K = −(B + Bᵀ)/2,  G = B − Bᵀ   (the antisymmetric part; (∂x)ᵀGx is odd under x → −x),

with propagator S_EFT(q) = [M + q² K + iq (Bᵀ − B)]⁻¹ matching the lattice S(q) to O(q³).
Linear (16): M = (2Δ_w/σ_b²)Δ_w², K = (2Δ_w/σ_b²)σ_w², i.e. U = (Δ_w/σ_b²)∫[Δ_w² ε² + σ_w²(∂ε)²] as printed
(read as the full exponent, E1); ξ = √(K/M) = σ_w/Δ_w (17). ReLU (23), verified (E6, E7): ½∫[(1 − σ_w² + σ_w⁴/2)ε̃_+²
+ ε̃_−² + 6ε̃_k² + 2ε̃_k(ε̃_+ − ε̃_−) − σ_w²ε̃_+ε̃_− + ½σ_w²(∂ε̃_+)² + ½σ_w²(∂ε̃_+)(∂ε̃_−) + σ_w²(∂ε̃_+)ε̃_−];
the (∂ε̃_+)(∂ε̃_−) term is the same order as (∂ε̃_+)² and is absent from the printed (23) (and from the
digest; found here by the same expansion — see docs/lattice.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize

from .fluctuations import QuadraticTheory, as_quadratic_theory, lattice_correlation_length

__all__ = ["EFT", "eft", "eft_spectrum", "eft_correlation_length", "symmetry_report", "eft_lattice_comparison"]


@dataclasses.dataclass(frozen=True, eq=False)
class EFT:
    """U_EFT = ½∫[xᵀMx + (∂x)ᵀK(∂x) + (∂x)ᵀGx] for the fields of ``theory``."""

    M: np.ndarray
    K: np.ndarray
    G: np.ndarray
    theory: QuadraticTheory

    def symbol(self, q) -> np.ndarray:
        q = np.atleast_1d(np.asarray(q, dtype=np.float64))[:, None, None]
        B = self.theory.B
        return self.M[None] + q * q * self.K[None] + 1j * q * (B.T - B)[None]


def eft(theory) -> EFT:
    """EFT coefficients M, K, G of a :class:`QuadraticTheory` (gradient expansion of its lattice form)."""
    t = as_quadratic_theory(theory)
    return EFT(M=t.D0 + t.B + t.B.T, K=-(t.B + t.B.T) / 2.0, G=t.B - t.B.T, theory=t)


def eft_spectrum(theory, q) -> np.ndarray:
    """Propagator S_EFT(q) = [M + q²K + iq(Bᵀ − B)]⁻¹ in the convention of :func:`.fluctuations.fluctuation_spectrum`."""
    e = eft(theory)
    S = np.linalg.inv(e.symbol(q))
    return S[:, 0, 0].real if e.M.shape[0] == 1 else S


def eft_correlation_length(theory) -> float:
    """ξ_EFT: 1/κ for the zero of det[M + κ(B − Bᵀ) − κ²K] (the propagator pole q = iκ) nearest 0.

    Linear: ξ = σ_w/Δ_w (17). Compare :func:`.fluctuations.lattice_correlation_length` (−1/ln σ_w²);
    the two agree as σ_w² → 1 (linear) where the fluctuations are long-wavelength.
    """
    e = eft(theory)
    B = e.theory.B

    def det(kappa):
        return float(np.linalg.det(e.M + kappa * (B - B.T) - kappa * kappa * e.K))

    grid = np.geomspace(1e-9, 1e3, 3000)
    vals = np.array([det(k) for k in grid])
    idx = np.nonzero(np.sign(vals[1:]) != np.sign(vals[:-1]))[0]
    if idx.size == 0:
        return 0.0
    kappa = optimize.brentq(det, grid[idx[0]], grid[idx[0] + 1], xtol=1e-15, rtol=1e-14)
    return 1.0 / kappa


def eft_lattice_comparison(theory, q) -> np.ndarray:
    """max |S_EFT(q) − S(q)| / max|S(q)| per q: → 0 as O(q³) for q → 0 (EFT = small-q limit of the lattice)."""
    from .fluctuations import fluctuation_spectrum

    t = as_quadratic_theory(theory)
    S = fluctuation_spectrum(t, q).reshape(len(np.atleast_1d(q)), t.b, t.b)
    Se = eft_spectrum(t, q).reshape(S.shape)
    return np.abs(Se - S).max(axis=(1, 2)) / np.abs(S).max(axis=(1, 2))


def symmetry_report(theory) -> dict:
    """Symmetries of the EFT (paper §5, §6): parity x → −x, global ε → −ε, and per-field sign flips.

    parity: G = 0 (no first-derivative couplings); a single-field flip ε_a → −ε_a is a symmetry iff every
    coupling between field a and the others (in M, K, G) vanishes. The global flip is always a symmetry
    of a quadratic theory.
    """
    e = eft(theory)
    b = e.M.shape[0]
    tol = 1e-12 * max(1.0, float(np.abs(e.M).max()))
    flips = {}
    for a, name in enumerate(e.theory.fields):
        others = [j for j in range(b) if j != a]
        coupled = any(np.abs(X[a, others]).max() > tol or np.abs(X[others, a]).max() > tol
                      for X in (e.M, e.K, e.G)) if others else False
        flips[name] = not coupled
    return {
        "parity (x -> -x)": bool(np.abs(e.G).max() <= tol),
        "global (eps -> -eps)": True,
        "single-field flips": flips,
        "correlation_length_eft": eft_correlation_length(e.theory),
        "correlation_length_lattice": lattice_correlation_length(e.theory),
        "linear_xi_17": (math.sqrt(e.theory.sigma_w2) / (1 - e.theory.sigma_w2)) if e.theory.model == "linear" else None,
    }
