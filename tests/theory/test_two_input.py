"""Two inputs (book §5.1, §5.5): γ basis, δ expansion, finite-angle recursion.

Independent path: two-dimensional Gaussian quadrature written here (a tensor rule after a Cholesky
factorisation for smooth σ; nested 1-D expect1d split at the moving kink for piecewise-linear σ).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepeft as de
from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.gauss1d import expect1d, gauss1d_nodes
from deepeft.theory.single_input import helper_functions
from deepeft.theory.two_input import (
    GAMMA,
    bootstrapped_recursion,
    bootstrapped_two_point,
    finite_angle_recursion,
    from_gamma,
    gamma_components,
    kink_rho,
    scale_invariant_dsigma_pm,
    scale_invariant_sigma_pm,
)

X1, W1 = gauss1d_nodes(np.array(1.0), (), panels=24)


def _smooth_pair_matrix(f, K):
    """⟨f(z_α) f(z_β)⟩ for a 2×2 covariance K, tensor Gauss–Legendre rule on z = L·(x₁, x₂)."""
    L = np.linalg.cholesky(K)
    x1, x2 = np.meshgrid(X1, X1, indexing="ij")
    w = np.outer(W1, W1)
    zp = L[0, 0] * x1
    zm = L[1, 0] * x1 + L[1, 1] * x2
    fp, fm = f(zp), f(zm)
    return np.array([[np.sum(w * fp * fp), np.sum(w * fp * fm)], [np.sum(w * fp * fm), np.sum(w * fm * fm)]])


def _kinked_pair(f, g, Kpp, Kmm, Kpm):
    """⟨f(z₊) g(z₋)⟩ with f, g kinked at 0: outer rule split at u = 0, inner split at the kink v = −cu/s."""
    c = Kpm / math.sqrt(Kpp * Kmm)
    s = math.sqrt(1 - c * c)
    u, wu = gauss1d_nodes(np.array(1.0), (0.0,))
    inner = np.array([expect1d(lambda v, ui=ui: g(math.sqrt(Kmm) * (c * ui + s * v)), 1.0, kinks=(-c * ui / s,)) for ui in u])
    return float(np.sum(wu * f(math.sqrt(Kpp) * u) * inner))


def _leaky(a):
    return (lambda z: np.where(z >= 0, z, a * z)), (lambda z: np.where(z >= 0, 1.0, a))


def test_gamma_basis_5_15_to_5_20():
    K = np.array([[1.3, 0.4], [0.4, 0.9]])
    c = gamma_components(K)
    np.testing.assert_allclose(c, [(1.3 + 0.9 + 0.8) / 4, (1.3 - 0.9) / 2, (1.3 + 0.9 - 0.8) / 4], rtol=1e-15)
    np.testing.assert_allclose(from_gamma(c), K, rtol=1e-15)
    gram = np.einsum("aij,bji->ab", GAMMA, GAMMA)
    np.testing.assert_allclose(gram, np.diag([4.0, 2.0, 4.0]))  # orthogonal under (5.20)
    batch = np.stack([K, 2 * K, K.T])
    np.testing.assert_allclose(from_gamma(gamma_components(batch)), batch, rtol=1e-15)
    with pytest.raises(DeepEFTInputError, match="2×2"):
        gamma_components(np.eye(3))
    with pytest.raises(DeepEFTInputError, match=r"\(…, 3\)"):
        from_gamma([1.0, 2.0])


def test_delta_expansion_5_44_against_2d_quadrature():
    """[1] is exact to O(δ³) and [2] to O(δ⁴): errors shrink by ~8 and ~16 when δ halves."""
    K00, errs = 0.7, []
    for eps in (0.2, 0.1):
        d1, d2 = 0.1 * eps, 0.05 * eps**2
        K = from_gamma([K00, d1, d2])
        exact = gamma_components(_smooth_pair_matrix(np.tanh, K))
        approx = bootstrapped_two_point("tanh", K00, d1, d2)
        errs.append(np.abs(exact - approx)[1:])
        assert abs(exact[0] - approx[0]) < 5 * eps**2  # [0]: O(δ²) corrections not in (5.44)
        assert np.all(np.abs(exact - approx)[1:] < [eps**3, eps**4])
    r1, r2 = errs[0] / errs[1]
    print("error ratios when δ halves:", r1, r2)
    assert 6 < r1 < 10 and 12 < r2 < 20


def test_bootstrapped_recursion_5_46_to_5_48_against_exact_two_layer_iteration():
    eps, C_b, C_W = 0.05, 0.1, 1.3
    K00, d1, d2 = 0.9, 0.2 * eps, 0.3 * eps**2
    b = bootstrapped_recursion("tanh", K00, d1, d2, 3, C_b=C_b, C_W=C_W)
    K = from_gamma([K00, d1, d2])
    for ell in (2, 3):
        K = C_b + C_W * _smooth_pair_matrix(np.tanh, K)  # (5.1), exact
        comp = gamma_components(K)
        want = np.array([b.K00[ell - 1], b.dK1[ell - 1], b.ddK2[ell - 1]])
        rel = np.abs(comp - want) / np.abs(want)
        print(f"layer {ell}: relative deviations {rel}")
        assert np.all(rel < 5 * eps**2)
    np.testing.assert_allclose(b.kernel[0], from_gamma([K00, d1, d2]))


def test_bootstrapped_recursion_tanh_asymptotics():
    """At criticality δK_[1] ~ ℓ^{−2} (5.97), δδK_[2] ~ ℓ^{−b₁/a₁} = ℓ^{−1} (5.99) with δK_[1] = 0."""
    b = bootstrapped_recursion("tanh", 1.0, 0.0, 1e-3, 20_000)
    slope = np.log(b.ddK2[19_999] / b.ddK2[1_999]) / np.log(10.0)
    assert abs(slope + 1.0) < 5e-3
    b = bootstrapped_recursion("tanh", 1.0, 1e-2, 0.0, 20_000)
    slope = np.log(b.dK1[19_999] / b.dK1[1_999]) / np.log(10.0)
    assert abs(slope + 2.0) < 5e-3
    hf = helper_functions("tanh", 1.0)  # first step of (5.48): δδK_[2] sourced by h (δK_[1])² (h < 0 for tanh)
    assert abs(b.ddK2[1] - (hf.chi_perp * 0.0 + hf.h * 1e-4)) < 1e-18


@pytest.mark.parametrize("a", [0.0, 0.2, -0.5])
@pytest.mark.parametrize("psi", [0.3, 1.5, 2.8])
def test_scale_invariant_two_point_5_159_and_5_161_against_quadrature(a, psi):
    f, df = _leaky(a)
    Kd = 1.7
    got = scale_invariant_sigma_pm(Kd, psi, 1.0, a)
    want = _kinked_pair(f, f, Kd, Kd, Kd * math.cos(psi))
    assert abs(got - want) < 1e-13 * Kd
    got = scale_invariant_dsigma_pm(psi, 1.0, a)
    want = _kinked_pair(df, df, Kd, Kd, Kd * math.cos(psi))
    assert abs(got - want) < 1e-13


def test_relu_two_point_5_158_and_rho_5_163():
    psi = np.linspace(0.0, math.pi, 7)
    relu = (np.sin(psi) + (math.pi - psi) * np.cos(psi)) / (2 * math.pi)
    np.testing.assert_allclose(scale_invariant_sigma_pm(1.0, psi, 1.0, 0.0), relu, atol=1e-16)
    assert kink_rho(1.0, 0.0) == pytest.approx(1 / math.pi) and kink_rho(2.0, 2.0) == 0.0
    # small-angle series branch joins the direct formula continuously
    a, b = scale_invariant_sigma_pm(1.0, [0.0499999, 0.0500001], 1.0, 0.0)
    assert abs(a - b) < 1e-7


def test_relu_finite_angle_book_numbers_5_166():
    fa = finite_angle_recursion("relu", (1.0, np.array([0.1, 2.0])), 10_000)
    ell = fa.layers
    lpsi = ell[:, None] * fa.psi / (3 * math.pi)
    print("ℓψ/(3π) at ℓ = 100:", lpsi[99], "at 1e4:", lpsi[-1])
    np.testing.assert_allclose(lpsi[99], [0.51, 0.91], atol=5e-3)
    assert lpsi[-1, 1] >= 0.998 and lpsi[-1, 0] > 0.99
    np.testing.assert_allclose(fa.K_d, 1.0, rtol=1e-15)  # (5.147) at criticality
    np.testing.assert_allclose(fa.psi_asymptotic()[-1], 3 * math.pi / 1e4)
    K2 = fa.gamma[-1, :, 2]
    np.testing.assert_allclose(K2, 9 * math.pi**2 / 4 / 1e8, rtol=0.025)  # (5.168): 22.207 K_d*/ℓ²


def test_linear_preserves_the_angle_and_noncritical_unequal_norms_match_quadrature():
    fa = finite_angle_recursion("linear", (2.0, 1.1), 50)
    np.testing.assert_allclose(fa.psi, 1.1, rtol=1e-12)
    a = 0.3
    f, _ = _leaky(a)
    C_b, C_W = 0.2, 1.4
    K = np.array([[1.5, 0.6], [0.6, 0.7]])
    fa = finite_angle_recursion(de.activation("leaky_relu", slope=a), K, 3, C_b=C_b, C_W=C_W)
    for ell in (2, 3):
        Kpm = C_b + C_W * _kinked_pair(f, f, K[0, 0], K[1, 1], K[0, 1])
        Kpp, Kmm = (C_b + C_W * expect1d(lambda z: f(z) ** 2, K[i, i], kinks=(0.0,)) for i in (0, 1))
        K = np.array([[Kpp, Kpm], [Kpm, Kmm]])
        np.testing.assert_allclose(fa.kernel[ell - 1], K, rtol=1e-12)


def test_two_input_validation():
    with pytest.raises(DeepEFTInputError, match="scale-invariant"):
        finite_angle_recursion("tanh", (1.0, 0.5), 3)
    with pytest.raises(DeepEFTInputError, match="finite_angle_recursion"):
        bootstrapped_recursion("relu", 1.0, 0.0, 0.1, 3)
    with pytest.raises(DeepEFTInputError, match=r"\[0, π\]"):
        finite_angle_recursion("relu", (1.0, 4.0), 3)
    with pytest.raises(DeepEFTInputError, match="positive semi-definite"):
        finite_angle_recursion("relu", np.array([[1.0, 2.0], [2.0, 1.0]]), 3)
    with pytest.raises(DeepEFTInputError, match="depth"):
        bootstrapped_recursion("tanh", 1.0, 0.0, 0.1, 0)
