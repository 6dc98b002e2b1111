"""NNGP posterior and evidence at infinite width (book §6.3): (6.34), (6.45), (6.48), (6.53)–(6.64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import deepeft as de
from deepeft import DeepEFTInputError
from deepeft.theory import bayes
from deepeft.theory.bayes import (
    log_evidence_from_kernel,
    posterior_from_kernels,
    relu_evidence_optimal_C_W,
    target_gamma_components,
    two_input_log_evidence,
    two_input_log_evidence_equal_norm,
)
from deepeft.theory.two_input import from_gamma, gamma_components

RNG = np.random.default_rng(12)


def _data(N=12, M=5, n0=4, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, n0)), rng.standard_normal((N, n_out)), rng.standard_normal((M, n0))


NET = de.MLP(4, [32] * 3, 2, "tanh", C_b=0.1, C_W=1.2)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_evidence_equals_generic_mvn_density(noise):
    """(6.34) by Cholesky vs scipy's multivariate-normal log density, per output component, to 1e-12."""
    X, Y, _ = _data()
    K = de.kernel(NET, X)[-1] + noise * np.eye(len(X))
    ref = sum(multivariate_normal(np.zeros(len(X)), K).logpdf(Y[:, i]) for i in range(Y.shape[1]))
    got = de.log_evidence(NET, X, Y, noise=noise)
    assert abs(got - ref) <= 1e-12 * abs(ref)
    assert got == pytest.approx(log_evidence_from_kernel(K, Y), rel=1e-14)


def test_block_inverse_identities_and_precision_form():
    """(6.53)–(6.56): blocks of K⁻¹ in terms of K̃⁻¹ and 𝕂; the posterior from the full precision matrix."""
    X, Y, XB = _data()
    N = len(X)
    K = de.kernel(NET, np.concatenate([X, XB]))[-1]
    post = de.nngp_posterior(NET, X, Y, XB)
    Kinv = np.linalg.inv(K)  # test-only reference (the library never inverts)
    Kt_inv = np.linalg.inv(K[:N, :N])
    Kpost_inv = np.linalg.inv(post.cov)
    KAB = K[:N, N:]
    np.testing.assert_allclose(Kinv[N:, N:], Kpost_inv, rtol=1e-7, atol=1e-7 * np.abs(Kpost_inv).max())  # (6.56)
    np.testing.assert_allclose(Kinv[:N, N:], -Kt_inv @ KAB @ Kpost_inv, rtol=1e-6, atol=1e-7 * np.abs(Kinv).max())  # (6.54)
    np.testing.assert_allclose(
        Kinv[:N, :N], Kt_inv + Kt_inv @ KAB @ Kpost_inv @ KAB.T @ Kt_inv, rtol=1e-6, atol=1e-7 * np.abs(Kinv).max()
    )  # (6.53)
    # Gaussian conditioning through the precision matrix: m = −(K^{ℬℬ})⁻¹ K^{ℬ𝒜} y  (6.63)
    m_prec = -np.linalg.solve(Kinv[N:, N:], Kinv[N:, :N] @ Y)
    np.testing.assert_allclose(post.mean, m_prec, rtol=1e-6, atol=1e-8)


def test_test_point_equal_to_training_point():
    """Noise-free: a test input equal to a training input has m = y and zero posterior variance."""
    X, Y, XB = _data()
    XB = np.concatenate([XB, X[3:4]])
    post = de.nngp_posterior(NET, X, Y, XB)
    np.testing.assert_allclose(post.mean[-1], Y[3], atol=1e-9)
    assert abs(post.var[-1]) < 1e-10 * de.kernel(NET, X[3:4])[-1][0, 0]
    # and every posterior covariance is PSD, never larger than the prior variance
    prior = np.diagonal(de.kernel(NET, XB)[-1])
    assert np.all(post.var <= prior + 1e-12)
    assert np.linalg.eigvalsh(post.cov).min() > -1e-10


