"""Closed-form and cross-check tests of deepeft.lattice theory (digest shared/spec/lattice-field-theory.md).

Independent paths: digest numbers (Figs. 1, 3–6), exact VAR(1) of the conditional chain, autodiff
Hessians of the energies (12)/(85) ("auto-Laplace"), dense ring inversions vs FFT, and −log p of the
Gaussian chain evaluated with scipy.
"""

import math

import numpy as np
import pytest
from scipy import stats

import deepeft.lattice as dl
from deepeft.errors import DeepEFTInputError

SB = 0.01
N = 200


# -- mean field (Fig. 1) and saddles (Figs. 3, 5) ---------------------------------------------


@pytest.mark.parametrize("sw,q,ulp", [(0.1, 0.0011108, 1e-7), (0.5, 0.001992, 1e-6), (0.9, 0.00868, 1e-5), (1.5, 0.2902, 1e-4)])
def test_fig1_meanfield_fixed_points(sw, q, ulp):
    """Digest values (printed to the last digit shown): tanh, σ_b² = 0.001, |x|²/n_0 = 1."""
    assert dl.fixed_point("tanh", sw, 0.001) == pytest.approx(q, abs=ulp / 2)


def test_meanfield_closed_forms_and_trajectory():
    assert dl.fixed_point("linear", 0.9, SB) == pytest.approx(SB / 0.1, rel=1e-12)
    assert dl.fixed_point("relu", 1.3, SB) == pytest.approx(SB / (1 - 0.65), rel=1e-12)
    q = dl.q_trajectory("linear", 0.5, SB, 60)
    assert q[0] == pytest.approx(0.5 + SB)
    assert q[-1] == pytest.approx(SB / 0.5, rel=1e-12)
    np.testing.assert_allclose(dl.predicted_norms("linear", 0.5, SB, N, 3), np.sqrt(N * q[:3]))
    assert dl.factorial_variance("linear", 0.5, SB) == pytest.approx(0.01)


@pytest.mark.parametrize("sw,r", [(0.02, 1.42857), (0.5, 2.0), (0.9, 4.47214), (0.98, 10.0)])
def test_fig3_linear_saddle(sw, r):
    # N σ_b² = 2: r* = √(2/Δ_w)  (13)
    assert dl.saddle_linear(sw, 2.0 / N, N) == pytest.approx(r, rel=1e-5)


@pytest.mark.parametrize("sw,r", [(0.02, 1.00504), (0.66, 1.22169), (1.3, 1.69031), (1.94, 5.77350)])
def test_fig5_relu_saddle(sw, r):
    s = dl.saddle_relu(sw, 2.0 / N, N)
    assert s.r_plus == s.r_minus == pytest.approx(r, rel=1e-5)
    assert s.k == N / 2


@pytest.mark.parametrize("act,sw,sb", [("linear", 0.9, SB), ("relu", 1.3, SB), ("tanh", 1.5, 0.001), ("erf", 0.7, 0.05)])
def test_numeric_saddle_is_meanfield_fixed_point(act, sw, sb):
    """Two independent paths: minimiser of the uniform energy vs brentq on the q-map."""
    assert dl.saddle_numeric(act, sw, sb, N) == pytest.approx(math.sqrt(N * dl.fixed_point(act, sw, sb)), rel=1e-7)


def test_numeric_saddle_matches_analytic():
    assert dl.saddle_numeric("linear", 0.9, SB, N) == pytest.approx(dl.saddle_linear(0.9, SB, N), rel=1e-7)
    # full norm r* = √2 r*_± for ReLU (k* = N/2)
    assert dl.saddle_numeric("relu", 1.3, SB, N) == pytest.approx(math.sqrt(2) * dl.saddle_relu(1.3, SB, N).r_plus, rel=1e-7)


def test_validity_domains_raise():
    for call in (
        lambda: dl.saddle_linear(1.0, SB, N),
        lambda: dl.saddle_relu(2.0, SB, N),
        lambda: dl.quadratic_theory("linear", 1.2, SB, N),
        lambda: dl.quadratic_theory("relu", 2.5, SB, N),
        lambda: dl.saddle_numeric("linear", 1.0, SB, N),
        lambda: dl.fixed_point("linear", 1.0, SB),
        lambda: dl.saddle_linear(0.5, 0.0, N),
    ):
        with pytest.raises(DeepEFTInputError):
            call()
    with pytest.raises(DeepEFTInputError, match="Did you mean"):
        dl.quadratic_theory("relux", 1.0)
    with pytest.raises(DeepEFTInputError, match="coefficients"):
        dl.quadratic_theory("relu", 1.0, coefficients="paper")


# -- linear fluctuations (Fig. 4) -------------------------------------------------------------


