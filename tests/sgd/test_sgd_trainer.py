"""Ensemble trainer of deepeft.sgd: exact update rules, Langevin noise law, chunk invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.sgd import TeacherStudent, gradient_moments, phase_grid, record_times, sample_problem, train_ensemble
from deepeft.sgd.teacher_student import STREAM_BATCH, init_params

TINY = TeacherStudent.build((3, 8, 4, 1), "tanh", (2,), n_train=16, n_test=8)


def _hand_gradient(a, y, W, w3):
    """∂/∂W of (1/|B|) Σ_α ½(y_α − w3·tanh(W a_α))², float64 NumPy."""
    phi = np.tanh(a @ W.T)  # (B, n2)
    err = phi @ w3 - y  # (B,)
    delta = err[:, None] * w3[None, :] * (1 - phi**2)
    return delta.T @ a / a.shape[0]


def _members_state(setup, seed, members, sigma_W, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        prob = sample_problem(setup, members, seed, dtype)
        W0 = [np.transpose(np.asarray(init_params(jax.tree.map(lambda x: x[m], prob.init_noise),
                                                 jnp.asarray(sigma_W, dtype), setup)[0]["W"]), (1, 2, 0))
              for m in range(members)]
    return prob, np.asarray(W0, np.float64)  # (M, P, n2, n1)


def test_sgd_step_matches_hand_gradient():
    lr, sw = np.array([0.3, 1.7]), np.array([0.5, 2.0])
    run = train_ensemble(TINY, lr, sw, members=2, steps=1, batch_size=4, seed=3, dtype=jnp.float64, times=[0, 1])
    prob, W0 = _members_state(TINY, 3, 2, sw, jnp.float64)
    with jax.enable_x64(True):
        for m in range(2):
            key = jax.random.fold_in(prob.keys[m], STREAM_BATCH)
            idx = np.asarray(jax.random.randint(jax.random.fold_in(key, 0), (4,), 0, TINY.n_train))
            a, y = np.asarray(prob.a_train[m])[idx], np.asarray(prob.y_train[m])[idx, 0]
            w3 = np.asarray(prob.frozen[1]["W"][m])[0]
            for p in range(2):
                expect = W0[m, p] - lr[p] * _hand_gradient(a, y, W0[m, p], w3)
                np.testing.assert_allclose(run.final_params[0]["W"][m, p], expect, rtol=1e-12, atol=1e-14)


def test_many_sgd_steps_match_per_step_numpy_reference():
    """300 steps across minibatch-index blocks and a recording split at t = 77 equal a float64 NumPy loop
    that draws each step's indices from its own key fold_in(fold_in(key, STREAM_BATCH), t)."""
    from deepeft.sgd.trainer import INDEX_BLOCK

    steps = 2 * INDEX_BLOCK + 44
    lr, sw = np.array([0.05, 0.4]), np.array([1.0, 3.0])
    run = train_ensemble(TINY, lr, sw, members=1, steps=steps, batch_size=4, seed=11, dtype=jnp.float64,
                         times=[0, 77, steps])
    prob, W0 = _members_state(TINY, 11, 1, sw, jnp.float64)
    W = W0[0].copy()
    a_all, y_all = np.asarray(prob.a_train[0]), np.asarray(prob.y_train[0])[:, 0]
    w3 = np.asarray(prob.frozen[1]["W"][0])[0]
    with jax.enable_x64(True):
        key = jax.random.fold_in(prob.keys[0], STREAM_BATCH)
        for t in range(steps):
            idx = np.asarray(jax.random.randint(jax.random.fold_in(key, t), (4,), 0, TINY.n_train))
            for p in range(2):
                W[p] = W[p] - lr[p] * _hand_gradient(a_all[idx], y_all[idx], W[p], w3)
    np.testing.assert_allclose(run.final_params[0]["W"][0], W, rtol=1e-10, atol=1e-12)


def test_index_block_size_does_not_change_results(monkeypatch):
    """Blocks shrink for large minibatches (memory cap); the trajectory is the same bit for bit."""
    from deepeft.sgd import trainer

    kw = dict(members=1, steps=300, batch_size=4, seed=2, times=[0, 77, 300])
    ref = train_ensemble(TINY, [0.1, 0.5], [1.0, 2.0], **kw)
    monkeypatch.setattr(trainer, "_BLOCK_FLOATS", 100)  # 100 // (4 · 9) = 2 steps per block
    trainer._kernels.cache_clear()
    try:
        small = train_ensemble(TINY, [0.1, 0.5], [1.0, 2.0], **kw)
    finally:
        trainer._kernels.cache_clear()
    np.testing.assert_array_equal(small.final_params[0]["W"], ref.final_params[0]["W"])
    np.testing.assert_array_equal(small.test_loss, ref.test_loss)


