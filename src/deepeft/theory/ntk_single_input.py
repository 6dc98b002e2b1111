"""Single-input NTK fluctuations (9.13)–(9.16), their scale-invariant closed forms (9.44)–(9.51) and the
K* = 0 asymptotics (9.71)–(9.86) (PDLT §9.1–9.3).

Recursions, layer ℓ → ℓ + 1 (helpers g, χ_∥, χ_⊥, h of (5.49)–(5.52) at K^{(ℓ)} with C_W = C_W^{(ℓ+1)};
λ_b, λ_W of layer ℓ + 1; r = n_ℓ/n_{ℓ−1} on the inherited finite-width terms, as in (4.119)):

    Θ⁺ = λ_b + λ_W g + χ_⊥ Θ                                                                    (9.6)
    D⁺ = r χ_⊥χ_∥ D + (λ_W/C_W)[C_W²⟨σ⁴⟩ − (C_W g)² + r χ_∥² V] + Θ[C_W²⟨σσσ′σ′⟩ − C_W g χ_⊥ + 2r hχ_∥ V]   (9.13)
    F⁺ = r χ_∥² F + C_W²⟨σσσ′σ′⟩ Θ                                                              (9.14)
    B⁺ = r χ_⊥² B + C_W²⟨σ′⁴⟩ Θ²                                                                (9.15)
    A⁺ = r χ_⊥² A + (λ_W/C_W)²[C_W²⟨σ⁴⟩ − (C_W g)² + r χ_∥² V] + 2(λ_W/C_W)Θ[C_W²⟨σσσ′σ′⟩ − C_W g χ_⊥ + 2r hχ_∥ V]
         + 2r(λ_W/C_W)χ_⊥χ_∥ D + 4r hχ_⊥ Θ D + Θ²[C_W²⟨σ′⁴⟩ − χ_⊥² + r(2h)² V]                       (9.16)

with A = B = D = F = 0 at ℓ = 1. (C_W²⟨σ⁴⟩ − (C_W g)² is the vertex source of (5.109).) The kernel K, the
vertex V and the helpers come from :func:`deepeft.theory.single_input.single_input`; the two extra moments
⟨σσσ′σ′⟩, ⟨σ′⁴⟩ from the engine's trajectory rule (:func:`deepeft.gaussian.engine.one_point_trajectory`:
closed forms, else one jitted Gauss–Legendre rule in x = z/√K over all layers); the recursions
above are linear in their own unknown (Θ first, then B, F, D, then A), so each is solved as a two-level prefix
of affine maps (blocks of layers, then across blocks) in float64: 10⁵ layers in milliseconds after compilation.

Normalised ratios (9.23)–(9.27): A/(nΘ²), B/(nΘ²), D/(nKΘ), F/(nKΘ), V/(nK²), all ∝ ℓ/n at criticality.

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §9.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from ..gaussian.engine import one_point_trajectory
from ..network import MLP, check_net
from .criticality import criticality
from .single_input import input_norm, single_input

__all__ = [
    "NTKSingleInput",
    "k_star_zero_asymptotics",
    "ntk_single_input",
    "scale_invariant_closed_forms",
]

_BLOCK = 256  # layers per block of the two-level prefix solve


def _affine_prefix(a, b, y0=None):
    """y_1 = y0 (0 if None), y_{k+1} = a_k y_k + b_k for k = 1..L−1: the prefix compositions of the affine maps
    y ↦ a y + b, in two levels — within blocks of ``_BLOCK`` layers (a scan over the block's layers, vectorised
    across blocks), then across blocks (a scan over the block totals) — so ~_BLOCK + L/_BLOCK vectorised steps
    instead of L scalar ones, and a program that compiles in a fraction of a second. Returns y (L,)."""
    n = a.shape[0] - 1  # maps k = 1..L−1
    nb = max(1, -(-n // _BLOCK))
    pad = nb * _BLOCK - n
    am = jnp.concatenate([a[:-1], jnp.ones(pad, a.dtype)]).reshape(nb, _BLOCK)  # identity maps as padding
    bm = jnp.concatenate([b[:-1], jnp.zeros(pad, b.dtype)]).reshape(nb, _BLOCK)

    def inner(c, ab):  # one layer in every block
        A, B = c
        A, B = ab[0] * A, ab[0] * B + ab[1]
        return (A, B), (A, B)

    one = jnp.ones(nb, a.dtype)
    _, (Al, Bl) = jax.lax.scan(inner, (one, jnp.zeros(nb, b.dtype)), (am.T, bm.T))  # (_BLOCK, nb) local prefixes

    def outer(c, tot):  # composition of all earlier blocks (exclusive prefix)
        A, B = c
        return (tot[0] * A, tot[0] * B + tot[1]), c

    _, (Ae, Be) = jax.lax.scan(outer, (jnp.ones((), a.dtype), jnp.zeros((), b.dtype)), (Al[-1], Bl[-1]))
    A = (Al * Ae).T.reshape(-1)[:n]
    B = (Al * Be + Bl).T.reshape(-1)[:n]
    rest = B if y0 is None else A * y0 + B
    first = jnp.zeros(1, b.dtype) if y0 is None else jnp.reshape(y0, (1,)).astype(b.dtype)
    return jnp.concatenate([first, rest])


@jax.jit
def _solve(Th1, xs):
    """(9.6), (9.13)–(9.16) for all layers. Each is linear in its own unknown with coefficients known from the
    layers below, so they are solved in turn — Θ; then B, F, D (sources ∝ Θ); then A (sources ∝ Θ, D) — each by
    :func:`_affine_prefix`. Step ℓ → ℓ + 1 uses the parameters at index ℓ − 1 (the last entry is unused)."""
    _K, V, g, cpar, cperp, h, src, s2p2, p4, lb, lw, cw, r = xs
    q = lw / cw
    src_t = src + r * cpar * cpar * V  # C_W²⟨σ⁴⟩ − (C_W g)² + r χ_∥² V
    mix = cw * cw * s2p2 - cw * g * cperp + 2.0 * r * h * cpar * V
    Th = _affine_prefix(cperp, lb + lw * g, Th1)  # (9.6)
    B = _affine_prefix(r * cperp * cperp, cw * cw * p4 * Th * Th)  # (9.15)
    F = _affine_prefix(r * cpar * cpar, cw * cw * s2p2 * Th)  # (9.14)
    D = _affine_prefix(r * cperp * cpar, q * src_t + Th * mix)  # (9.13)
    A = _affine_prefix(  # (9.16)
        r * cperp * cperp,
        q * q * src_t + 2.0 * q * Th * mix + 2.0 * r * q * cperp * cpar * D + 4.0 * r * h * cperp * Th * D
        + Th * Th * (cw * cw * p4 - cperp * cperp + r * 4.0 * h * h * V),
    )
    return jnp.stack([Th, A, B, D, F])


@dataclasses.dataclass(frozen=True, eq=False)
class NTKSingleInput:
    """Per-layer single-input K, V, Θ, A, B, D, F (L,), layer ℓ at index ℓ − 1; ``n_prev`` = n_{ℓ−1}."""

    K: np.ndarray
    V: np.ndarray
    Theta: np.ndarray
    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    F: np.ndarray
    n_prev: np.ndarray

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.K.size + 1)

    def normalized(self, n=None) -> dict[str, np.ndarray]:
        """A/(nΘ²), B/(nΘ²), D/(nKΘ), F/(nKΘ), V/(nK²) with n = n_{ℓ−1} (or the given scalar n) (9.23)–(9.24)."""
        nn = self.n_prev if n is None else np.full(self.K.size, v.finite_scalar(n, "n", minimum=0.0, strict=True))
        T2, KT = nn * self.Theta**2, nn * self.K * self.Theta
        return {"A": self.A / T2, "B": self.B / T2, "D": self.D / KT, "F": self.F / KT, "V": self.V / (nn * self.K**2)}


def ntk_single_input(net: MLP, x=None, *, norm=None) -> NTKSingleInput:
    """The single-input recursions (9.6), (9.13)–(9.16) for input ``x`` (n0,) or its ``norm`` = (1/n_0)Σx²
    (default 1), with the per-layer widths, C's and λ's of ``net``."""
    net = check_net(net)
    act = net.activation
    if act.jumps:
        raise DeepEFTInputError(f"{act!r} has a jump: the NTK is undefined (σ′ contains δ(z)); use a continuous activation.")
    nrm = input_norm(net, x, norm)
    si = single_input(net, norm=nrm)
    L = net.L
    p = net.arrays()
    n = np.asarray(net.n, dtype=np.float64)
    extra = one_point_trajectory(act, ((0, 0, 1, 1), (1, 1, 1, 1)), si.K)  # ⟨σσσ′σ′⟩, ⟨σ′⁴⟩
    nxt = np.concatenate  # parameters of the step ℓ → ℓ + 1: layer ℓ + 1's values (last repeated)
    lb = nxt([p["lambda_b"][1:], p["lambda_b"][-1:]])
    lw = nxt([p["lambda_W"][1:], p["lambda_W"][-1:]])
    cw = nxt([p["C_W"][1:], p["C_W"][-1:]])
    r = np.ones(L)
    r[1 : L - 1] = n[2:L] / n[1 : L - 1]
    xs = (si.K, si.V, si.g, si.chi_parallel, si.chi_perp, si.h, si.source, extra[0], extra[1], lb, lw, cw, r)
    Th1 = p["lambda_b"][0] + p["lambda_W"][0] * nrm  # (8.23)
    with x64():
        Th, A, B, D, F = np.asarray(_solve(jnp.float64(Th1), tuple(jnp.asarray(a, dtype=jnp.float64) for a in xs)))
    return NTKSingleInput(si.K, si.V, Th, A, B, D, F, n[:-1].copy())


# ----------------------------------------------------------------------------------------------
# Closed forms and asymptotics
# ----------------------------------------------------------------------------------------------
def scale_invariant_closed_forms(ell, *, a_plus=1.0, a_minus=0.0, K_star=1.0, lambda_b=1.0, lambda_W=1.0):
    """Exact single-input solutions at scale-invariant criticality (C_b = 0, C_W = 1/A₂, uniform λ):

    Θ = cℓ (9.44), V = (3r − 1)(ℓ − 1)K*², D (9.49), F (9.50), B (9.51) and the exact A [derived from (9.16)]:
    A = λ_b²(r−1)ℓ(ℓ−1)(2ℓ−1)/6 + λ_bλ_W A₂K*(r−1)ℓ²(ℓ−1) + λ_W²K*²[(5A₄/3 − A₂²)ℓ³ + (A₂² − 2A₄)ℓ² + (A₄/3)ℓ],
    A₂ = (a₊² + a₋²)/2, A₄ = (a₊⁴ + a₋⁴)/2, r = A₄/A₂², c = λ_b + λ_W A₂ K*. Returns a dict of arrays shaped like ℓ.
    """
    ell = np.asarray(ell, dtype=np.float64)
    A2 = (a_plus**2 + a_minus**2) / 2
    A4 = (a_plus**4 + a_minus**4) / 2
    if A2 <= 0:
        raise DeepEFTInputError("a_plus and a_minus must not both be 0 (A₂ = 0: no signal).")
    r = A4 / A2**2
    lb, lw, K = float(lambda_b), float(lambda_W), float(K_star)
    c = lb + lw * A2 * K
    return {
        "Theta": c * ell,
        "V": (3 * r - 1) * (ell - 1) * K**2,
        "D": ell * (ell - 1) / 2 * (lb * (r - 1) * K + lw * A2 * (4 * r - 2) * K**2),
        "F": ell * (ell - 1) / 2 * r * K * c,
        "B": ell * (ell - 1) * (2 * ell - 1) / 6 * r * c**2,
        "A": lb**2 * (r - 1) * ell * (ell - 1) * (2 * ell - 1) / 6
        + lb * lw * A2 * K * (r - 1) * ell**2 * (ell - 1)
        + lw**2 * K**2 * ((5 * A4 / 3 - A2**2) * ell**3 + (A2**2 - 2 * A4) * ell**2 + (A4 / 3) * ell),
    }


def k_star_zero_asymptotics(act, ell, *, lambda_b_tilde=1.0, lambda_W_tilde=1.0):
    """Leading large-ℓ solutions in the K* = 0 class with the rates (9.70) λ_b = λ̃_b ℓ^{−p⊥}, λ_W = λ̃_W ℓ^{1−p⊥}:

    K = 1/((−a₁)ℓ) (5.92), Θ = c ℓ^{1−p⊥} (9.71), F = c ℓ^{1−p⊥}/((5 − p⊥)(−a₁)) (9.81), B = c²ℓ^{3−2p⊥}/3 (9.82),
    D = −2Xℓ^{1−p⊥}/(9(−a₁)) (9.84), A = (4/27)X²ℓ^{3−2p⊥} (9.86), V = (2/(3a₁²))/ℓ (5.127) — with
    c = λ̃_b + λ̃_Wσ₁²/(−a₁), X = p⊥λ̃_b + (p⊥ − 1)λ̃_Wσ₁²/(−a₁). Also returns ``p_perp``, ``sigma1``, ``a1``.
    """
    act = _activation(act)
    crit = criticality(act)
    tay = getattr(crit, "taylor", None)
    if crit.universality_class != "K*=0" or tay is None or not tay.a1 or tay.a1 >= 0:
        raise DeepEFTInputError(
            f"{act!r} is not in the K* = 0 universality class with (−a₁) > 0 (class: {crit.universality_class!r}); "
            "use scale_invariant_closed_forms or the numerical recursion ntk_single_input."
        )
    s1 = float(tay.sigma[1])
    a1, pp = float(tay.a1), float(tay.p_perp)
    ell = np.asarray(ell, dtype=np.float64)
    c = lambda_b_tilde + lambda_W_tilde * s1**2 / (-a1)
    X = pp * lambda_b_tilde + (pp - 1) * lambda_W_tilde * s1**2 / (-a1)
    return {
        "K": 1.0 / ((-a1) * ell),
        "V": 2.0 / (3.0 * a1**2) / ell,
        "Theta": c * ell ** (1 - pp),
        "F": c * ell ** (1 - pp) / ((5 - pp) * (-a1)),
        "B": c**2 * ell ** (3 - 2 * pp) / 3,
        "D": -2 * X * ell ** (1 - pp) / (9 * (-a1)),
        "A": 4.0 / 27.0 * X**2 * ell ** (3 - 2 * pp),
        "p_perp": pp,
        "sigma1": s1,
        "a1": a1,
    }
