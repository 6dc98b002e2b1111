"""Importers (issue 17 item 1): round trips through deepeft's forward pass, empirical C_W/C_b, clear errors.

Round trips (kind: independent implementation path): the framework's own forward pass (float64) vs
``de.preactivations`` on the imported spec and weights, to 1e-6 (measured ~1e-16)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import deepeft as de
from _optional import require

ROUND_TRIP_TOL = 1e-6  # issue 17: imported forward pass equals the framework's output to 1e-6
X = np.random.default_rng(0).normal(size=(9, 5))


def _torch_out(torch, m):
    with torch.no_grad():
        return m(torch.tensor(X)).numpy()


@pytest.mark.parametrize(
    "act, name",
    [("ReLU", "relu"), ("Tanh", "tanh"), ("GELU", "gelu"), ("SiLU", "swish"), ("Sigmoid", "sigmoid"),
     ("Identity", "linear"), ("LeakyReLU", "leaky_relu"), ("ELU", "elu"), ("Softplus", "softplus")],
)
def test_torch_sequential_round_trip(act, name):
    torch = require("torch")
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(5, 16), getattr(nn, act)(), nn.Sequential(nn.Linear(16, 8), getattr(nn, act)()),
                      nn.Dropout(0.1), nn.Linear(8, 3)).double().eval()
    im = de.from_torch(m)
    assert im.net.activation.name == name and im.net.n == (5, 16, 8, 3)
    np.testing.assert_allclose(im.forward(X), _torch_out(torch, m), atol=ROUND_TRIP_TOL, rtol=0)
    # the weights are the module's, in deepeft's (n_out, n_in) layout
    np.testing.assert_array_equal(im.params[1][0], m[2][0].weight.detach().numpy())


def test_torch_state_dict_and_fx_module_round_trip():
    torch = require("torch")
    torch.manual_seed(1)
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(5, 12), nn.Linear(12, 12, bias=False), nn.Linear(12, 2)

        def forward(self, x):
            return self.out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

    m = Net().double()
    ref = _torch_out(torch, m)
    im = de.from_torch(m)
    assert im.names == ("fc1", "fc2", "out") and im.has_bias == (True, False, True) and im.C_b[1] == 0.0
    np.testing.assert_allclose(im.forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)
    im2 = de.from_torch(m.state_dict(), activation="tanh")
    np.testing.assert_allclose(im2.forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)


def test_empirical_variances_recover_the_initialisation():
    """C_W = n_in Var(W), C_b = Var(b) (2.19)–(2.20) of a wide Gaussian layer recover the sampling values
    (kind: Monte Carlo; SE of a sample variance of m Gaussians is var·√(2/m))."""
    rng = np.random.default_rng(3)
    n0, n1, C_W, C_b = 400, 300, 2.0, 0.3
    W = rng.normal(0, np.sqrt(C_W / n0), (n1, n0))
    b = rng.normal(0, np.sqrt(C_b), n1)
    im = de.from_arrays([W, rng.normal(size=(1, n1))], [b, None], "relu")
    z_W = (im.C_W[0] - C_W) / (C_W * np.sqrt(2 / W.size))
    z_b = (im.C_b[0] - C_b) / (C_b * np.sqrt(2 / b.size))
    assert abs(z_W) < 5 and abs(z_b) < 5, (z_W, z_b)
    assert im.net.C_W == tuple(im.C_W) and im.C_b[1] == 0.0


def test_from_arrays_layouts_and_matches_sample_params():
    net = de.MLP(5, [7, 6], 2, activation="tanh", C_W=1.5, C_b=0.1)
    p = de.sample_params(net, seed=2, dtype="float64")
    ref = de.preactivations(net, X, p, dtype="float64")[-1]
    a = de.from_arrays([W for W, _ in p], [b for _, b in p], "tanh")
    b = de.from_arrays([W.T for W, _ in p], [b for _, b in p], "tanh", layout="in_out")
    np.testing.assert_allclose(a.forward(X), ref, atol=1e-14, rtol=0)
    np.testing.assert_allclose(b.forward(X), ref, atol=1e-14, rtol=0)


def test_flax_style_tree_round_trip():
    """A Flax-Linen-shaped parameter tree (kernels (n_in, n_out)) against a hand-written ``x @ kernel + bias``."""
    rng = np.random.default_rng(4)
    dims = [5, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 2]  # 12 layers: Dense_10 must come after Dense_9
    tree = {"params": {f"Dense_{i}": {"kernel": rng.normal(size=(a, b)) / np.sqrt(a), "bias": rng.normal(size=b)}
                       for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))}}
    h = X
    for i in range(len(dims) - 1):
        p = tree["params"][f"Dense_{i}"]
        h = h @ p["kernel"] + p["bias"]
        if i < len(dims) - 2:
            h = np.tanh(h)
    import jax.numpy as jnp

    im = de.from_flax(tree, activation=jnp.tanh)  # a JAX callable is matched to the registry's tanh
    assert im.net.activation.name == "tanh" and im.names[10] == "Dense_10"
    np.testing.assert_allclose(im.forward(X), h, atol=ROUND_TRIP_TOL, rtol=0)


def test_equinox_round_trip():
    eqx = require("equinox")
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        exact_gelu = functools.partial(jax.nn.gelu, approximate=False)  # jax.nn.gelu's default is the tanh approximation
        # built by shape only and filled with float64 weights (random init of eqx.nn.MLP compiles for seconds)
        m = eqx.filter_eval_shape(eqx.nn.MLP, 5, 3, 10, 2, activation=exact_gelu, key=jax.random.PRNGKey(0))
        leaves = [x for lin in m.layers for x in (lin.weight, lin.bias)]
        m = eqx.tree_at(lambda t: [x for lin in t.layers for x in (lin.weight, lin.bias)], m,
                        replace=[jnp.asarray(rng.normal(size=x.shape) / 3) for x in leaves])
        ref = np.asarray(jax.vmap(m)(jnp.asarray(X)))
        im = de.from_equinox(m)
        assert im.net.activation.name == "gelu"
        np.testing.assert_allclose(im.forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)
        seq = eqx.nn.Sequential([m.layers[0], eqx.nn.Lambda(jax.nn.relu), m.layers[1], eqx.nn.Lambda(jax.nn.relu),
                                 m.layers[2]])
        ref2 = np.asarray(jax.vmap(seq)(jnp.asarray(X)))
    im2 = de.from_equinox(seq)
    assert im2.net.activation.name == "relu"
    np.testing.assert_allclose(im2.forward(X), ref2, atol=ROUND_TRIP_TOL, rtol=0)


def test_torch_unsupported_layers_name_the_layer():
    torch = require("torch")
    nn = torch.nn
    cases = [
        (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Conv2d(1, 1, 1)), "Conv2d at index 3"),
        (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), "BatchNorm1d at index 1"),
        (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)), "one activation"),
        (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1), nn.Sigmoid()), "ends with an activation"),
        (nn.Sequential(nn.Linear(3, 3), nn.GELU(approximate="tanh"), nn.Linear(3, 1)), "approximate='tanh'"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(3, 1)), "do not form a chain"),
    ]
    for m, msg in cases:
        with pytest.raises(de.DeepEFTInputError, match=msg):
            de.from_torch(m)
    with pytest.raises(de.DeepEFTInputError, match="activation="):
        de.from_torch(nn.Sequential(nn.Linear(3, 1)).state_dict())
    with pytest.raises(de.DeepEFTInputError, match="4-D weight"):
        de.from_torch({"0.weight": torch.zeros(2, 1, 3, 3)}, activation="relu")
    with pytest.raises(de.DeepEFTInputError, match="running_mean"):
        de.from_torch(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).state_dict(), activation="relu")

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) + x

    with pytest.raises(de.DeepEFTInputError, match="single chain"):
        de.from_torch(Skip())


def test_non_finite_and_bad_arrays():
    W = np.ones((3, 4))
    W[1, 2] = np.nan
    with pytest.raises(de.DeepEFTInputError, match="NaN or inf"):
        de.from_arrays([W])
    with pytest.raises(de.DeepEFTInputError, match="2-D"):
        de.from_arrays([np.ones((2, 3, 4))])
    with pytest.raises(de.DeepEFTInputError, match="bias must have shape"):
        de.from_arrays([np.ones((3, 4))], [np.ones(4)])
    with pytest.raises(de.DeepEFTInputError, match="layout='in_out'"):
        de.from_arrays([np.ones((3, 4)), np.ones((3, 2))])