def test_noise_models():
    """Diagonal noise adds σ² to the training diagonal; bias-shift = C_b^(L) → C_b^(L) + σ² (footnote 6)."""
    X, Y, XB = _data()
    s = 0.3
    diag = de.nngp_posterior(NET, X, Y, XB, noise=s)
    K = de.kernel(NET, np.concatenate([X, XB]))[-1]
    N = len(X)
    ref_mean = K[N:, :N] @ np.linalg.solve(K[:N, :N] + s * np.eye(N), Y)
    np.testing.assert_allclose(diag.mean, ref_mean, rtol=1e-10)
    shifted = NET.replace(C_b=NET.C_b[:-1] + (NET.C_b[-1] + s,))
    bs = de.nngp_posterior(NET, X, Y, XB, noise=s, noise_model="bias_shift")
    ref = de.nngp_posterior(shifted, X, Y, XB)
    np.testing.assert_allclose(bs.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(bs.cov, ref.cov, rtol=1e-9, atol=1e-12)
    assert bs.log_evidence == pytest.approx(ref.log_evidence, rel=1e-12)
    # one input: the two models coincide
    one = de.log_evidence(NET, X[:1], Y[:1], noise=s)
    assert one == pytest.approx(de.log_evidence(NET, X[:1], Y[:1], noise=s, noise_model="bias_shift"), rel=1e-13)
    assert not np.allclose(bs.mean, diag.mean)  # different models for > 1 input


def test_two_input_forms():
    """(6.48) with the corrected (6.46) and the equal-norm (6.45) equal the generic evidence (6.34)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4))
    y = rng.standard_normal((2, 3))
    net = NET.replace(output_dim=3)
    K = de.kernel(net, x)[-1]
    Kg = gamma_components(K)
    Yg = target_gamma_components(y[0], y[1])
    ref = de.log_evidence(net, x, y)
    assert two_input_log_evidence(Kg, Yg, 3) == pytest.approx(ref, rel=1e-12)
    # the book's printed (6.46) (K0 + K1 + K2 on both diagonals) is NOT the kernel when K1 ≠ 0
    K0, K1, K2 = Kg
    printed = np.array([[K0 + K1 + K2, K0 - K2], [K0 - K2, K0 + K1 + K2]])
    assert abs(K1) > 1e-3 and not np.allclose(printed, K)
    np.testing.assert_allclose(from_gamma(Kg), K, rtol=1e-13)
    # equal norms: K_[1] = 0 and (6.45) factorizes
    xe = x.copy()
    xe[1] *= np.linalg.norm(x[0]) / np.linalg.norm(x[1])
    Ke = de.kernel(net, xe)[-1]
    K0, K1, K2 = gamma_components(Ke)
    assert abs(K1) < 1e-12
    Y0, _, Y2 = target_gamma_components(y[0], y[1])
    assert two_input_log_evidence_equal_norm(K0, K2, Y0, Y2, 3) == pytest.approx(de.log_evidence(net, xe, y), rel=1e-12)


def test_equal_norm_evidence_maximum():
    """(6.45) is maximal at K̃_[a] = 𝕐_[a]/n_L (grid check: a resolution of 1e-3)."""
    Y0, Y2, nL = 1.7, 0.4, 3
    grid = np.linspace(0.05, 2.0, 1951)
    f0 = [two_input_log_evidence_equal_norm(k, 1.0, Y0, Y2, nL) for k in grid]
    f2 = [two_input_log_evidence_equal_norm(1.0, k, Y0, Y2, nL) for k in grid]
    assert abs(grid[int(np.argmax(f0))] - Y0 / nL) < 1.5e-3
    assert abs(grid[int(np.argmax(f2))] - Y2 / nL) < 1.5e-3


def test_relu_evidence_optimal_C_W():
    """ReLU, C_b = 0, one input: the evidence maximum over C_W sits at 2(Ȳ/(2x̄²))^{1/L} → 2 (digest)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(6)
    y = np.array([1.3, -0.4])
    L = 5
    net = de.MLP(6, [16] * (L - 1), 2, "relu", C_b=0.0, C_W=2.0)
    exact = relu_evidence_optimal_C_W(y, x, L)
    opt = bayes.optimize_evidence(net, x[None], y[None], "C_W", (1.0, 3.0))
    assert opt["C_W"] == pytest.approx(exact, abs=1e-6)
    cws = np.linspace(1.5, 2.5, 21)  # grid resolution 0.05
    best = bayes.evidence_optimal(de.evidence_grid(net, x[None], y[None], C_W=cws))
    assert abs(best["C_W"] - exact) <= 0.025 + 1e-12
    assert relu_evidence_optimal_C_W(y, x, 400) == pytest.approx(2.0, abs=0.01)


def test_evidence_grid_labels_and_bayes_factor():
    X, Y, _ = _data(N=8)
    ds = de.evidence_grid(NET, X, Y, C_W=[0.5, 1.0, 2.0], depth=[1, 3], noise=[0.0, 0.1], activation=["tanh", "relu"])
    assert ds["log_evidence"].dims == ("activation", "C_W", "depth", "noise")
    assert list(ds.coords["activation"].values) == ["tanh", "relu"]
    assert ds["posterior"].sum() == pytest.approx(1.0)
    one = ds["log_evidence"].sel(activation="relu", C_W=2.0, depth=3, noise=0.1).item()
    direct = de.log_evidence(de.MLP(4, [32] * 2, 2, "relu", C_b=0.1, C_W=2.0), X, Y, noise=0.1)
    assert one == pytest.approx(direct, rel=1e-12)
    other = ds["log_evidence"].sel(activation="tanh", C_W=1.0, depth=1, noise=0.0).item()
    assert bayes.bayes_factor(one, other) == pytest.approx(math.exp(one - other))
    assert float(ds["log_bayes_factor"].max()) == 0.0
    # depth 1 with 8 inputs in n0 = 4: K̃ has rank ≤ 5, singular at zero noise → −inf; finite with noise
    assert ds["log_evidence"].sel(depth=1, noise=0.0).values.max() == -np.inf
    assert np.all(np.isfinite(ds["log_evidence"].sel(depth=1, noise=0.1).values))


def test_posterior_from_empirical_style_kernels_and_mean_only():
    X, Y, XB = _data()
    K = de.kernel(NET, np.concatenate([X, XB]))[-1]
    N = len(X)
    p = posterior_from_kernels(K[:N, :N], K[N:, :N], None, Y[:, 0])
    assert p.cov is None and p.mean.shape == (len(XB), 1)
    with pytest.raises(DeepEFTInputError, match="K_test"):
        _ = p.var  # no covariance to take the diagonal of


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda X, Y, XB: de.nngp_posterior(NET, X, Y[:-1], XB), "rows"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X, Y[:, :1], XB), "output_dim"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X[:, :3], Y, XB), "features"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X, np.where(Y > 1, np.nan, Y), XB), "NaN"),
        (lambda X, Y, XB: de.nngp_posterior(NET, np.where(X > 1, np.inf, X), Y, XB), "NaN or inf"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X, Y, XB, noise=-1.0), "noise"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X, Y, XB, noise_model="both"), "noise_model"),
        (lambda X, Y, XB: de.nngp_posterior(NET, X, Y, XB, conventions="nt"), "conventions"),
        (lambda X, Y, XB: de.log_evidence(NET, np.concatenate([X, X[:1]]), np.concatenate([Y, Y[:1]])), "noise > 0"),
        (lambda X, Y, XB: de.evidence_grid(NET, X, Y, C_w=[1.0]), "unknown grid axes"),
    ],
)
def test_bad_input_one_clear_error(call, match):
    X, Y, XB = _data()
    with pytest.raises(DeepEFTInputError, match=match):
        call(X, Y, XB)


