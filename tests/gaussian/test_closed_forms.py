"""Closed-form Gaussian expectations vs mpmath references and vs the engine's quadrature."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

from deepeft.activations import activation
from deepeft.gaussian.engine import Factor, expect

F = Factor
mp.mp.dps = 30


def _cond(K, z1):
    """Conditional mean and variance of z2 given z1 under the 2×2 covariance K."""
    K11, K12, K22 = (mp.mpf(float(x)) for x in (K[0, 0], K[0, 1], K[1, 1]))
    return K12 / K11 * z1, K22 - K12 * K12 / K11


def _mp_pair(f1, inner, K, kinks=()):
    """E[f1(z1) · E[g(z2) | z1]] by 1-D mpmath quadrature with an exact inner expectation."""
    s = mp.sqrt(mp.mpf(float(K[0, 0])))

    def integrand(x):
        z1 = s * x
        mu, var = _cond(K, z1)
        return f1(z1) * inner(mu, var) * mp.npdf(x)

    pts = sorted({-mp.inf, mp.inf, *[mp.mpf(c) / s for c in kinks], mp.mpf(0)})
    return float(mp.quad(integrand, pts))


# exact inner expectations E[g(N(μ, v))]
def _relu_in(mu, v):
    sd = mp.sqrt(v)
    return mu * mp.ncdf(mu / sd) + sd * mp.npdf(mu / sd)


def _step_in(mu, v):
    return mp.ncdf(mu / mp.sqrt(v))


def _erf_in(mu, v):  # E[erf(N(μ, v))] = erf(μ/√(1 + 2v))
    return mp.erf(mu / mp.sqrt(1 + 2 * v))


def _derf_in(mu, v):  # E[(2/√π) e^{−z²}] = (2/√π) e^{−μ²/(1+2v)}/√(1+2v)
    return 2 / mp.sqrt(mp.pi) * mp.exp(-(mu**2) / (1 + 2 * v)) / mp.sqrt(1 + 2 * v)


def _sin_in(mu, v):
    return mp.sin(mu) * mp.exp(-v / 2)


def _cos_in(mu, v):
    return mp.cos(mu) * mp.exp(-v / 2)


CASES = [
    # (activation, factors, f1 (mp), inner E[g|z1], kinks)
    ("relu", (F((0,)), F((0,))), lambda z: max(z, 0), _relu_in, (0.0,)),
    ("relu", (F((1,)), F((1,))), lambda z: 1 if z >= 0 else 0, _step_in, (0.0,)),
    ("relu", (F((0,)), F((1,))), lambda z: max(z, 0), _step_in, (0.0,)),
    ("perceptron", (F((0,)), F((0,))), lambda z: 1 if z >= 0 else 0, _step_in, (0.0,)),
    ("erf", (F((0,)), F((0,))), mp.erf, _erf_in, ()),
    ("erf", (F((1,)), F((1,))), lambda z: 2 / mp.sqrt(mp.pi) * mp.exp(-z * z), _derf_in, ()),
    ("sin", (F((0,)), F((0,))), mp.sin, _sin_in, ()),
    ("sin", (F((1,)), F((1,))), mp.cos, _cos_in, ()),
    ("sin", (F((0,), 1), F((1,))), lambda z: z * mp.sin(z), _cos_in, ()),
]

KS = [
    np.array([[1.0, 0.3], [0.3, 0.5]]),
    np.array([[2.5, -1.9], [-1.9, 1.6]]),
    np.array([[0.04, 0.0399], [0.0399, 0.04]]),  # nearly parallel, small variance
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'.'.join(map(str, c[1]))}")
@pytest.mark.parametrize("K", KS, ids=["generic", "anti-large", "near-parallel"])
def test_closed_form_vs_mpmath(case, K):
    name, fs, f1, inner, kinks = case
    ref = _mp_pair(f1, inner, K, kinks)
    got = float(expect(name, fs, K, method="closed"))
    scale = max(abs(ref), 1e-3 * math.sqrt(K[0, 0] * K[1, 1]))
    assert abs(got - ref) <= 1e-12 * scale + 1e-15, (got, ref)


def test_leaky_relu_finite_angle_formula():
    """(5.159) and (5.161): ⟨σσ⟩ and ⟨σ'σ'⟩ for scale-invariant σ at finite angle."""
    a = 0.2
    Kd, psi = 1.7, 1.1
    K = Kd * np.array([[1.0, math.cos(psi)], [math.cos(psi), 1.0]])
    A2 = (1 + a * a) / 2
    ss = Kd / (2 * math.pi) * (1 - a) ** 2 * (math.sin(psi) - psi * math.cos(psi)) + A2 * Kd * math.cos(psi)
    dd = A2 - psi / (2 * math.pi) * (1 - a) ** 2
    act = activation("leaky_relu", slope=a)
    assert float(expect(act, (F(), F()), K, method="closed")) == pytest.approx(ss, rel=1e-13)
    assert float(expect(act, (F((1,)), F((1,))), K, method="closed")) == pytest.approx(dd, rel=1e-13)


@pytest.mark.parametrize("q", [0, 1, 2, 3, 5])
def test_relu_one_point_half_moments(q):
    K = 1.7
    ref = float(mp.quad(lambda x: (mp.sqrt(K) * x) ** (q + 1) * mp.npdf(x), [0, mp.inf]))
    got = float(expect("relu", F((0,), q), np.array([[K]])))
    assert got == pytest.approx(ref, rel=1e-13)


def test_wick_monomials_match_isserlis():
    """z^3 monomial activation: ⟨σ(z1)σ(z2)⟩ = 9 K11 K22 K12 + 6 K12³ (Isserlis)."""
    K = np.array([[1.3, 0.4], [0.4, 0.7]])
    ref = 9 * K[0, 0] * K[1, 1] * K[0, 1] + 6 * K[0, 1] ** 3
    got = float(expect(activation("monomial", power=3), (F(), F()), K))
    assert got == pytest.approx(ref, rel=1e-14)


def test_erf_three_point_gaussian_factors_vs_quadrature():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 3))
    K = A @ A.T / 3
    fs = (F((1,), 1), F((2,)), F((1, 1)))
    c = float(expect("erf", fs, K, method="closed"))
    q, e = expect("erf", fs, K, method="quadrature", return_error=True)
    assert abs(c - float(q)) <= 1e-12 * max(abs(c), 1e-3)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "perceptron", "erf", "sin", "linear"])
@pytest.mark.parametrize(
    "K",
    [
        np.array([[1.0, 1.0], [1.0, 1.0]]),  # coincident (rank 1)
        np.array([[1.0, -2.0], [-2.0, 4.0]]),  # antipodal, different norms
        np.array([[0.0, 0.0], [0.0, 0.8]]),  # zero row
        np.zeros((2, 2)),  # K = 0
    ],
    ids=["parallel", "antipodal", "zero-row", "zero"],
)
def test_closed_forms_on_degenerate_K_match_quadrature(name, K):
    for fs in [(F(), F()), (F((1,)), F((1,))), (F((0,), 1), F((1,)))]:
        c = float(expect(name, fs, K))
        q = float(expect(name, fs, K, method="quadrature"))
        assert abs(c - q) <= 1e-12 * max(1.0, abs(c)), (fs, c, q)
