"""Dyson-Brownian-motion analysis of deepeft.sgd (seed 002 (4.4)–(4.8), (4.15), appendix B)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.sgd import (
    TeacherStudent,
    boundary_temperature,
    convergence_lhs,
    dbm_analysis,
    drift_and_variance,
    integrate_level_spacing,
    level_spacing,
    per_sample_factors,
    sample_problem,
    spacing_coefficients,
    spacing_rate,
    train_ensemble,
)
from deepeft.sgd.teacher_student import init_params, losses

TINY = TeacherStudent.build((3, 7, 5, 1), "tanh", (2,), n_train=12, n_test=4)


def _direct_K_V(setup, params, frozen, a, y, basis):
    """Per-sample Δ_α = ∂ℓ_α/∂W by autodiff, Δ^X_α = WΔ_αᵀ + Δ_αWᵀ (4.4), rotated, mean and variance."""
    W = np.asarray(params[0]["W"])[:, 0, :].T  # (n2, n1)
    Ds = []
    for i in range(a.shape[0]):
        g = jax.grad(lambda p: losses(setup, p, frozen, a[i : i + 1], y[i : i + 1]).sum())(params)
        D = np.asarray(g[0]["W"])[:, 0, :].T
        Ds.append(W @ D.T + D @ W.T)
    Ds = np.array(Ds)
    X = W @ W.T
    if basis == "X":
        x, U = np.linalg.eigh(X)
    else:
        _, U = np.linalg.eigh(-Ds.mean(0))
        order = np.argsort(np.einsum("ki,kl,li->i", U, X, U))
        U = U[:, order]
    R = np.einsum("ki,akl,lj->aij", U, Ds, U)
    return -R.mean(0), R.var(0)


def _direct_coefficients(K, V):
    """(B.3)–(B.9) written out with the original index j of (B.6)."""
    N = K.shape[0]
    K_S = (K[N - 1, N - 1] - K[0, 0]) / (N - 1)
    V_S = 2 * V[N - 1, 0] / (N - 1) ** 2
    for j in range(2, N):  # j = 2..N−1 (1-based): x_N − x_j = (N − j)S, x_1 − x_j = −(j − 1)S
        V_S += (V[N - 1, j - 1] / (N - j) + V[0, j - 1] / (j - 1)) / (N - 1)
    D_S = (V[0, 0] + V[N - 1, N - 1]) / (2 * (N - 1) ** 2)
    return K_S, V_S, D_S


@pytest.mark.parametrize("basis", ["X", "K"])
def test_K_V_and_spacing_coefficients_against_direct_computation(basis):
    with jax.enable_x64(True):
        prob = sample_problem(TINY, 1, seed=4, dtype=jnp.float64)
        params = init_params(jax.tree.map(lambda x: x[0], prob.init_noise), jnp.asarray([1.5]), TINY)
        frozen = jax.tree.map(lambda x: x[0], prob.frozen)
        a, y = prob.a_train[0], prob.y_train[0]
        u, delta = per_sample_factors(TINY, params, frozen, a, y)
        Wt = params[0]["W"]
        X = jnp.einsum("kpi,kpj->pij", Wt, Wt)[0]
        K, V, x = drift_and_variance(u[:, 0], delta[:, 0], X, basis)
        K_S, V_S, D_S = spacing_coefficients(K, V)
        K_ref, V_ref = _direct_K_V(TINY, params, frozen, a, y, basis)
    if basis == "K":  # eigenvectors of K: off-diagonal drift vanishes
        assert np.max(np.abs(np.asarray(K) - np.diag(np.diag(np.asarray(K))))) < 1e-12
    np.testing.assert_allclose(K, K_ref, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(V, V_ref, rtol=1e-8, atol=1e-13)
    ref = _direct_coefficients(K_ref, V_ref)
    np.testing.assert_allclose([float(K_S), float(V_S), float(D_S)], ref, rtol=1e-9, atol=1e-14)
    assert np.all(np.diff(np.asarray(x)) >= 0)


def test_level_spacing_rate_and_lhs():
    x = np.array([[0.1, 0.4, 1.0], [2.0, 0.0, 1.0]])
    np.testing.assert_allclose(level_spacing(x), [0.45, 1.0])
    np.testing.assert_allclose(spacing_rate(np.e * 2, 2.0, 10.0), 0.1)
    assert np.isnan(spacing_rate(1.0, 1.0, 0.0))
    setup = TeacherStudent.paper()  # (n2 − 1)/(4√r) · T/σ_W² with r = 1/2
    assert convergence_lhs(setup, 0.5, 2.0) == pytest.approx(15 / (4 * np.sqrt(0.5)) * 0.5 / 4)


def test_boundary_temperature():
    T = 2.0 ** np.arange(-3, 3)
    frac = np.array([[1.0, 0.5, 1.0], [1.0, 0.4, 1.0], [0.9, 0.3, 1.0], [0.6, 0.2, 1.0], [0.1, 0.1, 1.0],
                     [0.0, 0.0, 1.0]])
    b = boundary_temperature(frac, T, 0.68)
    w = (0.9 - 0.68) / (0.9 - 0.6)
    assert b[0] == pytest.approx(np.exp(np.log(T[2]) + w * np.log(2.0)))
    assert np.isnan(b[1]) and np.isinf(b[2])
    with pytest.raises(DeepEFTInputError):
        boundary_temperature(frac[:3], T, 0.5)
    # relative: half of each column's plateau (max): 0.5, 0.25, 0.5
    r = boundary_temperature(frac, T, 0.5, relative=True)
    w = (0.6 - 0.5) / (0.6 - 0.1)
    assert r[0] == pytest.approx(np.exp(np.log(T[3]) + w * np.log(2.0)))
    w = (0.3 - 0.25) / (0.3 - 0.2)
    assert r[1] == pytest.approx(np.exp(np.log(T[2]) + w * np.log(2.0)))
    assert np.isinf(r[2])
    assert np.isnan(boundary_temperature(np.zeros((6, 1)), T, 0.5, relative=True)[0])
    for bad in (0.0, 68.0, float("nan")):
        with pytest.raises(DeepEFTInputError, match="level"):
            boundary_temperature(frac, T, bad)


def test_level_spacing_sde():
    t, S = integrate_level_spacing(1.0, 0.3, 0.0, 0.0, 1.0, 2.0, n_steps=100)
    np.testing.assert_allclose(S[:, 0], 1.0 + 0.3 * t, rtol=1e-12)
    T, D, t_end = 0.5, 0.02, 1.0  # pure diffusion far from 0: Var S(t) = 2 T D_S t
    _, S = integrate_level_spacing(50.0, 0.0, 0.0, D, T, t_end, n_steps=50, n_paths=4000, seed=1)
    var = S[-1].var(ddof=1)
    z = (var - 2 * T * D * t_end) / (2 * T * D * t_end * np.sqrt(2 / (S.shape[1] - 1)))
    assert abs(z) < Z_MAX


def test_dbm_analysis_end_to_end():
    run = train_ensemble(TINY, [0.05, 4.0], [0.5, 0.5], members=3, steps=200, seed=2, n_records=5)
    d = dbm_analysis(run)
    assert d.K_S.shape == (3, 2) and np.all(d.V_S > 0) and np.all(d.D_S > 0)
    np.testing.assert_array_equal(d.converged, d.lhs[None, :] <= d.rhs)
    np.testing.assert_allclose(d.S, level_spacing(run.eigenvalues))
    assert np.all(np.isnan(d.rate[0]))
    with pytest.raises(DeepEFTInputError, match="basis"):
        dbm_analysis(run, basis="Y")


def test_continue_ensemble_is_longer_training():
    """Minibatch indices are defined per absolute step: 150 + 90 steps equal 240 steps, bit for bit
    (chunks of 2 members: the padded last chunk repeats a member)."""
    from deepeft.sgd import continue_ensemble

    lr, sw = [0.05, 1.0], [0.5, 2.0]
    full = train_ensemble(TINY, lr, sw, members=3, steps=240, seed=5, times=[0, 150, 240], member_chunk=2)
    part = train_ensemble(TINY, lr, sw, members=3, steps=150, seed=5, times=[0, 150], member_chunk=2)
    more = continue_ensemble(part, 90)  # 150 → 240 crosses a minibatch-index block (INDEX_BLOCK = 128)
    np.testing.assert_array_equal(more.final_params[0]["W"], full.final_params[0]["W"])
    np.testing.assert_array_equal(more.eigenvalues[-1], full.eigenvalues[-1])
    np.testing.assert_array_equal(more.G[-1], full.G[-1])
    assert more.steps == 240 and list(more.times) == [150, 240]
    with pytest.raises(DeepEFTInputError, match="times"):
        continue_ensemble(part, 90, times=[0, 240])
    with pytest.raises(DeepEFTInputError, match="method"):
        continue_ensemble(part, 10, method="adam")


def test_quenched_drift_is_the_slope_of_the_gd_trajectory():
    """Basis X: x_i(W − εE[Δ]) = x_i + εK_ii + O(ε²) (4.3)–(4.4), so one GD step changes S by εK_S + O(ε²):
    the slope measured on the quench trajectory converges to the instantaneous K_S linearly in ε
    (measured |slope/K_S − 1| ≈ 1.8 ε on this model)."""
    with jax.enable_x64(True):
        run = train_ensemble(TINY, [0.2], [0.5], members=2, steps=100, seed=7, dtype=jnp.float64, times=[0, 100])
        inst = dbm_analysis(run)
        errs = []
        for eps in (1e-3, 1e-4):
            d = dbm_analysis(run, drift="quenched", quench_steps=1, quench_lr=eps)
            errs.append(np.abs(d.K_S_trajectory / inst.K_S - 1).max())
    assert errs[0] < 10 * 1e-3 and errs[1] < 10 * 1e-4, errs
    assert 5 < errs[0] / errs[1] < 20, errs  # first order in ε
    assert d.S_quench.shape == (2, 2, 1) and d.drift == "quenched"
    np.testing.assert_allclose(d.S_quench[0], inst.S[-1], rtol=1e-12)


def test_time_averaged_and_quenched_readings():
    run = train_ensemble(TINY, [0.05, 4.0], [0.5, 0.5], members=2, steps=200, seed=2, n_records=3)
    inst = dbm_analysis(run)
    one = dbm_analysis(run, drift="time_averaged", checkpoints=1)
    np.testing.assert_array_equal(one.K_S, inst.K_S)  # a window of one checkpoint is the instantaneous reading
    avg = dbm_analysis(run, drift="time_averaged", checkpoints=3, spacing=20)
    from deepeft.sgd import continue_ensemble

    r1 = continue_ensemble(run, 20)
    r2 = continue_ensemble(r1, 20)
    from deepeft.sgd import spacing_drift

    ref = np.mean([inst.K_S, spacing_drift(r1)[0], spacing_drift(r2)[0]], axis=0)
    np.testing.assert_allclose(avg.K_S, ref, rtol=1e-6)
    assert np.all(avg.K_S_se > 0)
    q = dbm_analysis(run, drift="quenched", quench_steps=5, basis="K")
    np.testing.assert_allclose(q.quench_lr, [0.05, 0.5])  # ε capped at QUENCH_LR_MAX
    assert q.S_quench.shape == (6, 2, 2) and np.all(np.isfinite(q.K_S))
    np.testing.assert_array_equal(q.converged, q.lhs[None, :] <= q.rhs)
    with pytest.raises(DeepEFTInputError, match="drift"):
        dbm_analysis(run, drift="quench")
    with pytest.raises(DeepEFTInputError, match="quench_lr"):
        dbm_analysis(run, drift="quenched", quench_lr=-1.0)


def test_spacing_finite_differences_match_the_coefficients():
    """The finite-difference path (per-sample gradients of W itself, eigenvalues of the stepped W Wᵀ, no eigenvectors)
    equals K_S, D_S of (4.4), (B.9) in the basis X, with an O(η²) error (central differences); a sign slip of K_S or
    a scale slip of D_S is ≫ that error."""
    from deepeft.sgd import spacing_drift, spacing_finite_differences

    run = train_ensemble(TINY, [0.05, 4.0], [0.5, 0.5], members=2, steps=100, seed=3, n_records=3)
    K, _, D = spacing_drift(run, basis="X", dtype=jnp.float64)
    K_fd, D_fd = spacing_finite_differences(run)
    np.testing.assert_allclose(K_fd, K, rtol=1e-6)
    np.testing.assert_allclose(D_fd, D, rtol=1e-6)
    errs = [np.abs(spacing_finite_differences(run, [1], rel_step=h)[1][:, 0] / D[:, 1] - 1).max() for h in (1e-2, 1e-3)]
    assert 30 < errs[0] / errs[1] < 300, errs  # second order in the step
    with pytest.raises(DeepEFTInputError, match="points"):
        spacing_finite_differences(run, [2])
    with pytest.raises(DeepEFTInputError, match="rel_step"):
        spacing_finite_differences(run, rel_step=0.5)