@pytest.mark.parametrize("bad, match", [(-1.0, r"noise must be >= 0\.0 \(it is a variance"),
                                        (float("nan"), "noise must be finite"), ("0.1x", "noise must be a real number"),
                                        (None, "noise must be a real number")])
def test_noise_variance_is_the_shared_scalar_check(bad, match):
    """learning_inputs.noise_variance: a finite float >= 0 (0 allowed), errors naming the argument."""
    from deepeft.theory.learning_inputs import noise_variance

    assert noise_variance(0) == 0.0 and noise_variance(np.float32(0.5)) == 0.5 and noise_variance(np.array(2.0)) == 2.0
    assert type(noise_variance(np.float32(0.5))) is float
    with pytest.raises(DeepEFTInputError, match=match):
        noise_variance(bad)
    with pytest.raises(DeepEFTInputError, match=match.replace("noise", "ridge")):
        noise_variance(bad, "ridge")


def test_duplicate_inputs_work_with_noise():
    X, Y, XB = _data()
    X2 = np.concatenate([X, X[:1]])
    Y2 = np.concatenate([Y, Y[:1]])
    p = de.nngp_posterior(NET, X2, Y2, XB, noise=1e-6)
    assert np.all(np.isfinite(p.mean)) and np.isfinite(p.log_evidence)


def test_neural_tangents_relative_diag_reg():
    """conventions='neural_tangents': noise is NT's relative diag_reg (× mean diag K̃)."""
    X, Y, XB = _data()
    K = de.kernel(NET, X)[-1]
    rel = 0.01
    a = de.nngp_posterior(NET, X, Y, XB, noise=rel, conventions="neural_tangents")
    b = de.nngp_posterior(NET, X, Y, XB, noise=rel * np.trace(K) / len(X))
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-13)
    assert a.noise == pytest.approx(rel * np.trace(K) / len(X))