@pytest.mark.parametrize(
    "sw,s0,spi,var", [(0.5, 0.04, 0.0044444, 0.013333), (0.9, 5.0, 0.013850, 0.26316), (0.98, 625.0, 0.063769, 6.3131)]
)
def test_fig4_linear_spectrum_numbers(sw, s0, spi, var):
    th = dl.quadratic_theory("linear", sw, SB, N)
    S = dl.spectrum(th, [0.0, np.pi])
    np.testing.assert_allclose(S, [s0, spi], rtol=2e-4)
    np.testing.assert_allclose(dl.linear_spectrum(sw, SB, [0.0, np.pi]), [s0, spi], rtol=2e-4)
    assert dl.lagged_covariance(th, 0)[0] == pytest.approx(var, rel=2e-4)
    assert dl.linear_lagged_covariance(sw, SB, 0) == pytest.approx(var, rel=2e-4)


def test_linear_lagged_and_ring_paths_agree():
    th = dl.quadratic_theory("linear", 0.8, SB, N)
    d = np.arange(12)
    np.testing.assert_allclose(dl.lagged_covariance(th, 11), dl.linear_lagged_covariance(0.8, SB, d), rtol=1e-12)
    # ring: dense inverse of the circulant precision (14) == inverse FFT of S(q_n); ring != infinite chain
    L = 10
    C = dl.covariance_matrix(th, L, ring=True)
    ring = dl.lagged_covariance(th, L - 1, ring_L=L)
    np.testing.assert_allclose(C[0], ring, rtol=1e-10)
    inf = dl.linear_lagged_covariance(0.8, SB, np.arange(L))
    assert abs(ring[0] / inf[0] - 1) > 0.05  # σ_w^{2L} wrap-around is visible at L = 10
    alias = sum(dl.linear_lagged_covariance(0.8, SB, np.arange(L) + m * L) for m in range(-40, 41) if m)
    np.testing.assert_allclose(ring, inf + alias, rtol=1e-10)
    # open chain window: Toeplitz of the infinite chain
    Co = dl.covariance_matrix(th, 6, ring=False)
    np.testing.assert_allclose(Co[2, 2:], inf[:4], rtol=1e-12)
    np.testing.assert_allclose(dl.precision_matrix(th, 6, ring=False) @ Co, np.eye(6), atol=1e-9)


def test_printed_vs_verified_linear_E1():
    v = dl.quadratic_theory("linear", 0.9, SB, N)
    p = dl.quadratic_theory("linear", 0.9, SB, N, coefficients="printed")
    q = np.linspace(0, np.pi, 5)
    np.testing.assert_allclose(dl.spectrum(p, q), 2 * dl.spectrum(v, q), rtol=1e-12)


def test_expected_periodogram_tends_to_spectrum():
    th = dl.quadratic_theory("linear", 0.9, SB, N)
    for W, tol in ((64, 0.4), (4096, 0.01)):
        P = dl.expected_periodogram(th, W)
        S = dl.spectrum(th, 2 * np.pi * np.arange(W) / W)
        assert np.max(np.abs(P[1:] / S[1:] - 1)) < tol
    # exact identity: mean of the periodogram over modes equals C(0) (Parseval)
    assert dl.expected_periodogram(th, 64).mean() == pytest.approx(dl.lagged_covariance(th, 0)[0], rel=1e-12)


# -- ReLU fluctuations (Fig. 6) ---------------------------------------------------------------


@pytest.mark.parametrize("sw,V,C,s0,spi", [(0.66, 1.40276, -0.09724, 2.7846, 0.70665), (1.3, 2.16450, 0.66450, 10.204, None)])
def test_fig6_relu_numbers(sw, V, C, s0, spi):
    th = dl.quadratic_theory("relu", sw, SB, N)
    C0 = dl.lagged_covariance(th, 0)[0]
    np.testing.assert_allclose(C0, dl.relu_covariance(sw, 0), atol=1e-12)
    assert C0[0, 0] == pytest.approx(V, rel=2e-5) and C0[1, 1] == pytest.approx(V, rel=2e-5)
    assert C0[0, 1] == pytest.approx(C, rel=2e-4)
    np.testing.assert_allclose([C0[0, 2], C0[1, 2], C0[2, 2]], [-0.25, 0.25, 0.25], atol=1e-12)
    S = dl.spectrum(th, [0.0, np.pi])
    assert S[0, 0, 0].real == pytest.approx(s0, rel=2e-4)
    if spi is not None:
        assert S[1, 0, 0].real == pytest.approx(spi, rel=2e-4)
    for d in (1, 2, 5):
        np.testing.assert_allclose(dl.lagged_covariance(th, d)[d], dl.relu_covariance(sw, d), atol=1e-12)


