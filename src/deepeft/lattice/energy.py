"""Lattice energies of the stochastic neural network, J_D = 0 (paper eqs. (9)–(12), (18), (85)).

P({z}) ∝ exp(−E({z})): every energy here is the FULL exponent (erratum E1 — the printed quadratic
forms (14), (21) must be read that way too; see :mod:`.fluctuations`).

* :func:`energy_chain` (9)/(38): several inputs x_i, z^l_α ∈ R^P per neuron α,
  E = ½ Σ_l [Σ_α (z^l_α)ᵀ(Σ^l)⁻¹ z^l_α + N_l ln|Σ^l|]  (the ln|Σ| term summed over α gives N_l),
  Σ^l_{ij} = σ_w² N⁻¹ φ(z^{l−1}_i)·φ(z^{l−1}_j) + σ_b², Σ^0_{ij} = σ_w² n_0⁻¹ x_i·x_j + σ_b².
  With |M| = 1 this is the single-input energy (10)/(39) (erratum E8: the printed log term
  carries Σ of the layer's own z^l, an index shift; on the open chain Σ^l must come from z^{l−1}).
  E equals −log p of the Gaussian chain z^l | z^{l−1} ~ N(0, Σ^l ⊗ I) up to (N P L/2) log 2π.
* :func:`energy_ring` (11): single input on a ring, z^L ≡ z^{−1}.
* :func:`energy_linear_radial` (12)/(41): φ(z) = z, radial variables r^l = |z^l| on the ring; the
  angular integral leaves the Jacobian (r^l)^{N−1}, written (r^l)^N as in the paper ("N−1 → N").
* :func:`energy_relu_fields` (85): φ = ReLU, fields r^l_± (norms of the positive/negative parts,
  (18)) and k^l (number of NEGATIVE components, erratum E4) with Stirling's form of the orthant
  sum (19)→(83); k^l continuous.

All functions are JAX-traceable (``jax.hessian`` of them is the "auto-Laplace" of :mod:`.fluctuations`)
and run in float64.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError

__all__ = [
    "energy_chain",
    "energy_single",
    "energy_ring",
    "energy_linear_radial",
    "energy_relu_fields",
]


def _act(a) -> Activation:
    return a if isinstance(a, Activation) else _activation(a)


def _params(sigma_w2, sigma_b2):
    return v.finite_scalar(sigma_w2, "sigma_w2"), v.finite_scalar(sigma_b2, "sigma_b2")


# -- pure (traceable) cores -------------------------------------------------------------------


def _chain(z, S0, act, sw, sb):
    """(9): z (L, P, N); S0 = Σ^0 (P, P)."""
    N = z.shape[-1]
    h = act.fn(z[:-1])
    S_rest = sw * jnp.einsum("lpn,lqn->lpq", h, h) / N + sb
    S = jnp.concatenate([S0[None], S_rest], 0)
    chol = jnp.linalg.cholesky(S)
    y = jnp.linalg.solve(chol, z)  # (L, P, N): whitened
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
    return 0.5 * (jnp.sum(y * y) + N * jnp.sum(logdet))


def ring_energy_jax(z, act, sw, sb):
    """(11): z (L, N), Σ^l from z^{l−1} cyclically."""
    N = z.shape[-1]
    h = act.fn(z)
    S = sw * jnp.sum(h * h, -1) / N + sb  # Σ^{l+1} produced by z^l
    S_in = jnp.roll(S, 1)
    return 0.5 * jnp.sum(jnp.sum(z * z, -1) / S_in + N * jnp.log(S_in))


def linear_radial_energy_jax(r, sw, sb, N):
    """(12): ½ Σ_l [ (r^l)² / (σ_w² N⁻¹ (r^{l−1})² + σ_b²) − N log((r^l)² / (σ_w² N⁻¹ (r^l)² + σ_b²)) ]."""
    S = sw * r * r / N + sb
    return 0.5 * jnp.sum(r * r / jnp.roll(S, 1) - N * jnp.log(r * r / S))


def relu_fields_energy_jax(rp, rm, k, sw, sb, N):
    """(85) (with E4: k counts the negative components)."""
    S = sw * rp * rp / N + sb
    return 0.5 * jnp.sum(
        (rp * rp + rm * rm) / jnp.roll(S, 1)
        + N * jnp.log(S)
        + (N - k) * (3.0 * jnp.log(N - k) - 2.0 * jnp.log(rp))
        + k * (3.0 * jnp.log(k) - 2.0 * jnp.log(rm))
    )


# -- public wrappers --------------------------------------------------------------------------


def energy_chain(z, X, activation, sigma_w2, sigma_b2) -> float:
    """Energy (9) of an open chain: z (L, P, N) pre-activations of P inputs X (P, n_0)."""
    sw, sb = _params(sigma_w2, sigma_b2)
    act = _act(activation)
    X = v.inputs(X)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[1] != X.shape[0]:
        raise DeepEFTInputError(f"z must have shape (L, P, N) with P = {X.shape[0]} inputs, got {z.shape}.")
    S0 = sw * (X @ X.T) / X.shape[1] + sb
    with x64():
        return float(_chain(jnp.asarray(z), jnp.asarray(S0), act, sw, sb))


def energy_single(z, x, activation, sigma_w2, sigma_b2) -> float:
    """Single-input energy (10)/(39) (E8 index fix): z (L, N), x (n_0,). Same as (9) with |M| = 1."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise DeepEFTInputError(f"z must have shape (L, N) for one input, got {z.shape}.")
    return energy_chain(z[:, None, :], np.atleast_2d(np.asarray(x, dtype=np.float64)), activation, sigma_w2, sigma_b2)


def energy_ring(z, activation, sigma_w2, sigma_b2) -> float:
    """Ring energy (11): z (L, N), z^L ≡ z^{−1}."""
    sw, sb = _params(sigma_w2, sigma_b2)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise DeepEFTInputError(f"z must have shape (L, N), got {z.shape}.")
    with x64():
        return float(ring_energy_jax(jnp.asarray(z), _act(activation), sw, sb))


def _positive(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise DeepEFTInputError(f"{name} must be a 1-D array of positive finite values (one per layer).")
    return a


def energy_linear_radial(r, sigma_w2, sigma_b2, N) -> float:
    """Linear radial ring energy (12)/(41) of the norms r^l > 0 (L,)."""
    sw, sb = _params(sigma_w2, sigma_b2)
    N = v.positive_int(N, "N")
    r = _positive(r, "r")
    with x64():
        return float(linear_radial_energy_jax(jnp.asarray(r), sw, sb, N))


def energy_relu_fields(r_plus, r_minus, k, sigma_w2, sigma_b2, N) -> float:
    """ReLU three-field ring energy (85) of r^l_±, 0 < k^l < N (number of negative components, E4)."""
    sw, sb = _params(sigma_w2, sigma_b2)
    N = v.positive_int(N, "N")
    rp, rm, k = _positive(r_plus, "r_plus"), _positive(r_minus, "r_minus"), _positive(k, "k")
    if np.any(k >= N) or not (rp.shape == rm.shape == k.shape):
        raise DeepEFTInputError("k must satisfy 0 < k < N and r_plus, r_minus, k must have the same length L.")
    with x64():
        return float(relu_fields_energy_jax(jnp.asarray(rp), jnp.asarray(rm), jnp.asarray(k), sw, sb, N))
