"""Parameter sampling (2.19)–(2.20) and the forward pass (2.5) against a hand-written NumPy loop."""

import jax
import numpy as np
import pytest

import deepeft as de
from deepeft.simulate.forward import preactivations, sample_params


def numpy_forward(params, X, sigma):
    zs, a = [], X
    for W, b in params:
        z = np.empty((X.shape[0], W.shape[0]))
        for alpha in range(X.shape[0]):  # z_{i;α} = b_i + Σ_j W_ij a_{j;α}
            for i in range(W.shape[0]):
                z[alpha, i] = b[i] + sum(W[i, j] * a[alpha, j] for j in range(W.shape[1]))
        zs.append(z)
        a = sigma(z)
    return zs


NET = de.MLP(3, [5, 4], 2, activation="tanh", C_W=[1.0, 1.5, 2.0], C_b=[0.1, 0.2, 0.3])
X = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.2]])


def test_shapes_and_values_match_numpy_loop_float64():
    params = sample_params(NET, seed=4, index=7, dtype="float64")
    assert [(W.shape, b.shape) for W, b in params] == [((5, 3), (5,)), ((4, 5), (4,)), ((2, 4), (2,))]
    assert all(W.dtype == np.float64 for W, _ in params)
    zs = preactivations(NET, X, seed=4, index=7, dtype="float64")
    ref = numpy_forward(params, X, np.tanh)
    assert [z.shape for z in zs] == [(2, 5), (2, 4), (2, 2)]
    for z, r in zip(zs, ref, strict=True):
        np.testing.assert_allclose(z, r, rtol=1e-12, atol=1e-12)
    # passing params explicitly gives the same result; float32 is close
    zs2 = preactivations(NET, X, params, dtype="float64")
    for z, r in zip(zs2, zs, strict=True):
        np.testing.assert_array_equal(z, r)
    z32 = preactivations(NET, X, seed=4, index=7)
    assert z32[-1].dtype == np.float32


def test_networks_are_determined_by_seed_and_index():
    a = sample_params(NET, seed=1, index=2)
    b = sample_params(NET, seed=1, index=2)
    c = sample_params(NET, seed=1, index=3)
    d = sample_params(NET, seed=2, index=2)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0][0], c[0][0])
    assert not np.array_equal(a[0][0], d[0][0])


def test_parameter_variances_follow_2_19_2_20():
    net = de.MLP(200, [300], 1, C_W=[2.0, 1.0], C_b=[0.5, 0.0])
    (W, b), (W2, b2) = sample_params(net, seed=0, index=0, dtype="float64")
    # W ~ N(0, C_W/n_0): Var estimate from 60000 draws; SE of a variance ≈ var·√(2/M)
    vW = W.var() * 200
    assert abs(vW - 2.0) < 5 * 2.0 * np.sqrt(2 / W.size), vW
    assert abs(b.var() - 0.5) < 5 * 0.5 * np.sqrt(2 / b.size), b.var()
    assert np.all(b2 == 0.0)  # C_b = 0: biases vanish


def test_user_x64_flag_untouched():
    before = jax.config.jax_enable_x64
    preactivations(NET, X, dtype="float64")
    assert jax.config.jax_enable_x64 == before


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: preactivations(NET, X, dtype="float16"), "dtype must be 'float32' or 'float64'"),
        (lambda: preactivations(NET, X[:, :2]), "input_dim is 3"),
        (lambda: preactivations("net", X), "deepeft.MLP"),
        (lambda: preactivations(NET, X, seed=-1), "seed must be an integer"),
        (lambda: preactivations(NET, X, [(np.ones((5, 3)), np.ones(5))]), "L = 3"),
        (
            lambda: preactivations(NET, X, [(np.ones((5, 3)), np.ones(5))] * 3),
            "layer 2: expected W of shape (4, 5)",
        ),
    ],
)
def test_bad_input_raises_actionable_error(call, fragment):
    with pytest.raises(de.DeepEFTInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        call()
