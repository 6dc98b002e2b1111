"""Frozen-NTK gradient descent at infinite width (book Ch. 10): (10.24)–(10.49), (10.118)–(10.141)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepeft as de
from conftest import TOL, assert_close
from deepeft import DeepEFTInputError
from deepeft.theory.kernel_learning import (
    gd_from_kernels,
    kernel_regression,
    max_stable_eta,
    newton_step,
    ridge_regression,
)

NET = de.MLP(3, [32] * 3, 2, "tanh", C_b=0.1, C_W=1.1, lambda_b=1.0, lambda_W=1.0)


def _data(N=9, M=4, n0=3, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, n0)), rng.standard_normal((N, n_out)), rng.standard_normal((M, n0))


def _blocks(net, X, XB):
    K, T = de.kernel_and_ntk(net, np.concatenate([X, XB]))
    N = len(X)
    K, T = K[-1], T[-1]
    return T[:N, :N], T[N:, :N], K[:N, :N], K[N:, :N], K[N:, N:], K, T


def _explicit_gd(K, T, N, Y, eta, steps):
    """Reference: iterate z ← z − ηΘ_{·𝒜}(z_𝒜 − y) on the affine map z(t) = B_t z(0) + c_t, z(0) ~ N(0, K)."""
    D = K.shape[0]
    B, c = np.eye(D), np.zeros((D, Y.shape[1]))
    out = {}
    for s in range(max(steps) + 1):
        if s in steps:
            out[s] = (c[N:].copy(), (B @ K @ B.T)[N:, N:].copy(), c[:N].copy())
        err_B, err_c = B[:N], c[:N] - Y
        B = B - eta * T[:, :N] @ err_B
        c = c - eta * T[:, :N] @ err_c
    return out


def test_discrete_steps_equal_explicit_iteration():
    X, Y, XB = _data()
    Tt, _Tx, _Kt, _Kx, Kb, K, T = _blocks(NET, X, XB)
    eta = 0.5 * max_stable_eta(Tt)
    steps = [0, 1, 2, 5, 17]
    pred = de.gd_prediction(NET, X, Y, XB, np.array(steps), eta=eta)
    ref = _explicit_gd(K, T, len(X), Y, eta, steps)
    for i, s in enumerate(steps):
        np.testing.assert_allclose(pred.mean[i], ref[s][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(pred.cov[i], ref[s][1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(pred.train_mean[i], ref[s][2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pred.cov[0], Kb, rtol=1e-12)  # t = 0: the prior
    one = de.gd_prediction(NET, X, Y, XB, 1, eta=eta)  # t = 1 alone: X_1 = Aᵀ − ηΘ_ℬ𝒜C, no eigenvector GEMM
    np.testing.assert_allclose(one.cov, ref[1][1], rtol=1e-9, atol=1e-12)
    # oscillating modes (ηλ > 1) too: η = 1.9/λ_max
    eta2 = 0.95 * max_stable_eta(Tt)
    p2 = de.gd_prediction(NET, X, Y, XB, 3, eta=eta2)
    r2 = _explicit_gd(K, T, len(X), Y, eta2, [3])[3]
    np.testing.assert_allclose(p2.mean, r2[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p2.cov, r2[1], rtol=1e-8, atol=1e-12)


def test_gradient_flow_equals_small_step_limit_and_expm():
    from scipy.linalg import expm

    X, Y, XB = _data()
    Tt, Tx, Kt, Kx, Kb, _K, _T = _blocks(NET, X, XB)
    tau = 0.7
    flow = de.gd_prediction(NET, X, Y, XB, tau)
    E = expm(-Tt * tau)
    Mt = Tx @ np.linalg.solve(Tt, np.eye(len(X)) - E)
    np.testing.assert_allclose(flow.mean, Mt @ Y, rtol=1e-9)
    cov = Kb - Mt @ Kx.T - Kx @ Mt.T + Mt @ Kt @ Mt.T
    np.testing.assert_allclose(flow.cov, cov, rtol=1e-8, atol=1e-12)
    # GD with η → 0 at t = τ/η steps approaches the flow (error O(η))
    errs = []
    for n in (100, 1000):
        g = de.gd_prediction(NET, X, Y, XB, n, eta=tau / n)
        errs.append(np.abs(g.mean - flow.mean).max())
    assert errs[1] < errs[0] / 5


def test_infinite_time_is_kernel_prediction_10_40_10_41():
    X, Y, XB = _data()
    Tt, Tx, Kt, Kx, Kb, _K, _T = _blocks(NET, X, XB)
    inf = de.gd_prediction(NET, X, Y, XB, np.inf)
    G = Tx @ np.linalg.inv(Tt)  # test-only reference
    np.testing.assert_allclose(inf.mean, G @ Y, rtol=1e-9)  # (10.40)
    ref_cov = Kb - G @ Kx.T - Kx @ G.T + G @ Kt @ G.T  # (10.41)
    np.testing.assert_allclose(inf.cov, ref_cov, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(inf.train_mean, Y, atol=1e-10)  # memorized (10.14)
    assert inf.train_loss == pytest.approx(0.0, abs=1e-18)
    # the limits: long flow and many steps converge to it
    late = de.gd_prediction(NET, X, Y, XB, 1e7)
    np.testing.assert_allclose(late.mean, inf.mean, rtol=1e-6, atol=1e-8)
    eta = 0.9 * max_stable_eta(Tt)
    many = de.gd_prediction(NET, X, Y, XB, 10**7, eta=eta)
    np.testing.assert_allclose(many.cov, inf.cov, rtol=1e-5, atol=1e-8)


def test_newton_one_step_equals_end_of_training():
    """(10.31): one Newton step per realization; its ensemble mean/cov are (10.40)/(10.41)."""
    X, Y, XB = _data()
    Tt, Tx, _Kt, _Kx, _Kb, K, _T = _blocks(NET, X, XB)
    rng = np.random.default_rng(1)
    z0 = np.linalg.cholesky(K + 1e-12 * np.eye(len(K))) @ rng.standard_normal((len(K), 2))
    N = len(X)
    zB = newton_step(Tt, Tx, z0[:N], z0[N:], Y)
    # equals gd at t = inf for this realization: z_B − M_∞(z_A − y)
    np.testing.assert_allclose(zB, z0[N:] - Tx @ np.linalg.solve(Tt, z0[:N] - Y), rtol=1e-9)
    # zero initial outputs: the mean prediction
    np.testing.assert_allclose(
        newton_step(Tt, Tx, 0 * z0[:N], 0 * z0[N:], Y), de.gd_prediction(NET, X, Y, XB, np.inf).mean, rtol=1e-9
    )


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_last_layer_only_equals_bayes(noise):
    """(10.44)–(10.49): λ = C at ℓ = L, 0 below ⇒ Θ^{(L)} = K^{(L)}; GD at t = ∞ ≡ NNGP posterior (also with noise)."""
    X, Y, XB = _data()
    ll = de.last_layer_only(NET)
    K, T = de.kernel_and_ntk(ll, X)
    np.testing.assert_allclose(T[-1], K[-1], rtol=1e-13)
    assert np.all(T[:-1] == 0)
    g = de.gd_prediction(ll, X, Y, XB, np.inf, noise=noise)
    p = de.nngp_posterior(NET, X, Y, XB, noise=noise)
    np.testing.assert_allclose(g.mean, p.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g.cov, p.cov, rtol=1e-7, atol=1e-10)


def test_multi_output_columns_are_independent():
    X, Y, XB = _data(n_out=3)
    net = NET.replace(output_dim=3)
    both = de.gd_prediction(net, X, Y, XB, [1.0, 3.0])
    one = de.gd_prediction(net.replace(output_dim=1), X, Y[:, 1], XB, [1.0, 3.0])
    np.testing.assert_allclose(both.mean[..., 1], one.mean[..., 0], rtol=1e-12)
    np.testing.assert_allclose(both.cov, one.cov, rtol=1e-12)
    assert both.mean.shape == (2, 4, 3) and both.cov.shape == (2, 4, 4)


def test_ridge_and_kernel_regression_10_124_10_132():
    """Feature-space ridge (10.123)–(10.125) = kernel ridge with k = φφᵀ; a → 0⁺ gives kernel regression (10.132)."""
    rng = np.random.default_rng(4)
    phiA, phiB = rng.standard_normal((6, 20)), rng.standard_normal((3, 20))
    Y = rng.standard_normal((6, 2))
    kA, kBA = phiA @ phiA.T, phiB @ phiA.T
    for a in (1.0, 1e-3):
        np.testing.assert_allclose(ridge_regression(phiA, phiB, Y, a), kernel_regression(kA, kBA, Y, 2 * a), rtol=1e-8)
    exact = kernel_regression(kA, kBA, Y)  # overparameterized (n_f = 20 > N = 6): k̃ invertible
    e2, e4 = (np.abs(ridge_regression(phiA, phiB, Y, a) - exact).max() for a in (1e-2, 1e-4))
    assert e4 < 0.02 * e2 and e4 < 1e-3  # a → 0⁺: the error falls ∝ a
    # GD with noise at t = ∞ is kernel ridge regression with ridge σ²
    X, Yd, XB = _data()
    Tt, Tx, *_ = _blocks(NET, X, XB)
    g = de.gd_prediction(NET, X, Yd, XB, np.inf, noise=0.3)
    np.testing.assert_allclose(g.mean, kernel_regression(Tt, Tx, Yd, 0.3), rtol=1e-9)


def test_duplicate_training_inputs():
    """Zero noise + duplicates: finite t works (no Θ̃⁻¹ needed), t = ∞ raises one clear error."""
    X, Y, XB = _data()
    X2, Y2 = np.concatenate([X, X[:1]]), np.concatenate([Y, Y[:1]])
    g = de.gd_prediction(NET, X2, Y2, XB, [0.5, 2.0])
    ref = de.gd_prediction(NET, X, Y, XB, [0.5, 2.0])
    assert np.all(np.isfinite(g.cov)) and np.linalg.eigvalsh(g.cov[1]).min() > -1e-10
    assert not np.allclose(g.mean, ref.mean)  # the duplicate counts twice in the loss
    with pytest.raises(DeepEFTInputError, match="noise > 0"):
        de.gd_prediction(NET, X2, Y2, XB, np.inf)
    ok = de.gd_prediction(NET, X2, Y2, XB, np.inf, noise=1e-6)
    assert np.all(np.isfinite(ok.mean))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t": -1.0}, "t must be >= 0"),
        ({"t": np.nan}, "t must be >= 0"),
        ({"t": 2.5, "eta": 0.01}, "integers"),
        ({"t": 3, "eta": 100.0}, "2/λ_max"),
        ({"t": 3, "eta": -0.1}, "eta must be"),
        ({"t": 1.0, "noise": -0.1}, "noise"),
        ({"t": 1.0, "conventions": "NT"}, "conventions"),
    ],
)
def test_bad_input_one_clear_error(kwargs, match):
    X, Y, XB = _data()
    t = kwargs.pop("t")
    with pytest.raises(DeepEFTInputError, match=match):
        de.gd_prediction(NET, X, Y, XB, t, **kwargs)


def test_eta_error_names_the_largest_stable_eta():
    X, Y, XB = _data()
    Tt = de.frozen_ntk(NET, X)[-1]
    lim = 2.0 / np.linalg.eigvalsh(Tt)[-1]
    with pytest.raises(DeepEFTInputError, match=f"{lim:.6g}"):
        de.gd_prediction(NET, X, Y, XB, 5, eta=lim)  # η = 2/λ_max itself is not stable
    de.gd_prediction(NET, X, Y, XB, 5, eta=0.999 * lim)


def test_shapes_and_nan_inputs():
    X, Y, XB = _data()
    with pytest.raises(DeepEFTInputError, match="rows"):
        de.gd_prediction(NET, X, Y[:3], XB, 1.0)
    with pytest.raises(DeepEFTInputError, match="NaN"):
        de.gd_prediction(NET, X, np.where(Y > 0.5, np.inf, Y), XB, 1.0)
    with pytest.raises(DeepEFTInputError, match="NaN or inf"):
        de.gd_prediction(NET, X, Y, np.where(XB > 0.5, np.nan, XB), 1.0)
    with pytest.raises(DeepEFTInputError, match="shape"):
        gd_from_kernels(np.eye(3), np.ones((2, 4)), np.eye(3), np.ones((2, 3)), np.eye(2), np.ones(3), 1.0)


_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _problem(draw):
    seed = draw(st.integers(0, 10_000))
    N = draw(st.integers(2, 8))
    M = draw(st.integers(1, 5))
    rng = np.random.default_rng(seed)
    D = N + M
    F = rng.standard_normal((D, D + 2))
    K = F @ F.T / D
    G = rng.standard_normal((D, D + 3))
    T = G @ G.T / D + 0.1 * K
    Y = rng.standard_normal((N, 2))
    return K, T, N, Y


@_SETTINGS
@given(_problem(), st.floats(0.05, 0.99), st.lists(st.integers(0, 200), min_size=1, max_size=5))
def test_property_psd_cov_and_monotone_training_loss(problem, frac, steps):
    """Hypothesis: covariances are PSD at every t; the expected training loss is non-increasing for η < 2/λ_max."""
    K, T, N, Y = problem
    eta = frac * max_stable_eta(T[:N, :N])
    ts = np.array(sorted(set(steps)))
    p = gd_from_kernels(T[:N, :N], T[N:, :N], K[:N, :N], K[N:, :N], K[N:, N:], Y, ts, eta=eta)
    scale = np.abs(K).max()
    for c in p.cov:
        assert np.linalg.eigvalsh(c).min() > -1e-9 * scale
    assert np.all(np.diff(p.train_loss) <= 1e-10 * (1 + p.train_loss[0]))
    ref = _explicit_gd(np.asarray(K), np.asarray(T), N, Y, eta, [int(ts[-1])])[int(ts[-1])]
    np.testing.assert_allclose(p.mean[-1], ref[0], rtol=1e-6, atol=1e-8 * (1 + np.abs(ref[0]).max()))


def test_gd_covariance_is_bayes_posterior_plus_psd_excess():
    """cov_t = 𝕂 + X_t X_tᵀ: the prediction carries the NNGP posterior of the same kernels (and noise)."""
    X, Y, XB = _data()
    g = de.gd_prediction(NET, X, Y, XB, [0.3, 4.0], noise=0.1)
    p = de.nngp_posterior(NET, X, Y, XB, noise=0.1)
    np.testing.assert_allclose(g.posterior.mean, p.mean, rtol=1e-12)
    np.testing.assert_allclose(g.posterior.cov, p.cov, rtol=1e-12, atol=1e-15)
    assert g.posterior.log_evidence == pytest.approx(p.log_evidence, rel=1e-13)
    for c in g.cov:
        assert np.linalg.eigvalsh(c - p.cov).min() > -1e-12


def test_many_times_in_one_call_equal_separate_calls():
    """Late times share converged modes with the latest one (delta update): same numbers as one call per t."""
    X, Y, XB = _data()
    ts = np.array([0.0, 5.0, 1e6, 1e7, np.inf, 30.0])
    both = de.gd_prediction(NET, X, Y, XB, ts)
    for i, t in enumerate(ts):
        one = de.gd_prediction(NET, X, Y, XB, t)
        np.testing.assert_allclose(both.mean[i], one.mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(both.cov[i], one.cov, rtol=1e-9, atol=1e-13)
    Tt = de.frozen_ntk(NET, X)[-1]
    eta = 0.5 * max_stable_eta(Tt)
    steps = np.array([3, 10**6, 10**5, 7])
    many = de.gd_prediction(NET, X, Y, XB, steps, eta=eta)
    for i, t in enumerate(steps):
        np.testing.assert_allclose(many.cov[i], de.gd_prediction(NET, X, Y, XB, int(t), eta=eta).cov, rtol=1e-9, atol=1e-13)


def _designed_problem(N=60, M=5, seed=3):
    """Θ̃ = Q diag(λ) Qᵀ with a known spectrum λ = logspace(−3, 1, N), and a valid joint K over 𝒜 ∪ ℬ."""
    rng = np.random.default_rng(seed)
    lam = np.logspace(-3, 1, N)
    Q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    Tt = (Q * lam) @ Q.T
    Tt = 0.5 * (Tt + Tt.T)
    Tx = rng.standard_normal((M, N)) / np.sqrt(N)
    G = rng.standard_normal((N + M, N + M + 8))
    K = G @ G.T / (N + M) + 0.1 * np.eye(N + M)
    Y = rng.standard_normal((N, 2))
    return lam, Q, Tt, Tx, K[:N, :N], K[N:, :N], K[N:, N:], Y


def _reference_cov(lam, Q, f, Tx, Kt, Kx, Kb):
    """cov_t = K_ℬℬ − PF K_ℬ𝒜ᵀ − K_ℬ𝒜 PFᵀ + PF K̃ PFᵀ, PF = Θ_ℬ𝒜 Q diag(f_t) Qᵀ, from the known Q, λ (no eigh)."""
    PF = (Tx @ Q * f) @ Q.T
    cross = PF @ Kx.T
    return Kb - cross - cross.T + PF @ Kt @ PF.T


@pytest.mark.parametrize("mode", ["flow", "steps"])
def test_covariance_paths_shared_delta_and_full_equal_the_direct_form(mode):
    """Force each covariance path of ``gd_from_kernels`` with a designed spectrum, against the four-term form.

    The latest time has every mode converged (f = 1/λ to the last bit). Of the other times: one has every mode
    converged too (its covariance is shared), one has 64 % (flow) or 82 % (steps, two separate runs of modes: the
    smallest λ and the λ with ηλ near 2) unconverged (a delta update from the latest time), one has none converged
    (a full GEMM), one has 1–10 modes not yet converged (a small delta). The masks are recomputed here, so the
    test sees when the design stops reaching a path."""
    lam, Q, Tt, Tx, Kt, Kx, Kb, Y = _designed_problem()
    N = lam.size
    if mode == "flow":
        eta, ts = None, np.array([1e7, 1e6, 100.0, 0.5, 1e4])
        f = (1.0 - np.exp(-np.outer(ts, lam))) / lam
    else:
        eta, ts = 0.19, np.array([10**7, 10**6, 100, 3, 10**5])
        f = (1.0 - (1.0 - eta * lam) ** ts[:, None]) / lam
    differs = f != f[0]
    assert [int(d.sum()) for d in differs[:2]] == [0, 0]  # the latest time and the shared one
    J = np.flatnonzero(differs[2])
    assert 0.5 * N < J.size < 0.9 * N  # a delta update
    assert (J[-1] - J[0] + 1 == J.size) == (mode == "flow")  # one run of modes (slice) or two (gathered)
    assert differs[3].all()  # the full path
    assert 1 <= differs[4].sum() <= 10  # a delta update of a few modes (a nearly converged time is not "shared")
    pred = gd_from_kernels(Tt, Tx, Kt, Kx, Kb, Y, ts, eta=eta)
    # rounding only: the library's eigh vs the known Q, λ differ by ≲ cond(Θ̃)·ε = 1e4·2.2e-16 relative to the
    # largest entry (measured ≤ 2.1e-13); the other paths re-associate the same numbers (measured ≤ 2.7e-15)
    for i in range(len(ts)):
        ref = _reference_cov(lam, Q, f[i], Tx, Kt, Kx, Kb)
        atol = TOL[np.float64]["exact"] * np.abs(ref).max()  # entries cancel: rounding is relative to the largest
        assert_close(pred.cov[i], ref, "exact", atol=atol)
        one = gd_from_kernels(Tt, Tx, Kt, Kx, Kb, Y, ts[i], eta=eta)  # a single time: always the full path
        assert_close(pred.cov[i], one.cov, "exact", atol=atol)
