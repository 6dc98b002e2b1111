"""Observables and random-matrix baselines of deepeft.sgd (seed 002 (2.21)–(2.22), (3.4)–(3.5), (4.2))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.gauss1d import expect1d
from deepeft.sgd import (
    TeacherStudent,
    alignment,
    feature_density,
    feature_extrema,
    feature_potential,
    feature_scale,
    jamming_inv_sigma_W,
    marchenko_pastur,
    sample_problem,
    spectrum,
)
from deepeft.sgd.teacher_student import init_params


def test_marchenko_pastur_edges_quoted_in_paper():
    """x₊ = σ_W²(1 + √r)², r = 16/32: 0.046 at 1/σ_W = 8 and 1.9e5 at 1/σ_W = 2⁻⁸ (§4)."""
    assert marchenko_pastur(1 / 64, 16, 32).x_plus == pytest.approx(0.0455, abs=5e-4)
    assert marchenko_pastur(2.0**16, 16, 32).x_plus == pytest.approx(1.91e5, rel=5e-3)
    mp = marchenko_pastur(0.7, 16, 32)
    total, _ = integrate.quad(mp.pdf, mp.x_minus, mp.x_plus, limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)
    assert mp.cdf(mp.x_plus) == pytest.approx(1.0, abs=1e-7)
    xs = np.linspace(mp.x_minus, mp.x_plus, 7)[1:-1]
    direct = [integrate.quad(mp.pdf, mp.x_minus, x)[0] for x in xs]
    np.testing.assert_allclose(mp.cdf(xs), direct, atol=1e-7)
    wide = marchenko_pastur(1.0, 40, 20)  # r = 2: half the eigenvalues of X sit at zero
    assert wide.atom == pytest.approx(0.5) and wide.cdf(0.0) == pytest.approx(0.5)


def test_marchenko_pastur_at_initialisation_ks():
    """Eigenvalues of X = W Wᵀ of freshly initialised students (2.11) follow (4.2) (KS test)."""
    setup = TeacherStudent.build((3, 256, 128, 1), "tanh", (2,), n_train=8, n_test=4)
    sigma = 0.6
    prob = sample_problem(setup, 4, seed=1)
    eig = []
    for m in range(4):
        params = init_params(jax.tree.map(lambda x: x[m], prob.init_noise), jnp.asarray([sigma]), setup)
        eig.append(np.asarray(spectrum(params[0]["W"]))[0])
    eig = np.concatenate(eig).astype(np.float64)
    mp = marchenko_pastur(sigma**2, 128, 256)
    res = stats.kstest(eig, mp.cdf)
    print(f"MP KS: D={res.statistic:.4f}, p={res.pvalue:.3f}, n={eig.size}")
    assert res.pvalue > 1e-3
    # wrong variance is rejected
    assert stats.kstest(eig, marchenko_pastur(1.3 * sigma**2, 128, 256).cdf).pvalue < 1e-6


def test_feature_distribution_is_law_of_tanh_gaussian():
    for s2 in (0.2, 0.5, 2.0):
        total, _ = integrate.quad(lambda p: feature_density(p, s2), -1, 1, limit=200)
        assert total == pytest.approx(1.0, abs=1e-8)
        m2, _ = integrate.quad(lambda p: p**2 * feature_density(p, s2), -1, 1, limit=200)
        assert m2 == pytest.approx(float(expect1d(lambda z: np.tanh(z) ** 2, s2)), abs=1e-8)


def test_feature_potential_expansion_and_transition():
    """V(φ) = (1/(2σ²) − 1)φ² + (1/(3σ²) − 1/2)φ⁴ + … (2.22); single → double well at σ_z² = ½."""
    s2 = 0.8
    phi = np.linspace(-0.05, 0.05, 41)
    coef = np.polynomial.polynomial.polyfit(phi, feature_potential(phi, s2), 6)
    assert coef[2] == pytest.approx(1 / (2 * s2) - 1, rel=1e-6)
    assert coef[4] == pytest.approx(1 / (3 * s2) - 0.5, rel=1e-3)
    assert feature_extrema(0.4) == 0.0 and feature_extrema(0.5) == 0.0
    for s2 in (0.6, 1.0, 3.0):
        p = feature_extrema(s2)
        assert p > 0 and p == pytest.approx(np.tanh(2 * s2 * p), abs=1e-12)
        grid = np.linspace(1e-4, 0.999, 20001)  # the maximum of p(φ) on (0, 1) sits at φ*
        if s2 < 2:
            assert grid[np.argmax(feature_density(grid, s2))] == pytest.approx(p, abs=2e-4)
    with pytest.raises(DeepEFTInputError):
        feature_density(0.1, -1.0)


def test_feature_scale_matches_teacher_features():
    """q = E[φ(z¹)²] of the frozen first layer, σ_z² = σ_W² q (2.13); the jamming line 1/σ_W = √(2q)."""
    setup = TeacherStudent.paper(n_train=2000)
    q = feature_scale(setup)
    a = np.asarray(sample_problem(setup, 20, seed=0).a_train, np.float64)
    per_member = (a**2).mean(axis=(1, 2))
    z = (per_member.mean() - q) / (per_member.std(ddof=1) / np.sqrt(per_member.size))
    print(f"feature scale q={q:.4f}, sample {per_member.mean():.4f}, z={z:.2f}")
    assert abs(z) < Z_MAX
    assert jamming_inv_sigma_W() == pytest.approx(np.sqrt(2))
    assert jamming_inv_sigma_W(q) == pytest.approx(np.sqrt(2 * q))


def test_alignment_is_a_cosine():
    rng = np.random.default_rng(0)
    phi = jnp.asarray(rng.standard_normal((5, 3, 4)))
    assert np.allclose(alignment(phi, phi), 1.0, atol=1e-6)
    assert np.allclose(alignment(-2.0 * phi, phi), -1.0, atol=1e-6)
    h = jnp.asarray(rng.standard_normal((5, 4)))  # shared field broadcasts over points
    ref = [np.sum(h * phi[:, p]) / np.linalg.norm(h) / np.linalg.norm(phi[:, p]) for p in range(3)]
    np.testing.assert_allclose(alignment(h, phi), ref, rtol=1e-5)
