"""Single-input dNTK statistics P, Q (11.55)–(11.57) and ddNTK statistics R, S, T, U (∞.14)–(∞.17), their
second-layer values (11.31)–(11.32), the scale-invariant closed forms (11.72)–(11.81), the K* = 0
asymptotics (11.98)–(11.102) and (∞.30)–(∞.37), and the deep-linear exact solution (∞.46)–(∞.48)
(PDLT §11.2–11.3, §∞.1).

Recursions, layer ℓ → ℓ + 1 (expectations ⟨·⟩ at K^{(ℓ)}; χ_∥, χ_⊥, h of (11.58)–(11.60) with C_W = C_W^{(ℓ+1)};
λ_W = λ_W^{(ℓ+1)}; Θ, B, F from :func:`deepeft.theory.ntk_single_input.ntk_single_input`; r = n_ℓ/n_{ℓ−1} on every
inherited finite-width term, as the multi-input forms (11.49), (11.52), (∞.172)–(∞.176) place it):

    P⁺ = C_W²⟨σ″σ′σ′σ⟩Θ² + r[C_Wχ_⊥⟨σ″σ⟩B + (C_Wχ_⊥⟨σ″σ⟩ + χ_⊥²)P]                                  (11.55)
    Q⁺ = C_W²⟨σ″σ′σ′σ⟩Θ² + (λ_W/C_W)F⁺ + r[2hχ_∥ΘF + (C_Wχ_⊥⟨σ″σ⟩ + χ_⊥²)Q]                          (11.56)
    R⁺ = rχ_⊥²R + λ_WC_W⟨σ″σ′σ′σ⟩Θ² + C_W²⟨σ‴σ′σ′σ′⟩Θ³ + rχ_⊥(λ_W⟨σ″σ⟩ + C_WΘ⟨σ‴σ′⟩)(B + P)
         + rχ_⊥(λ_W⟨σ′σ′⟩ + C_WΘ⟨σ″σ″⟩)P                                                            (∞.14)
    S⁺ = rχ_⊥²S + C_Wλ_W⟨σ′⁴⟩Θ² + C_W²⟨σ″σ″σ′σ′⟩Θ³ + rχ_⊥(λ_W⟨σ′σ′⟩ + C_WΘ⟨σ″σ″⟩)B                (∞.15)
    T⁺ = rχ_⊥²T + 2C_Wλ_W⟨σ″σ′σ′σ⟩Θ² + C_W²⟨σ″σ″σ′σ′⟩Θ³ + λ_W²⟨σ′σ′σσ⟩Θ
         + r(λ_W⟨zσ′σ⟩ + C_WΘ⟨zσ″σ′⟩)²F/K² + 2rχ_⊥[λ_W(⟨σ″σ⟩ + ⟨σ′σ′⟩) + C_WΘ(⟨σ‴σ′⟩ + ⟨σ″σ″⟩)]Q      (∞.16)
    U⁺ = rχ_⊥²U + C_W²⟨σ″σ″σ′σ′⟩Θ³                                                                  (∞.17)

with P = Q = R = S = T = U = 0 at ℓ = 1 (11.57); in T, ⟨zσ′σ⟩/K = χ_∥/C_W and ⟨zσ″σ′⟩/K = 2h/C_W (11.60).

**Which σ″.** The two expectations with one σ″ that P and Q need are taken in their integrated-by-parts forms
(11.67)–(11.70), which contain only σ and σ′:

    ⟨σ″σ⟩ = ⟨zσ′σ⟩/K − ⟨σ′σ′⟩,        ⟨σ″σ′σ′σ⟩ = (1/3)[⟨zσσ′³⟩/K − ⟨σ′⁴⟩].

For smooth σ they equal the direct integrals (tested); for a continuous σ with kinks (ReLU, leaky ReLU, ELU,
custom kinked) σ″ contains Dirac deltas and these forms are the values every smoothing of the kink converges
to (∫ σ″_ε σ′_ε² dz = Δ(σ′³)/3 for any mollifier) — the book's own evaluation (11.67)–(11.71), which makes
P ≡ 0 for every scale-invariant activation (11.74). So P, Q are defined for every activation without a jump.
The ddNTKs need ⟨σ″σ″⟩, ⟨σ″σ″σ′σ′⟩, ⟨σ‴σ′⟩, ⟨σ‴σ′σ′σ′⟩ — at a kink these contain δ(z)², which diverges
(§∞.1, (∞.39)–(∞.44): the η-expansion of the finite-width dynamics breaks down), so
:func:`ddntk_single_input` refuses every activation with a breakpoint; linear and smooth activations
(GELU, SWISH, tanh, sin, erf, softplus, custom smooth) are supported, with σ″, σ‴ from
:meth:`deepeft.Activation.derivative`.

All moments come from the Gaussian engine's trajectory rule (:func:`deepeft.gaussian.engine.one_point_trajectory`:
fixed Gauss–Legendre rules in x = z/√K, one jitted program for every layer's K; σ″, σ‴ by forward-mode autodiff);
the six linear recursions run as one jitted ``lax.scan`` in float64 (timings in benchmarks/bench_dntk.py).

Normalised ratios: P/(nΘ²), Q/(nΘ²) (11.62); R K/(nΘ³), S K/(nΘ³), T K/(nΘ³), U K/(nΘ³) (∞.21)–(∞.22),
with n = n_{ℓ−1}. The decompositions: E[dĤ_{i0i1i2} z_{i3}] = (1/n_{ℓ−1})[δ_{i0i3}δ_{i1i2}P + δ_{i0i1}δ_{i2i3}Q
+ δ_{i0i2}δ_{i1i3}Q] (11.45); E[dd_IĤ] (∞.11) with R; E[dd_IIĤ] (∞.12) with S, T, U.

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §11.2–11.3, §∞.1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import activation as _activation
from ..activations import require_smooth
from ..errors import DeepEFTInputError
from ..gaussian.engine import Factor, one_point_trajectory
from ..network import MLP
from .criticality import criticality
from .ntk_single_input import NTKSingleInput, ntk_single_input
from .single_input import input_norm

__all__ = [
    "DDNTKSingleInput",
    "DNTKSingleInput",
    "ddntk_deep_linear",
    "ddntk_k_star_zero_asymptotics",
    "ddntk_single_input",
    "dntk_k_star_zero_asymptotics",
    "dntk_scale_invariant",
    "dntk_single_input",
    "finite_width_moments",
]

# Moment names, in the order finite_width_moments lists them.
# ⟨σσσ′σ′⟩, ⟨σ′⁴⟩, ⟨σ″σ⟩ (IBP), ⟨σ″σ′σ′σ⟩ (IBP), ⟨σ′σ′⟩, ⟨zσ′σ⟩/K, ⟨σ′σ′(z² − K)⟩/K
_PQ = ("s2p2", "p4", "s2s", "s211", "p2", "zs1s", "hm")
_DD = ("dd", "d3d1", "d2211", "d3111")  # ⟨σ″σ″⟩, ⟨σ‴σ′⟩, ⟨σ″σ″σ′σ′⟩, ⟨σ‴σ′σ′σ′⟩
# The engine's terms: ⟨σσσ′σ′⟩, ⟨σ′⁴⟩, ⟨σ′σ′⟩, ⟨zσσ′⟩, ⟨zσσ′³⟩, ⟨z²σ′σ′⟩ (σ, σ′ only), then the σ″, σ‴ ones of _DD
_PQ_TERMS = ((0, 0, 1, 1), (1, 1, 1, 1), (1, 1), Factor((0, 1), 1), Factor((0, 1, 1, 1), 1), Factor((1, 1), 2))
_DD_TERMS = ((2, 2), (1, 3), (1, 1, 2, 2), (1, 1, 1, 3))


# ----------------------------------------------------------------------------------------------
# Gaussian moments at every layer's K
# ----------------------------------------------------------------------------------------------
def finite_width_moments(act, K, *, ddntk: bool = False) -> dict[str, np.ndarray]:
    """The Gaussian expectations of the P–U recursions at every kernel value K (L,) (> 0), ≲ 1e-13 relative.

    Always (σ, σ′ only — defined for kinked σ too, see the module docstring): ``s2p2`` = ⟨σσσ′σ′⟩,
    ``p4`` = ⟨σ′⁴⟩, ``s2s`` = ⟨σ″σ⟩ = ⟨zσ′σ⟩/K − ⟨σ′σ′⟩ (11.67), ``s211`` = ⟨σ″σ′σ′σ⟩ = (1/3)[⟨zσσ′³⟩/K − ⟨σ′⁴⟩]
    (11.69)–(11.70), ``p2`` = ⟨σ′σ′⟩ (= χ_⊥/C_W), ``zs1s`` = ⟨zσ′σ⟩/K (= χ_∥/C_W), ``hm`` = ⟨σ′σ′(z² − K)⟩/K
    (= 4hK/C_W). With ``ddntk`` (smooth σ only): ``dd`` = ⟨σ″σ″⟩, ``d3d1`` = ⟨σ‴σ′⟩, ``d2211`` = ⟨σ″σ″σ′σ′⟩,
    ``d3111`` = ⟨σ‴σ′σ′σ′⟩, σ″ and σ‴ by forward-mode autodiff of the activation.
    """
    act = _activation(act)
    K = np.atleast_1d(np.asarray(K, dtype=np.float64))
    if K.size == 0 or not np.all(np.isfinite(K)) or np.any(K <= 0):
        raise DeepEFTInputError("every kernel value K must be finite and > 0 (K is a preactivation variance).")
    if act.jumps:
        raise DeepEFTInputError(f"{act!r} has a jump: σ′ contains δ(z) and the NTK is undefined; use a continuous activation.")
    if ddntk:
        require_smooth(act, "The ddNTK statistics R, S, T, U")
    terms = _PQ_TERMS + (_DD_TERMS if ddntk else ())
    m = one_point_trajectory(act, terms, K)  # the engine's trajectory rule (σ″, σ‴ by autodiff)
    s2p2, p4, p2, zs1, zs13, z2p2 = m[:6]
    zs1s = zs1 / K
    out = dict(zip(_PQ, (s2p2, p4, zs1s - p2, (zs13 / K - p4) / 3.0, p2, zs1s, z2p2 / K - p2), strict=True))
    return out | dict(zip(_DD, m[6:], strict=True)) if ddntk else out


# ----------------------------------------------------------------------------------------------
# The recursions
# ----------------------------------------------------------------------------------------------
@jax.jit
def _scan(xs):
    def step(c, p):
        P, Q, R, S, T, U = c
        Th, B, F, Fn, lw, cw, r, K, s2p2, p4, s2s, s211, p2, zs1s, hm, dd, d3d1, d2211, d3111 = p
        cpar, cperp, h = cw * zs1s, cw * p2, cw * hm / (4.0 * K)  # χ_∥, χ_⊥, h (11.58)–(11.60)
        T2, T3 = Th * Th, Th * Th * Th
        mix = cw * cperp * s2s + cperp * cperp  # C_Wχ_⊥⟨σ″σ⟩ + χ_⊥²
        src = cw * cw * s211 * T2  # C_W²⟨σ″σ′σ′σ⟩Θ²
        kq = lw * zs1s + 2.0 * h * Th  # (λ_W⟨zσ′σ⟩ + C_WΘ⟨zσ″σ′⟩)/K, ⟨zσ″σ′⟩/K = 2h/C_W (11.60)
        c2 = r * cperp * cperp
        new = (
            src + r * (cw * cperp * s2s * B + mix * P),  # (11.55)
            src + lw / cw * Fn + r * (2.0 * h * cpar * Th * F + mix * Q),  # (11.56)
            c2 * R + lw * cw * s211 * T2 + cw * cw * d3111 * T3 + r * cperp * (lw * s2s + cw * Th * d3d1) * (B + P)
            + r * cperp * (lw * p2 + cw * Th * dd) * P,  # (∞.14)
            c2 * S + cw * lw * p4 * T2 + cw * cw * d2211 * T3 + r * cperp * (lw * p2 + cw * Th * dd) * B,  # (∞.15)
            c2 * T + 2.0 * cw * lw * s211 * T2 + cw * cw * d2211 * T3 + lw * lw * s2p2 * Th + r * kq * kq * F
            + 2.0 * r * cperp * (lw * (s2s + p2) + cw * Th * (d3d1 + dd)) * Q,  # (∞.16)
            c2 * U + cw * cw * d2211 * T3,  # (∞.17)
        )
        return new, c

    z = jnp.zeros((), jnp.float64)
    return jax.lax.scan(step, (z, z, z, z, z, z), xs, unroll=4)[1]  # unrolled: ~6x faster on CPU (measured)


def _run(net: MLP, x, norm, ddntk: bool):
    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"net must be a deepeft.MLP, got {type(net).__name__}; build one with de.MLP(...).")
    act = net.activation
    if ddntk and not act.jumps:  # a jump: ntk_single_input's own refusal (σ′ contains δ(z)) below
        require_smooth(act, "The ddNTK statistics R, S, T, U")
    p = net.arrays()
    if np.any(p["C_W"][1:] == 0):
        raise DeepEFTInputError(
            "C_W = 0 in a layer ℓ ≥ 2 makes that layer forget its input, and the dNTK recursion divides by it "
            "(λ_W/C_W in (11.56)); use C_W > 0."
        )
    ntk = ntk_single_input(net, norm=input_norm(net, x, norm))  # K and Θ, B, F (9.6), (9.14)–(9.15); refuses jumps
    L = net.L
    n = np.asarray(net.n, dtype=np.float64)
    m = finite_width_moments(act, ntk.K, ddntk=ddntk)
    dd = [m[k] for k in _DD] if ddntk else [np.zeros(L)] * len(_DD)
    nxt = np.concatenate  # step ℓ → ℓ + 1 uses layer ℓ + 1's λ_W, C_W and F (the last entry repeated)
    lw = nxt([p["lambda_W"][1:], p["lambda_W"][-1:]])
    cw = nxt([p["C_W"][1:], p["C_W"][-1:]])
    Fn = nxt([ntk.F[1:], ntk.F[-1:]])
    r = np.ones(L)
    r[1 : L - 1] = n[2:L] / n[1 : L - 1]
    cols = (ntk.Theta, ntk.B, ntk.F, Fn, lw, cw, r, ntk.K, *(m[k] for k in _PQ), *dd)
    with x64():
        out = _scan(tuple(jnp.asarray(a, dtype=jnp.float64) for a in cols))
        out = [np.asarray(o) for o in out]
    return ntk, out


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
def _n_or(self, n) -> np.ndarray:
    if n is None:
        return self.n_prev
    return np.full(self.K.size, v.finite_scalar(n, "n", minimum=0.0, strict=True))


@dataclasses.dataclass(frozen=True, eq=False)
class DNTKSingleInput:
    """Per-layer single-input K, Θ, P, Q (L,), layer ℓ at index ℓ − 1; ``ntk`` holds K, V, Θ, A, B, D, F of
    (9.6), (9.13)–(9.16); ``n_prev`` = n_{ℓ−1}. E[dĤ_{iii} z_i] = (P + 2Q)/n_{ℓ−1} (11.45)."""

    K: np.ndarray
    Theta: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    ntk: NTKSingleInput
    n_prev: np.ndarray

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.K.size + 1)

    def normalized(self, n=None) -> dict[str, np.ndarray]:
        """P/(nΘ²), Q/(nΘ²) (11.62), n = n_{ℓ−1} (or the scalar ``n``); both ∝ ℓ/n at criticality (11.65)."""
        T2 = _n_or(self, n) * self.Theta**2
        return {"P": self.P / T2, "Q": self.Q / T2}


@dataclasses.dataclass(frozen=True, eq=False)
class DDNTKSingleInput(DNTKSingleInput):
    """Per-layer single-input K, Θ, P, Q (the fields of :class:`DNTKSingleInput`) and the ddNTK tensors R, S, T, U
    (L,) of (∞.11)–(∞.12), layer ℓ at index ℓ − 1; ``ntk`` holds the NTK statistics (9.13)–(9.16);
    ``n_prev`` = n_{ℓ−1}."""

    R: np.ndarray
    S: np.ndarray
    T: np.ndarray
    U: np.ndarray

    def normalized(self, n=None) -> dict[str, np.ndarray]:
        """P/(nΘ²), Q/(nΘ²) (11.62) and R K/(nΘ³), S K/(nΘ³), T K/(nΘ³), U K/(nΘ³) (∞.21)–(∞.22), n = n_{ℓ−1}."""
        nn = _n_or(self, n)
        T2, T3 = nn * self.Theta**2, nn * self.Theta**3 / self.K
        return {"P": self.P / T2, "Q": self.Q / T2, "R": self.R / T3, "S": self.S / T3, "T": self.T / T3, "U": self.U / T3}


def dntk_single_input(net: MLP, x=None, *, norm=None) -> DNTKSingleInput:
    """Single-input dNTK statistics P, Q (11.55)–(11.57) for input ``x`` (n0,) or its ``norm`` = (1/n_0)Σx²
    (default 1), with the per-layer widths, C's and λ's of ``net``. Defined for every activation without a jump
    (kinked ones through the integrated-by-parts σ″ expectations (11.67)–(11.70); see the module docstring).

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §11.2.2 (11.43)–(11.57).
    """
    ntk, out = _run(net, x, norm, ddntk=False)
    return DNTKSingleInput(ntk.K, ntk.Theta, out[0], out[1], ntk, ntk.n_prev)


def ddntk_single_input(net: MLP, x=None, *, norm=None) -> DDNTKSingleInput:
    """Single-input ddNTK statistics R, S, T, U (∞.14)–(∞.17) together with P, Q (11.55)–(11.56) for input ``x``
    (n0,) or its ``norm`` (default 1). Smooth activations and linear only: an activation with a kink or jump
    raises :class:`~deepeft.DeepEFTInputError` (⟨σ″σ″⟩ diverges; the η-expansion breaks down, §∞.1).

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §∞.1 (∞.11)–(∞.17), §∞.3 (∞.171)–(∞.176).
    """
    ntk, out = _run(net, x, norm, ddntk=True)
    P, Q, R, S, T, U = out
    return DDNTKSingleInput(K=ntk.K, Theta=ntk.Theta, P=P, Q=Q, ntk=ntk, n_prev=ntk.n_prev, R=R, S=S, T=T, U=U)


# ----------------------------------------------------------------------------------------------
# Closed forms and asymptotics
# ----------------------------------------------------------------------------------------------
def dntk_scale_invariant(ell, *, a_plus=1.0, a_minus=0.0, K_star=1.0, lambda_b=1.0, lambda_W=1.0):
    """Exact single-input dNTK statistics at scale-invariant criticality (C_b = 0, C_W = 1/A₂, uniform λ_b, λ_W,
    equal widths): P ≡ 0 (11.74) and, from Q⁺ = Q + (λ_W/C_W)F⁺ (11.73) with F (11.77),

        Q = [ℓ(ℓ² − 1)/6] (A₄/A₂) c λ_W K*,   c = λ_b + λ_W A₂ K*              (11.79) with λ̃ = λL (11.75)
        Q/Θ² = (A₄/(6A₂)) (λ_W K*/c) (ℓ² − 1)/ℓ   (→ (11.81) times n)

    A₂ = (a₊² + a₋²)/2, A₄ = (a₊⁴ + a₋⁴)/2. Returns a dict of arrays shaped like ℓ: ``P``, ``Q``, ``Theta`` = cℓ,
    ``Q_over_Theta2``.

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §11.3.1 (11.66)–(11.81).
    """
    ell = np.asarray(ell, dtype=np.float64)
    A2 = (a_plus**2 + a_minus**2) / 2
    A4 = (a_plus**4 + a_minus**4) / 2
    if A2 <= 0:
        raise DeepEFTInputError("a_plus and a_minus must not both be 0 (A₂ = 0: no signal).")
    lb, lw, K = float(lambda_b), float(lambda_W), float(K_star)
    c = lb + lw * A2 * K
    Q = ell * (ell**2 - 1) / 6 * (A4 / A2) * c * lw * K
    Th = c * ell
    return {"P": np.zeros_like(ell), "Q": Q, "Theta": Th, "Q_over_Theta2": Q / Th**2}


def _k_star_zero(act, need_odd: bool):
    act = _activation(act)
    crit = criticality(act, exponents=False)  # Taylor data and class only (no exponent fit)
    tay = getattr(crit, "taylor", None)
    if crit.universality_class != "K*=0" or tay is None or not tay.a1 or tay.a1 >= 0:
        raise DeepEFTInputError(
            f"{act!r} is not in the K* = 0 universality class with (−a₁) > 0 (class: {crit.universality_class!r}); "
            "use the numerical recursions dntk_single_input / ddntk_single_input."
        )
    s1, a1, pp = float(tay.sigma[1]), float(tay.a1), float(tay.p_perp)
    if need_odd and (abs(float(tay.sigma[2])) > 1e-12 * abs(s1) or abs(pp - 1.0) > 1e-12):
        raise DeepEFTInputError(
            f"(∞.30)–(∞.33) hold for odd K* = 0 activations (σ₂ = 0, p⊥ = 1, e.g. tanh, sin, erf); {act!r} has "
            f"σ₂ = {float(tay.sigma[2]):.4g}, p⊥ = {pp:.4g}. Use the numerical recursion ddntk_single_input."
        )
    return s1, a1, pp


def dntk_k_star_zero_asymptotics(act, ell, *, lambda_b_tilde=1.0, lambda_W_tilde=1.0):
    """Leading large-ℓ P, Q in the K* = 0 class (C_b = 0, C_W = 1/σ₁²) with the rates (9.70)
    λ_b = λ̃_b ℓ^{−p⊥}, λ_W = λ̃_W ℓ^{1−p⊥} (the L-factors of (9.95) set to 1, as in k_star_zero_asymptotics):

        P = −(1/3)((2 − p⊥)/(5 − p⊥)) c² ℓ^{3−2p⊥}                          (11.98)
        Q = (1 − p⊥ − λ̃_b/c) c² ℓ^{3−2p⊥}/(5 − p⊥)²                          (11.101)
        P/(nΘ²) = −(1/3)((2 − p⊥)/(5 − p⊥)) ℓ/n,  Q/(nΘ²) = (1 − p⊥ − λ̃_b/c)/(5 − p⊥)² ℓ/n   (11.100), (11.102)

    c = λ̃_b + λ̃_Wσ₁²/(−a₁). Returns ``P``, ``Q``, ``P_ratio``, ``Q_ratio`` (the latter two = ratio·n, i.e. for n = 1)
    shaped like ℓ, and ``p_perp``.

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §11.3.2 (11.82)–(11.103).
    """
    s1, a1, pp = _k_star_zero(act, need_odd=False)
    ell = np.asarray(ell, dtype=np.float64)
    c = lambda_b_tilde + lambda_W_tilde * s1**2 / (-a1)
    kP = -(1.0 / 3.0) * (2 - pp) / (5 - pp)
    kQ = (1 - pp - lambda_b_tilde / c) / (5 - pp) ** 2
    grow = c**2 * ell ** (3 - 2 * pp)
    return {"P": kP * grow, "Q": kQ * grow, "P_ratio": kP * ell, "Q_ratio": kQ * ell, "p_perp": pp}


def ddntk_k_star_zero_asymptotics(act, ell, *, lambda_b_tilde=1.0, lambda_W_tilde=1.0):
    """Leading large-ℓ R, S, T, U for odd K* = 0 activations (σ₂ = 0, p⊥ = 1: tanh, sin, erf) at C_b = 0,
    C_W = 1/σ₁² with the equivalence-principle rates (∞.29) λ_b = λ̃_b/ℓ, λ_W = λ̃_W:

        R = −(ℓ²/48)[3λ̃_b + 4w][λ̃_b + w]²(−a₁)      (∞.30)      S = (ℓ²/12)[λ̃_b + w]² λ̃_Wσ₁²   (∞.31)
        T = (ℓ²/32)[λ̃_b + w](−a₁)λ̃_b²               (∞.32)      U = ½[λ̃_b + w]³(−a₁)         (∞.33)

    w = λ̃_Wσ₁²/(−a₁); and the ratios X K/(nΘ³) (∞.34)–(∞.37) times n (``R_ratio`` … ``U_ratio``).

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §∞.1 (∞.27)–(∞.38).
    """
    s1, a1, _ = _k_star_zero(act, need_odd=True)
    ell = np.asarray(ell, dtype=np.float64)
    lb, w = float(lambda_b_tilde), float(lambda_W_tilde) * s1**2 / (-a1)
    c = lb + w
    return {
        "R": -(ell**2) / 48 * (3 * lb + 4 * w) * c**2 * (-a1),
        "S": ell**2 / 12 * c**2 * lambda_W_tilde * s1**2,
        "T": ell**2 / 32 * c * (-a1) * lb**2,
        "U": 0.5 * c**3 * (-a1) * np.ones_like(ell),
        "R_ratio": -(1 / 48) * (3 * lb + 4 * w) / c * ell,
        "S_ratio": (1 / 12) * (w / c) * ell,
        "T_ratio": (1 / 32) * (lb / c) ** 2 * ell,
        "U_ratio": 0.5 / ell,
    }


def ddntk_deep_linear(ell, *, K_star=1.0, lambda_b=1.0, lambda_W=1.0):
    """Exact single-input ddNTK statistics of a critical deep linear network (σ(z) = z, C_b = 0, C_W = 1, uniform
    λ_b, λ_W = λ̃/L (∞.45), equal widths; K* = the input's K^{(1)}):

        R = U = 0   (∞.46),      S = [ℓ²(ℓ² − 1)/12] (λ_b + λ_W K*)² λ_W   (∞.47),
        T = [ℓ²(ℓ² − 1)/12] (λ_b + λ_W K*) λ_W² K*   (∞.48),

    with P ≡ 0 and Q = [ℓ(ℓ² − 1)/6](λ_b + λ_WK*)λ_WK* ((11.79) at A₂ = A₄ = 1). Returns a dict of arrays shaped like ℓ.

    References: Roberts, Yaida, Hanin, arXiv:2106.10165, §∞.1 (∞.45)–(∞.48).
    """
    ell = np.asarray(ell, dtype=np.float64)
    lb, lw, K = float(lambda_b), float(lambda_W), float(K_star)
    c = lb + lw * K
    g = ell**2 * (ell**2 - 1) / 12
    zero = np.zeros_like(ell)
    return {"P": zero, "Q": ell * (ell**2 - 1) / 6 * c * lw * K, "R": zero, "S": g * c**2 * lw, "T": g * c * lw**2 * K,
            "U": zero, "Theta": c * ell}