def test_evidence_for_criticality_relu_trend():
    """(6.41)–(6.48) over C_W × depth for an equal-norm pair: the (6.45) factors sum to (6.48), and the
    evidence-optimal C_W moves towards the critical C_W = 2 as depth grows (ReLU; a trend, not a point)."""
    rng = np.random.default_rng(0)
    xp, xm = rng.standard_normal(4), rng.standard_normal(4)
    xm *= np.linalg.norm(xp) / np.linalg.norm(xm)
    net = de.MLP(4, [8], 1, "relu", C_b=0.0)
    ds = bayes.evidence_for_criticality(net, xp, xm, [1.0], [0.3], C_W=np.linspace(1.5, 2.5, 41), depth=[8, 32, 128])
    np.testing.assert_allclose(ds["log_factor_0"] + ds["log_factor_2"], ds["log_evidence"], rtol=1e-12)
    best = ds["best_C_W"].values
    assert abs(best[2] - 2) < abs(best[1] - 2) < abs(best[0] - 2)
    assert abs(best[2] - 2) < 0.15


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 5), st.floats(0.0, 1.0))
def test_property_posterior_psd_and_shrinks(seed, N, M, noise):
    """Hypothesis: 𝕂 is PSD, never exceeds the prior variance, and the evidence equals scipy's density."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((N + M, N + M + 2))
    K = F @ F.T / (N + M) + 1e-3 * np.eye(N + M)
    Y = rng.standard_normal((N, 2))
    p = posterior_from_kernels(K[:N, :N], K[N:, :N], K[N:, N:], Y, noise)
    scale = np.abs(K).max()
    assert np.linalg.eigvalsh(p.cov).min() > -1e-10 * scale
    assert np.all(p.var <= np.diagonal(K[N:, N:]) + 1e-10 * scale)
    ref = sum(multivariate_normal(np.zeros(N), K[:N, :N] + noise * np.eye(N)).logpdf(Y[:, i]) for i in range(2))
    assert p.log_evidence == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_evidence_grid_records_why_a_hypothesis_is_inadmissible_and_raises_otherwise(monkeypatch):
    """Only a singular training kernel (code 1) or an overflowing kernel (code 2) becomes −inf, recorded in
    ``inadmissible``; any other DeepEFTInputError raises (it used to become −inf silently)."""
    X, Y, _ = _data(N=8)
    ds = de.evidence_grid(NET.replace(activation="relu"), X, Y, C_W=[1.0, 1e200], depth=[1, 3], noise=[0.0, 0.1])
    why = ds["inadmissible"]
    assert why.sel(C_W=1.0, depth=1, noise=0.0).item() == 1  # rank ≤ n0 + 1 = 5 < 8 inputs
    assert why.sel(C_W=1.0, depth=3).values.tolist() == [0, 0]
    assert why.sel(C_W=1e200, depth=3).values.tolist() == [2, 2]
    assert np.all(np.isneginf(ds["log_evidence"].values[why.values != 0]))
    assert np.all(np.isfinite(ds["log_evidence"].values[why.values == 0]))
    assert "singular" in ds.attrs["inadmissible_codes"]

    def broken(*args, **kwargs):
        raise DeepEFTInputError("some other problem")

    monkeypatch.setattr(bayes, "log_evidence_from_kernel", broken)
    with pytest.raises(DeepEFTInputError, match="some other problem"):
        de.evidence_grid(NET, X, Y, C_W=[1.0], depth=[3])


def test_evidence_for_criticality_inadmissible_codes():
    """x₋ = −x₊, ReLU, C_b = 0: the layer-1 2×2 K̃ is singular (code 1); C_W = 1e200 overflows at depth 6 (code 2)."""
    x = np.array([1.0, 0.0, 0.5, 0.2])
    ds = bayes.evidence_for_criticality(de.MLP(4, [8], 1, "relu"), x, -x, [1.0], [-0.5], C_W=[2.0, 1e200],
                                        depth=[1, 6])
    assert ds["inadmissible"].values.tolist() == [[1, 0], [1, 2]]
    assert np.all(np.isneginf(ds["log_evidence"].values[ds["inadmissible"].values != 0]))


def test_bayes_factor_overflow_and_optimize_evidence_bounds():
    """exp of a log ratio > 709.8 overflowed (OverflowError); infinite/NaN/malformed bounds reached SciPy."""
    assert bayes.bayes_factor(-1000.0, -1001.0) == pytest.approx(math.e)
    assert bayes.bayes_factor(-2000.0, 0.0) == 0.0 and bayes.bayes_factor(0.0, -np.inf) == np.inf
    with pytest.raises(DeepEFTInputError, match="log Bayes factor"):
        bayes.bayes_factor(0.0, -1000.0)
    X, Y, _ = _data()
    for bounds, match in [((0.5, np.inf), "finite"), ((np.nan, 1.0), "finite"), ((1.0,), "pair"),
                          ((2.0, 1.0), "lo < hi"), (("a", 1.0), "real number")]:
        with pytest.raises(DeepEFTInputError, match=match):
            bayes.optimize_evidence(NET, X, Y, "C_W", bounds)
