"""Generalization of infinite-width networks trained to the end (book §10.3).

* Bias–variance split of the expected test MSE (10.52): E[L_ℬ] = ½Σ(m^∞ − y)² + ½ n_L tr Cov.
* One training input x₊, one test input x₋ (exact 2×2): m = (Θ₋₊/Θ₊₊) y₊ (10.56); robustness (10.57)
  Θ₋₊/Θ₊₊ − 1; variance K₋₋ − 2(Θ₋₊/Θ₊₊)K₋₊ + (Θ₋₊/Θ₊₊)²K₊₊ (first line of (10.63)).
* δ expansion, smooth σ, x± = x₀ ± δx/2: robustness ≈ −δΘ_[1]/Θ₀₀ − 2δδΘ_[2]/Θ₀₀ + (δΘ_[1]/Θ₀₀)² (10.64),
  variance ≈ 4δδK_[2] − 2δK_[1]δΘ_[1]/Θ₀₀ + K₀₀(δΘ_[1]/Θ₀₀)² (10.65), δΘ_[1] by (10.66); equal norms (x₀·δx = 0):
  −2δδΘ_[2]/Θ₀₀ (10.62), 4δδK_[2] (10.63), with δδK_[2]⁺ = χ_⊥δδK_[2] (5.48) and
  δδΘ_[2]⁺ = χ_⊥δδΘ_[2] + (λ_W χ_⊥/C_W + C_W⟨σ″σ″⟩_{K₀₀} Θ₀₀) δδK_[2] (10.68)–(10.70), Θ₀₀⁺ = λ_b + λ_W g + χ_⊥Θ₀₀ (9.6).
  K* = 0 class with the equivalence rates (10.74): −2δδΘ_[2]/Θ₀₀ → (2δ²/(p_⊥−2)){λ̃_Wσ₁²/[λ̃_b + λ̃_Wσ₁²/(−a₁)]
  + σ₂²/σ₁²} L^{1−p_⊥} (10.78), δ² ≡ lim ℓ^{p_⊥} δδK_[2]; tanh: −2δ²λ̃_W/(λ̃_b + λ̃_W/2), independent of L.
* Scale-invariant σ at any angle (10.82)–(10.95): Θ_d⁺ = χΘ_d + λ_b + λ_W A₂K_d (10.88),
  Θ_d⁺cos ζ⁺ = χ(1 − ρψ)Θ_d cos ζ + λ_b + λ_W A₂K_d{cos ψ + ρ[sin ψ − ψ cos ψ]} (10.89); at criticality with
  λ = λ̃/L: cos ζ → 1/4 (10.93), robustness → −3/4 (10.94), variance → (9/16)K_d* (10.95).
* *-polation (10.99)–(10.115): exact kernel prediction on x_(2s−1) = s x₊ + (1−s) x₋ vs the corrected
  equal-norm expansion m = s y₊ + (1−s) y₋ − s(1−s)(δδΘ_[0]/Θ₀₀)(y₊ + y₋) (erratum: the book's (10.115)
  prints 4s(1−s); (10.114) also prints +z for −z). δδΘ_[0] = Θ_[0] − Θ(x₀, x₀) (10.59).

Expectations come from the Gaussian engine (helper functions and ⟨σ″σ″⟩) and K, Θ from de.kernel_and_ntk.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §10.3.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..gaussian.engine import one_point_core
from ..network import MLP, check_net
from .kernel import kernel_and_ntk
from .kernel_learning import gd_prediction
from .single_input import helper_functions
from .two_input import finite_angle_recursion, gamma_components

__all__ = [
    "BiasVariance",
    "DeltaNTK",
    "FiniteAngleNTK",
    "StarPolation",
    "bias_variance",
    "delta_ntk_recursion",
    "finite_angle_ntk",
    "k0_robustness_asymptotic",
    "one_point_prediction",
    "robustness",
    "star_polation",
]


@dataclasses.dataclass(frozen=True)
class BiasVariance:
    """E[L_ℬ] = bias + variance (10.52), MSE test loss ½Σ(z − y)²."""

    bias: float
    variance: float

    @property
    def total(self) -> float:
        return self.bias + self.variance


def bias_variance(mean, cov, Y_test) -> BiasVariance:
    """Bias ½Σ_{i,β}(m_{i;β} − y_{i;β})² and variance ½ n_L tr Cov (10.52) from a prediction's mean (M, n_L) and
    cov (M, M) (shared by the n_L components)."""
    m = np.asarray(mean, dtype=np.float64)
    m = m[:, None] if m.ndim == 1 else m
    y = np.asarray(Y_test, dtype=np.float64).reshape(m.shape) if np.size(Y_test) == m.size else None
    if y is None:
        raise DeepEFTInputError(f"Y_test must have the shape of mean {m.shape}, got {np.shape(Y_test)}.")
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (m.shape[0], m.shape[0]):
        raise DeepEFTInputError(f"cov must be ({m.shape[0]}, {m.shape[0]}), got {c.shape}.")
    return BiasVariance(0.5 * float(np.sum((m - y) ** 2)), 0.5 * m.shape[1] * float(np.trace(c)))


def _pair_matrix(M, name: str) -> np.ndarray:
    """A finite 2×2 matrix on (x₊, x₋) with M₊₊ > 0."""
    try:
        A = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric 2×2 matrix on (x₊, x₋).") from None
    if A.shape != (2, 2):
        raise DeepEFTInputError(f"{name} must be the 2×2 matrix of (x₊ training, x₋ test), got shape {A.shape}; "
                                "for one layer of a (L, 2, 2) result pass result[-1].")
    if not np.all(np.isfinite(A)) or A[0, 0] <= 0:
        raise DeepEFTInputError(f"{name} must be finite with {name}₊₊ > 0, got {A.tolist()}.")
    return A


def _vectors(names: tuple[str, str], values, size: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        u, w = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in values)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{names[0]} and {names[1]} must be numeric vectors.") from None
    if u.ndim != 1 or w.ndim != 1 or u.size != size or w.size != size:
        raise DeepEFTInputError(
            f"{names[0]} and {names[1]} must be vectors of {size} components each, got shapes {u.shape}, {w.shape}."
        )
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(w))):
        raise DeepEFTInputError(f"{names[0]} and {names[1]} must be finite (no NaN or inf).")
    return u, w


def _pair_inputs(net: MLP, x_plus, x_minus, names=("x_plus", "x_minus")) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs as finite vectors of length n₀."""
    return _vectors(names, (x_plus, x_minus), net.input_dim)


