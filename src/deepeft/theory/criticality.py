"""Criticality and universality classes for any activation (book §5.1–§5.4).

Criticality (5.55)–(5.56): a fixed point K* = C_b + C_W g(K*) with χ_∥(K*) = χ_⊥(K*) = 1.
General algorithm (§5.3.1): for a candidate K*, C_W = 1/⟨σ′σ′⟩_{K*} (5.71) and
C_b = K* − ⟨σσ⟩/⟨σ′σ′⟩ (5.72) solve the fixed-point equation and χ_⊥ = 1; the remaining condition
χ_⊥/χ_∥ = K⟨σ′σ′⟩/⟨zσ′σ⟩ = 1 (5.73) is free of C_b, C_W. We scan it on a log grid of K > 0, refine every
sign change of 1 − χ_∥/χ_⊥ with Brent's method (away from K = 0), require C_b ≥ 0, and add the K* = 0
limit from the Taylor data (5.80)–(5.90). Universality classes:

* ``"scale-invariant"`` — σ(λz) = λσ(z): a line of critical points C_b = 0, C_W = 1/A₂, any K* (5.67);
* ``"K*=0"`` — σ(0) = 0, σ′(0) ≠ 0 and (−a₁) > 0: C_b = 0, C_W = 1/σ₁² (5.90), power-law decay (5.94);
* ``"half-stable"`` — a critical K* > 0 where ΔK⁺ = ΔK + ã₁ΔK² (5.102), e.g. SWISH, GELU;
* ``"none"`` — no physical critical point (sigmoid, softplus, monomials, perceptron …); ``reason`` says why.

Large-depth exponents are fitted from deep recursions with the scaling ansatz (5.93) and compared with
the closed forms (p₀, p_∥, p_⊥, p_V) of §5.3–§5.4.

Errata reproduced here (see docs/criticality.md): footnote 21 (GELU trivial fixed point ≈ 3.0350, not 3.2),
footnote 20 (SWISH ≈ 14.593, not 14.5), (5.81) (g′(0) = σ₁² + σ₀σ₂, not σ₁² + 2σ₀σ₂; this sets the
softplus ratio 0.59 at K → 0), and (5.143) (see :attr:`TaylorData.G1_renormalized_coefficient`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .. import dispatch
from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..network import MLP
from .single_input import helper_functions, single_input, single_input_recursion

__all__ = [
    "CriticalPoint",
    "Criticality",
    "Exponents",
    "PhaseReport",
    "TaylorData",
    "criticality",
    "efolds",
    "fit_exponent",
    "kernel_depth_warning",
    "phase",
    "phase_report",
    "regime_step",
    "warn_on_exponential_kernel",
]

_PROBE = np.linspace(-10.0, 10.0, 401)


# ----------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CriticalPoint:
    """One solution of the criticality conditions (5.55)–(5.56).

    ``K_star`` is None on the scale-invariant line (any K* is a fixed point). ``a1_tilde`` is the
    coefficient in ΔK⁺ = ΔK + ã₁ΔK² + … ((5.91) at K* = 0 where ã₁ = a₁ C_W σ₁², (5.102) at K* > 0,
    ã₁ = ½C_W g″(K*) [derived]). ``stability``: "stable", "half-stable", "unstable", "marginal" or "line";
    ``attracting_side``: "above"/"below" for half-stable points. ``trivial_fixed_point``: the other fixed
    point of K = C_b + C_W g(K) on the repelling side (book footnotes 20–21). ``physical``: C_b ≥ 0.
    """

    C_b: float
    C_W: float
    K_star: float | None
    stability: str
    a1_tilde: float | None = None
    attracting_side: str | None = None
    trivial_fixed_point: float | None = None
    physical: bool = True


@dataclasses.dataclass(frozen=True)
class TaylorData:
    """σ_p = σ^{(p)}(0) (5.80) and the K* = 0 coefficients a₁ (5.86), a₂ (5.87), b₁ (5.88)."""

    sigma: tuple[float, ...]
    a1: float | None
    a2: float | None
    b1: float | None

    @property
    def p_perp(self) -> float | None:
        """p_⊥ = b₁/a₁ (5.99)."""
        a1, b1 = self.a1, self.b1
        return None if not a1 or b1 is None else b1 / a1

    @property
    def kernel_coefficient(self) -> float | None:
        """K^{(ℓ)} ≈ [1/(−a₁)]/ℓ (5.92)."""
        return None if not self.a1 else 1.0 / (-self.a1)

    @property
    def vertex_coefficient(self) -> float | None:
        """V^{(ℓ)} ≈ [2/(3a₁²)]/ℓ (5.127)."""
        return None if not self.a1 else 2.0 / (3.0 * self.a1**2)

    @property
    def G1_bare_limit(self) -> float | None:
        """Bare NLO metric G^{1}(ℓ) → −1/(3(−a₁)) (5.134)."""
        return None if not self.a1 else -1.0 / (3.0 * (-self.a1))

    @property
    def G1_renormalized_coefficient(self) -> float | None:
        """ℓ·G^{1}(ℓ) → (84a₁² − 90a₁b₁ − a₂)/(3a₁³) with c_W^{1} = (2/3)c_W^{0} (5.142).

        Erratum to (5.143): iterating (5.140) gives 89/72 for tanh and 20/9 for sin (checked to ℓ = 10⁶,
        tests/theory/test_single_input.py); the printed (2/3)(3a₂ − a₁²)/(−a₁)³ gives 13/12 and 2/3.
        """
        a1, a2, b1 = self.a1, self.a2, self.b1
        return None if not a1 or a2 is None or b1 is None else (84 * a1**2 - 90 * a1 * b1 - a2) / (3 * a1**3)

    @property
    def G1_renormalized_coefficient_book(self) -> float | None:
        """(5.143) as printed: (2/3)(3a₂ − a₁²)/(−a₁)³ (see the erratum above)."""
        a1, a2 = self.a1, self.a2
        return None if not a1 or a2 is None else (2.0 / 3.0) * (3 * a2 - a1**2) / (-a1) ** 3


@dataclasses.dataclass(frozen=True)
class Exponents:
    """Large-depth critical exponents O^{(ℓ)} ~ ℓ^{−p} (5.93): ``fitted`` from a deep recursion at the
    critical point, ``predicted`` from the closed forms. Keys: p0 (ΔK), p_parallel (δK_[1]),
    p_perp (δδK_[2]), p_V (V). ``asymptotic`` is False when the fit window is not yet far beyond
    the crossover depth 1/|ã₁ΔK^{(1)}| (SWISH: ã₁ ≈ 3e-6)."""

    fitted: dict[str, float]
    predicted: dict[str, float | None]
    depth: int
    fit_range: tuple[int, int]
    K1: float
    asymptotic: bool


@dataclasses.dataclass(frozen=True, eq=False)
class Criticality:
    """The criticality analysis of one activation; see :func:`criticality`."""

    activation: Activation
    universality_class: str
    reason: str
    points: tuple[CriticalPoint, ...]
    rejected: tuple[CriticalPoint, ...]
    taylor: TaylorData | None
    exponents: Exponents | None
    K_grid: np.ndarray
    ratio: np.ndarray
    constants: dict[str, float]

    @property
    def critical(self) -> CriticalPoint | None:
        """The critical point to use: the stable K* = 0 point, the scale-invariant line, or a half-stable point."""
        for want in ("line", "stable", "half-stable"):
            for p in self.points:
                if p.stability == want and p.physical:
                    return p
        return None

    @property
    def nlo_tuning(self) -> tuple[float, float] | None:
        """(c_b^{1}, c_W^{1}) of (5.138)–(5.139): (0, (2/3)c_W^{0}) for K* = 0 (5.142); (0, 0) for
        scale-invariant (footnote 25); None where the book derives none (half-stable, none)."""
        p = self.critical
        if self.universality_class == "K*=0" and p is not None:
            return (0.0, 2.0 / 3.0 * p.C_W)
        if self.universality_class == "scale-invariant":
            return (0.0, 0.0)
        return None

    def __str__(self) -> str:
        lines = [f"{self.activation!r}: universality class {self.universality_class!r} — {self.reason}"]
        for p in self.points:
            ks = "any" if p.K_star is None else f"{p.K_star:.10g}"
            extra = f", ã₁ = {p.a1_tilde:.8e}" if p.a1_tilde is not None else ""
            side = f" (attracting from {p.attracting_side})" if p.attracting_side else ""
            triv = f", trivial fixed point {p.trivial_fixed_point:.6g}" if p.trivial_fixed_point else ""
            lines.append(f"  K* = {ks}: (C_b, C_W) = ({p.C_b:.8f}, {p.C_W:.8f}), {p.stability}{side}{extra}{triv}")
        for p in self.rejected:
            lines.append(f"  rejected K* = {p.K_star:.6g}: C_b = {p.C_b:.6g} < 0 (unphysical)")
        if self.exponents is not None:
            e = self.exponents
            for k, val in e.fitted.items():
                pred = e.predicted.get(k)
                ps = "—" if pred is None else f"{pred:.4g}"
                lines.append(f"  {k:10s} fitted {val:8.4f}   closed form {ps}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Pieces of the analysis
# ----------------------------------------------------------------------------------------------


def _check_activation(act: Activation) -> None:
    vals = act.numpy(_PROBE)
    der = act.numpy(_PROBE, 1)
    if not (np.all(np.isfinite(vals)) and np.all(np.isfinite(der))):
        raise DeepEFTInputError(
            f"{act!r} returns non-finite values on [−10, 10]; Gaussian expectations over all z need a finite σ."
        )
    if not act.jumps and np.all(der == 0.0) and np.ptp(vals) == 0.0:
        raise DeepEFTInputError(
            f"{act!r} is constant (σ′ ≡ 0): χ_∥ = χ_⊥ = 0 for every C_W, so every layer forgets its input and "
            "no critical initialisation exists. Use a non-constant activation."
        )


def _is_scale_invariant(act: Activation) -> tuple[bool, float, float]:
    """σ(λz) = λσ(z) (2.13): registry flag, or checked on a probe grid for custom callables."""
    if act.a_plus is not None and act.a_minus is not None:  # the registry's flag (act.scale_invariant)
        return True, float(act.a_plus), float(act.a_minus)
    z = _PROBE
    s1, s2, s3 = act.numpy(z), act.numpy(2.0 * z), act.numpy(0.5 * z)
    scale = max(np.abs(s1).max(), 1e-300)
    if np.abs(s2 - 2 * s1).max() < 1e-12 * scale and np.abs(s3 - 0.5 * s1).max() < 1e-12 * scale:
        ap, am = float(act.numpy(np.array([1.0]))[0]), float(-act.numpy(np.array([-1.0]))[0])
        return True, ap, am
    return False, math.nan, math.nan


def _with_next_derivative(h):
    """z ↦ (σ, σ′, …, σ^{(k)}) from h: z ↦ (σ, …, σ^{(k−1)}) by one forward-mode derivative of the whole vector."""

    def g(z):
        primal, tangent = jax.jvp(h, (z,), (jnp.ones_like(z),))
        return jnp.concatenate([primal[:1], tangent])

    return g


@functools.lru_cache(maxsize=64)
def _taylor_coefficients(act: Activation) -> np.ndarray:
    """σ^{(p)}(0), p = 0..5 (= Activation.taylor(5) to rounding), in one jit of one chain of five nested
    forward-mode derivatives (cheaper to trace than six reverse-mode towers; the derivatives are exact either way)."""
    h = act.fn  # on z of shape (1,): σ elementwise, so each jvp with tangent 1 is the next derivative
    for _ in range(5):
        h = _with_next_derivative(h)
    with x64():
        return np.asarray(jax.jit(h)(np.zeros(1)), dtype=np.float64).ravel()  # NumPy in: no transfer program


def _taylor(act: Activation) -> TaylorData | None:
    """Taylor data (5.80), (5.86)–(5.88) for smooth σ (None at a kink or jump)."""
    if not act.smooth:
        return None
    s = _taylor_coefficients(act)
    if not np.all(np.isfinite(s)):
        return None
    s0, s1, s2, s3, s4, s5 = (float(c) for c in s)
    if s1 == 0.0:
        return TaylorData(tuple(float(c) for c in s), None, None, None)
    a1 = s3 / s1 + 0.75 * (s2 / s1) ** 2  # (5.86)
    a2 = 0.25 * s5 / s1 + (5.0 / 8.0) * (s4 / s1) * (s2 / s1) + (5.0 / 12.0) * (s3 / s1) ** 2  # (5.87)
    b1 = s3 / s1 + (s2 / s1) ** 2  # (5.88)
    return TaylorData(tuple(float(c) for c in s), a1, a2, b1)


def _point_at(act: Activation, K: float) -> tuple[float, float, float]:
    """(C_b, C_W, ã₁) at a candidate K* by (5.71)–(5.72); ã₁ = j/(8K²) at that C_W."""
    hf = helper_functions(act, K, 1.0)
    C_W = 1.0 / float(hf.chi_perp)  # (5.71)
    C_b = K - float(hf.g) * C_W  # (5.72)
    return C_b, C_W, float(hf.a1_tilde) * C_W


def _trivial_fixed_point(act: Activation, K_star: float, C_b: float, C_W: float, side: str) -> float | None:
    """Root of F(K) = C_b + C_W g(K) − K on the repelling side of a half-stable K* (footnotes 20–21)."""
    offs = K_star * np.geomspace(1e-3, 10.0, 120)
    Ks = K_star + offs if side == "above" else K_star - offs[offs < K_star]
    if Ks.size < 2:
        return None
    F = C_b + C_W * helper_functions(act, Ks, 1.0).g - Ks
    idx = np.nonzero(np.sign(F[:-1]) != np.sign(F[1:]))[0]
    if idx.size == 0:
        return None
    i = int(idx[0])

    def f(K):
        return C_b + C_W * float(helper_functions(act, K, 1.0).g) - K

    from scipy.optimize import brentq  # here, not at import: scipy.optimize costs ~0.3 s and most analyses never need it

    return float(brentq(f, min(Ks[i], Ks[i + 1]), max(Ks[i], Ks[i + 1]), xtol=1e-13, rtol=1e-14))


def _nonzero_roots(act: Activation, K_grid: np.ndarray, hf) -> list[float]:
    """Sign changes of 1 − χ_∥/χ_⊥ (continuous, unlike the ratio, where χ_∥ passes through 0)."""
    f = 1.0 - hf.chi_parallel / hf.chi_perp
    idx = np.nonzero((np.sign(f[:-1]) * np.sign(f[1:])) < 0)[0]

    def fk(K):
        h = helper_functions(act, K, 1.0)
        return float(1.0 - h.chi_parallel / h.chi_perp)

    if idx.size == 0:
        return []
    from scipy.optimize import brentq  # lazily (import cost), as in _trivial_fixed_point

    return [float(brentq(fk, K_grid[i], K_grid[i + 1], xtol=1e-14, rtol=1e-15)) for i in idx]


def _zero_point(act: Activation, taylor: TaylorData | None, K_min: float) -> tuple[CriticalPoint | None, str]:
    """The K* = 0 limit: Taylor data (5.81)–(5.90) for smooth σ; one-sided slopes at a kink."""
    s0 = act.sigma0
    if taylor is not None:
        s1, s2 = taylor.sigma[1], taylor.sigma[2]
        a1, a2 = taylor.a1, taylor.a2
        if s1 == 0.0 or a1 is None or a2 is None:  # _taylor leaves a₁, a₂ unset exactly when σ₁ = 0
            return None, "σ′(0) = 0, so K* = 0 would need C_W = 1/σ₁² = ∞ (5.89)"
        r0 = s1**2 / (s1**2 + s0 * s2)  # χ_⊥/χ_∥ at K → 0 with g′(0) = σ₁² + σ₀σ₂ [(5.81) corrected]
        if abs(r0 - 1.0) > 1e-12:
            return None, f"χ_⊥/χ_∥ → {r0:.4g} ≠ 1 as K → 0"
        C_W = 1.0 / s1**2
        C_b = -(s0**2) * C_W  # (5.72) at K* → 0: −(σ₀/σ₁)²
        if C_b < 0:
            pt = CriticalPoint(C_b, C_W, 0.0, "unphysical", physical=False)
            return pt, f"(5.73) holds as K* → 0 but (5.72) gives C_b = −(σ₀/σ₁)² = {C_b:.4g} < 0 (unphysical)"
        if a1 < 0 or (a1 == 0 and a2 < 0):
            stab = "stable"
        elif a1 > 0 or a2 > 0:
            stab = "unstable"
        else:
            stab = "marginal"
        sign = ">" if -a1 > 0 else "<" if -a1 < 0 else "="
        return CriticalPoint(0.0, C_W, 0.0, stab, a1_tilde=a1), (
            f"σ(0) = 0, σ′(0) = {s1:.6g} ≠ 0 and (−a₁) = {-a1:.6g} {sign} 0 (5.86), (5.89)–(5.92)"
        )
    if act.jumps:
        return None, "σ jumps, so σ′ contains δ(z) and χ_⊥ = ∞ (book fn. 17)"
    # Kink at 0: one-sided slopes; the K → 0 expansion has half-integer powers, stability from ã₁(K_min).
    if s0 != 0.0:
        return None, f"σ(0) = {s0:.4g} ≠ 0, so K* = 0 would need C_b = −C_W σ(0)² < 0"
    dp = float(act.numpy(np.array([0.0]), 1)[0])
    dm = float(act.numpy(np.array([-1e-9]), 1)[0])
    A2 = 0.5 * (dp**2 + dm**2)
    if A2 == 0.0:
        return None, "σ′(0±) = 0, so K* = 0 would need C_W = ∞"
    C_W = 1.0 / A2
    a1t = float(helper_functions(act, K_min, C_W).a1_tilde)
    stab = "stable" if a1t < 0 else "unstable"
    return CriticalPoint(0.0, C_W, 0.0, stab, a1_tilde=a1t), (
        f"σ(0) = 0 with one-sided slopes σ′(0±) = ({dp:.4g}, {dm:.4g}), C_W = 1/A₂ and ã₁(K = {K_min:g}) = "
        f"{a1t:.4g}; σ is not analytic at 0, so the Taylor asymptotics (5.94) do not apply (exponents are fitted only)"
    )


# ----------------------------------------------------------------------------------------------
# Exponents
# ----------------------------------------------------------------------------------------------


def fit_exponent(ell, O, lo: int, hi: int) -> float:
    """p in O ~ ℓ^{−p}[c₀₀ + c₁₁ logℓ/ℓ + c₁₀/ℓ + c₂₂ log²ℓ/ℓ² + c₂₁ logℓ/ℓ² + c₂₀/ℓ²] (5.93).

    Linear least squares for log|O| on layers in [lo, hi] (log O = −p logℓ + log c₀₀ + expansion of the bracket).
    """
    ell = np.asarray(ell, dtype=np.float64)
    O = np.asarray(O, dtype=np.float64)
    sel = (ell >= lo) & (ell <= hi) & np.isfinite(O) & (O != 0)
    if sel.sum() < 10:
        return math.nan
    pick = np.unique(np.geomspace(lo, hi, 400).astype(int))
    sel &= np.isin(ell.astype(int), pick)
    l = ell[sel]
    L = np.log(l)
    A = np.stack([-L, np.ones_like(l), L / l, 1 / l, L**2 / l**2, L / l**2, 1 / l**2], axis=1)
    scale = np.abs(A).max(axis=0)
    coef = np.linalg.lstsq(A / scale, np.log(np.abs(O[sel])), rcond=None)[0] / scale
    return float(coef[0])


def _cumulative(chi: np.ndarray) -> np.ndarray:
    """x^{(ℓ)} = Π_{k<ℓ} χ^{(k)} (x^{(1)} = 1): homogeneous linear recursions (5.47), (5.48) with δK_[1] = 0."""
    logs = np.concatenate([[0.0], np.cumsum(np.log(np.abs(chi[:-1])))])
    return np.exp(logs)


def _exponents(act: Activation, cls: str, point: CriticalPoint, taylor: TaylorData | None, depth: int | None) -> Exponents:
    """Fitted (5.93) and closed-form exponents at the representative critical ``point`` of class ``cls``."""
    Ks: float | None  # the fixed point subtracted in ΔK = K − K* (None: scale-invariant, K itself, p₀ = 0)
    predicted: dict[str, float | None]
    if cls == "half-stable":
        Ks, a1t = point.K_star, point.a1_tilde
        if Ks is None or a1t is None:
            raise ValueError(f"a half-stable critical point carries K* and ã₁, got {point!r}.")
        L = depth or 100_000
        K1 = Ks * 1.5 if point.attracting_side == "above" else Ks * 0.5
        lo = max(L // 10, 2)
        # [derived] χ_∥ ≈ 1 + 2ã₁ΔK, χ_⊥ ≈ 1 + 2h(K*)ΔK with ΔK ≈ 1/((−ã₁)ℓ) ⇒ p_∥ = 2, p_⊥ = 2h/ã₁, V ~ ℓ.
        h = float(helper_functions(act, Ks, point.C_W).h)
        predicted = {"p0": 1.0, "p_parallel": 2.0, "p_perp": 2.0 * h / a1t, "p_V": -1.0}
        # The expansion in 1/ℓ has two scales: the crossover 1/|ã₁ΔK^{(1)}| and ℓ* = |ã₂|/ã₁² set by the
        # cubic term ã₂ = (1/3) dã₁/dK (GELU: ℓ* ≈ 1.0e4, SWISH: ℓ* ≈ 1.3e6); the fit is asymptotic beyond both.
        eps = 1e-3 * Ks
        a1s = helper_functions(act, np.array([Ks - eps, Ks + eps]), point.C_W).a1_tilde
        a2 = (a1s[1] - a1s[0]) / (6 * eps)
        scale = max(1.0 / abs(a1t * (K1 - Ks)), abs(a2) / a1t**2)
        asym = lo >= 0.5 * scale
    else:
        L = depth or 10_000
        K1 = 1.0
        lo = max(L // 100, 2)
        asym = True
        if cls == "K*=0":
            Ks = 0.0
            pp = taylor.p_perp if taylor is not None else None
            predicted = {"p0": 1.0, "p_parallel": 2.0, "p_perp": pp, "p_V": 1.0}  # (5.92), (5.97), (5.99), (5.127)
            if taylor is None or not taylor.a1:
                predicted = {k: None for k in predicted}
        else:  # scale-invariant
            Ks = None
            predicted = {"p0": 0.0, "p_parallel": 0.0, "p_perp": 0.0, "p_V": -1.0}  # (5.119)–(5.120), (5.65)
    hi = L
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepEFTWarning)
        r = single_input_recursion(act, K1, L, C_b=point.C_b, C_W=point.C_W)
    ell = r.layers
    dK = r.K if Ks is None else r.K - Ks
    series = {
        "p0": dK,
        "p_parallel": _cumulative(r.chi_parallel),
        "p_perp": _cumulative(r.chi_perp),
        "p_V": r.V,
    }
    fitted = {k: fit_exponent(ell, s, lo, hi) for k, s in series.items()}
    return Exponents(fitted, predicted, L, (lo, hi), K1, bool(asym))


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def criticality(
    activation,
    *,
    K_range=(1e-3, 1e3),
    n_grid: int = 241,
    exponents: bool = True,
    fit_depth: int | None = None,
    **activation_params,
) -> Criticality:
    """Critical initialisation hyperparameters, universality class and large-depth exponents of an activation.

    ``activation``: registry name (with ``activation_params``), :class:`~deepeft.Activation` or JAX callable; or a
    network spec: an :class:`~deepeft.MLP` (its activation) or a :class:`~deepeft.ResidualMLP`, whose critical
    point is C_b = 0, C_W(γ) (B.20)–(B.21) (:func:`deepeft.theory.residual_phase.residual_criticality`).
    ``K_range``: the K* > 0 search interval (log grid of ``n_grid`` points). ``exponents``: fit p₀, p_∥,
    p_⊥, p_V from a ``fit_depth``-layer recursion (default 10⁴; 10⁵ for half-stable points, whose
    ``Exponents.asymptotic`` flag says whether that depth reaches the asymptotic regime — not for SWISH).
    """
    impl = dispatch.lookup("criticality", activation)  # a network spec other than MLP, e.g. ResidualMLP
    if impl is not None:
        return impl(activation, K_range=K_range, n_grid=n_grid, exponents=exponents, fit_depth=fit_depth,
                    **activation_params)
    if isinstance(activation, MLP):
        activation = activation.activation
    act = _activation(activation, **activation_params)
    lo = v.finite_scalar(K_range[0], "K_range[0]", minimum=0.0, strict=True)
    hi = v.finite_scalar(K_range[1], "K_range[1]", minimum=0.0, strict=True)
    if not hi > lo:
        raise DeepEFTInputError(f"K_range must be (K_min, K_max) with 0 < K_min < K_max, got {K_range!r}.")
    n_grid = v.positive_int(n_grid, "n_grid", minimum=8)
    if fit_depth is not None:
        fit_depth = v.positive_int(fit_depth, "fit_depth", minimum=200)
    _check_activation(act)
    res = _analysis(act, lo, hi, n_grid, bool(exponents), fit_depth)
    return dataclasses.replace(res, constants=dict(res.constants))  # the one mutable field: a copy per caller


@functools.lru_cache(maxsize=64)
def _analysis(act: Activation, lo: float, hi: float, n_grid: int, exponents: bool, fit_depth: int | None) -> Criticality:
    """The analysis behind :func:`criticality` for validated arguments, memoised: the result is immutable (frozen
    dataclass, read-only arrays) and several entry points (learning_rates, advise, the CLI) ask for the same one."""
    out = _analyse(act, lo, hi, n_grid, exponents, fit_depth)
    for arr in (out.K_grid, out.ratio):
        arr.flags.writeable = False
    return out


def _analyse(act: Activation, lo: float, hi: float, n_grid: int, exponents: bool, fit_depth: int | None) -> Criticality:
    K_grid = np.geomspace(lo, hi, n_grid)

    if act.jumps:
        return Criticality(
            act, "none", "σ jumps, so σ′ contains δ(z) and χ_⊥ = ∞ for every C_W > 0: no criticality (book fn. 17)",
            (), (), None, None, K_grid, np.full(n_grid, np.nan), {},
        )  # fmt: skip

    hf = helper_functions(act, K_grid, 1.0)
    ratio = hf.ratio
    taylor = _taylor(act)

    scale_inv, ap, am = _is_scale_invariant(act)
    if scale_inv:
        A2 = 0.5 * (ap**2 + am**2)  # (5.61)
        A4 = 0.5 * (ap**4 + am**4)  # (5.114)
        const = {
            "a_plus": ap,
            "a_minus": am,
            "A2": A2,
            "A4": A4,
            "nu": 3 * A4 / A2**2 - 1,  # V/(nK²) = ν ℓ/n (5.130)
            "rho": (ap - am) ** 2 / (math.pi * (ap**2 + am**2)),  # (5.163)
        }
        pt = CriticalPoint(0.0, 1.0 / A2, None, "line")
        reason = (
            f"scale-invariant σ: χ_∥ = χ_⊥ = A₂C_W for every K (5.62), a line of critical points "
            f"C_b = 0, C_W = 1/A₂ = {1 / A2:.6g} with any K* (5.67)"
        )
        ex = _exponents(act, "scale-invariant", pt, None, fit_depth) if exponents else None
        return Criticality(act, "scale-invariant", reason, (pt,), (), None, ex, K_grid, ratio, const)

    points: list[CriticalPoint] = []
    rejected: list[CriticalPoint] = []
    zero, zero_reason = _zero_point(act, taylor, lo)
    if zero is not None:
        (points if zero.physical else rejected).append(zero)

    for Ks in _nonzero_roots(act, K_grid, hf):
        C_b, C_W, a1t = _point_at(act, Ks)
        if C_b < -1e-12 * Ks:
            rejected.append(CriticalPoint(C_b, C_W, Ks, "unphysical", a1_tilde=a1t, physical=False))
            continue
        side = "above" if a1t < 0 else "below"
        repel = "below" if side == "above" else "above"
        triv = _trivial_fixed_point(act, Ks, C_b, C_W, repel)
        points.append(CriticalPoint(max(C_b, 0.0), C_W, Ks, "half-stable", a1t, side, triv))

    stable0 = [p for p in points if p.K_star == 0.0 and p.stability == "stable"]
    half = [p for p in points if p.stability == "half-stable"]
    fin = np.isfinite(ratio)
    rng = f"χ_⊥/χ_∥ ranges over [{ratio[fin].min():.4g}, {ratio[fin].max():.4g}] on K ∈ [{lo:g}, {hi:g}]"
    if stable0:
        cls = "K*=0"
        reason = f"nontrivial fixed point K* = 0 approached as a power law: {zero_reason}"
        if half:
            reason += f"; also half-stable point(s) at K* = {', '.join(f'{p.K_star:.6g}' for p in half)}"
        rep = stable0[0]
    elif half:
        cls = "half-stable"
        rep = half[0]
        reason = (
            f"(5.73) is met at K* = {rep.K_star:.10g} > 0 with C_b ≥ 0; ΔK⁺ = ΔK + ã₁ΔK² with ã₁ = "
            f"{rep.a1_tilde:.6e}, attracting from {rep.attracting_side} (5.102)"
        )
        if zero is not None:
            reason += f"; the K* = 0 point is {zero.stability} ({zero_reason})"
    else:
        cls = "none"
        rep = None
        parts = []
        if np.ptp(ratio[fin]) < 1e-9 * abs(ratio[fin].mean()):
            parts.append(f"χ_⊥/χ_∥ ≡ {ratio[fin].mean():.6g} ≠ 1 for every K (monomial z^p: p/(2p−1), (5.78))")
        else:
            parts.append(f"no K* > 0 solves (5.73) with C_b ≥ 0 ({rng})")
        if zero is not None and zero.physical:
            parts.append(f"the K* = 0 point is {zero.stability} ({zero_reason})")
        else:
            parts.append(f"no K* = 0 point: {zero_reason}")
        if any(p.K_star for p in rejected):
            parts.append("K* > 0 solutions need C_b < 0")
        reason = "; ".join(parts)
    ex = _exponents(act, cls, rep, taylor, fit_depth) if (exponents and rep is not None) else None
    return Criticality(act, cls, reason, tuple(points), tuple(rejected), taylor, ex, K_grid, ratio, {})


# ----------------------------------------------------------------------------------------------
# Regime diagnostics for a concrete network
# ----------------------------------------------------------------------------------------------


# Which step of the flow classifies a network (one definition, for phase, residual_phase, advise and diagnose).
#
# The per-layer susceptibility arrays (SingleInputRecursion, ResidualSingleInput) hold at index ℓ − 1 the factor of
# the step ℓ → ℓ + 1: χ_∥ = C_W g′(K) (5.50), χ_⊥ = C_W⟨σ′σ′⟩ (5.51) (residual: γ² + …, (B.15)–(B.16)) at K^{(ℓ)}
# with the next layer's C_W^{(ℓ+1)} (γ^{(ℓ+1)}), the factors of δK_[1]⁺ = χ_∥δK_[1] (5.47) and
# δδK_[2]⁺ = χ_⊥δδK_[2] + h(δK_[1])² (5.48). Index L − 2 is the step L − 1 → L into the output, with the output
# layer's C_W^{(L)}; index L − 1 is no step of the network (C_W^{(L)} reused).
#
# Criticality χ_∥(K*) = χ_⊥(K*) = 1 (5.55) is a property of the map K ↦ C_b + C_W g(K) (5.4) iterated with
# layer-independent hyperparameters (§5 sets C_W^{(ℓ)} = C_W before (5.2)). With per-layer values (MLP.C_W,
# ResidualMLP.C_W and .gamma) that map repeats only between the hidden layers: layer 1's C_b, C_W set K^{(1)}
# (5.2), and the output layer's C_W^{(L)} (γ^{(L)} = 0 for a scalar γ) enters one step only, multiplying δK^{(L)}
# by a depth-independent factor (for an MLP ≈ C_W^{(L)}/C_W^{(L−1)} times a hidden step's χ): an O(1) offset of
# the e-folds, not a phase. ReLU with C_W = 2 on the hidden layers and a C_W = 1 readout is critical, though its
# step into the output has χ = ½. So the step that classifies is the last one between hidden layers,
# L − 2 → L − 1 (index L − 3); a network with L ≤ 2 has none and its first step (index 0) stands in.
# e-folds: (5.47) gives δK^{(L)} = Π_{ℓ=1}^{L−1} χ_∥^{(ℓ)} δK^{(1)}, L − 1 factors, each taken equal to the
# classifying one: (L − 1)·log χ.


def regime_step(L: int) -> int:
    """The layer ℓ of the step ℓ → ℓ + 1 whose χ_∥, χ_⊥ (5.50)–(5.51) classify a network of depth L: the last step
    between hidden layers, ℓ = L − 2 (index ℓ − 1 = L − 3 of the per-layer χ arrays), or ℓ = 1 when L ≤ 2.

    The output layer's own C_W^{(L)} only rescales K^{(L)} once and is not judged (see the comment above)."""
    return L - 2 if L >= 3 else 1