@pytest.mark.parametrize("model,sw", [("linear", 0.5), ("linear", 0.9), ("relu", 0.66), ("relu", 1.3)])
def test_three_paths_to_the_precision(model, sw):
    """verified coefficients == exact VAR(1) precision blocks == autodiff Hessian of (12)/(85) (E1, E6)."""
    th = dl.quadratic_theory(model, sw, SB, N)
    A, Q = dl.var_model(model, sw, SB)
    Qi = np.linalg.inv(Q)
    np.testing.assert_allclose(th.D0, Qi + A.T @ Qi @ A, atol=1e-10 * np.abs(th.D0).max())
    np.testing.assert_allclose(th.B, -Qi @ A, atol=1e-10 * np.abs(th.D0).max())
    auto, H = dl.auto_laplace(model, sw, SB, N, L_ring=6)
    np.testing.assert_allclose(auto.D0, th.D0, rtol=1e-8, atol=1e-8 * np.abs(th.D0).max())
    np.testing.assert_allclose(auto.B, th.B, rtol=1e-8, atol=1e-8 * np.abs(th.D0).max())
    np.testing.assert_allclose(H, dl.precision_matrix(th, 6), atol=1e-8 * np.abs(th.D0).max())
    # VAR spectrum (I − A e^{−iq})⁻¹ Q (I − Aᵀ e^{iq})⁻¹ equals P̂(q)⁻¹
    q = np.linspace(0.1, 3.0, 4)
    for qq, S in zip(q, np.asarray(dl.spectrum(th, q)).reshape(4, th.b, th.b)):
        Ri = np.linalg.inv(np.eye(th.b) - A * np.exp(-1j * qq))
        np.testing.assert_allclose(S, Ri @ Q @ Ri.conj().T, atol=1e-10 * np.abs(S).max())


def test_printed_relu_coefficients_E6_differ():
    p = dl.quadratic_theory("relu", 0.66, SB, N, coefficients="printed")
    auto, _ = dl.auto_laplace("relu", 0.66, SB, N)
    assert p.D0[2, 2] == 3.0 and auto.D0[2, 2] == pytest.approx(6.0, rel=1e-8)
    assert p.D0[0, 2] == 0.5 and auto.D0[0, 2] == pytest.approx(1.0, rel=1e-8)
    # printed Var(ε̃_k) is not the exact 1/4 (Var k = N/4 for Binomial(N, 1/2))
    assert abs(dl.lagged_covariance(p, 0)[0, 2, 2] - 0.25) > 0.1


def test_correlation_lengths():
    for sw in (0.5, 0.9, 0.98):
        th = dl.quadratic_theory("linear", sw, SB, N)
        assert dl.lattice_correlation_length(th) == pytest.approx(-1 / math.log(sw), rel=1e-9)
        assert dl.eft_correlation_length(th) == pytest.approx(math.sqrt(sw) / (1 - sw), rel=1e-9)  # (17)
    for sw in (0.66, 1.3):
        th = dl.quadratic_theory("relu", sw, SB, N)
        assert dl.lattice_correlation_length(th) == pytest.approx(-1 / math.log(sw / 2), rel=1e-9)
    # EFT and lattice lengths converge near criticality (linear)
    th = dl.quadratic_theory("linear", 0.99, SB, N)
    assert dl.eft_correlation_length(th) / dl.lattice_correlation_length(th) == pytest.approx(1, abs=1e-4)


# -- EFT ----------------------------------------------------------------------------------------


def test_eft_linear_coefficients_16():
    sw = 0.9
    e = dl.eft(dl.quadratic_theory("linear", sw, SB, N))
    # U = (Δ/σ_b²) ∫ [Δ² ε² + σ_w² (∂ε)²] = ½ ∫ [M ε² + K (∂ε)²]
    assert e.M[0, 0] == pytest.approx(2 * (1 - sw) / SB * (1 - sw) ** 2)
    assert e.K[0, 0] == pytest.approx(2 * (1 - sw) / SB * sw)
    assert not np.any(e.G)


def test_eft_relu_coefficients_E7():
    sw = 1.3
    e = dl.eft(dl.quadratic_theory("relu", sw, SB, N))
    # ½∫[(1 − σ_w² + σ_w⁴/2)ε+² + ε−² + 6εk² + 2εk(ε+ − ε−) − σ_w² ε+ε− + ½σ_w²(∂ε+)² + ½σ_w² ∂ε+∂ε− + σ_w² (∂ε+)ε−]
    M = np.array([[1 - sw + sw**2 / 2, -sw / 2, 1], [-sw / 2, 1, -1], [1, -1, 6]])
    np.testing.assert_allclose(e.M, M, atol=1e-14)
    assert e.K[0, 0] == pytest.approx(sw / 2) and 2 * e.K[0, 1] == pytest.approx(sw / 2)
    assert e.G[0, 1] - e.G[1, 0] == pytest.approx(sw)  # (∂x)ᵀGx = σ_w² (∂ε+) ε− after integration by parts


