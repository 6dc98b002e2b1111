"""The perpendicular susceptibility χ_⊥ measured on realised networks, from their layer-to-layer Jacobians.

For one network and one input, the Jacobian of layer ℓ+1 with respect to layer ℓ is
J^{(ℓ+1)} = W^{(ℓ+1)} diag σ′(z^{(ℓ)}), and its mean squared singular value

    χ̂_⊥^{(ℓ)} = ‖J^{(ℓ+1)}‖_F² / n_{ℓ+1} = (1/n_{ℓ+1}) Σ_{i,j} (W_{ij}^{(ℓ+1)})² σ′(z_j^{(ℓ)})²

has the ensemble mean C_W^{(ℓ+1)} E[σ′(z^{(ℓ)})²] = χ_⊥(K^{(ℓ)}) (book (5.50): χ_⊥ = C_W⟨σ′σ′⟩_K), exactly at
ℓ = 1 (z^{(1)} is Gaussian at any width) and up to O(1/n) deeper. It uses the drawn weights, not C_W, so a
criticality condition χ_⊥ = 1 can be located from simulations alone (the ``criticality`` experiment).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, §5.1, (5.50)
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP, check_net
from ..statistics import Estimate, mean
from .forward import DTYPES, check_dtype, check_seed, forward_preactivations, init_params, network_key

__all__ = ["empirical_chi_perp"]

DEFAULT_CHUNK = 1024  # networks per vmapped batch: (chunk, n, n) weights stay ≲ 10⁸ floats up to n ≈ 300


@lru_cache(maxsize=32)
def _chi_program(net: MLP, dt):
    d1 = net.activation.derivative(1)

    def one(key, x):
        params = init_params(net, key, dt)
        zs = forward_preactivations(net, params, x[None, :])
        return jnp.stack([
            jnp.sum(W**2 * d1(z[0])[None, :] ** 2) / W.shape[0] for (W, _), z in zip(params[1:], zs[:-1], strict=True)
        ])

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def empirical_chi_perp(net, x, n_networks: int, seed: int = 0, *, chunk_size: int = DEFAULT_CHUNK,
                       dtype: str = "float64") -> Estimate:
    """χ̂_⊥^{(ℓ)}, ℓ = 1..L−1, averaged over networks 0..n_networks−1 of the ensemble ``seed`` (the same networks
    as :func:`deepeft.sample_ensemble`), with standard errors: an :class:`Estimate` of shape (L−1,).

    Parameters
    ----------
    net : an MLP with at least one hidden layer.
    x : one input, shape (n_0,) (or (1, n_0)).
    n_networks : ensemble size (≥ 2: the standard error needs two).
    chunk_size : networks per vmapped batch (memory only; the result does not depend on it).
    """
    net = check_net(net)
    if net.L < 2:
        raise DeepEFTInputError("empirical_chi_perp needs a hidden layer (χ_⊥ connects layer ℓ to ℓ+1); "
                                "give the MLP at least one hidden width.")
    X = net.check_inputs(np.atleast_2d(x), "x")
    if X.shape[0] != 1:
        raise DeepEFTInputError(f"empirical_chi_perp takes one input (n_0,), got {X.shape[0]} inputs; "
                                "call it once per input.")
    n_networks = v.positive_int(n_networks, "n_networks")
    if n_networks < 2:
        raise DeepEFTInputError("n_networks must be ≥ 2 (the standard error needs two networks).")
    chunk_size = v.positive_int(chunk_size, "chunk_size")
    seed = check_seed(seed)
    dt = DTYPES[check_dtype(dtype)]
    prog = _chi_program(net, dt)
    out = []
    with x64():
        xj = jnp.asarray(X[0], dt)
        for start in range(0, n_networks, chunk_size):
            idx = jnp.arange(start, min(start + chunk_size, n_networks))
            keys = jax.vmap(lambda i: network_key(seed, i))(idx)
            out.append(np.asarray(prog(keys, xj), dtype=np.float64))
    return mean(np.concatenate(out))
