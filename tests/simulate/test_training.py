"""The training engine (simulate.training): the update by hand, the linearized update against the
empirical NTK (7.20), chunk invariance, GD → gradient flow, SGD minibatches, streamed moments, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from deepeft.errors import DeepEFTInputError
from deepeft.simulate.training import train_ensemble

RNG = np.random.default_rng(7)
X = RNG.standard_normal((5, 3))
Y = RNG.standard_normal((5, 2))
XT = RNG.standard_normal((3, 3))
NET = de.MLP(3, [6], 2, "tanh", C_b=[0.2, 0.1], C_W=[1.5, 1.2], lambda_b=[0.7, 1.3], lambda_W=[2.0, 0.5])


def _hand_step(net, params, X, Y, eta, loss):
    """One tensorial GD step of a one-hidden-layer tanh network by explicit backpropagation (NumPy)."""
    (W1, b1), (W2, b2) = params
    z1 = X @ W1.T + b1
    s = np.tanh(z1)
    z2 = s @ W2.T + b2
    if loss == "mse":
        e = z2 - Y  # ∂ℒ/∂z for ℒ = ½ Σ (z − y)²
    else:
        p = np.exp(z2 - z2.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        e = p * Y.sum(1, keepdims=True) - Y  # ∂/∂z of −Σ y log softmax(z)
    gW2, gb2 = e.T @ s, e.sum(0)
    d1 = (e @ W2) * (1 - s**2)
    gW1, gb1 = d1.T @ X, d1.sum(0)
    n = net.n
    lb, lw = net.lambda_b, net.lambda_W
    return (
        (W1 - eta * lw[0] / n[0] * gW1, b1 - eta * lb[0] * gb1),
        (W2 - eta * lw[1] / n[1] * gW2, b2 - eta * lb[1] * gb2),
    )


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_one_gd_step_equals_hand_computed_update(loss):
    Yl = np.abs(Y) / np.abs(Y).sum(1, keepdims=True) if loss == "cross_entropy" else Y
    eta = 0.3
    r = train_ensemble(NET, X, Yl, 3, times=[0, 1], eta=eta, X_test=XT, loss=loss, dtype="float64", seed=5, return_params=True)
    for s in range(3):
        p0 = de.sample_params(NET, 5, s, dtype="float64")
        # the initialisation is sample_params' network s
        np.testing.assert_array_equal(r.train_outputs[s, 0], de.preactivations(NET, X, p0, dtype="float64")[-1])
        p1 = _hand_step(NET, p0, X, Yl, eta, loss)
        for (W, b), l in zip(p1, range(2)):
            np.testing.assert_allclose(r.final_params[l][0][s], W, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(r.final_params[l][1][s], b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            r.test_outputs[s, 1], de.preactivations(NET, XT, p1, dtype="float64")[-1], rtol=1e-12, atol=1e-13
        )
        z = de.preactivations(NET, X, p1, dtype="float64")[-1]
        want = 0.5 * np.sum((z - Yl) ** 2) if loss == "mse" else -np.sum(Yl * (z - np.log(np.exp(z).sum(1, keepdims=True))))
        assert abs(r.train_loss[s, 1] - want) < 1e-11


def test_custom_loss_equals_builtin():
    import jax.numpy as jnp

    r = train_ensemble(NET, X, Y, 2, times=[0, 3], eta=0.1, loss=lambda z, y: 0.5 * jnp.sum((z - y) ** 2), dtype="float64")
    b = train_ensemble(NET, X, Y, 2, times=[0, 3], eta=0.1, loss="mse", dtype="float64")
    np.testing.assert_allclose(r.train_outputs, b.train_outputs, rtol=0, atol=1e-14)


def test_linearized_update_matches_empirical_ntk():
    """Δz = −η H ε + O(η²) (7.20): the remainder divided by η² is the same at η and η/2 (within 15 %)."""
    net = de.MLP(3, [32, 32], 2, "tanh", C_W=1.2, C_b=0.1, lambda_b=0.5, lambda_W=[1.0, 2.0, 1.5])
    H = de.empirical_ntk(net, X, seed=3, index=0, dtype="float64")  # (n_L, n_L, N, N)
    z0 = de.preactivations(net, X, seed=3, index=0, dtype="float64")[-1]
    eps = z0 - Y
    lin = -np.einsum("ijab,bj->ai", H, eps)
    rem = []
    for eta in (0.02, 0.01, 0.005):
        r = train_ensemble(net, X, Y, 1, times=[1], eta=eta, seed=3, dtype="float64")
        dz = r.train_outputs[0, 0] - z0
        rem.append(np.linalg.norm(dz - eta * lin) / eta**2)
        assert np.linalg.norm(dz - eta * lin) < 0.05 * np.linalg.norm(eta * lin)
    print("remainder/η²:", rem)
    assert rem[0] > 0 and abs(rem[1] / rem[0] - 1) < 0.15 and abs(rem[2] / rem[1] - 1) < 0.15


@pytest.mark.parametrize("method, kw", [("gd", {"eta": 0.05}), ("sgd", {"eta": 0.05, "batch_size": 2})])
def test_bit_identical_whatever_the_chunk_size(method, kw):
    runs = [
        train_ensemble(NET, X, Y, 11, times=[0, 2, 7], X_test=XT, method=method, micro_batch=2, chunk_size=c, seed=9, **kw)
        for c in (2, 4, 12)
    ]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.test_outputs, runs[0].test_outputs)
        np.testing.assert_array_equal(r.train_loss, runs[0].train_loss)
    mom = [
        train_ensemble(NET, X, Y, 11, times=[0, 2, 7], X_test=XT, method=method, micro_batch=2, chunk_size=c, seed=9,
                       store="moments", **kw)
        for c in (2, 6)
    ]
    for split in ("train", "test"):
        np.testing.assert_array_equal(mom[0].mean(split).value, mom[1].mean(split).value)
        np.testing.assert_array_equal(mom[0].cov(split).value, mom[1].cov(split).value)
        # streamed moments = moments of the stored outputs
        np.testing.assert_allclose(mom[0].mean(split).value, runs[0].mean(split).value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mom[0].cov(split).value, runs[0].cov(split).value, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mom[0].cov(split).stderr, runs[0].cov(split).stderr, rtol=1e-8, atol=1e-12)
    z = runs[0].test_outputs[:, 2].reshape(11, -1)
    np.testing.assert_allclose(runs[0].cov().value[2].reshape(z.shape[1], -1), np.cov(z.T), rtol=1e-10, atol=1e-12)


def test_sgd_step_is_gd_on_the_drawn_minibatch():
    import jax

    from deepeft.sgd.trainer import batch_indices
    from deepeft.simulate.forward import network_key

    r = train_ensemble(
        NET, X, Y, 2, times=[0, 1], eta=0.2, method="sgd", batch_size=3, seed=4, dtype="float64", return_params=True
    )
    with jax.enable_x64(True):
        idx = np.asarray(batch_indices(network_key(4, 1), 0, 1, 3, X.shape[0])[0])
    p1 = _hand_step(NET, de.sample_params(NET, 4, 1, dtype="float64"), X[idx], Y[idx], 0.2, "mse")
    np.testing.assert_allclose(r.final_params[1][0][1], p1[1][0], rtol=1e-12, atol=1e-14)


def test_gd_with_small_eta_approaches_gradient_flow():
    """‖GD(η, k = t/η) − flow(t)‖ = O(η): halves when η halves."""
    t = np.array([0.0, 0.25, 1.0])
    flow = train_ensemble(NET, X, Y, 2, times=t, method="flow", X_test=XT, dtype="float64", rtol=1e-10, atol=1e-12)
    errs = []
    for eta in (0.01, 0.005):
        gd = train_ensemble(NET, X, Y, 2, times=np.round(t / eta).astype(int), eta=eta, X_test=XT, dtype="float64")
        errs.append(np.abs(gd.test_outputs - flow.test_outputs).max())
    print("GD − flow:", errs)
    assert errs[0] < 0.05 and 1.7 < errs[0] / errs[1] < 2.3
    assert np.all(np.diff(flow.train_loss, axis=1) < 0)  # gradient flow decreases ℒ


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"method": "adam"}, "unknown method"),
        ({"eta": -1.0}, "eta"),
        ({"eta": None}, "learning rate"),
        ({"times": [0, 5, 3]}, "increasing"),
        ({"times": [0, 1.5]}, "integers"),
        ({"times": None}, "times is required"),
        ({"loss": "mse2"}, "unknown loss"),
        ({"loss": lambda z, y: z - y}, "scalar"),
        ({"method": "sgd"}, "batch_size"),
        ({"method": "sgd", "batch_size": 9}, "exceeds"),
        ({"batch_size": 2}, "sgd"),
        ({"method": "flow", "times": [0.0, 1.0]}, "eta=None"),
        ({"store": "all"}, "store"),
        ({"micro_batch": 2, "chunk_size": 3}, "multiple"),
        ({"n_networks": 0}, "n_networks"),
        ({"Y_train": np.ones((4, 2))}, "shape"),
        ({"Y_train": np.full((5, 2), np.nan)}, "NaN"),
        ({"X_train": np.ones((5, 4))}, "input_dim"),
        ({"X_test": np.array([[np.inf, 0, 0]])}, "NaN or inf"),
        ({"dtype": "float16"}, "dtype"),
        ({"seed": -1}, "seed"),
        ({"times": ["a", "b"]}, "list of numbers"),
        ({"method": "flow", "eta": None, "times": [0.0, 1.0], "rtol": -1e-6}, "rtol"),
        ({"method": "flow", "eta": None, "times": [0.0, 1.0], "rtol": float("nan")}, "rtol"),
        ({"method": "flow", "eta": None, "times": [0.0, 1.0], "atol": -1.0}, "atol"),
        ({"method": "flow", "eta": None, "times": [0.0, 1.0], "max_steps": 0}, "max_steps"),
    ],
)
def test_bad_input_errors(kw, msg):
    args = {"X_train": X, "Y_train": Y, "n_networks": 2, "times": [0, 1], "eta": 0.1}
    args.update(kw)
    with pytest.raises(DeepEFTInputError, match=msg):
        train_ensemble(NET, **args)


def test_not_an_mlp():
    with pytest.raises(DeepEFTInputError, match="MLP"):
        train_ensemble("relu", X, Y, 2, times=[0, 1], eta=0.1)
