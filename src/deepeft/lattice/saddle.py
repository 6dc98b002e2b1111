"""Uniform saddle points of the lattice energies (paper eqs. (13)/(46), (20)/(84)).

* :func:`saddle_linear` — φ(z) = z: r* = √(Nσ_b²/Δ_w), Δ_w = 1 − σ_w² (13), valid for σ_w² < 1.
  r* is the MODE of the radial law (erratum E9): E[(r^l)²] = (r*)² exactly, E[r^l] ≈ r* − Var(ε)/(2r*).
* :func:`saddle_relu` — φ = ReLU: r*_± = √(Nσ_b²/(2(1 − σ_w²/2))), k* = N/2 (20), valid for σ_w² < 2.
* :func:`saddle_numeric` — any activation: minimiser of the uniform energy density
  :func:`uniform_energy_density` (Brent in ln q), an independent path to the mean-field q*.
Outside the validity domain a DeepEFTInputError says so (no NaN).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize

from .. import _validate as v
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .meanfield import qmap

__all__ = ["ReluSaddle", "saddle_linear", "saddle_relu", "saddle_numeric", "uniform_energy_density"]


def _check(sigma_w2, sigma_b2, N):
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2", strict=True)
    return sw, sb, v.positive_int(N, "N")


def saddle_linear(sigma_w2, sigma_b2, N) -> float:
    """r* = √(N σ_b² / Δ_w), Δ_w = 1 − σ_w²  (13)/(46); requires σ_w² < 1 and σ_b² > 0."""
    sw, sb, N = _check(sigma_w2, sigma_b2, N)
    if sw >= 1.0:
        raise DeepEFTInputError(
            f"the linear saddle (13) exists only for σ_w² < 1 (Δ_w = 1 − σ_w² > 0); got σ_w² = {sw}. "
            "At σ_w² ≥ 1 the norm grows without bound: choose sigma_w2 < 1."
        )
    return math.sqrt(N * sb / (1.0 - sw))


@dataclasses.dataclass(frozen=True)
class ReluSaddle:
    """(20)/(84): r*_+ = r*_− = r_star, k* = N/2 (k counts negative components, E4)."""

    r_plus: float
    r_minus: float
    k: float


def saddle_relu(sigma_w2, sigma_b2, N) -> ReluSaddle:
    """r*_± = √(Nσ_b² / (2(1 − σ_w²/2))), k* = N/2  (20)/(84); requires σ_w² < 2 and σ_b² > 0."""
    sw, sb, N = _check(sigma_w2, sigma_b2, N)
    if sw >= 2.0:
        raise DeepEFTInputError(
            f"the ReLU saddle (20) exists only for σ_w² < 2 (1 − σ_w²/2 > 0); got σ_w² = {sw}. "
            "Choose sigma_w2 < 2 (σ_w² = 2 is the ReLU critical point)."
        )
    r = math.sqrt(N * sb / (2.0 * (1.0 - sw / 2.0)))
    return ReluSaddle(r, r, N / 2.0)


def uniform_energy_density(q, activation, sigma_w2, sigma_b2, N) -> np.ndarray:
    """Energy per layer of a uniform configuration |z^l|² = N q (large N, any activation φ).

    f(q) = (N/2)[q/Σ(q) + ln Σ(q) − ln q],  Σ(q) = σ_w² ⟨φ(u)²⟩_{N(0,q)} + σ_b² (the q-map):
    the ring energy (11) of a configuration whose components are N(0, q)-distributed (the
    maximum-entropy law at fixed norm) plus the radial Jacobian −N ln r of (12). For φ(z) = z it is
    (12) per layer at r^l = √(Nq) up to a constant; f'(q) = 0 ⇔ Σ(q) = q (or qΣ' = Σ).
    """
    act = activation if isinstance(activation, Activation) else _activation(activation)
    N = v.positive_int(N, "N")
    q = np.asarray(q, dtype=np.float64)
    if np.any(~np.isfinite(q)) or np.any(q <= 0):
        raise DeepEFTInputError("q must be positive and finite (q = r²/N).")
    S = qmap(q, act, sigma_w2, sigma_b2)
    return 0.5 * N * (q / S + np.log(S) - np.log(q))


def saddle_numeric(activation, sigma_w2, sigma_b2, N, *, q_max=1e8) -> float:
    """r* = √(N q*) (the full norm; for ReLU r* = √2 r*_±) minimising :func:`uniform_energy_density`.

    Walks t = ln q from ln σ_b² in steps of ln 2 until f turns up, then Brent's method in t. The minimum is
    accepted only if it is a stationary point, i.e. a fixed point Σ(q*) = q* of the q-map to 1e-6;
    otherwise (f decreasing up to q_max, e.g. φ(z) = z with σ_w² ≥ 1) a DeepEFTInputError is raised.
    """
    sw, sb, N = _check(sigma_w2, sigma_b2, N)
    act = activation if isinstance(activation, Activation) else _activation(activation)

    def f(t):
        return float(uniform_energy_density(math.exp(t), act, sw, sb, N))

    step, t_hi = math.log(2.0), math.log(q_max)
    a, b = math.log(sb), math.log(sb) + step
    fa, fb = f(a), f(b)
    if fb > fa:  # walk down
        a, b, fa, fb, step = b, a, fb, fa, -step
    while True:
        c = b + step
        fc = f(c)
        if fc > fb:
            break
        a, b, fa, fb = b, c, fb, fc
        if c > t_hi or c < math.log(sb) - 60:
            raise DeepEFTInputError(
                f"the uniform energy of {act!r} at σ_w² = {sw} has no minimum for q in "
                f"[{sb * math.exp(-60):.3g}, {q_max:g}] (the norm grows without bound); lower sigma_w2."
            )
    lo, hi = sorted((a, c))
    res = optimize.minimize_scalar(f, bracket=(lo, b, hi), method="brent", tol=1e-12)
    q = math.exp(res.x)
    if abs(float(qmap(q, act, sw, sb)) - q) > 1e-6 * q:
        raise DeepEFTInputError(
            f"no stationary uniform configuration of {act!r} at σ_w² = {sw} (the energy keeps decreasing); "
            "lower sigma_w2."
        )
    return math.sqrt(N * q)