def _pair_targets(net: MLP, y_plus, y_minus) -> tuple[np.ndarray, np.ndarray]:
    """Two targets as finite vectors of length n_L."""
    return _vectors(("y_plus", "y_minus"), (y_plus, y_minus), net.output_dim)


def robustness(Theta) -> float:
    """Θ₋₊/Θ₊₊ − 1 (10.57) for a 2×2 frozen NTK on (x₊ training, x₋ test)."""
    T = _pair_matrix(Theta, "Theta")
    return float(T[1, 0] / T[0, 0] - 1.0)


def one_point_prediction(K, Theta, y_plus) -> tuple[np.ndarray, float]:
    """Exact end-of-training prediction at x₋ from the single training pair (x₊, y₊): mean (Θ₋₊/Θ₊₊)y₊ (10.56)
    and variance K₋₋ − 2(Θ₋₊/Θ₊₊)K₋₊ + (Θ₋₊/Θ₊₊)²K₊₊ (10.63)."""
    K = _pair_matrix(K, "K")
    T = _pair_matrix(Theta, "Theta")
    y = np.atleast_1d(np.asarray(y_plus, dtype=np.float64))
    if y.ndim != 1 or not np.all(np.isfinite(y)):
        raise DeepEFTInputError(f"y_plus must be a finite vector of n_L targets, got shape {y.shape}.")
    r = T[1, 0] / T[0, 0]
    return r * y, float(K[1, 1] - 2 * r * K[1, 0] + r * r * K[0, 0])


# ---------------------------------------------------------------------------------------------
# δ expansion (K* = 0 class and other smooth σ): (10.59)–(10.81)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeltaNTK:
    """Midpoint K₀₀, Θ₀₀, parallel perturbations δK_[1], δΘ_[1] and perpendicular δδK_[2], δδΘ_[2] for layers
    ℓ = 1..L (index ℓ − 1), in the γ basis (5.15), (10.58): K_±± = K_[0] ± K_[1] + K_[2], K_±∓ = K_[0] − K_[2]."""

    K00: np.ndarray
    ddK2: np.ndarray
    Theta00: np.ndarray
    ddTheta2: np.ndarray
    dK1: np.ndarray
    dTheta1: np.ndarray

    @property
    def robustness(self) -> np.ndarray:
        """Θ₋₊/Θ₊₊ − 1 to O(δ²), per layer: −δΘ_[1]/Θ₀₀ − 2δδΘ_[2]/Θ₀₀ + (δΘ_[1]/Θ₀₀)² (10.64); equal norms
        (δΘ_[1] = 0): −2δδΘ_[2]/Θ₀₀ (10.62)."""
        r1 = self.dTheta1 / self.Theta00
        return -r1 - 2.0 * self.ddTheta2 / self.Theta00 + r1 * r1

    @property
    def variance(self) -> np.ndarray:
        """Cov[z₋(T), z₋(T)] to O(δ²), per layer: 4δδK_[2] − 2δK_[1]δΘ_[1]/Θ₀₀ + K₀₀(δΘ_[1]/Θ₀₀)² (10.65); equal
        norms: 4δδK_[2] (10.63)."""
        r1 = self.dTheta1 / self.Theta00
        return 4.0 * self.ddK2 - 2.0 * self.dK1 * r1 + self.K00 * r1 * r1


