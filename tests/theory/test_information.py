"""Information theory (App. A): closed forms, the digest's r* and I_max, identities between (A.66), (A.67), (A.75),
and the exact (non-perturbative) information of the scale-mixture law of a finite-width layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import deepeft as de
from conftest import Z_MAX, assert_close
from deepeft.theory import information as info
from deepeft.theory import information_exact as ie
from deepeft.theory.residual import residual_nu

# ---------------------------------------------------------------- r*, I_max: the digest's numbers (A.69)–(A.74)

R_STAR = {  # (activation, n_L): r*  — digest §5, from (A.73)
    ("tanh", 2): 3 / 13, ("linear", 2): 1 / 13, ("relu", 2): 2 / 65,
    ("tanh", 10): 0.12, ("linear", 10): 0.04, ("relu", 10): 0.016,
    ("tanh", 100): 0.01875, ("relu", 100): 0.0025,
}  # fmt: skip


@pytest.mark.parametrize(("act", "nL"), list(R_STAR))
def test_optimal_aspect_ratio_digest_numbers(act, nL):
    assert_close(de.optimal_aspect_ratio(act, nL), R_STAR[act, nL])


def test_max_mutual_information_digest_numbers():
    assert_close(de.max_mutual_information(2), 1 / 1014)
    assert_close(de.max_mutual_information(10), 1 / 150)
    assert abs(de.max_mutual_information(10**7) - 1 / 54) < 1e-7


@pytest.mark.parametrize(("m1", "m2", "nu"), [(1, 1, 2 / 3), (3, 7, 5.0), (5, 5, 2.0)])
def test_r_star_is_the_maximum_of_A71(m1, m2, nu):
    """Independent path: maximise (A.71) on a fine grid; its argmax is (A.72) and its value (2/3)m₁m₂/c²."""
    r = np.linspace(1e-4, 0.5 / nu, 200_001)
    I = info.finite_width_mutual_information(m1, m2, nu * r)
    k = int(np.argmax(I))
    act = {2 / 3: "tanh", 5.0: "relu", 2.0: "linear"}[nu]
    r_star = de.optimal_aspect_ratio(act, m1 + m2, groups=(m1, m2))
    assert abs(r[k] - r_star) <= r[1] - r[0]
    assert_close(I[k], de.max_mutual_information(m1 + m2, groups=(m1, m2)), "solve")


def test_vertex_coefficients_and_residual_nu():
    assert_close(de.vertex_coefficient("relu"), 5.0)  # footnote 26
    assert_close(de.vertex_coefficient("linear"), 2.0)
    assert_close(de.vertex_coefficient("tanh"), 2 / 3)  # (A.69)
    slope = 0.2  # leaky ReLU: (A.70)
    A2, A4 = (1 + slope**2) / 2, (1 + slope**4) / 2
    assert_close(de.vertex_coefficient(de.activation("leaky_relu", slope=slope)), 3 * A4 / A2**2 - 1)
    for g2 in (0.0, 0.3, 0.5, 0.8):
        g = math.sqrt(g2)
        assert_close(residual_nu("relu", g), (1 - g2) * (5 - g2))  # (B.29)
        assert_close(residual_nu("linear", g), 2 * (1 - g2**2))
        assert_close(residual_nu("tanh", g), 2 / 3 * (1 - g2**2))  # (B.35)
    # digest §6: K* = 0, n_L = 10: r*(γ² = 0.5) = 0.16 vs r*(0) = 0.12 (B.36)
    assert_close(de.optimal_aspect_ratio("tanh", 10, gamma=math.sqrt(0.5)), 0.16)


def test_information_bad_input():
    with pytest.raises(de.DeepEFTInputError, match="no critical"):
        de.optimal_aspect_ratio("tanh", 10, gamma=1.0)
    with pytest.raises(de.DeepEFTInputError, match="universality class"):
        de.optimal_aspect_ratio("gelu", 10)
    with pytest.raises(de.DeepEFTInputError, match="output_dim"):
        de.optimal_aspect_ratio("tanh", 0)
    with pytest.raises(de.DeepEFTInputError, match="exceeds"):
        de.optimal_aspect_ratio("tanh", 4, groups=(3, 3))
    with pytest.raises(de.DeepEFTInputError, match="x = V"):
        info.finite_width_mutual_information(1, 1, -0.1)
    with pytest.raises(de.DeepEFTInputError, match="order"):
        info.finite_width_mutual_information(1, 1, 0.1, order="nnlo")
    with pytest.raises(de.DeepEFTInputError, match="singular"):
        de.gaussian_entropy(np.ones((2, 2)))


# ---------------------------------------------------------------- identities between (A.66), (A.67), (A.75)


@pytest.mark.parametrize(("m1", "m2", "m3"), [(1, 1, 1), (2, 3, 4), (7, 1, 5)])
def test_mutual_and_tripartite_from_entropy(m1, m2, m3):
    """(A.67) = 𝒮₁ + 𝒮₂ − 𝒮₁₂ and (A.75) from (A.24), both with (A.66): exact polynomial identities."""
    x = np.array([0.0, 0.03, 0.2, 0.7])
    S = {m: info.finite_width_entropy(m, x, G=1.7) for m in {m1, m2, m3, m1 + m2, m2 + m3, m1 + m3, m1 + m2 + m3}}
    assert_close(S[m1] + S[m2] - S[m1 + m2], info.finite_width_mutual_information(m1, m2, x), atol=1e-13)
    I3 = S[m1] + S[m2] + S[m3] - S[m1 + m2] - S[m2 + m3] - S[m1 + m3] + S[m1 + m2 + m3]
    assert_close(I3, info.tripartite_information(m1, m2, m3, x), atol=1e-13)
    assert_close(info.finite_width_entropy(m1, 0.0, G=1.7), de.gaussian_entropy(1.7, m=m1))  # (A.26), N = 1


# ---------------------------------------------------------------- infinite width (A.26)–(A.29)


def test_gaussian_entropy_kl_mutual_information():
    K = np.array([[1.3, 0.4, 0.1], [0.4, 0.9, 0.2], [0.1, 0.2, 1.1]])
    assert_close(de.gaussian_entropy(K, m=3), 3 * multivariate_normal(cov=K).entropy())  # (A.26)
    Q = np.diag([1.0, 2.0, 0.5])
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal(np.zeros(3), K, size=400_000)
    lr = multivariate_normal(cov=K).logpdf(z) - multivariate_normal(cov=Q).logpdf(z)
    kl = de.gaussian_kl(K, Q)
    assert abs(lr.mean() - kl) < Z_MAX * lr.std() / math.sqrt(z.shape[0])  # (A.12) by Monte Carlo
    assert de.gaussian_kl(K, K) == pytest.approx(0.0, abs=1e-13)
    # (A.28) for two inputs, (A.29) with equal norms
    K2 = np.array([[1.5, 0.9], [0.9, 1.5]])
    i28 = 0.5 * math.log(1.5 * 1.5 / (1.5 * 1.5 - 0.81))
    assert_close(de.gaussian_mutual_information(K2, [0], [1]), i28)
    K0, Kd = (1.5 + 0.9) / 2, (1.5 - 0.9) / 2  # K_[0], K_[2] (5.17), (5.19)
    assert_close(info.equal_norm_mutual_information(Kd / K0), i28)
    assert de.gaussian_mutual_information(K2, [0], [1], m=4) == pytest.approx(4 * i28)


def test_finite_width_information_of_a_relu_net():
    """ReLU at criticality: V^{(ℓ)} = 5(ℓ − 1)K² exactly at leading order, G¹ = 0, so x^{(ℓ)} = 5(ℓ − 1)/n."""
    net = de.MLP(input_dim=3, widths=[50] * 5, output_dim=6, activation="relu", C_W=2.0)
    res = info.finite_width_information(net, norm=1.0)
    ell = np.arange(1, 7)
    assert_close(res.x, 5 * (ell - 1) / 50)
    assert res.groups == (3, 3)
    assert_close(res.mutual_information, info.finite_width_mutual_information(3, 3, 5 * (ell - 1) / 50))
    three = info.finite_width_information(net, groups=(1, 2, 3), norm=1.0)
    assert_close(three.tripartite, 6 / 8 * (5 * (ell - 1) / 50) ** 3)


# ---------------------------------------------------------------- the exact scale-mixture information


def test_exact_mixture_laws_have_the_exact_moments():
    """Deep linear: E[s] = K¹C_W^{L−1}, x = (1 + 2/n)^{L−1} − 1; ReLU: x = (1 + 5/n)^{L−1} − 1 [derived]."""
    lin = ie.exact_mixture("linear", [40, 40], K1=1.3)
    assert_close(lin.G, 1.3, "quadrature")
    assert_close(lin.x, (1 + 2 / 40) ** 2 - 1, "quadrature")
    relu = ie.exact_mixture("relu", [48])
    assert_close(relu.G, 1.0, "quadrature", atol=2**-48)
    assert_close(relu.x, 5 / 48, "quadrature")


def test_exact_information_matches_direct_monte_carlo():
    """Independent path for the quadrature: sample z from a mixture and average log p₁₂/(p₁p₂) exactly."""
    from scipy.special import logsumexp

    mix = ie.scale_mixture([0.5, 0.8, 1.0, 1.6, 2.5], [0.2, 0.2, 0.3, 0.2, 0.1])
    m1, m2 = 3, 4
    I = ie.mixture_mutual_information(mix, m1, m2)
    rng = np.random.default_rng(1)
    S = 40_000
    s = rng.choice(mix.s, size=S, p=mix.w)
    z = np.sqrt(s)[:, None] * rng.standard_normal((S, m1 + m2))

    def logp(zz):
        r = np.sum(zz**2, axis=1)[:, None]
        return logsumexp(np.log(mix.w) - 0.5 * zz.shape[1] * np.log(2 * np.pi * mix.s) - 0.5 * r / mix.s, axis=1)

    lr = logp(z) - logp(z[:, :m1]) - logp(z[:, m1:])
    zscore = (lr.mean() - I) / (lr.std() / math.sqrt(S))
    assert abs(zscore) < Z_MAX, zscore
    assert lr.std() / math.sqrt(S) < 0.05 * I  # the check resolves I to a few per cent


def test_exact_information_confirms_A67_at_two_widths():
    """Deep linear L = 3 at n = 128 and 512: the exact I departs from the LO (A.53) by ≈ the printed x³ term and
    from the NLO (A.67) by O(x⁴): (c₃ − c₃^book)/x is the same at both widths (c₃ = (I − I_LO)/x³ measured,
    c₃^book = −m₁m₂(20 + 3m₁ + 3m₂)/48), and the residual of (A.67) falls as n⁻⁴."""
    m1, m2 = 2, 3
    c3_book = -m1 * m2 * (20 + 3 * m1 + 3 * m2) / 48
    dev, resid = [], []
    for n in (128, 512):
        mix = ie.exact_mixture("linear", [n, n])
        x = mix.x
        I = ie.mixture_mutual_information(mix, m1, m2)
        c3 = (I - info.finite_width_mutual_information(m1, m2, x, "lo")) / x**3
        dev.append((c3 - c3_book) / x)
        resid.append(I - info.finite_width_mutual_information(m1, m2, x))
    assert dev[0] == pytest.approx(dev[1], rel=0.25)  # measured: 25.8 and 31.1 (the x⁴ coefficient, + O(x))
    assert math.log(resid[0] / resid[1]) / math.log(4) == pytest.approx(4.0, abs=0.25)  # measured 3.88


def test_exact_tripartite_information_approaches_A75():
    """I₃/x³ → m₁m₂m₃/8 (A.75) with an O(x) deviation: (I₃/x³ − ½)/x agrees at n = 256 and 1024."""
    dev = []
    for n in (256, 1024):
        mix = ie.exact_mixture("linear", [n, n])
        I3 = ie.mixture_tripartite_information(mix, 1, 2, 2)
        dev.append((I3 / mix.x**3 - info.tripartite_information(1, 2, 2, 1.0)) / mix.x)
    assert dev[0] == pytest.approx(dev[1], rel=0.25)  # measured −5.4, −6.1


def test_exact_information_is_monotone_across_r_star():
    """Finding: the exact I of two groups keeps growing through the NLO maximum x* = 4/(20 + 3n_L) (A.72)."""
    m1 = m2 = 1
    xs, Is = [], []
    for n in (64, 26, 13, 8):  # one hidden linear layer: x = 2/n = 0.031, 0.077, 0.154 (= x*), 0.25
        mix = ie.exact_mixture("linear", [n])
        xs.append(mix.x)
        Is.append(ie.mixture_mutual_information(mix, m1, m2))
    assert np.all(np.diff(Is) > 0)
    assert Is[2] > 1.5 * de.max_mutual_information(2)  # at x*, the exact I is ~2× the NLO maximum 1/1014


def test_metric_samples_information_is_consistent_with_the_exact_law():
    """Samples of s drawn from the exact deep-linear law: the binned-sample estimator agrees within its SE."""
    n, S = 16, 20_000
    rng = np.random.default_rng(3)
    s = rng.chisquare(n, size=(S, 2)).prod(axis=1) / n**2  # two hidden layers, C_W = 1, K¹ = 1
    est = ie.metric_samples_information(s, (2, 2), blocks=16)
    exact = ie.mixture_mutual_information(ie.exact_mixture("linear", [n, n]), 2, 2)
    assert abs(est.z(exact)) < Z_MAX, (est, exact)
    assert est.stderr < 0.1 * exact


def test_exact_entropy_matches_A66():
    """𝒮_m of the exact law vs (A.66): the residual is O(x⁴) (ratio ≈ 16 between x and x/2)."""
    res = []
    for n in (256, 512):
        mix = ie.exact_mixture("linear", [n])
        res.append(ie.mixture_entropy(mix, 3) - info.finite_width_entropy(3, mix.x, G=mix.G))
    assert math.log(res[0] / res[1]) / math.log(2) == pytest.approx(4.0, abs=0.3)


def test_exact_information_bad_input():
    with pytest.raises(de.DeepEFTInputError, match="24"):
        ie.exact_mixture("relu", [8])
    with pytest.raises(de.DeepEFTInputError, match="metric_samples_information"):
        ie.exact_mixture("tanh", [64])
    with pytest.raises(de.DeepEFTInputError, match="> 0"):
        ie.scale_mixture([1.0, 0.0])
    with pytest.raises(de.DeepEFTInputError, match="constant"):
        ie.metric_samples_information(np.ones(100))
    with pytest.raises(de.DeepEFTInputError, match="2 .mutual. or 3"):
        ie.metric_samples_information(np.arange(1.0, 101.0), (1, 1, 1, 1))


@pytest.mark.slow
def test_kraskov_estimate_on_raw_outputs_agrees_with_the_mixture_information():
    """Model-free cross-check of the scale-mixture route: the Kraskov–Stögbauer–Grassberger k-NN estimator
    (algorithm 1, k = 4) on raw outputs z₁, z₂ of 24 000 deep narrow tanh networks (n = 4, L = 10) agrees with the exact
    information of the same networks' empirical Ĝ^(L) law (|z| < 5, the KSG error from 10 independent blocks)."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    from deepeft.simulate.metric_cumulants import stochastic_metric_samples

    net = de.MLP(input_dim=2, widths=[4] * 9, output_dim=2, activation="tanh", C_W=1.0)
    x = np.array([1.0, 1.0])
    S = 24_000
    ens = de.sample_ensemble(net, x[None], S, seed=5, keep_preactivations=(S, 2), vertex=False, progress=False)
    z = np.asarray(ens.preactivations[-1][:, 0, :], dtype=np.float64)  # (S, 2) output neurons of each network

    def ksg(a, k=4):
        n = a.shape[0]
        eps = cKDTree(a).query(a, k + 1, p=np.inf)[0][:, -1]
        nx = cKDTree(a[:, :1]).query_ball_point(a[:, :1], eps - 1e-12, p=np.inf, return_length=True) - 1
        ny = cKDTree(a[:, 1:]).query_ball_point(a[:, 1:], eps - 1e-12, p=np.inf, return_length=True) - 1
        return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))

    blocks = np.array([ksg(b) for b in np.array_split(z, 10)])  # for the error only: KSG's bias falls with the sample
    I_knn, se_knn = ksg(z), blocks.std(ddof=1) / math.sqrt(10)
    g = stochastic_metric_samples(net, x, S, seed=5)[:, -1]  # the same networks' Ĝ^(L)
    est = ie.metric_samples_information(g, (1, 1), blocks=16)
    z_score = (I_knn - est.value) / math.hypot(se_knn, est.stderr)
    print(f"KSG {I_knn:.5f} ± {se_knn:.5f}, mixture {est}, z = {z_score:.2f}")
    assert abs(z_score) < Z_MAX, (I_knn, se_knn, est)
    assert est.value > 5 * est.stderr  # a resolved, non-trivial information
