"""Observables of the SGD phase diagram (Park, Lucini & Aarts 2025, §2.3, §3.2, §4) and their random-matrix baselines.

Per-model quantities (JAX, used inside the trainer's compiled recording step; P = points axis):

* :func:`feature_correlation` — G(t, 0) = (1/|D|) Σ_α (1/n_{L−1}) Σ_j φ_jα(t) φ_jα(0)   (3.4)
* :func:`external_field`      — h_jα = Σ_i y_iα W^{(L)}_ij                               (2.8), (2.25)
* :func:`alignment`           — h·φ / (‖h‖ ‖φ‖), sums over α and j                      (3.5)–(3.6)
* :func:`weight_spectrum`          — eigenvalues x_i of X = W Wᵀ, ascending                   (4.1)
* :func:`gradient_norm`       — ‖∂ℒ/∂θ_trainable‖_F on a data set                          (3.3)

Theory (NumPy, float64):

* :func:`marchenko_pastur` — law of the eigenvalues of X at initialisation               (4.2)
* :func:`feature_potential`, :func:`feature_density`, :func:`feature_extrema` — the tanh
  soft-spin distribution p(φ) ∝ exp[−V(φ)] and its single→double-well transition at σ_z² = ½
  (2.21)–(2.22)
* :func:`jamming_inv_sigma_W` — the jamming boundary 1/σ_W where σ_z² = σ_W² q = ½ (§2.3, Fig. 9)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..gaussian.engine import expect1d
from .teacher_student import TeacherStudent, losses

__all__ = [
    "feature_correlation",
    "external_field",
    "alignment",
    "weight_spectrum",
    "gradient_norm",
    "MarchenkoPastur",
    "marchenko_pastur",
    "feature_potential",
    "feature_density",
    "feature_extrema",
    "feature_scale",
    "jamming_inv_sigma_W",
]


# -- per-model observables (JAX) -------------------------------------------------------------


def feature_correlation(phi_t, phi_0):
    """G(t, 0) (3.4) per point: φ arrays (N, P, n_{L−1}) → (P,)."""
    return jnp.mean(phi_t * phi_0, axis=(0, 2))


def external_field(setup: TeacherStudent, params, frozen, y):
    """h_jα = Σ_i y_iα W^{(L)}_ij (2.8) with the student's last layer; y (N, n_L) → (N, P, n_{L−1}) or (N, n_{L−1})."""
    last = params[-1]
    if last is not None:  # trainable output layer, internal layout (n_{L−1}, P, n_L)
        return jnp.einsum("ni,kpi->npk", y, last["W"])
    return y @ frozen[-1]["W"]


def alignment(h, phi):
    """h·φ/(‖h‖‖φ‖) (3.5)–(3.6), sums over the data index α and the node index j; → (P,)."""
    h = jnp.broadcast_to(h if h.ndim == 3 else h[:, None, :], phi.shape)
    dot = jnp.sum(h * phi, axis=(0, 2))
    return dot / jnp.sqrt(jnp.sum(h * h, axis=(0, 2)) * jnp.sum(phi * phi, axis=(0, 2)))


def gram(Wt):
    """X = W Wᵀ (4.1) per point for internal-layout weights (n_in, P, n_out) → (P, n_out, n_out)."""
    return jnp.einsum("kpi,kpj->pij", Wt, Wt)


def weight_spectrum(Wt):
    """Eigenvalues of X = W Wᵀ (4.1) for internal-layout weights (n_in, P, n_out) → (P, n_out), ascending."""
    return jnp.linalg.eigvalsh(gram(Wt))


spectrum = weight_spectrum  # old name (it collided with deepeft.lattice's fluctuation spectrum)


def gradient_norm(setup: TeacherStudent, params, frozen, a, y):
    """(‖∂ℒ/∂θ‖_F per point (3.3), ℒ per point (2.6)) over the trainable parameters, on data (a, y)."""

    def total(p):
        per = losses(setup, p, frozen, a, y)
        return per.sum(), per

    g, per = jax.grad(total, has_aux=True)(params)
    sq: jax.Array | float = 0.0
    for layer in g:
        if layer is None:
            continue
        sq = sq + jnp.sum(layer["W"] ** 2, axis=(0, 2))
        if layer["b"] is not None:
            sq = sq + jnp.sum(layer["b"] ** 2, axis=1)
    return jnp.sqrt(sq), per


# -- Marchenko–Pastur (4.2) ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MarchenkoPastur:
    """Law of the eigenvalues of X = W Wᵀ, W (n_out × n_in) iid N(0, σ_W²/n_in) (4.2).

    r = n_out/n_in; x± = σ_W²(1 ± √r)²; for r > 1 a fraction 1 − 1/r of eigenvalues sits at 0 (``atom``).
    """

    sigma_W2: float
    r: float

    @property
    def x_minus(self) -> float:
        return self.sigma_W2 * (1.0 - math.sqrt(self.r)) ** 2

    @property
    def x_plus(self) -> float:
        return self.sigma_W2 * (1.0 + math.sqrt(self.r)) ** 2

    @property
    def atom(self) -> float:
        return max(0.0, 1.0 - 1.0 / self.r)

    def pdf(self, x):
        """Continuous part √((x₊ − x)(x − x₋))/(2π σ_W² r x) on (x₋, x₊) (4.2)."""
        x = np.asarray(x, dtype=np.float64)
        inside = (x > self.x_minus) & (x < self.x_plus)
        xs = np.where(inside, x, 0.5 * (self.x_minus + self.x_plus))
        val = np.sqrt((self.x_plus - xs) * (xs - self.x_minus)) / (2 * np.pi * self.sigma_W2 * self.r * xs)
        return np.where(inside, val, 0.0)

    def cdf(self, x, *, nodes: int = 4097):
        """P(x_i ≤ x), by the substitution x = x₋ + (x₊ − x₋)(1 − cos θ)/2 (smooth integrand in θ)."""
        x = np.asarray(x, dtype=np.float64)
        a, b = self.x_minus, self.x_plus
        theta = np.linspace(0.0, np.pi, nodes)
        xt = a + (b - a) * (1 - np.cos(theta)) / 2
        f = ((b - a) ** 2 / 4) * np.sin(theta) ** 2 / (2 * np.pi * self.sigma_W2 * self.r * np.maximum(xt, 1e-300))
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(theta))])
        th = np.arccos(np.clip(1 - 2 * (x - a) / (b - a), -1.0, 1.0))
        cont = np.interp(th, theta, cum)
        return np.where(x < 0, 0.0, self.atom + cont)


