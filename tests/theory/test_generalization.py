"""Generalization at infinite width (book §10.3): bias–variance, robustness, δδΘ recursion, finite angle, *-polation."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from deepeft.theory import generalization as g
from deepeft.theory.two_input import gamma_components

RNG = np.random.default_rng(0)
N0 = 4
X0 = RNG.standard_normal(N0)
DX = RNG.standard_normal(N0)
DX -= (DX @ X0) / (X0 @ X0) * X0  # x₀·δx = 0: equal norms


def test_bias_variance_against_monte_carlo():
    """(10.52): E[½Σ(z − y)²] = bias + variance; Monte Carlo over the Gaussian ensemble, z-score."""
    rng = np.random.default_rng(1)
    X, Y, XB = rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), rng.standard_normal((4, 3))
    YB = rng.standard_normal((4, 2))
    net = de.MLP(3, [8] * 2, 2, "tanh", C_b=0.1)
    p = de.gd_prediction(net, X, Y, XB, 2.0)
    bv = g.bias_variance(p.mean, p.cov, YB)
    C = np.linalg.cholesky(p.cov + 1e-14 * np.eye(4))
    z = p.mean[None] + np.einsum("ab,sbo->sao", C, rng.standard_normal((40_000, 4, 2)))
    loss = 0.5 * np.sum((z - YB) ** 2, axis=(1, 2))
    zscore = (loss.mean() - bv.total) / (loss.std() / np.sqrt(loss.size))
    assert abs(zscore) < 4, zscore


def test_one_point_prediction_is_the_kernel_prediction():
    net = de.MLP(N0, [8] * 3, 1, "tanh", C_b=0.1)
    X = np.stack([X0, X0 + 0.3 * DX])
    K, T = de.kernel_and_ntk(net, X)
    m, var = g.one_point_prediction(K[-1], T[-1], 0.8)
    p = de.gd_prediction(net, X[:1], [[0.8]], X[1:], np.inf)
    assert m[0] == pytest.approx(p.mean[0, 0], rel=1e-12)
    assert var == pytest.approx(p.cov[0, 0], rel=1e-10)
    assert g.robustness(T[-1]) == pytest.approx(m[0] / 0.8 - 1, rel=1e-12)  # (10.56)–(10.57)


def test_delta_recursion_matches_exact_two_input_kernels():
    """(10.62), (10.63), (10.70) vs the multi-input engine: relative error falls like δ²."""
    net = de.MLP(N0, [10] * 5, 1, "tanh", C_b=0.05, C_W=1.2, lambda_b=0.5, lambda_W=2.0)
    errs = []
    for eps in (1e-1, 1e-2):
        d = g.delta_ntk_recursion(net, X0, eps * DX)
        K, T = de.kernel_and_ntk(net, np.stack([X0 + eps * DX / 2, X0 - eps * DX / 2]))
        r_exact = g.robustness(T[-1])
        errs.append(abs(d.robustness[-1] / r_exact - 1))
        assert d.ddK2 == pytest.approx(gamma_components(K)[:, 2], rel=3 * eps**2)
    assert errs[1] < errs[0] / 50 and errs[1] < 1e-4


@pytest.mark.parametrize("L, tol", [(50, 0.01), (200, 0.008)])
def test_tanh_equivalence_rate_robustness_is_depth_independent(L, tol):
    """Digest: tanh with rates (9.96) → −2δ²λ̃_W/(λ̃_b + λ̃_W/2), δ² = lim ℓ δδK_[2] (slow 1/ℓ convergence)."""
    net = de.learning_rates(de.MLP(N0, [10] * (L - 1), 1, "tanh", C_b=0.0, C_W=1.0), "equivalence",
                            lambda_b_tilde=1.0, lambda_W_tilde=2.0).apply()
    assert net.lambda_b == pytest.approx(1.0 / np.arange(1, L + 1)) and net.lambda_W == pytest.approx([2.0] * L)  # (9.96)
    d = g.delta_ntk_recursion(net, X0, 0.1 * DX)
    asym = g.k0_robustness_asymptotic(L * d.ddK2[-1], 1.0, 2.0, L)
    assert asym == pytest.approx(-2 * L * d.ddK2[-1] * 2.0 / (1.0 + 1.0), rel=1e-14)
    assert d.robustness[-1] == pytest.approx(asym, rel=tol)


def test_relu_finite_angle_recursion_equals_engine_and_limits():
    """(10.88)–(10.89) equal the exact multi-input Θ; at depth cos ζ → 1/4 (10.93), Cov → (9/16)K_d* (10.95),
    independent of λ̃ and of the initial angle."""
    xp = X0.copy()
    xm = RNG.standard_normal(N0)
    xm *= np.linalg.norm(xp) / np.linalg.norm(xm)
    L = 20
    net = de.MLP(N0, [10] * (L - 1), 1, "relu", C_W=2.0, lambda_b=0.3 / L, lambda_W=1.0 / L)
    fa = g.finite_angle_ntk(net, xp, xm)
    K, T = de.kernel_and_ntk(net, np.stack([xp, xm]))
    assert fa.robustness[-1] == pytest.approx(g.robustness(T[-1]), rel=1e-12)
    assert fa.variance[-1] == pytest.approx(g.one_point_prediction(K[-1], T[-1], 1.0)[1], rel=1e-10)
    L = 10_000
    for lam_b, angle_mix in ((1.0, 1.0), (0.1, 0.2)):
        x2 = xp + angle_mix * (xm - xp)
        x2 *= np.linalg.norm(xp) / np.linalg.norm(x2)
        deep = de.MLP(N0, [10] * (L - 1), 1, "relu", C_W=2.0, lambda_b=lam_b / L, lambda_W=1.0 / L)
        fa = g.finite_angle_ntk(deep, xp, x2)
        assert fa.cos_zeta[-1] == pytest.approx(0.25, abs=2e-3)
        assert fa.robustness[-1] == pytest.approx(-0.75, abs=2e-3)
        assert fa.variance[-1] / fa.K_d[-1] == pytest.approx(9 / 16, abs=2e-3)


def test_star_polation_corrected_expansion():
    """Erratum (10.113)–(10.115): s(1−s), not 4s(1−s). Finding: the expansion is complete at O(δ²) for the
    symmetric target part (y₊ = y₋) at every s and for any targets at s = ½; an antisymmetric part ∝ s(1−s)(2s−1)
    of the same order is missing (Θ̃⁻¹ amplifies O(δ⁴) terms by 1/δδΘ_[2])."""
    net = de.MLP(N0, [10] * 3, 1, "tanh", C_b=0.1, C_W=1.0)
    s = np.array([-0.5, 0.25, 0.5, 1.5])
    rel = []
    for eps in (0.1, 0.05):
        sp = g.star_polation(net, X0 + eps * DX / 2, X0 - eps * DX / 2, 0.7, 0.7, s)
        dev = sp.mean[:, 0] - 0.7
        err = sp.mean[:, 0] - sp.expansion_mean[:, 0]
        rel.append(np.max(np.abs(err / dev)))
        book = 0.7 - 4 * s * (1 - s) * sp.ddTheta0 / sp.Theta00 * 1.4  # the printed factor 4
        assert np.max(np.abs((sp.mean[:, 0] - book) / dev)) > 1.0
    assert rel[1] < rel[0] / 3 and rel[1] < 0.01
    sp = g.star_polation(net, X0 + 0.05 * DX / 2, X0 - 0.05 * DX / 2, 1.0, -0.3, np.array([0.5, 0.25]))
    dev = sp.mean[:, 0] - (0.5 * 1.0 + 0.5 * -0.3)
    assert abs(sp.mean[0, 0] - sp.expansion_mean[0, 0]) < 0.01 * abs(sp.mean[0, 0] - 0.35)  # s = ½
    assert abs(sp.mean[1, 0] - sp.expansion_mean[1, 0]) > 0.1 * abs(sp.mean[1, 0] - (0.25 - 0.75 * 0.3))  # finding


def test_deep_linear_star_polation_is_linear():
    """(10.104): linear σ ⇒ exactly s y₊ + (1 − s) y₋ (δδΘ_[0] = 0)."""
    net = de.MLP(N0, [10] * 4, 2, "linear", C_b=0.2, C_W=1.0)
    xm = RNG.standard_normal(N0)
    s = np.linspace(-1, 2, 7)
    sp = g.star_polation(net, X0, xm, [1.0, 2.0], [-0.5, 0.3], s)
    ref = s[:, None] * np.array([1.0, 2.0]) + (1 - s)[:, None] * np.array([-0.5, 0.3])
    np.testing.assert_allclose(sp.mean, ref, atol=1e-9)
    assert abs(sp.ddTheta0) < 1e-12 * sp.Theta00


def test_bad_input_one_clear_error():
    """Shapes were unchecked: a (L, 2, 2) Θ or a wrong-length x/y gave silently wrong numbers or NumPy errors;
    p_⊥ = 2 divided by zero in (10.78)."""
    net = de.MLP(N0, [10] * 2, 1, "tanh")
    T = np.array([[2.0, 1.0], [1.0, 2.0]])
    cases = [
        (lambda: g.one_point_prediction(np.ones((3, 3)), T, [1.0]), "2×2"),
        (lambda: g.one_point_prediction(T, np.stack([T, T]), [1.0]), "result\\[-1\\]"),
        (lambda: g.one_point_prediction(T, [[0.0, 1.0], [1.0, 2.0]], [1.0]), "> 0"),
        (lambda: g.robustness([[np.nan, 1.0], [1.0, 2.0]]), "finite"),
        (lambda: g.finite_angle_ntk(net.replace(activation="relu", C_W=2.0), X0, X0[:-1]), "components"),
        (lambda: g.star_polation(net, X0, -X0, [1.0, 2.0], [0.0], [0.5]), "y_plus and y_minus"),
        (lambda: g.star_polation(net, X0, -X0, [1.0], [0.0], [np.nan]), "s must be a finite"),
        (lambda: g.delta_ntk_recursion(net, X0, [np.inf] * N0), "finite"),
        (lambda: g.k0_robustness_asymptotic(0.1, 1.0, 1.0, 10, p_perp=2.0), "p_⊥ < 2"),
        (lambda: g.k0_robustness_asymptotic(0.1, 1.0, 1.0, 10, a1=1.0), "a₁ < 0"),
    ]
    for call, match in cases:
        with pytest.raises(de.DeepEFTInputError, match=match):
            call()


def test_unequal_norm_expansion_matches_exact_two_input_kernels():
    """(10.64)–(10.66) with (5.47)–(5.48) and the derived δK_[1] terms of δδΘ_[2], for x± = x₀ ± δx/2 with
    x₀·δx ≠ 0: the errors of robustness and variance against the exact 2×2 kernels fall like δ³ (per halving of
    δ: 8.2–8.3 for both; an O(δ²) slip would give 4), far below what the equal-norm forms miss (δΘ_[1]/Θ₀₀;
    −2δK_[1]δΘ_[1]/Θ₀₀ + K₀₀(δΘ_[1]/Θ₀₀)²). Below δ ≈ 3e-3 the errors reach the ~1e-11 floor of the exact
    kernels (hence δ ≥ 5e-3)."""
    net = de.MLP(N0, [10] * 2, 1, "tanh", C_b=0.05, C_W=1.0, lambda_b=0.5, lambda_W=2.0)
    dx = DX + 0.5 * X0  # x₀·δx ≠ 0
    err_r, err_v = [], []
    for eps in (1e-2, 5e-3):
        d = g.delta_ntk_recursion(net, X0, eps * dx)
        xp, xm = X0 + eps * dx / 2, X0 - eps * dx / 2
        K, T = de.kernel_and_ntk(net, np.stack([xp, xm]))
        _, var = g.one_point_prediction(K[-1], T[-1], 1.0)
        err_r.append(abs(d.robustness[-1] - g.robustness(T[-1])))
        err_v.append(abs(d.variance[-1] - var))
        comps = gamma_components(K)
        assert d.dK1 == pytest.approx(comps[:, 1], rel=10 * eps**2)
        r1 = d.dTheta1[-1] / d.Theta00[-1]
        # what the equal-norm forms (10.62)/(10.63) would miss: δΘ_[1]/Θ₀₀ and −2δK_[1]δΘ_[1]/Θ₀₀ + K₀₀(δΘ_[1]/Θ₀₀)²
        miss_v = abs(-2 * d.dK1[-1] * r1 + d.K00[-1] * r1**2)
        assert err_r[-1] < 1e-3 * abs(r1) and err_v[-1] < 0.2 * miss_v, (err_r, err_v, r1, miss_v)
    for e in (err_r, err_v):
        assert 6 < e[0] / e[1] < 11, e


def test_unequal_norm_expansion_reduces_to_equal_norms():
    net = de.MLP(N0, [10] * 4, 1, "tanh", C_b=0.05, C_W=1.2)
    d = g.delta_ntk_recursion(net, X0, 0.1 * DX)
    np.testing.assert_allclose(d.dK1, 0.0, atol=1e-15)
    np.testing.assert_allclose(d.dTheta1, 0.0, atol=1e-15)
    assert d.robustness == pytest.approx(-2 * d.ddTheta2 / d.Theta00, rel=1e-14)
    assert d.variance == pytest.approx(4 * d.ddK2, rel=1e-14)
