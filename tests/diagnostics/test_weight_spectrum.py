"""de.weight_spectrum (issue 17 item 2): MP fit, Tracy–Widom outliers, BBP threshold, tail exponent, stable rank.

Kinds: Monte Carlo against exact finite-size moments (z-scores), prediction against the BBP closed form,
false-alarm rate of the TW test against its nominal level (binomial z), MLE against a known Pareto exponent."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.diagnostics import bbp_outlier


def _noise(rng, n_out, n_in, s2):
    return rng.normal(0.0, np.sqrt(s2), (n_out, n_in))


def test_mp_fit_recovers_variance_and_aspect_ratio_of_noise():
    """ŝ² is unbiased (E tr WᵀW = n m s²) and q̂ = var/ŝ⁴ − 1/n is unbiased to O(1/n²) (Wishart second moment):
    the ensemble means over R matrices agree with the truth within Z_MAX standard errors; the per-matrix
    SE formula ŝ²√(2/(nm)) matches the ensemble scatter to 25 %."""
    rng = np.random.default_rng(0)
    R, s2 = 40, 0.7
    for n_out, n_in in ((150, 60), (50, 100)):  # both orientations; q = 0.4 and 0.5
        fits = [de.weight_spectrum(_noise(rng, n_out, n_in, s2)) for _ in range(R)]
        sig = np.array([f.mp_sigma2 for f in fits])
        q = np.array([f.aspect_ratio for f in fits])
        q_true = min(n_out, n_in) / max(n_out, n_in)
        z_s = (sig.mean() - s2) / (sig.std(ddof=1) / np.sqrt(R))
        z_q = (q.mean() - q_true) / (q.std(ddof=1) / np.sqrt(R))
        assert abs(z_s) < Z_MAX and abs(z_q) < Z_MAX, (z_s, z_q)
        assert abs(q.mean() - q_true) < 0.05 * q_true  # and the estimate is useful, not just unbiased-within-noise
        assert abs(np.mean([f.mp_sigma2_stderr for f in fits]) / sig.std(ddof=1) - 1) < 0.25
        assert np.mean([f.num_outliers for f in fits]) < 0.1
        f = fits[0]
        assert f.shape == (n_out, n_in) and f.eigenvalues.size == min(n_out, n_in)
        assert f.ks_statistic < 5.0 / f.m  # pure noise: KS distance O(1/m) (eigenvalue rigidity)
        np.testing.assert_allclose(f.C_W, n_in * f.mp_sigma2)


@pytest.mark.parametrize("level", [0.10, 0.05])
def test_tracy_widom_false_alarm_rate_matches_level(level):
    """Pure noise: the fraction of matrices with ≥ 1 outlier is the test level (binomial z)."""
    rng = np.random.default_rng(1)
    R = 400
    hits = sum(de.weight_spectrum(_noise(rng, 80, 40, 1.3), level=level).num_outliers > 0 for _ in range(R))
    z = (hits / R - level) / np.sqrt(level * (1 - level) / R)
    assert abs(z) < Z_MAX, (hits, z)


def test_planted_spikes_above_bbp_are_detected_and_below_are_not():
    """W = N + Σ θ_k u_k v_kᵀ, noise variance 1/n, q = m/n = ½ (BBP threshold q^{1/4} = 0.841): spikes at θ = 1.3, 2.5
    are outliers at (1 + θ²)(q + θ²)/θ² (to 5 %: finite-n corrections O(n^{-1/2})); θ = 0.5, 0.7 stay in the bulk."""
    rng = np.random.default_rng(2)
    n, m = 600, 300
    q = m / n
    for thetas, expected in (((2.5, 1.3), 2), ((0.7, 0.5), 0)):
        for _ in range(3):
            U = np.linalg.qr(rng.normal(size=(n, 2)))[0]
            V = np.linalg.qr(rng.normal(size=(m, 2)))[0]
            W = _noise(rng, n, m, 1.0 / n) + (U * np.array(thetas)) @ V.T
            ws = de.weight_spectrum(W)
            assert ws.num_outliers == expected, (thetas, ws.outliers, ws.bulk_edge)
            if expected:
                np.testing.assert_allclose(ws.outliers * n, bbp_outlier(np.array(thetas), q), rtol=0.05)  # λ = eig/n
                assert np.all(ws.outlier_tw > 2.0234)
            # the bulk fit ignores the spikes: ŝ² within 2 % of the noise variance
            assert abs(ws.mp_sigma2 * n - 1.0) < 0.02
            np.testing.assert_allclose(ws.bulk_edge, (1 + np.sqrt(q)) ** 2 * ws.mp_sigma2)


def test_tail_exponent_recovers_a_pareto_law_and_stable_rank():
    rng = np.random.default_rng(3)
    from deepeft.diagnostics.spectrum import power_law_tail

    for alpha in (2.5, 4.0):
        x = (1 - rng.random(3000)) ** (-1 / (alpha - 1))  # density ∝ x^{−α} on x ≥ 1
        a, se, xmin, k = power_law_tail(x)
        assert abs(a - alpha) / se < Z_MAX and k > 1000
    # stable rank: rank one → 1; orthogonal columns of equal norm → m
    u, v = rng.normal(size=40), rng.normal(size=20)
    assert de.weight_spectrum(np.outer(u, v)).stable_rank == pytest.approx(1.0, rel=1e-9)
    Q = np.linalg.qr(rng.normal(size=(40, 20)))[0]
    assert de.weight_spectrum(Q).stable_rank == pytest.approx(20.0, rel=1e-9)
    # a heavy-tailed (Student-t, ν = 2.5) matrix has a much smaller α than Gaussian noise
    heavy = de.weight_spectrum(rng.standard_t(2.5, size=(400, 200)))
    gauss = de.weight_spectrum(rng.normal(size=(400, 200)))
    assert heavy.alpha < 5 < gauss.alpha


def test_weight_spectrum_bad_input():
    with pytest.raises(de.DeepEFTInputError, match="NaN/inf"):
        de.weight_spectrum(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(de.DeepEFTInputError, match="2-D"):
        de.weight_spectrum(np.ones(5))
    with pytest.raises(de.DeepEFTInputError, match="level"):
        de.weight_spectrum(np.eye(3), level=0.2)