def test_gd_step_is_full_batch_gradient():
    lr, sw = np.array([0.5]), np.array([1.0])
    run = train_ensemble(TINY, lr, sw, members=1, steps=1, method="gd", seed=5, dtype=jnp.float64, times=[0, 1])
    prob, W0 = _members_state(TINY, 5, 1, sw, jnp.float64)
    a, y = np.asarray(prob.a_train[0]), np.asarray(prob.y_train[0])[:, 0]
    w3 = np.asarray(prob.frozen[1]["W"][0])[0]
    expect = W0[0, 0] - 0.5 * _hand_gradient(a, y, W0[0, 0], w3)
    np.testing.assert_allclose(run.final_params[0]["W"][0, 0], expect, rtol=1e-12, atol=1e-14)
    # the recorded train loss at t=0 is (2.6) on the whole training set
    loss0 = 0.5 * np.mean((np.tanh(a @ W0[0, 0].T) @ w3 - y) ** 2)
    np.testing.assert_allclose(run.train_loss_init[0, 0], loss0, rtol=1e-12)


def test_langevin_noise_has_stated_variance():
    """W' − (W − ε E[Δ]) = ε √(V[Δ]/|B|) η with η ~ N(0, 1) elementwise (2.29)."""
    M, B, eps = 64, 4, 0.8
    lr, sw = np.array([eps]), np.array([1.0])
    run = train_ensemble(TINY, lr, sw, members=M, steps=1, method="langevin", batch_size=B, seed=11,
                         dtype=jnp.float64, times=[0, 1])
    prob, W0 = _members_state(TINY, 11, M, sw, jnp.float64)
    eta = []
    for m in range(M):
        a, y = np.asarray(prob.a_train[m]), np.asarray(prob.y_train[m])[:, 0]
        w3 = np.asarray(prob.frozen[1]["W"][m])[0]
        g = np.stack([_hand_gradient(a[i : i + 1], y[i : i + 1], W0[m, 0], w3) for i in range(a.shape[0])])
        mean, var = g.mean(0), g.var(0)
        resid = run.final_params[0]["W"][m, 0] - (W0[m, 0] - eps * mean)
        eta.append(resid / (eps * np.sqrt(var / B)))
    eta = np.concatenate([e.ravel() for e in eta])
    n = eta.size
    z_mean = eta.mean() / np.sqrt(1.0 / n)
    z_var = (eta.var() - 1.0) / np.sqrt(2.0 / n)
    print(f"Langevin η: n={n} mean z={z_mean:.2f}, variance z={z_var:.2f}")
    assert abs(z_mean) < Z_MAX and abs(z_var) < Z_MAX


