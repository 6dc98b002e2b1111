"""Gaussian (Laplace) fluctuation theory around the uniform saddle (paper eqs. (14)–(15), (21)–(22)).

Every quadratic theory here is stored as a translation-invariant lattice quadratic form

    U({x}) = ½ Σ_l [ x_lᵀ D₀ x_l + 2 x_lᵀ B x_{l−1} ],    P({x}) ∝ exp(−U)   (E1: U is the full exponent)

with b fields per layer (b = 1 linear: x = ε = r − r*; b = 3 ReLU: x = (ε̃_+, ε̃_−, ε̃_k) with
ε̃_± = (√N/r*)ε_±, ε̃_k = ε_k/√N (21)). ``theory.scale`` converts to raw fields ε = scale·x.

Coefficients (``coefficients=``):
* ``"verified"`` (default) — linear: D₀ = (2Δ_w/σ_b²)(1 + σ_w⁴), B = −(2Δ_w/σ_b²)σ_w², i.e. (14) read as the
  full exponent (E1); ReLU: D₀ = [[1 + σ_w⁴/2, 0, 1], [0, 1, −1], [1, −1, 6]], B = −(σ_w²/2)[[1,0,0],[1,0,0],[0,0,0]]
  (E6: the k-sector coefficients are 6 and 2ε̃_k(ε̃_+ − ε̃_−), as in the appendix's own (93)/(94)).
  Checks: the autodiff Hessian of (12)/(85) at the saddle (:func:`auto_laplace`), the exact AR(1)/VAR(1)
  of the conditional chain (:func:`var_model`; Var(k) = N/4 exactly), and simulation (tests/docs).
* ``"printed"`` — the paper as printed: linear (14) coefficients taken as the precision matrix (halves it,
  doubles every variance — E1); ReLU (21)/(22) with k-sector 3 and ε̃_k(ε̃_+ − ε̃_−) (E6).

Conventions (E2, E3): a ring of L sites, q_n = 2πn/L, x̂_n = Σ_l x_l e^{−i q_n l} (``numpy.fft.fft`` over
layers) and the spectrum S(q_n) = E[x̂_n x̂_nᴴ]/L = (D₀ + B e^{−iq} + Bᵀ e^{iq})⁻¹. (The paper's (15) carries
a factor L and (22) omits it; its Σ⁻¹(q) (22) is the complex conjugate of ours, ε_q ↔ ε_{−q}.)
Lagged covariances C(d) = E[x_{l+d} x_lᵀ]: exact on a ring (inverse FFT of S on the ring's grid) and on
the infinite chain (a ring long enough that wrap-around is below 1e-16), the real-space target of tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError, suggest
from . import energy as _energy
from .saddle import saddle_linear, saddle_relu

__all__ = [
    "QuadraticTheory",
    "quadratic_theory",
    "precision_matrix",
    "covariance_matrix",
    "lagged_covariance",
    "fluctuation_spectrum",
    "var_model",
    "linear_spectrum",
    "linear_lagged_covariance",
    "relu_covariance",
    "auto_laplace",
    "hessian_blocks",
    "lattice_correlation_length",
    "expected_periodogram",
]

MODELS = ("linear", "relu")
COEFFICIENTS = ("verified", "printed")
FIELDS = {"linear": ("eps",), "relu": ("eps_plus", "eps_minus", "eps_k")}


@dataclasses.dataclass(frozen=True, eq=False)
class QuadraticTheory:
    """U = ½ Σ_l [x_lᵀ D0 x_l + 2 x_lᵀ B x_{l−1}] (full exponent); raw fields ε = scale · x."""

    model: str
    coefficients: str
    D0: np.ndarray
    B: np.ndarray
    scale: np.ndarray
    fields: tuple[str, ...]
    sigma_w2: float
    sigma_b2: float
    N: int | None

    @property
    def b(self) -> int:
        return self.D0.shape[0]

    def symbol(self, q) -> np.ndarray:
        """P̂(q) = D0 + B e^{−iq} + Bᵀ e^{iq}, shape (len(q), b, b)."""
        q = np.atleast_1d(np.asarray(q, dtype=np.float64))
        e = np.exp(-1j * q)[:, None, None]
        return self.D0[None] + self.B[None] * e + self.B.T[None] * np.conj(e)


def _choice(value, name, choices):
    if value not in choices:
        raise DeepEFTInputError(f"{name} must be one of {choices}, got {value!r}.{suggest(str(value), choices)}")
    return value


def quadratic_theory(model, sigma_w2, sigma_b2=0.01, N=200, *, coefficients="verified") -> QuadraticTheory:
    """Quadratic fluctuation theory of ``model`` ∈ {'linear', 'relu'} at (σ_w², σ_b², N).

    Linear (14)/(49): valid for σ_w² < 1; ReLU (21)/(90) with (20): valid for σ_w² < 2 — outside, the
    saddle does not exist and a DeepEFTInputError is raised (via :mod:`.saddle`).
    """
    _choice(model, "model", MODELS)
    _choice(coefficients, "coefficients", COEFFICIENTS)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    if model == "linear":
        r = saddle_linear(sw, sigma_b2, N)  # validates σ_w² < 1, σ_b² > 0
        sb = float(sigma_b2)
        c = 2.0 * (1.0 - sw) / sb if coefficients == "verified" else (1.0 - sw) / sb  # E1
        D0 = np.array([[c * (1.0 + sw * sw)]])
        B = np.array([[-c * sw]])
        scale = np.ones(1)
    else:
        s = saddle_relu(sw, sigma_b2, N)
        sb, r = float(sigma_b2), s.r_plus
        ck, dk = (1.0, 6.0) if coefficients == "verified" else (0.5, 3.0)  # E6
        D0 = np.array([[1.0 + sw * sw / 2.0, 0.0, ck], [0.0, 1.0, -ck], [ck, -ck, dk]])
        B = -(sw / 2.0) * np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        scale = np.array([r / math.sqrt(N), r / math.sqrt(N), math.sqrt(N)])
    return QuadraticTheory(model, coefficients, D0, B, scale, FIELDS[model], sw, sb, int(N))


def as_quadratic_theory(t) -> QuadraticTheory:
    if not isinstance(t, QuadraticTheory):
        raise DeepEFTInputError("pass a QuadraticTheory from quadratic_theory(model, sigma_w2, sigma_b2, N).")
    return t


def _maybe_raw(t: QuadraticTheory, C: np.ndarray, raw: bool) -> np.ndarray:
    if not raw:
        return C
    return C * t.scale[:, None] * t.scale[None, :]


# -- spectra --------------------------------------------------------------------------------


def fluctuation_spectrum(theory, q, *, raw=False) -> np.ndarray:
    """S(q) = E[x̂ x̂ᴴ]/L = P̂(q)⁻¹ (numpy FFT convention, q_n = 2πn/L): (len q,) if b = 1 else (len q, b, b).

    ``raw=True``: in raw units ε (ε_± = r_± − r*, ε_k = k − N/2) instead of the scaled fields.
    Raises DeepEFTInputError if the quadratic form is not positive definite at some q.
    """
    t = as_quadratic_theory(theory)
    P = t.symbol(q)
    ev = np.linalg.eigvalsh(P)
    if np.any(ev[:, 0] <= 0):
        raise DeepEFTInputError(
            f"the {t.coefficients} {t.model} quadratic form is not positive definite at σ_w² = {t.sigma_w2} "
            "(no Gaussian fluctuation theory there)."
        )
    S = _maybe_raw(t, np.linalg.inv(P), raw)
    return S[:, 0, 0].real if t.b == 1 else S


spectrum = fluctuation_spectrum  # old name (it collided with deepeft.sgd's weight spectrum)


def _ring_length_for_infinite_chain(t: QuadraticTheory, d_max: int) -> int:
    xi = lattice_correlation_length(t)
    need = max(4 * (d_max + 1), int(40.0 * xi) + 64, 4096)
    return 1 << (need - 1).bit_length()


def lagged_covariance(theory, d_max, *, ring_L=None, raw=False) -> np.ndarray:
    """C(d) = E[x_{l+d} x_lᵀ], d = 0..d_max: (d_max+1,) if b = 1 else (d_max+1, b, b).

    ``ring_L=None``: the infinite (stationary) chain; else a ring of ``ring_L`` sites (exact: inverse
    FFT of S(q_n) on the ring's grid = the block-circulant inverse of the ring precision).
    """
    t = as_quadratic_theory(theory)
    d_max = v.positive_int(d_max, "d_max", minimum=0)
    Lr = _ring_length_for_infinite_chain(t, d_max) if ring_L is None else v.positive_int(ring_L, "ring_L", minimum=2)
    q = 2.0 * np.pi * np.arange(Lr) / Lr
    S = fluctuation_spectrum(t, q, raw=raw)
    S = S.reshape(Lr, t.b, t.b) if t.b == 1 else S
    C = np.fft.ifft(S, axis=0).real  # C(d) = (1/L) Σ_n S(q_n) e^{+i q_n d}
    idx = np.arange(d_max + 1) % Lr
    out = C[idx]
    return out[:, 0, 0] if t.b == 1 else out


def precision_matrix(theory, L, *, ring=True) -> np.ndarray:
    """Real-space precision (L·b, L·b), layer-major [(l, field)]: ring (block circulant, (14)/(21)) or,
    ``ring=False``, the inverse of the open-chain window covariance (:func:`covariance_matrix`)."""
    t = as_quadratic_theory(theory)
    L = v.positive_int(L, "L", minimum=3)
    if not ring:
        return np.linalg.inv(covariance_matrix(t, L, ring=False))
    b = t.b
    P = np.zeros((L, b, L, b))
    for l in range(L):
        P[l, :, l, :] += t.D0
        P[l, :, (l - 1) % L, :] += t.B
        P[(l - 1) % L, :, l, :] += t.B.T
    return P.reshape(L * b, L * b)


def covariance_matrix(theory, L, *, ring=True, raw=False) -> np.ndarray:
    """Real-space covariance (L·b, L·b), layer-major: ring = inverse of :func:`precision_matrix`;
    ``ring=False``: L consecutive layers of the stationary open chain (block Toeplitz of C(d))."""
    t = as_quadratic_theory(theory)
    L = v.positive_int(L, "L", minimum=3)
    b = t.b
    if ring:
        C = np.linalg.inv(precision_matrix(t, L, ring=True))
        if raw:
            s = np.tile(t.scale, L)
            C = C * s[:, None] * s[None, :]
        return C
    Cd = lagged_covariance(t, L - 1, raw=raw).reshape(L, b, b)
    out = np.zeros((L, b, L, b))
    for i in range(L):
        for j in range(L):
            out[i, :, j, :] = Cd[i - j] if i >= j else Cd[j - i].T
    return out.reshape(L * b, L * b)


def lattice_correlation_length(theory) -> float:
    """ξ of the lattice: C(d) ∝ e^{−d/ξ} at large d, from the zero of det P̂(q = iκ) nearest the real axis.

    Linear: ξ = −1/ln σ_w²; ReLU: ξ = −1/ln(σ_w²/2) (the VAR(1) eigenvalue a = σ_w²/2).
    """
    t = as_quadratic_theory(theory)
    if not np.any(t.B):
        return 0.0

    def det(kappa):  # P̂(iκ) = D0 + B e^{κ} + Bᵀ e^{−κ}, real
        return float(np.linalg.det(t.D0 + t.B * math.exp(kappa) + t.B.T * math.exp(-kappa)))

    from scipy import optimize

    grid = np.concatenate([np.geomspace(1e-9, 1.0, 400), np.linspace(1.0, 60.0, 600)[1:]])
    vals = np.array([det(k) for k in grid])
    sign = np.nonzero(np.sign(vals[1:]) != np.sign(vals[:-1]))[0]
    if sign.size == 0:
        return 0.0
    i = sign[0]
    kappa = optimize.brentq(det, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-14)
    return 1.0 / kappa


# -- closed forms (independent paths, used as test targets) -----------------------------------


def var_model(model, sigma_w2, sigma_b2=0.01) -> tuple[np.ndarray, np.ndarray]:
    """(A, Q) of the exact large-N VAR(1) x_l = A x_{l−1} + η, Cov η = Q, of the conditional chain.

    Linear: ε^l = σ_w² ε^{l−1} + η, Var η = σ_b²/(2Δ_w) (|z^l|² = Σ^l χ²_N). ReLU (scaled fields):
    A = a[[1,0,0],[1,0,0],[0,0,0]], a = σ_w²/2, Q = ¼[[5,−1,−1],[−1,5,1],[−1,1,1]] (Var(k) = N/4).
    Its precision blocks D₀ = Q⁻¹ + AᵀQ⁻¹A, B = −Q⁻¹A equal the verified coefficients (E1, E6).
    """
    _choice(model, "model", MODELS)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    if model == "linear":
        if sw >= 1:
            raise DeepEFTInputError(f"the linear chain is stationary only for σ_w² < 1; got {sw}.")
        sb = v.finite_scalar(sigma_b2, "sigma_b2", strict=True)
        return np.array([[sw]]), np.array([[sb / (2.0 * (1.0 - sw))]])
    if sw >= 2:
        raise DeepEFTInputError(f"the ReLU chain is stationary only for σ_w² < 2; got {sw}.")
    a = sw / 2.0
    A = a * np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 0]])
    Q = 0.25 * np.array([[5.0, -1, -1], [-1, 5, 1], [-1, 1, 1]])
    return A, Q


def linear_spectrum(sigma_w2, sigma_b2, q) -> np.ndarray:
    """(15) with E1/E2: S(q) = σ_b² / (2Δ_w [1 + σ_w⁴ − 2σ_w² cos q]), numpy convention E|fft(ε)_n|²/L."""
    A, Q = var_model("linear", sigma_w2, sigma_b2)
    a, v = A[0, 0], Q[0, 0]
    return v / (1.0 + a * a - 2.0 * a * np.cos(np.asarray(q, dtype=np.float64)))


def linear_lagged_covariance(sigma_w2, sigma_b2, d) -> np.ndarray:
    """Infinite-chain C(d) = σ_b² σ_w^{2|d|} / (2Δ_w (1 − σ_w⁴)) (AR(1) of (14))."""
    A, Q = var_model("linear", sigma_w2, sigma_b2)
    a, v = A[0, 0], Q[0, 0]
    return v * a ** np.abs(np.asarray(d)) / (1.0 - a * a)


def relu_covariance(sigma_w2, d=0) -> np.ndarray:
    """Closed-form ReLU covariance of x = (ε̃_+, ε̃_−, ε̃_k) (VAR(1), verified coefficients).

    d = 0: [[V, a²V − ¼, −¼], [a²V − ¼, V, ¼], [−¼, ¼, ¼]], V = (5/4)/(1 − a²), a = σ_w²/2;
    d ≥ 1: C(d) = E[x_{l+d} x_lᵀ] = a^d [[V, C, −¼], [V, C, −¼], [0, 0, 0]], C = a²V − ¼.
    """
    A, _ = var_model("relu", sigma_w2)
    a = A[0, 0]
    V_ = 1.25 / (1.0 - a * a)
    C = a * a * V_ - 0.25
    d = v.positive_int(d, "d", minimum=0)
    if d == 0:
        return np.array([[V_, C, -0.25], [C, V_, 0.25], [-0.25, 0.25, 0.25]])
    return a**d * np.array([[V_, C, -0.25], [V_, C, -0.25], [0.0, 0.0, 0.0]])


# -- auto-Laplace: autodiff Hessian of a reduced energy at its saddle -------------------------


def hessian_blocks(H, b) -> tuple[np.ndarray, np.ndarray]:
    """(D0, B) read off a translation-invariant ring Hessian H (L·b, L·b): D0 = H[0,0], B = H[1,0] blocks."""
    H = np.asarray(H, dtype=np.float64)
    return H[:b, :b].copy(), H[b : 2 * b, :b].copy()


def _relu_flat(x, sw, sb, N):
    x = x.reshape(-1, 3)
    return _energy.relu_fields_energy_jax(x[:, 0], x[:, 1], x[:, 2], sw, sb, N)


_hessians = {
    "linear": jax.jit(jax.hessian(_energy.linear_radial_energy_jax), static_argnames="N"),
    "relu": jax.jit(jax.hessian(_relu_flat), static_argnames="N"),
}


def auto_laplace(model, sigma_w2, sigma_b2=0.01, N=200, *, L_ring=8, energy: Callable | None = None):
    """Numerical Laplace approximation: ``jax.hessian`` of the ring energy at its uniform saddle.

    Default energies: linear (12) in r^l at r* (13); ReLU (85) in (r_+^l, r_−^l, k^l) at (20), converted
    to the scaled fields of (21). Returns (theory, H): a :class:`QuadraticTheory` whose D0, B are read off the
    Hessian (an independent check of the printed/verified coefficients) and the full Hessian (scaled units).
    ``energy``: optionally a custom reduced energy f(x) of a flat vector x (L_ring·b,) (then ``model`` only
    fixes b and the saddle).
    """
    _choice(model, "model", MODELS)
    L_ring = v.positive_int(L_ring, "L_ring", minimum=3)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    N = v.positive_int(N, "N")
    ref = quadratic_theory(model, sw, sigma_b2, N)  # validates the domain; supplies scale
    sb = float(sigma_b2)
    if model == "linear":
        x0 = np.full(L_ring, saddle_linear(sw, sb, N))
    else:
        s = saddle_relu(sw, sb, N)
        x0 = np.tile([s.r_plus, s.r_minus, s.k], L_ring)
    with x64():
        if energy is not None:
            H = np.asarray(jax.hessian(energy)(jnp.asarray(x0)))
        else:
            H = np.asarray(_hessians[model](jnp.asarray(x0), jnp.float64(sw), jnp.float64(sb), N=N))
    scale = np.tile(ref.scale, L_ring)
    H = H * scale[:, None] * scale[None, :]  # raw → scaled fields: x_raw = scale · x
    D0, B = hessian_blocks(H, ref.b)
    th = QuadraticTheory(model, "auto-laplace", D0, B, ref.scale, ref.fields, sw, sb, N)
    return th, H


def expected_periodogram(theory, W, *, raw=False) -> np.ndarray:
    """Exact E[x̂_n x̂_nᴴ]/W of a window of W consecutive layers of the stationary open chain.

    = Σ_{|d|<W} (1 − |d|/W) C(d) e^{−i q_n d}, q_n = 2πn/W (the Fejér-smoothed S(q)): what the per-sample FFT
    of the analysis window (App. 8.3) estimates; → S(q_n) when W ≫ ξ. Shapes as :func:`fluctuation_spectrum`.
    """
    t = as_quadratic_theory(theory)
    W = v.positive_int(W, "W", minimum=2)
    C = lagged_covariance(t, W - 1, raw=raw).reshape(W, t.b, t.b)
    w = (1.0 - np.arange(W) / W)[:, None, None]
    # d ≥ 0 terms give C(d) e^{−iqd}; d < 0 terms give C(d)ᵀ... E[x_{l+d} x_lᵀ] for d<0 is C(|d|)ᵀ
    pos = np.fft.fft(w * C, axis=0)
    neg = np.conj(np.fft.fft(w * np.swapaxes(C, 1, 2), axis=0))
    S = pos + neg - C[0][None]  # d = 0 counted once
    return S[:, 0, 0].real if t.b == 1 else S