def delta_ntk_recursion(net: MLP, x0, dx) -> DeltaNTK:
    """The δ expansion of K and Θ through the layers of ``net`` for x± = x₀ ± δx/2 (any norms; smooth σ).

    Layer 1 (exact): K₀₀ = C_b + C_W|x₀|²/n₀, δK_[1] = C_W x₀·δx/n₀, δδK_[2] = C_W|δx|²/(4n₀), and the same for Θ
    with (λ_b, λ_W) (the γ parts of (4.8), (8.23)). Deeper, with χ's at K₀₀ and Θ₀₀⁺ = λ_b + λ_W g + χ_⊥Θ₀₀ (9.6):

    * δK_[1]⁺ = χ_∥ δK_[1] (5.47);  δδK_[2]⁺ = χ_⊥ δδK_[2] + h (δK_[1])² (5.48);
    * δΘ_[1]⁺ = χ_⊥ δΘ_[1] + (λ_W χ_∥/C_W + C_W⟨zσ′σ″⟩Θ₀₀/K₀₀) δK_[1] (10.66);
    * δδΘ_[2]⁺ = χ_⊥ δδΘ_[2] + (λ_W χ_⊥/C_W + C_W⟨σ″σ″⟩Θ₀₀) δδK_[2] (10.70)
      + (λ_W h/C_W + C_W h₂Θ₀₀)(δK_[1])² + (C_W/2)(⟨zσ′σ″⟩/K₀₀) δK_[1] δΘ_[1]   [derived: the γ^{[2]} part of (10.67)
      when δK_[1] ≠ 0, with h₂ = ½ d⟨σ″σ″⟩/dK and γ^{[1]}∘γ^{[1]} = (γ^{[0]} + γ^{[2]})/2; equal norms: (10.70)].

    Derivatives in K are Gaussian expectations by Stein's identity: d⟨σ′σ′⟩/dK = ⟨zσ′σ″⟩/K = ⟨σ″σ″⟩ + ⟨σ′σ‴⟩,
    d⟨σ″σ″⟩/dK = ⟨σ‴σ‴⟩ + ⟨σ″σ⁗⟩ (5.53). Needs σ up to σ⁗ (smooth σ); for ReLU-like kinks use
    :func:`finite_angle_ntk`."""
    net = check_net(net)
    act = net.activation
    if act.scale_invariant and act.a_plus != act.a_minus:
        raise DeepEFTInputError(
            f"{act!r} has a kink: ⟨σ″σ″⟩ in (10.69) is singular. Use finite_angle_ntk (10.82)–(10.95) instead."
        )
    x0, dx = _pair_inputs(net, x0, dx, ("x0", "dx"))
    n0 = net.input_dim
    p = net.arrays()
    K00, T00 = kernel_and_ntk(net, x0[None], ntk=True)
    assert T00 is not None  # ntk=True
    Kmid, Tmid = K00[:, 0, 0], T00[:, 0, 0]
    L = net.L
    ddK, ddT, dK, dT = (np.empty(L) for _ in range(4))
    d2, d1 = float(dx @ dx) / (4.0 * n0), float(x0 @ dx) / n0
    ddK[0], dK[0] = p["C_W"][0] * d2, p["C_W"][0] * d1
    ddT[0], dT[0] = p["lambda_W"][0] * d2, p["lambda_W"][0] * d1
    if L > 1:
        Kp = Kmid[:-1]
        hf = helper_functions(act, Kp, p["C_W"][1:])
        s22, s13 = one_point_core(act, (2, 2), Kp), one_point_core(act, (1, 3), Kp)
        dprime = s22 + s13  # d⟨σ′σ′⟩/dK = ⟨zσ′σ″⟩/K
        h2 = 0.5 * (one_point_core(act, (3, 3), Kp) + one_point_core(act, (2, 4), Kp)) if np.any(dK) else np.zeros_like(Kp)
        for l in range(1, L):
            chi_par, chi_perp, h = hf.chi_parallel[l - 1], hf.chi_perp[l - 1], hf.h[l - 1]
            cw, lw, T0 = p["C_W"][l], p["lambda_W"][l], Tmid[l - 1]
            ddT[l] = (chi_perp * ddT[l - 1] + (lw * chi_perp / cw + cw * s22[l - 1] * T0) * ddK[l - 1]  # (10.70)
                      + (lw * h / cw + cw * h2[l - 1] * T0) * dK[l - 1] ** 2 + 0.5 * cw * dprime[l - 1] * dK[l - 1] * dT[l - 1])
            dT[l] = chi_perp * dT[l - 1] + (lw * chi_par / cw + cw * dprime[l - 1] * T0) * dK[l - 1]  # (10.66)
            ddK[l] = chi_perp * ddK[l - 1] + h * dK[l - 1] ** 2  # (5.48)
            dK[l] = chi_par * dK[l - 1]  # (5.47)
    return DeltaNTK(Kmid, ddK, Tmid, ddT, dK, dT)


