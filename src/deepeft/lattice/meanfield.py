"""Factorial (mean-field) baseline of the lattice model (paper §3; Poole et al. 2016).

Replacing φ(z^{l−1})·φ(z^{l−1})/N by its expectation decouples the layers of (9): z^l ~ N(0, q^l I) with
the q-map  q^l = σ_w² ⟨φ(u)²⟩_{u~N(0, q^{l−1})} + σ_b²,  q^0 = σ_w² |x|²/n_0 + σ_b²,
predicted norms |z^l| ≈ √(N q^l), no cross-layer covariance, and a flat fluctuation spectrum
Var(|z^l|) ≈ q*/2 (|z|² = q χ²_N).

The q-map IS the book's single-input kernel recursion K⁺ = C_b + C_W ⟨σ²⟩_K (5.108) in the mean-field
convention C_W = σ_w², C_b = σ_b² (:func:`deepeft.theory.conventions.from_mean_field`): ``qmap`` takes
⟨φ²⟩ from the expectation engine (closed forms where they exist) and ``q_trajectory`` runs
:func:`deepeft.theory.single_input.single_input_recursion` — no second implementation here.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from .. import _validate as v
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from ..gaussian.engine import one_point_core
from ..theory.single_input import single_input_recursion

__all__ = ["qmap", "q_trajectory", "fixed_point", "predicted_norms", "factorial_variance"]


def _act(a) -> Activation:
    return a if isinstance(a, Activation) else _activation(a)


def qmap(q, activation, sigma_w2, sigma_b2) -> np.ndarray:
    """One step of the q-map: σ_w² ⟨φ(u)²⟩_{N(0,q)} + σ_b² for every entry of q ≥ 0."""
    act = _act(activation)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2")
    q = np.asarray(q, dtype=np.float64)
    if np.any(~np.isfinite(q)) or np.any(q < 0):
        raise DeepEFTInputError("q must be finite and >= 0 (it is a variance).")
    g = one_point_core(act, (0, 0), q.ravel()).reshape(q.shape)  # ⟨φ(u)²⟩, u ~ N(0, q)
    return sw * g + sb


def q_trajectory(activation, sigma_w2, sigma_b2, L, *, x_norm2=1.0) -> np.ndarray:
    """q^l for l = 0..L−1 from an input with |x|²/n_0 = ``x_norm2`` (q^0 = σ_w² x_norm2 + σ_b²)."""
    L = v.positive_int(L, "L")
    x2 = v.finite_scalar(x_norm2, "x_norm2")
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2")
    q0 = sw * x2 + sb
    if q0 > 0:  # (5.108) with C_W = σ_w², C_b = σ_b²: the scanned single-input recursion
        return single_input_recursion(_act(activation), q0, L, C_b=sb, C_W=sw).K
    q = np.empty(L)  # q^0 = 0: z ≡ 0 in the first layer, then φ(0)² feeds q^1
    q[0] = q0
    for l in range(1, L):
        q[l] = qmap(q[l - 1], activation, sw, sb)
    return q


def fixed_point(activation, sigma_w2, sigma_b2, *, q_max=1e8) -> float:
    """The stable non-trivial fixed point q* = qmap(q*) reached from q = σ_b².

    Brent's method on g(q) = qmap(q) − q, bracketed from q = σ_b² upwards; raises DeepEFTInputError when
    q^l grows without bound (e.g. φ(z) = z with σ_w² ≥ 1: no fixed point, the chain is critical/explosive).
    """
    act = _act(activation)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2")

    def g(q):
        return float(qmap(q, act, sw, sb)) - q

    lo = max(sb, 1e-300)
    if sb == 0.0:
        lo = 1e-12
        if g(lo) <= 0:
            return 0.0  # only the trivial fixed point is reachable
    hi = max(2.0 * lo, 1.0)
    while g(hi) > 0:
        hi *= 4.0
        if hi > q_max:
            raise DeepEFTInputError(
                f"the q-map of {act!r} with σ_w² = {sw} has no finite fixed point below q = {q_max:g} "
                "(the norm grows without bound); lower sigma_w2 (e.g. σ_w² < 1 for φ(z) = z)."
            )
    return float(optimize.brentq(g, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500))


def predicted_norms(activation, sigma_w2, sigma_b2, N, L, *, x_norm2=1.0) -> np.ndarray:
    """Mean-field norms √(N q^l), l = 0..L−1 (the dashed lines of Fig. 1)."""
    N = v.positive_int(N, "N")
    return np.sqrt(N * q_trajectory(activation, sigma_w2, sigma_b2, L, x_norm2=x_norm2))


def factorial_variance(activation, sigma_w2, sigma_b2) -> float:
    """Var(|z^l|) ≈ q*/2 of the factorial theory, the same at every wavevector (flat spectrum)."""
    return 0.5 * fixed_point(activation, sigma_w2, sigma_b2)
