"""from_flax on real Flax models (optional extra ``deepeft[flax]``; CI sets DEEPEFT_REQUIRE_FLAX=1): Linen parameter
trees and NNX modules round-trip through deepeft's forward pass to 1e-6 (float64: measured ~1e-15); layer order."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from _optional import require

ROUND_TRIP_TOL = 1e-6
X = np.random.default_rng(1).normal(size=(7, 5))


def _numpy_init(seed: int):
    """A Flax initializer drawing from NumPy (Flax's own random init compiles one program per shape: seconds)."""
    rng = np.random.default_rng(seed)

    def init(key, shape, dtype=np.float64):
        import jax.numpy as jnp

        return jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), dtype)

    return init


def test_linen_mlp_round_trip():
    require("flax")
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class MLP(nn.Module):  # 12 Dense layers: Dense_10 and Dense_11 must follow Dense_9
        @nn.compact
        def __call__(self, x):
            for _ in range(11):
                x = nn.tanh(nn.Dense(6, param_dtype=jnp.float64, kernel_init=_numpy_init(0), bias_init=_numpy_init(1))(x))
            return nn.Dense(2, param_dtype=jnp.float64, kernel_init=_numpy_init(2))(x)

    class Named(nn.Module):  # custom names: definition order, not alphabetical (body < encoder < head)
        @nn.compact
        def __call__(self, x):
            kw = {"param_dtype": jnp.float64, "kernel_init": _numpy_init(3), "bias_init": _numpy_init(4)}
            x = nn.relu(nn.Dense(6, name="encoder", **kw)(x))
            x = nn.relu(nn.Dense(6, name="body", **kw)(x))
            return nn.Dense(2, name="head", **kw)(x)

    with jax.enable_x64(True):
        refs = {}
        for model, act, name in ((MLP(), jnp.tanh, "tanh"), (Named(), jax.nn.relu, "relu")):
            variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 5), jnp.float64))
            ref = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(X)))  # one compile, not one per op
            refs[name] = variables, ref
            im = de.from_flax(variables, activation=act)
            assert im.net.activation.name == name
            np.testing.assert_allclose(im.forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)
        assert list(im.names) == ["encoder", "body", "head"]
        # a restored checkpoint may list auto-names in string order: the numeric order is restored
        v, ref = refs["tanh"]
        shuffled = {"params": {k: v["params"][k] for k in sorted(v["params"])}}  # Dense_0, Dense_1, Dense_10, …
        assert list(shuffled["params"])[2] == "Dense_10"
        np.testing.assert_allclose(de.from_flax(shuffled, jnp.tanh).forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)


def test_nnx_mlp_round_trip_and_order():
    require("flax")
    import functools

    import jax
    import jax.numpy as jnp
    from flax import nnx

    gelu = functools.partial(jax.nn.gelu, approximate=False)

    class MLP(nnx.Module):
        def __init__(self, rngs):
            dims = [5, 8, 8, 3]
            self.layers = nnx.List([nnx.Linear(a, b, param_dtype=jnp.float64, kernel_init=_numpy_init(5),
                                               bias_init=_numpy_init(6), rngs=rngs)
                                    for a, b in zip(dims[:-1], dims[1:])])

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = gelu(layer(x))
            return self.layers[-1](x)

    class Named(nnx.Module):  # NNX sorts attributes by name: hidden, inp, out — not the forward order
        def __init__(self, rngs):
            kw = {"kernel_init": _numpy_init(7), "rngs": rngs}
            self.inp = nnx.Linear(5, 8, **kw)
            self.hidden = nnx.Linear(8, 8, **kw)
            self.out = nnx.Linear(8, 3, **kw)

    with jax.enable_x64(True):
        m = MLP(nnx.Rngs(0))
        ref = np.asarray(nnx.jit(lambda mod, x: mod(x))(m, jnp.asarray(X)))
        for obj in (m, nnx.state(m, nnx.Param)):
            im = de.from_flax(obj, activation=gelu)
            assert im.net.activation.name == "gelu" and im.net.n == (5, 8, 8, 3)
            np.testing.assert_allclose(im.forward(X), ref, atol=ROUND_TRIP_TOL, rtol=0)
        from deepeft.diagnostics import as_imported

        assert as_imported(m, gelu).net.n == (5, 8, 8, 3)  # de.diagnose reads NNX modules (needs activation=)
        with pytest.raises(de.DeepEFTInputError, match="nnx.List"):
            de.from_flax(Named(nnx.Rngs(0)), activation="relu")