def test_gradient_moments_match_per_sample_loop():
    with jax.enable_x64(True):
        prob = sample_problem(TINY, 1, 2, jnp.float64)
        params = init_params(jax.tree.map(lambda x: x[0], prob.init_noise), jnp.asarray([0.7]), TINY)
        frozen = jax.tree.map(lambda x: x[0], prob.frozen)
        mean, var = gradient_moments(TINY, params, frozen, prob.a_train[0], prob.y_train[0])
    a, y = np.asarray(prob.a_train[0]), np.asarray(prob.y_train[0])[:, 0]
    W = np.asarray(params[0]["W"])[:, 0, :].T
    w3 = np.asarray(frozen[1]["W"])[0]
    g = np.stack([_hand_gradient(a[i : i + 1], y[i : i + 1], W, w3) for i in range(a.shape[0])])
    np.testing.assert_allclose(np.asarray(mean[0]["W"])[:, 0, :].T, g.mean(0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.asarray(var[0]["W"])[:, 0, :].T, g.var(0), rtol=1e-8, atol=1e-14)


def test_same_seed_same_results_regardless_of_chunking_and_threads():
    g = phase_grid([0.25, 2.0], [0.5, 4.0])
    kw = dict(members=5, steps=50, seed=7, n_records=4)
    r1 = train_ensemble(TINY, g["learning_rate"], g["sigma_W"], member_chunk=1, workers=1, **kw)
    r2 = train_ensemble(TINY, g["learning_rate"], g["sigma_W"], member_chunk=2, workers=2, **kw)
    r3 = train_ensemble(TINY, g["learning_rate"], g["sigma_W"], member_chunk=5, workers=1, **kw)
    for other in (r2, r3):
        for name in ("test_loss", "G", "alignment", "eigenvalues", "grad_norm", "train_loss"):
            np.testing.assert_array_equal(getattr(r1, name), getattr(other, name), err_msg=name)
        np.testing.assert_array_equal(r1.final_params[0]["W"], other.final_params[0]["W"])
    # a subset of members reproduces the same trajectories (members are independent streams)
    r4 = train_ensemble(TINY, g["learning_rate"], g["sigma_W"], **{**kw, "members": 2}, member_chunk=1)
    np.testing.assert_array_equal(r4.test_loss, r1.test_loss[:, :2])


def test_record_times_and_initial_observables():
    t = record_times(1000, 10)
    assert t[0] == 0 and t[-1] == 1000 and np.all(np.diff(t) > 0)
    run = train_ensemble(TINY, 0.1, [0.5, 1.0], members=2, steps=10, seed=1, n_records=3)
    # G(0, 0) = mean φ² > 0 and alignment is a cosine
    assert np.all(run.G[0] > 0) and np.all(np.abs(run.alignment) <= 1 + 1e-6)
    ds = run.to_xarray()
    assert ds["eigenvalues"].dims == ("time", "member", "point", "level")


def test_bias_and_two_trainable_layers_run_and_match_gd():
    """General configuration: biases on, layers 2 and 3 trainable; GD step = full-batch autodiff gradient."""
    setup = TeacherStudent.build((2, 6, 5, 1), "relu", (2, 3), bias=True, teacher_C_b=0.1, n_train=12, n_test=6,
                                 student_C_b=0.05)
    run = train_ensemble(setup, 0.2, 1.3, members=1, steps=1, method="gd", seed=0, dtype=jnp.float64, times=[0, 1])
    with jax.enable_x64(True):
        prob = sample_problem(setup, 1, 0, jnp.float64)
        noise = jax.tree.map(lambda x: x[0], prob.init_noise)
        p0 = init_params(noise, jnp.asarray([1.3]), setup)
    a, y = np.asarray(prob.a_train[0]), np.asarray(prob.y_train[0])

    def loss(flat):
        W2, b2, W3, b3 = flat
        z3 = jnp.maximum(a @ W2.T + b2, 0.0) @ W3.T + b3
        return 0.5 * jnp.mean(jnp.sum((z3 - y) ** 2, -1))

    with jax.enable_x64(True):
        start = [jnp.asarray(np.asarray(p0[0]["W"])[:, 0, :].T), jnp.asarray(np.asarray(p0[0]["b"])[0]),
                 jnp.asarray(np.asarray(p0[1]["W"])[:, 0, :].T), jnp.asarray(np.asarray(p0[1]["b"])[0])]
        g = [np.asarray(x) for x in jax.grad(loss)(start)]
        start = [np.asarray(x) for x in start]
    np.testing.assert_allclose(run.final_params[0]["W"][0, 0], start[0] - 0.2 * g[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run.final_params[1]["b"][0, 0], start[3] - 0.2 * g[3], rtol=1e-12, atol=1e-14)


def test_input_validation():
    with pytest.raises(DeepEFTInputError, match="Did you mean"):
        train_ensemble(TINY, 0.1, 1.0, members=1, steps=1, method="sdg")
    with pytest.raises(DeepEFTInputError, match="finite and > 0"):
        train_ensemble(TINY, -0.1, 1.0, members=1, steps=1)
    with pytest.raises(DeepEFTInputError, match="batch_size"):
        train_ensemble(TINY, 0.1, 1.0, members=1, steps=1, batch_size=100)
    with pytest.raises(DeepEFTInputError, match="trainable"):
        TeacherStudent.build((3, 8, 4, 1), "tanh", (5,))
    with pytest.raises(DeepEFTInputError, match="spectral_layer"):
        TeacherStudent.build((3, 8, 4, 1), "tanh", (2,), spectral_layer=1)


def test_tracked_layer_resolves_the_default_spectral_layer():
    ts = TeacherStudent.build((3, 8, 4, 1), "tanh", (2, 3))
    assert ts.spectral_layer == ts.tracked_layer == 2 and ts.spectral_shape == (4, 8)
    assert TeacherStudent.build((3, 8, 4, 1), "tanh", (2, 3), spectral_layer=3).tracked_layer == 3