def efolds(chi: float, L: int) -> float:
    """(L − 1)·log χ: the e-folds a deviation δK gains over the L − 1 steps of a depth-L network when every step
    has susceptibility χ (5.47); −∞ for χ ≤ 0 (max(L − 1, 1) steps, so a one-layer network keeps log χ)."""
    chi = float(chi)
    return max(L - 1, 1) * math.log(chi) if chi > 0 else -math.inf


@dataclasses.dataclass(frozen=True, eq=False)
class PhaseReport:
    """Where a network sits: aspect ratio, susceptibilities of the step that classifies it, and the size of 1/n
    effects at the output.

    ``chi_parallel``, ``chi_perp``: χ_∥, χ_⊥ (5.50)–(5.51) of the step ``step`` → ``step`` + 1
    (:func:`regime_step`: the last step between hidden layers, L − 2 → L − 1; ℓ = 1 for L ≤ 2), read from
    ``recursion`` at index ``step`` − 1. ``efolds_parallel`` = (L − 1)·log χ_∥ and ``efolds_perp`` =
    (L − 1)·log χ_⊥ (:func:`efolds`): at criticality they stay O(1) (power laws: χ − 1 ≈ −p/ℓ), in an
    exponential phase they grow ∝ L. ``K_out`` = K^{(L)}; ``normalized_vertex_out`` = V^{(L)}/(n_{L−1}K^{(L)}²)
    (5.128), the leading 1/n correction at the output.
    """

    aspect_ratio: float
    depth: int
    regime: str
    chi_parallel: float
    chi_perp: float
    efolds_parallel: float
    efolds_perp: float
    K_out: float
    normalized_vertex_out: float
    warnings: tuple[str, ...]
    recursion: Any  # SingleInputRecursion (MLP) or ResidualSingleInput (ResidualMLP)
    step: int  # ℓ of the step ℓ → ℓ + 1 that chi_parallel, chi_perp belong to: regime_step(depth)