@pytest.mark.parametrize("model,sw", [("linear", 0.9), ("relu", 0.66), ("relu", 1.3)])
def test_eft_is_small_q_limit_of_lattice(model, sw):
    th = dl.quadratic_theory(model, sw, SB, N)
    err = dl.eft_lattice_comparison(th, [0.08, 0.04, 0.02, 0.01])
    assert np.all(np.diff(err) < 0) and err[-1] < 1e-5
    assert err[-2] / err[-1] > 6  # at least ~O(q³)


def test_symmetry_report():
    lin = dl.symmetry_report(dl.quadratic_theory("linear", 0.9, SB, N))
    assert lin["parity (x -> -x)"] and lin["single-field flips"] == {"eps": True}
    rel = dl.symmetry_report(dl.quadratic_theory("relu", 1.3, SB, N))
    assert not rel["parity (x -> -x)"]
    assert not any(rel["single-field flips"].values())


# -- energies ------------------------------------------------------------------------------------


def test_energy_chain_is_minus_log_p():
    """(9): E = −log p of z^l | z^{l−1} ~ N(0, Σ^l ⊗ I) + (N P L/2) log 2π, for arbitrary z (tanh, P = 2)."""
    rng = np.random.default_rng(0)
    L, P, Nn, n0 = 5, 2, 7, 3
    X = rng.normal(size=(P, n0))
    sw, sb = 1.7, 0.05
    for _ in range(3):
        z = rng.normal(size=(L, P, Nn)) * 0.8
        logp = 0.0
        S = sw * X @ X.T / n0 + sb
        for l in range(L):
            logp += stats.multivariate_normal(np.zeros(P), S).logpdf(z[l].T).sum()
            h = np.tanh(z[l])
            S = sw * h @ h.T / Nn + sb
        E = dl.energy_chain(z, X, "tanh", sw, sb)
        assert E + logp == pytest.approx(-Nn * P * L / 2 * math.log(2 * math.pi), rel=1e-12)
    # single input (10) is the P = 1 case
    z1 = rng.normal(size=(L, Nn))
    assert dl.energy_single(z1, X[0], "tanh", sw, sb) == pytest.approx(dl.energy_chain(z1[:, None], X[:1], "tanh", sw, sb))


def test_ring_radial_and_relu_field_energies_are_consistent():
    rng = np.random.default_rng(1)
    L, Nn, sw, sb = 6, 11, 0.7, 0.02
    z = rng.normal(size=(L, Nn))
    r = np.linalg.norm(z, axis=1)
    # (12) = (11) − N Σ_l log r^l  (radial Jacobian r^N, "N − 1 → N")
    radial = dl.energy_ring(z, "linear", sw, sb) - Nn * np.log(r).sum()
    assert dl.energy_linear_radial(r, sw, sb, Nn) == pytest.approx(radial, rel=1e-12)
    # (85) = (11)_ReLU + ½Σ[3(N−k)ln(N−k) + 3k ln k − 2(N−k) ln r+ − 2k ln r−], k = # negative components (E4)
    rp = np.linalg.norm(np.maximum(z, 0), axis=1)
    rm = np.linalg.norm(np.minimum(z, 0), axis=1)
    k = (z < 0).sum(1).astype(float)
    extra = 0.5 * np.sum(3 * (Nn - k) * np.log(Nn - k) + 3 * k * np.log(k) - 2 * (Nn - k) * np.log(rp) - 2 * k * np.log(rm))
    assert dl.energy_relu_fields(rp, rm, k, sw, sb, Nn) == pytest.approx(dl.energy_ring(z, "relu", sw, sb) + extra, rel=1e-12)


def test_uniform_energy_density_matches_radial_energy():
    sw, L = 0.6, 5
    for q in (0.01, 0.025, 0.1):
        E = dl.energy_linear_radial(np.full(L, math.sqrt(N * q)), sw, SB, N)
        uniform = L * float(dl.uniform_energy_density(q, "linear", sw, SB, N)) - L * N / 2 * math.log(N)
        assert E == pytest.approx(uniform, rel=1e-12)


def test_energy_input_validation():
    with pytest.raises(DeepEFTInputError):
        dl.energy_relu_fields([1.0, 1.0], [1.0, 1.0], [0.0, 3.0], 1.0, SB, 10)
    with pytest.raises(DeepEFTInputError):
        dl.energy_chain(np.zeros((3, 2, 4)), np.ones((1, 3)), "tanh", 1.0, SB)