def marchenko_pastur(sigma_W2: float, n_out: int, n_in: int) -> MarchenkoPastur:
    """Marchenko–Pastur law (4.2) of X = W Wᵀ at initialisation (2.11); r = n_out/n_in."""
    s = v.finite_scalar(sigma_W2, "sigma_W2", strict=True)
    r = v.positive_int(n_out, "n_out") / v.positive_int(n_in, "n_in")
    return MarchenkoPastur(s, r)


# -- soft-spin feature distribution (2.21)–(2.22), tanh only -------------------------------------


def _sigma_z2(sigma_z2) -> np.ndarray:
    s = np.asarray(sigma_z2, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise DeepEFTInputError(f"sigma_z2 (the pre-activation variance σ_z²) must be finite and > 0, got {sigma_z2!r}.")
    return s


def feature_potential(phi, sigma_z2):
    """V(φ) = (arctanh φ)²/(2σ_z²) + ln(1 − φ²) for φ = tanh z, z ~ N(0, σ_z²) (2.21)."""
    s = _sigma_z2(sigma_z2)
    phi = np.asarray(phi, dtype=np.float64)
    return np.arctanh(phi) ** 2 / (2 * s) + np.log1p(-(phi**2))


def feature_density(phi, sigma_z2):
    """Normalised p(φ) = e^{−V(φ)}/√(2πσ_z²) (2.21): the law of tanh(z), z ~ N(0, σ_z²), on (−1, 1)."""
    s = _sigma_z2(sigma_z2)
    return np.exp(-feature_potential(phi, s)) / np.sqrt(2 * np.pi * s)


def feature_extrema(sigma_z2, *, iterations: int = 200):
    """Positive maximum φ* of p(φ): the root of φ = tanh(2σ_z²φ) (0 for σ_z² ≤ σ_c² = ½) (§2.3)."""
    s = _sigma_z2(sigma_z2)
    ordered = s > 0.5
    ss = np.where(ordered, s, 1.0)
    phi = np.ones_like(ss)
    for _ in range(iterations):  # Newton on g(φ) = φ − tanh(2sφ) from φ = 1 (g convex on (0, 1))
        t = np.tanh(2 * ss * phi)
        phi = phi - (phi - t) / (1 - 2 * ss * (1 - t**2))
    return np.where(ordered, phi, 0.0)


def feature_scale(setup: TeacherStudent, *, nodes: int = 64) -> float:
    """q = E[(1/n) Σ_k a_k²] of the input a of the spectral layer, so that σ_z² = σ_W² q (2.13).

    Layer 1 exactly at finite n_0: given the teacher's row w_i, z_i ~ N(b_i, input_var |w_i|²), so
    z_i is Gaussian with variance K = C_b + (C_W input_var/n_0) χ²_{n_0} (Gauss–Laguerre over the
    χ² law). Deeper frozen layers: the infinite-width kernel recursion K^{(ℓ+1)} = C_b + C_W ⟨σ²⟩_{K^{(ℓ)}}
    (book (4.118), one input) applied to the mean. ⟨·⟩ by :func:`expect1d`.
    """
    from scipy.special import gammaln, roots_genlaguerre

    ell = setup.tracked_layer
    if ell == 1:
        return setup.input_var
    if any(t < ell for t in setup.trainable):
        raise DeepEFTInputError(
            f"feature_scale needs the layers below the spectral layer {ell} to be frozen (teacher copies); "
            f"trainable layers are {setup.trainable}."
        )
    act = setup.teacher.activation
    C_b = setup.teacher.C_b if setup.bias else (0.0,) * setup.L
    C_W, n0 = setup.teacher.C_W, setup.n[0]
    alpha = n0 / 2 - 1  # χ²_{n0}/2 ~ Gamma(n0/2): ∫ t^α e^{−t} f(t) dt / Γ(n0/2)
    t, w = roots_genlaguerre(nodes, alpha)
    w = w / np.exp(gammaln(n0 / 2))
    K1 = C_b[0] + C_W[0] * setup.input_var / n0 * 2 * t

    def sq(K):
        return expect1d(lambda z: act.numpy(z) ** 2, K, act.kinks)

    q = float(np.sum(w * sq(K1)))
    for j in range(1, ell - 1):
        q = float(sq(np.asarray(C_b[j] + C_W[j] * q)))
    return q


def jamming_inv_sigma_W(q: float = 1.0) -> float:
    """1/σ_W at which σ_z² = σ_W² q reaches σ_c² = ½ (§2.3): √(2q). q = 1 is the bound (2.18)."""
    qq = v.finite_scalar(q, "q", strict=True)
    return math.sqrt(2.0 * qq)
