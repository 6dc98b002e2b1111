"""Infinite-width GD for any loss (theory/function_space_gd.py): MSE against the closed form, cross-entropy against
an explicit NumPy iteration of (10.3)/(10.6), invariances and bad input."""

import numpy as np
import pytest

import deepeft as de
from conftest import TOL, Z_MAX
from deepeft.theory.function_space_gd import function_space_gd_from_kernels

RNG = np.random.default_rng(0)
X, XB = RNG.standard_normal((6, 3)), RNG.standard_normal((3, 3))
NET = de.MLP(3, [8] * 2, 2, "tanh", C_b=0.1)
K, T = (a[-1] for a in de.kernel_and_ntk(NET, np.concatenate([X, XB])))
ETA = 0.5 / np.linalg.eigvalsh(T[:6, :6]).max()
ONE_HOT = np.eye(2)[[0, 1, 0, 1, 1, 0]]


def test_mse_equals_the_closed_form():
    """MSE is linear in z(0): the Monte Carlo means agree with de.gd_prediction (10.33) (z-scores)."""
    Y = RNG.standard_normal((6, 2))
    r = de.function_space_gd(NET, X, Y, XB, [0, 5, 50], ETA, loss="mse", n_samples=4096, seed=1)
    p = de.gd_prediction(NET, X, Y, XB, np.array([0, 5, 50]), eta=ETA)
    z = r.logits.z(p.mean)
    assert np.max(np.abs(z)) < Z_MAX, z
    assert r.logits.shape == (3, 3, 2) and r.train_loss.shape == (3,)


def test_cross_entropy_equals_explicit_iteration():
    """With a zero prior (K = 0) the dynamics is one deterministic trajectory: compare it with a NumPy loop of
    z ← z − ηΘ(softmax(z) − p) (10.3), (10.6) over training and test outputs."""
    steps = [0, 3, 40]
    r = function_space_gd_from_kernels(np.zeros_like(K), T, ONE_HOT, 6, steps, ETA, n_samples=2)
    z = np.zeros((9, 2))
    out, loss = [], []
    for t in range(steps[-1] + 1):
        if t in steps:
            out.append(z.copy())
            q = np.exp(z[:6]) / np.exp(z[:6]).sum(1, keepdims=True)
            loss.append(-np.sum(ONE_HOT * np.log(q)))
        q = np.exp(z[:6]) / np.exp(z[:6]).sum(1, keepdims=True)
        z = z - ETA * T[:, :6] @ (q - ONE_HOT)
    out = np.array(out)
    np.testing.assert_allclose(r.logits.value, out[:, 6:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.train_logits.value, out[:, :6], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.train_loss.value, loss, rtol=TOL[np.float64]["exact"])
    assert np.all(r.logits.stderr == 0)


def test_fixed_seed_and_chunk_invariance():
    a = function_space_gd_from_kernels(K, T, ONE_HOT, 6, [0, 10], ETA, n_samples=50, seed=3, sample_chunk=7)
    b = function_space_gd_from_kernels(K, T, ONE_HOT, 6, [0, 10], ETA, n_samples=50, seed=3)
    np.testing.assert_array_equal(a.probabilities.value, b.probabilities.value)
    assert np.all(np.diff(b.train_loss.value) < 0)  # GD on CE lowers the expected training loss here


@pytest.mark.parametrize("kw, msg", [
    ({"steps": [5, 2]}, "increasing"),
    ({"steps": [np.inf]}, "finite"),
    ({"eta": -1.0}, "eta"),
    ({"loss": "hinge"}, "unknown loss"),
    ({"n_samples": 1}, "≥ 2"),
])
def test_bad_input(kw, msg):
    args = {"steps": [0, 1], "eta": ETA, "loss": "cross_entropy", "n_samples": 8} | kw
    with pytest.raises(de.DeepEFTInputError, match=msg):
        de.function_space_gd(NET, X, ONE_HOT, XB, **args)


def test_divergence_is_reported():
    with pytest.raises(de.DeepEFTInputError, match="diverged"):
        de.function_space_gd(NET, X, RNG.standard_normal((6, 2)), XB, [200], 10 * ETA / 0.5, loss="mse", n_samples=4)


def test_given_initial_outputs_equal_explicit_iteration():
    """function_space_outputs runs (10.3)/(10.6) from given z(0), one trajectory per row: a NumPy loop per row."""
    from deepeft.theory import function_space_outputs

    z0 = RNG.standard_normal((3, 9, 2))
    steps = [0, 4, 25]
    r = function_space_outputs(z0, T, ONE_HOT, 6, steps, ETA, sample_chunk=2)
    assert r["probabilities"].shape == (3, 3, 3, 2) and r["train_loss"].shape == (3, 3)
    for s in range(3):
        z = z0[s].copy()
        for t in range(steps[-1] + 1):
            if t in steps:
                k = steps.index(t)
                np.testing.assert_allclose(r["logits"][s, k], z[6:], rtol=1e-12, atol=1e-14)
                q = np.exp(z[6:]) / np.exp(z[6:]).sum(1, keepdims=True)
                np.testing.assert_allclose(r["probabilities"][s, k], q, rtol=1e-12, atol=1e-14)
            q = np.exp(z[:6]) / np.exp(z[:6]).sum(1, keepdims=True)
            z = z - ETA * T[:, :6] @ (q - ONE_HOT)
    with pytest.raises(de.DeepEFTInputError, match="z0 must be finite"):
        function_space_outputs(z0[:, :5], T, ONE_HOT, 6, steps, ETA)