def _parallel_phase(label: str, chi: float, efolds: float, K_out: float, thr: float, where: str = ""
                    ) -> tuple[str, str] | None:
    """(regime, message) when the kernel explodes or collapses exponentially with depth, else None; the message
    quotes ``label`` = χ ``where`` (e.g. " at the last step between hidden layers") and (L − 1)·log χ."""
    if not math.isfinite(K_out) or K_out > 1e300:
        return "exploding kernel", "the kernel overflows: exponentially exploding phase; lower C_W (and C_b)."
    if efolds > thr:
        return "exploding kernel", (
            f"{label} = {chi:.4g}{where} ((L − 1)·log {label} = {efolds:.3g}): the kernel grows "
            "exponentially with depth; lower C_W towards its critical value (deepeft.criticality)."
        )
    if efolds < -thr:
        return "collapsing kernel", (
            f"{label} = {chi:.4g}{where} ((L − 1)·log {label} = {efolds:.3g}): the kernel collapses exponentially onto "
            "a trivial fixed point, forgetting the input norm; tune C_b, C_W to criticality."
        )
    return None


def kernel_depth_warning(K, *, threshold: float = math.log(100.0)) -> str | None:
    """The message of :func:`phase`'s exponential-phase test applied to a computed kernel flow, else None.

    ``K``: (L, N, N) with layer ℓ at index ℓ − 1 (theory or an ensemble's metric). The susceptibility is the
    kernel's own step at :func:`regime_step` (the last between hidden layers, as in :func:`phase`: an output layer
    with its own C_W only rescales K^{(L)}), χ = K^{(L−1)}_{αα}/K^{(L−2)}_{αα} (K^{(2)}/K^{(1)} for L = 2) for the
    input α that changes most, and (L − 1)·log χ (:func:`efolds`) is compared with ``threshold``. At criticality
    K^{(ℓ)} is a power law (χ − 1 ≈ −p/ℓ, (L − 1)·log χ = O(1), §5.3); off criticality it is exponential (e.g. ReLU
    with C_W = 1 halves K every layer). Costs O(L·N), so the public entry points call it on every result.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 3 or K.shape[1] != K.shape[2] or K.shape[0] < 2:
        return None
    L = K.shape[0]
    step = regime_step(L)
    label = f"K^({step + 1})/K^({step})" if L < 3 else "K^(L−1)/K^(L−2)"
    d = np.diagonal(K, axis1=1, axis2=2)  # (L, N)
    last, prev = d[step], d[step - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.abs(last)) - np.log(np.abs(prev))
    if not (np.all(np.isfinite(d[-1])) and np.all(np.isfinite(last))):
        par = _parallel_phase(label, math.inf, math.inf, math.inf, threshold)
    else:
        ok = np.isfinite(logs)
        if not ok.any():
            return None
        a = int(np.argmax(np.where(ok, np.abs(logs), -1.0)))
        chi = float(np.exp(logs[a]))
        par = _parallel_phase(label, chi, efolds(chi, L), float(np.max(np.abs(d[-1]))), threshold)
    return None if par is None else par[1]


_ENTRY = threading.local()  # nesting depth of warn_on_exponential_kernel calls and the pending message


def warn_on_exponential_kernel(kernel_of):
    """Decorator for public entry points: one :class:`~deepeft.DeepEFTWarning` per call when the kernel flow
    ``kernel_of(result, args, kwargs)`` (or None: nothing to test) is in an exponential phase
    (:func:`kernel_depth_warning`). Nested decorated calls (vertex_flow → kernel) warn once, from the outermost.
    """

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            depth = getattr(_ENTRY, "depth", 0)
            if depth == 0:
                _ENTRY.message = None
            _ENTRY.depth = depth + 1
            try:
                out = fn(*args, **kwargs)
                if _ENTRY.message is None:
                    K = kernel_of(out, args, kwargs)
                    _ENTRY.message = kernel_depth_warning(K) if K is not None else None
            finally:
                _ENTRY.depth = depth
            if depth == 0 and _ENTRY.message:
                warnings.warn(f"{fn.__name__}: {_ENTRY.message}", DeepEFTWarning, stacklevel=2)
            return out

        return wrapper

    return deco


def phase(net, x=None, *, norm=None, threshold: float = math.log(100.0)) -> PhaseReport:
    """Regime diagnostics for an :class:`~deepeft.MLP` (or a :class:`~deepeft.ResidualMLP`, through
    :mod:`deepeft.dispatch`: :func:`deepeft.theory.residual_phase.residual_phase`) and one input (default
    (1/n₀)Σx² = 1).

    χ_∥, χ_⊥ (5.50)–(5.51) are those of the last step between hidden layers, L − 2 → L − 1 (:func:`regime_step`;
    the output layer's own C_W only rescales K^{(L)}). Emits :class:`~deepeft.DeepEFTWarning` when the
    hyperparameters put the network in an exponentially exploding or vanishing phase (|(L − 1)·log χ| >
    ``threshold`` for χ_∥ or χ_⊥, or the kernel overflows), and when the predicted 1/n corrections at the output
    are O(1) (V/(nK²) ≥ 1).
    """
    impl = dispatch.lookup("phase", net)
    if impl is not None:
        return impl(net, x, norm=norm, threshold=threshold)
    thr = v.finite_scalar(threshold, "threshold", minimum=0.0, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepEFTWarning)
        rec = single_input(net, x, norm=norm)
    with np.errstate(invalid="ignore", divide="ignore"):  # K^(L) = 0 (a zero-initialised head): V/(nK²) is NaN
        nv = float(rec.normalized_vertex()[-1]) if (net.widths and net.L > 1) else 0.0
    return phase_report(net, rec, nv, thr, stacklevel=3)


def phase_report(net, rec, normalized_vertex_out: float, threshold: float, *, stacklevel: int = 2) -> PhaseReport:
    """The regime, messages and warnings of :func:`phase` from a single-input flow ``rec`` (per-layer arrays ``K``,
    ``chi_parallel``, ``chi_perp``, the step ℓ → ℓ + 1 at index ℓ − 1); shared by the MLP and the residual MLP, the
    one place where the classifying step (:func:`regime_step`) and the e-folds (:func:`efolds`) are taken.
    ``stacklevel``: of the warnings, counted from here (the user's call)."""
    L = net.L
    step = regime_step(L)
    chi_par, chi_perp = float(rec.chi_parallel[step - 1]), float(rec.chi_perp[step - 1])
    thr = float(threshold)
    e_par, e_perp = efolds(chi_par, L), efolds(chi_perp, L)
    K_out = float(rec.K[-1])
    nv = float(normalized_vertex_out)
    where = " at the last step between hidden layers" if L >= 3 else ""
    msgs = []
    regime = []
    par = _parallel_phase("χ_∥", chi_par, e_par, K_out, thr, where)
    if par is not None:
        regime.append(par[0])
        msgs.append(par[1])
    if e_perp > thr:
        regime.append("chaotic (exploding gradients)")
        msgs.append(
            f"χ_⊥ = {chi_perp:.4g}{where} ((L − 1)·log χ_⊥ = {e_perp:.3g}): nearby inputs decorrelate exponentially "
            "and gradients explode; lower C_W."
        )
    elif e_perp < -thr:
        regime.append("ordered (vanishing gradients)")
        msgs.append(
            f"χ_⊥ = {chi_perp:.4g}{where} ((L − 1)·log χ_⊥ = {e_perp:.3g}): differences between inputs shrink "
            "exponentially and gradients vanish; raise C_W."
        )
    if nv >= 1.0:
        msgs.append(
            f"the predicted 1/n correction at the output is V/(nK²) = {nv:.3g} ≥ 1 (aspect ratio L/n = "
            f"{net.aspect_ratio:.3g}): the network is too deep for its width and the effective theory breaks down."
        )
    for m in msgs:
        warnings.warn(m, DeepEFTWarning, stacklevel=stacklevel)
    return PhaseReport(
        aspect_ratio=net.aspect_ratio,
        depth=L,
        regime=", ".join(regime) if regime else "critical",
        chi_parallel=chi_par,
        chi_perp=chi_perp,
        efolds_parallel=e_par,
        efolds_perp=e_perp,
        K_out=K_out,
        normalized_vertex_out=nv,
        warnings=tuple(msgs),
        recursion=rec,
        step=step,
    )