def k0_robustness_asymptotic(delta2: float, lambda_b_tilde: float, lambda_W_tilde: float, L: int, *,
                             sigma1: float = 1.0, sigma2: float = 0.0, a1: float = -2.0, p_perp: float = 1.0) -> float:
    """(10.78): −2δδΘ_[2]/Θ₀₀ at ℓ = L for the K* = 0 class with the equivalence rates (10.74) = (9.95) (get them
    from :func:`deepeft.learning_rates`, rule ``"equivalence"``); defaults are tanh
    (σ₁ = 1, σ₂ = 0, a₁ = −2, p_⊥ = 1), giving −2δ²λ̃_W/(λ̃_b + λ̃_W/2)."""
    if not (math.isfinite(p_perp) and p_perp < 2):
        raise DeepEFTInputError(
            f"(10.78) needs p_⊥ < 2, got p_perp = {p_perp!r}: its solution (10.77) carries 1/(2 − p_⊥) (at p_⊥ = 2 the "
            "recursion (10.76) gives a log L instead). Every K* = 0 activation has p_⊥ ≤ 1 (book fn. 33 of §10.3); "
            "take p_⊥ = b₁/a₁ from de.criticality(activation).taylor."
        )
    if not a1 < 0 or sigma1 == 0:
        raise DeepEFTInputError(f"(10.78) needs a₁ < 0 and σ₁ ≠ 0 (the K* = 0 class), got a1 = {a1}, sigma1 = {sigma1}.")
    L = v.positive_int(L, "L")
    c = lambda_b_tilde + lambda_W_tilde * sigma1**2 / (-a1)
    return (2 * delta2 / (p_perp - 2)) * (lambda_W_tilde * sigma1**2 / c + sigma2**2 / sigma1**2) * L ** (1 - p_perp)


# ---------------------------------------------------------------------------------------------
# Scale-invariant σ at finite angle: (10.82)–(10.95)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FiniteAngleNTK:
    """Equal-norm pair: K_d, ψ (kernel) and Θ_d, cos ζ (frozen NTK) for ℓ = 1..L."""

    K_d: np.ndarray
    psi: np.ndarray
    Theta_d: np.ndarray
    cos_zeta: np.ndarray

    @property
    def robustness(self) -> np.ndarray:
        """Θ₋₊/Θ₊₊ − 1 = cos ζ − 1 (10.94)."""
        return self.cos_zeta - 1.0

    @property
    def variance(self) -> np.ndarray:
        """K₋₋ − 2cos ζ K₋₊ + cos²ζ K₊₊ = K_d(1 − 2 cos ζ cos ψ + cos²ζ) (10.95, exact form)."""
        c = self.cos_zeta
        return self.K_d * (1.0 - 2.0 * c * np.cos(self.psi) + c * c)


