"""Two inputs: the γ basis, bootstrapped δ-expansion recursions, and the finite-angle recursion (book §5.1, §5.5).

γ basis (5.15)–(5.20): K_{αβ} = K_[0]γ^{[0]} + K_[1]γ^{[1]} + K_[2]γ^{[2]} with
γ^{[0]} = [[1,1],[1,1]], γ^{[1]} = [[1,0],[0,−1]], γ^{[2]} = [[1,−1],[−1,1]].

Smooth σ, infinitesimally separated inputs (5.46)–(5.48):
    K₀₀⁺ = C_b + C_W g(K₀₀),   δK_[1]⁺ = χ_∥ δK_[1],   δδK_[2]⁺ = χ_⊥ δδK_[2] + h (δK_[1])².

Scale-invariant σ, any angle (5.147)–(5.166): K_d⁺ = C_b + A₂C_W K_d and
    ⟨σ₊σ₋⟩ = (K_d/2π)(a₊ − a₋)²[sin ψ − ψ cos ψ] + A₂K_d cos ψ        (5.159)
    ⟨σ′₊σ′₋⟩ = A₂ − (ψ/2π)(a₊ − a₋)²                                   (5.161)
so at criticality cos ψ⁺ = cos ψ + ρ[sin ψ − ψ cos ψ] (5.162), ρ = (a₊ − a₋)²/(π(a₊² + a₋²)) (5.163),
ψ^{(ℓ)} ≈ 3/(ρℓ) (5.166). Unequal norms [derived]: the formulas hold with K_d = √(K₊₊K₋₋) and
cos ψ = K₊₋/√(K₊₊K₋₋) (scale invariance factors the norms out). The recursion is iterated for
u = 1 − cos ψ = 2 sin²(ψ/2), which keeps full relative precision as ψ → 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _validate as v
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .single_input import helper_functions, next_layer_values, scan_recursion

__all__ = [
    "GAMMA",
    "BootstrappedKernel",
    "FiniteAngle",
    "bootstrapped_recursion",
    "bootstrapped_two_point",
    "finite_angle_recursion",
    "from_gamma",
    "gamma_components",
    "kink_rho",
    "scale_invariant_dsigma_pm",
    "scale_invariant_sigma_pm",
]

GAMMA = np.array([[[1.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, -1.0]], [[1.0, -1.0], [-1.0, 1.0]]])  # (5.16)


def gamma_components(M) -> np.ndarray:
    """(…, 2, 2) → (…, 3): M_[a] = Σ_{αβ} M_{αβ} γ^{[a]}_{βα} / Σ γ^{[a]}γ^{[a]} (5.20), i.e. (5.17)–(5.19)."""
    M = np.asarray(M, dtype=np.float64)
    if M.shape[-2:] != (2, 2):
        raise DeepEFTInputError(f"expected 2×2 matrices (…, 2, 2) for two inputs, got shape {M.shape}.")
    norm = np.einsum("aij,aji->a", GAMMA, GAMMA)
    return np.einsum("...ij,aji->...a", M, GAMMA) / norm


def from_gamma(components) -> np.ndarray:
    """(…, 3) → (…, 2, 2): K_[0]γ^{[0]} + K_[1]γ^{[1]} + K_[2]γ^{[2]} (5.15)."""
    c = np.asarray(components, dtype=np.float64)
    if c.shape[-1] != 3:
        raise DeepEFTInputError(f"expected γ-basis components (…, 3), got shape {c.shape}.")
    return np.einsum("...a,aij->...ij", c, GAMMA)


def _smooth(act: Activation, what: str) -> None:
    if not act.smooth:
        raise DeepEFTInputError(
            f"{what} expands σ(z₊)σ(z₋) in Taylor series around coincident inputs, which is invalid for "
            f"{act!r} (kink or jump at {list(act.kinks) + list(act.jumps)}; book fn. 5, §5.5). For scale-invariant "
            "activations use finite_angle_recursion."
        )


def bootstrapped_two_point(activation, K00, dK1, ddK2) -> np.ndarray:
    """γ-basis components (…, 3) of ⟨σ_ασ_β⟩ for K = K₀₀γ^{[0]} + δK_[1]γ^{[1]} + δδK_[2]γ^{[2]}, to O(δ²) (5.44):

    [0]: g(K₀₀) (+O(δ²));  [1]: (δK_[1]/K₀₀)⟨zσ′σ⟩;  [2]: δδK_[2]⟨σ′σ′⟩ + (δK_[1]/2K₀₀)²⟨(z² − K₀₀)σ′σ′⟩,
    i.e. with the C_W = 1 helpers: (g, δK_[1]χ_∥, δδK_[2]χ_⊥ + δK_[1]²h).
    """
    act = _activation(activation)
    _smooth(act, "the δ expansion (5.44)")
    K00, dK1, ddK2 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (K00, dK1, ddK2)))
    hf = helper_functions(act, K00, 1.0)
    return np.stack([hf.g, dK1 * hf.chi_parallel, ddK2 * hf.chi_perp + dK1**2 * hf.h], axis=-1)


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrappedKernel:
    """K₀₀^{(ℓ)}, δK_[1]^{(ℓ)}, δδK_[2]^{(ℓ)} for ℓ = 1..L (5.46)–(5.48), with χ_∥, χ_⊥, h along the way."""

    K00: np.ndarray
    dK1: np.ndarray
    ddK2: np.ndarray
    chi_parallel: np.ndarray
    chi_perp: np.ndarray
    h: np.ndarray

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.K00.shape[0] + 1)

    @property
    def kernel(self) -> np.ndarray:
        """(L, 2, 2) two-input kernel to O(δ²) (K_[0] ≈ K₀₀; the O(δ²) shift δδK_[0] is not tracked)."""
        return from_gamma(np.stack([self.K00, self.dK1, self.ddK2], axis=-1))


def bootstrapped_recursion(activation, K00, dK1, ddK2, depth, *, C_b=0.0, C_W=1.0) -> BootstrappedKernel:
    """Iterate (5.46)–(5.48) from first-layer values K₀₀^{(1)}, δK_[1]^{(1)}, δδK_[2]^{(1)} for a smooth σ.

    ``C_b``, ``C_W``: scalars or length-``depth`` sequences (layer ℓ at index ℓ − 1).
    """
    act = _activation(activation)
    _smooth(act, "the bootstrapped recursion (5.46)–(5.48)")
    L = v.positive_int(depth, "depth")
    k00 = v.finite_scalar(K00, "K00 (midpoint kernel K₀₀^(1))", minimum=0.0, strict=True)
    d1 = v.finite_scalar(dK1, "dK1", minimum=None)
    d2 = v.finite_scalar(ddK2, "ddK2", minimum=0.0)
    Cb = next_layer_values(v.per_layer(C_b, "C_b", L))
    CW = next_layer_values(v.per_layer(C_W, "C_W", L))
    ones, zeros = np.ones(L), np.zeros(L)
    tr = scan_recursion(act, k00, Cb, CW, ones, zeros, zeros, dK1=d1, ddK2=d2)
    return BootstrappedKernel(tr["K"], tr["dK1"], tr["ddK2"], tr["chi_parallel"], tr["chi_perp"], tr["h"])


# ----------------------------------------------------------------------------------------------
# Finite angle, scale-invariant activations (§5.5)
# ----------------------------------------------------------------------------------------------


def kink_rho(a_plus: float, a_minus: float) -> float:
    """ρ = (a₊ − a₋)²/(π(a₊² + a₋²)) (5.163): 0 for linear, 1/π for ReLU (0 for σ ≡ 0, a₊ = a₋ = 0)."""
    s2 = a_plus**2 + a_minus**2
    return (a_plus - a_minus) ** 2 / (math.pi * s2) if s2 > 0 else 0.0


def _sin_minus_psi_cos(psi):
    """sin ψ − ψ cos ψ, by its series ψ³/3 − ψ⁵/30 + ψ⁷/840 − ψ⁹/45360 for ψ < 0.05 (no cancellation)."""
    psi = np.asarray(psi, dtype=np.float64)
    p2 = psi * psi
    series = psi * p2 * (1 / 3 - p2 * (1 / 30 - p2 * (1 / 840 - p2 / 45360)))
    return np.where(psi < 0.05, series, np.sin(psi) - psi * np.cos(psi))


def scale_invariant_sigma_pm(K_d, psi, a_plus: float, a_minus: float) -> np.ndarray:
    """⟨σ(z₊)σ(z₋)⟩ for K = K_d[[1, cos ψ], [cos ψ, 1]] (5.159); ReLU: (K_d/2π)[sin ψ + (π − ψ)cos ψ] (5.158)."""
    K_d, psi = np.asarray(K_d, dtype=np.float64), np.asarray(psi, dtype=np.float64)
    A2 = 0.5 * (a_plus**2 + a_minus**2)
    return K_d / (2 * math.pi) * (a_plus - a_minus) ** 2 * _sin_minus_psi_cos(psi) + A2 * K_d * np.cos(psi)


def scale_invariant_dsigma_pm(psi, a_plus: float, a_minus: float) -> np.ndarray:
    """⟨σ′(z₊)σ′(z₋)⟩ = A₂ − (ψ/2π)(a₊ − a₋)² (5.161), independent of K_d."""
    psi = np.asarray(psi, dtype=np.float64)
    return 0.5 * (a_plus**2 + a_minus**2) - psi / (2 * math.pi) * (a_plus - a_minus) ** 2


@dataclasses.dataclass(frozen=True, eq=False)
class FiniteAngle:
    """Two-input kernel of a scale-invariant MLP at any angle, layers ℓ = 1..L on the first axis
    (extra axes broadcast over a batch of input pairs)."""

    K_pp: np.ndarray
    K_mm: np.ndarray
    psi: np.ndarray
    rho: float

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.psi.shape[0] + 1)

    @property
    def K_d(self) -> np.ndarray:
        """√(K₊₊K₋₋) (= the diagonal kernel (5.145) for equal norms)."""
        return np.sqrt(self.K_pp * self.K_mm)

    @property
    def K_pm(self) -> np.ndarray:
        return self.K_d * np.cos(self.psi)

    @property
    def kernel(self) -> np.ndarray:
        """(L, …, 2, 2) kernel matrices."""
        return np.stack([np.stack([self.K_pp, self.K_pm], -1), np.stack([self.K_pm, self.K_mm], -1)], -2)

    @property
    def gamma(self) -> np.ndarray:
        """(L, …, 3) γ-basis components; K_[2] → K_d*(9/4ρ²)/ℓ² at criticality (5.168)."""
        return gamma_components(self.kernel)

    def psi_asymptotic(self) -> np.ndarray:
        """3/(ρℓ) (5.166), the leading large-depth angle at criticality."""
        ell = self.layers.reshape((-1,) + (1,) * (self.psi.ndim - 1))
        return 3.0 / (self.rho * ell) * np.ones_like(self.psi)


def finite_angle_recursion(activation, K, depth, *, C_b=0.0, C_W=None) -> FiniteAngle:
    """Iterate the exact two-input kernel recursion (5.147)–(5.148) with (5.159) for a scale-invariant σ.

    ``K``: first-layer kernel(s) (…, 2, 2) for the pair (x₊, x₋) (or ``(K_d, psi)`` as a tuple for equal
    norms). ``C_W`` defaults to the critical 1/A₂; ``C_b`` (default 0) and ``C_W`` are constant across layers.
    """
    act = _activation(activation)
    if not act.scale_invariant:
        raise DeepEFTInputError(
            f"the finite-angle recursion (5.159) is exact only for scale-invariant activations (σ(λz) = λσ(z)); "
            f"{act!r} is not. For smooth σ use bootstrapped_recursion (nearby inputs)."
        )
    L = v.positive_int(depth, "depth")
    assert act.a_plus is not None and act.a_minus is not None  # scale-invariant (checked above)
    ap, am = float(act.a_plus), float(act.a_minus)
    A2 = 0.5 * (ap**2 + am**2)
    cb = v.finite_scalar(C_b, "C_b")
    cw = 1.0 / A2 if C_W is None else v.finite_scalar(C_W, "C_W")
    if isinstance(K, tuple) and len(K) == 2:
        K_d, psi = (np.asarray(a, dtype=np.float64) for a in K)
        if np.any(psi < 0) or np.any(psi > math.pi):
            raise DeepEFTInputError("psi must lie in [0, π] (the angle between the two preactivations).")
        K_d, psi = np.broadcast_arrays(K_d, psi)
        Kpp, Kmm, u = K_d.copy(), K_d.copy(), 2.0 * np.sin(0.5 * psi) ** 2
    else:
        Km = v.kernel_matrix(K, "K")
        if Km.shape[-2:] != (2, 2):
            raise DeepEFTInputError(f"K must be a 2×2 kernel for two inputs (…, 2, 2), got shape {Km.shape}.")
        Kpp, Kmm = Km[..., 0, 0].copy(), Km[..., 1, 1].copy()
        Kd = np.sqrt(Kpp * Kmm)
        u = np.clip(1.0 - Km[..., 0, 1] / Kd, 0.0, 2.0)
    if np.any(Kpp <= 0) or np.any(Kmm <= 0):
        raise DeepEFTInputError("the diagonal kernels K₊₊, K₋₋ must be > 0 (nonzero inputs or C_b > 0).")
    chi = A2 * cw
    c = (ap - am) ** 2 / (2 * math.pi)
    out_pp, out_mm, out_psi = [], [], []
    for _ in range(L):
        psi = 2.0 * np.arcsin(np.sqrt(np.clip(0.5 * u, 0.0, 1.0)))
        out_pp.append(Kpp)
        out_mm.append(Kmm)
        out_psi.append(psi)
        Kd = np.sqrt(Kpp * Kmm)
        a, b = cb + chi * Kpp, cb + chi * Kmm  # (5.147) for each diagonal
        m = cb + chi * Kd
        Kd_new = np.sqrt(a * b)
        # K_d⁺ − K₊₋⁺, with (5.148)/(5.159) and √(ab) − m = C_bχ(√K₊₊ − √K₋₋)²/(√(ab) + m) [derived]
        D = cb * chi * (np.sqrt(Kpp) - np.sqrt(Kmm)) ** 2 / (Kd_new + m) + cw * Kd * (A2 * u - c * _sin_minus_psi_cos(psi))
        Kpp, Kmm, u = a, b, np.clip(D / Kd_new, 0.0, 2.0)
    return FiniteAngle(np.array(out_pp), np.array(out_mm), np.array(out_psi), kink_rho(ap, am))