def finite_angle_ntk(net: MLP, x_plus, x_minus) -> FiniteAngleNTK:
    """Iterate (10.88)–(10.89) with the exact finite-angle kernel (5.159) for a scale-invariant ``net`` with
    constant C_b = 0 and equal-norm inputs; the per-layer λ_b, λ_W of ``net`` are used (λ = λ̃/L for (10.93))."""
    net = check_net(net)
    act = net.activation
    a_plus, a_minus = act.a_plus, act.a_minus
    if not act.scale_invariant or a_plus is None or a_minus is None:
        raise DeepEFTInputError(f"finite_angle_ntk needs a scale-invariant activation; {act!r} is not. "
                                "Use delta_ntk_recursion for smooth σ.")
    p = net.arrays()
    if np.any(p["C_b"] != 0) or len(set(net.C_W)) != 1:
        raise DeepEFTInputError("finite_angle_ntk needs C_b = 0 and a layer-independent C_W (§5.5).")
    xp, xm = _pair_inputs(net, x_plus, x_minus)
    n0 = net.input_dim
    if abs(xp @ xp - xm @ xm) > 1e-12 * (xp @ xp):
        raise DeepEFTInputError("x_plus and x_minus must have equal norms for (10.82)–(10.95).")
    G = np.array([[xp @ xp, xp @ xm], [xm @ xp, xm @ xm]]) / n0
    fa = finite_angle_recursion(act, p["C_W"][0] * G, net.L, C_b=0.0, C_W=p["C_W"][0])
    ap, am = float(a_plus), float(a_minus)
    A2 = 0.5 * (ap**2 + am**2)
    rho = fa.rho  # (5.163), two_input.kink_rho
    chi = p["C_W"][0] * A2
    Kd, psi = fa.K_d, fa.psi
    Td = np.empty(net.L)
    Tc = np.empty(net.L)  # Θ_d cos ζ
    Td[0] = p["lambda_b"][0] + p["lambda_W"][0] * G[0, 0]
    Tc[0] = p["lambda_b"][0] + p["lambda_W"][0] * G[0, 1]
    for l in range(1, net.L):
        lb, lw, s, k = p["lambda_b"][l], p["lambda_W"][l], psi[l - 1], Kd[l - 1]
        Td[l] = chi * Td[l - 1] + lb + lw * A2 * k  # (10.88)
        Tc[l] = chi * (1 - rho * s) * Tc[l - 1] + lb + lw * A2 * k * (math.cos(s) + rho * (math.sin(s) - s * math.cos(s)))
    return FiniteAngleNTK(Kd, psi, Td, Tc / Td)


# ---------------------------------------------------------------------------------------------
# *-polation (10.99)–(10.115)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StarPolation:
    """Kernel prediction on x_(2s−1) = s x₊ + (1 − s) x₋ from the training pairs (x±, y±)."""

    s: np.ndarray
    mean: np.ndarray  # (S, n_L) exact (10.105) ensemble mean
    var: np.ndarray  # (S,) exact ensemble variance
    expansion_mean: np.ndarray  # (S, n_L) corrected (10.115), equal norms
    ddTheta0: float  # δδΘ_[0] = Θ_[0] − Θ(x₀, x₀)
    Theta00: float


def star_polation(net: MLP, x_plus, x_minus, y_plus, y_minus, s) -> StarPolation:
    """Exact *-polation of the infinite-width ensemble trained on (x₊, y₊), (x₋, y₋), and the corrected
    equal-norm δ expansion (10.115): s y₊ + (1 − s)y₋ − s(1 − s)(δδΘ_[0]/Θ₀₀)(y₊ + y₋)."""
    net = check_net(net)
    xp, xm = _pair_inputs(net, x_plus, x_minus)
    yp, ym = _pair_targets(net, y_plus, y_minus)
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise DeepEFTInputError(f"s must be a finite 1-D array of interpolation parameters, got shape {s.shape}.")
    XA = np.stack([xp, xm])
    XB = s[:, None] * xp[None] + (1 - s)[:, None] * xm[None]
    pred = gd_prediction(net, XA, np.stack([yp, ym]), XB, np.inf)
    assert pred.cov is not None  # compute_cov=True (the default)
    x0 = 0.5 * (xp + xm)
    T_all = kernel_and_ntk(net, np.stack([xp, xm, x0])).Theta
    assert T_all is not None  # ntk=True (the default)
    T = T_all[-1]
    T0 = float(gamma_components(T[:2, :2])[0])
    dd0 = T0 - T[2, 2]
    exp_mean = s[:, None] * yp + (1 - s)[:, None] * ym - (s * (1 - s))[:, None] * (dd0 / T[2, 2]) * (yp + ym)
    return StarPolation(s, pred.mean, np.diagonal(pred.cov).copy(), exp_mean, float(dd0), float(T[2, 2]))
