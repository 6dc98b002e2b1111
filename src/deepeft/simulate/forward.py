"""One random MLP: parameter sampling (2.19)–(2.20) and the forward pass (2.5), all layers.

Network ``s`` of an ensemble with seed ``seed`` is drawn from the key
``fold_in(PRNGKey(seed), s)`` (:func:`network_key`), so any single network of an ensemble can be
rebuilt on its own (and ensembles do not depend on how they are chunked). Within a network, all
parameters are scaled slices of one standard-normal draw ``normal(key, (P,))``, P = Σ_ℓ n_ℓ(n_{ℓ−1} + 1),
laid out layer by layer as (W^{(1)}, b^{(1)}, W^{(2)}, ...) (:func:`param_layout`):

    W^{(ℓ)}_{ij} ~ N(0, C_W^{(ℓ)}/n_{ℓ−1}),   b^{(ℓ)}_i ~ N(0, C_b^{(ℓ)})            (2.19)–(2.20)
    z^{(1)} = b^{(1)} + W^{(1)} x,   z^{(ℓ+1)} = b^{(ℓ+1)} + W^{(ℓ+1)} σ(z^{(ℓ)})     (2.5)

Arrays are laid out samples-first: X has shape (N, n_0) and z^{(ℓ)} has shape (N, n_ℓ), i.e.
``z[α, i]`` is the book's z_{i;α}. W^{(ℓ)} has shape (n_ℓ, n_{ℓ−1}) as in the book.

Simulation runs in float32 by default (``dtype="float64"`` switches); the random numbers, and so
the network, depend on (seed, index, dtype). JAX code runs inside ``jax.enable_x64(True)`` with
explicit dtypes, so the user's global x64 flag is never touched.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..errors import DeepEFTInputError, suggest
from ..network import MLP, check_net  # noqa: F401  (re-exported: fw.check_net)
from ..network_residual import ResidualMLP

__all__ = [
    "DTYPES",
    "as_params",
    "check_dtype",
    "check_seed",
    "forward_preactivations",
    "micro_batch_keys",
    "network_key",
    "network_params",
    "param_layout",
    "preactivations",
    "residual_forward",
    "sample_params",
    "skip_step",
]

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}  # name → JAX dtype


def check_dtype(dtype) -> str:
    """'float32' or 'float64' (also accepts numpy/jax dtypes)."""
    name = dtype if isinstance(dtype, str) else getattr(np.dtype(dtype), "name", str(dtype))
    if name not in DTYPES:
        raise DeepEFTInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}.{suggest(str(name), DTYPES)}")
    return name


def network_key(seed: int, index) -> jax.Array:
    """The PRNG key of network ``index`` of the ensemble with ``seed``: fold_in(PRNGKey(seed), index)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def micro_batch_keys(base_key, start, B: int):
    """(indices, keys) of networks start..start+B−1: keys[b] = fold_in(base_key, start + b) (see
    :func:`network_key`; base_key = PRNGKey(seed)); traceable (start may be a uint32 tracer)."""
    idx = start + jnp.arange(B, dtype=jnp.uint32)
    return idx, jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base_key, idx)


# ---------------------------------------------------------------------------------------------
# Pure-JAX core (used inside jit/vmap by ensemble.py and ntk.py)
# ---------------------------------------------------------------------------------------------


def param_layout(net: MLP) -> tuple[tuple[int, int, int], ...]:
    """Offsets into a network's flat standard-normal stream: per layer (start of W, start of b, end).

    Layer ℓ occupies n_ℓ n_{ℓ−1} numbers for W^{(ℓ)} (row-major (n_ℓ, n_{ℓ−1})) followed by n_ℓ for b^{(ℓ)}.
    """
    n, out, o = net.n, [], 0
    for l in range(1, net.L + 1):
        w_end = o + n[l] * n[l - 1]
        out.append((o, w_end, w_end + n[l]))
        o = w_end + n[l]
    return tuple(out)


def init_params(net: MLP, key, dtype) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """((W^{(1)}, b^{(1)}), ..., (W^{(L)}, b^{(L)})) with W ~ N(0, C_W/n_{ℓ−1}), b ~ N(0, C_b) (2.19)–(2.20).

    All parameters are scaled slices of ONE draw ξ = normal(key, (P,)) laid out by :func:`param_layout`:
    a single random-number kernel per network (one compiled fusion, not one per layer).
    """
    n = net.n
    layout = param_layout(net)
    xi = jax.random.normal(key, (layout[-1][2],), dtype)
    params = []
    for l, (o, w_end, b_end) in enumerate(layout, start=1):
        sW = float(np.sqrt(net.C_W[l - 1] / n[l - 1]))  # Python floats are weakly typed: stays in dtype
        sb = float(np.sqrt(net.C_b[l - 1]))
        params.append((sW * xi[o:w_end].reshape(n[l], n[l - 1]), sb * xi[w_end:b_end]))
    return tuple(params)


def forward_preactivations(net: MLP, params, X) -> tuple[jax.Array, ...]:
    """All preactivations (z^{(1)}, ..., z^{(L)}), each (N, n_ℓ) (2.5); the output z^{(L)} has no activation."""
    zs = []
    a = X
    for l, (W, b) in enumerate(params, start=1):
        z = a @ W.T + b
        zs.append(z)
        if l < net.L:
            a = net.activation.fn(z)
    return tuple(zs)


forward = forward_preactivations  # old name (it collided with deepeft.sgd's student forward pass)


# ---------------------------------------------------------------------------------------------
# Public helpers (NumPy in, NumPy out)
# ---------------------------------------------------------------------------------------------


def check_seed(seed) -> int:
    """An ensemble seed: an integer in [0, 2**32) (the one check shared by every simulate module)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DeepEFTInputError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
    return int(seed)


def _check_seed_index(seed, index):
    seed = check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < 2**32:
        raise DeepEFTInputError(f"index must be an integer in [0, 2**32) (the network's number), got {index!r}.")
    return int(seed), int(index)


def _jnp_params(params, dtype):
    try:
        return tuple((jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in params)
    except (TypeError, ValueError):
        raise DeepEFTInputError("params must be a sequence of (W, b) pairs, as returned by sample_params.") from None


def _check_params(net: MLP, params) -> None:
    n = net.n
    if len(params) != net.L:
        raise DeepEFTInputError(f"params must hold L = {net.L} (W, b) pairs, got {len(params)}.")
    for l, (W, b) in enumerate(params, start=1):
        if W.shape != (n[l], n[l - 1]) or b.shape != (n[l],):
            raise DeepEFTInputError(
                f"layer {l}: expected W of shape {(n[l], n[l - 1])} and b of shape {(n[l],)}, "
                f"got {tuple(W.shape)} and {tuple(b.shape)}."
            )


def as_params(net: MLP, params, dtype) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """User ``params`` ((W, b) pairs, as from :func:`sample_params`) as JAX arrays of ``dtype``, shapes checked against
    ``net`` (a clear error otherwise)."""
    p = _jnp_params(params, dtype)
    _check_params(net, p)
    return p


def network_params(net: MLP, params, seed, index, dtype) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """The JAX parameters of one network: ``params`` checked (:func:`as_params`) or, when ``params`` is None,
    network ``index`` of the ensemble with ``seed`` (drawn as :func:`sample_params` does). Call under ``x64()``
    for float64."""
    if params is not None:
        return as_params(net, params, dtype)
    seed, index = _check_seed_index(seed, index)
    return _jitted_init(net, dtype)(network_key(seed, index))


def sample_params(net: MLP, seed: int = 0, index: int = 0, *, dtype="float32"):
    """The parameters of network ``index`` of the ensemble with ``seed``: a tuple of (W, b) NumPy pairs.

    ``sample_ensemble(net, X, n, seed)`` uses exactly these networks (index 0..n−1).
    """
    net = check_net(net)
    seed, index = _check_seed_index(seed, index)
    dt = DTYPES[check_dtype(dtype)]
    with x64():
        params = _jitted_init(net, dt)(network_key(seed, index))
        return tuple((np.asarray(W), np.asarray(b)) for W, b in params)


def preactivations(net: MLP, X, params=None, *, seed: int = 0, index: int = 0, dtype="float32"):
    """All layers' preactivations z^{(ℓ)} of one network for inputs X (N, n_0): a tuple of L arrays (N, n_ℓ).

    Pass ``params`` (from :func:`sample_params`), or ``seed``/``index`` to draw network ``index``.
    """
    net = check_net(net)
    X = net.check_inputs(X)
    dt = DTYPES[check_dtype(dtype)]
    with x64():
        p = network_params(net, params, seed, index, dt)
        zs = _jitted_forward(net)(p, jnp.asarray(X, dt))
        return tuple(np.asarray(z) for z in zs)


@functools.lru_cache(maxsize=64)
def _jitted_init(net: MLP, dt):
    return jax.jit(lambda key: init_params(net, key, dt))


@functools.lru_cache(maxsize=64)
def _jitted_forward(net: MLP):
    return jax.jit(lambda p, X: forward_preactivations(net, p, X))


def skip_step(net: ResidualMLP, l: int, u, zs) -> jax.Array:
    """z^{(ℓ)} = ξ^{(ℓ)} u + γ^{(ℓ)} z^{(ℓ−1)} (B.3), u = b + Wσ (or its draw given layer ℓ − 1); zs = (z^{(1)}, …)."""
    z = float(net.xi[l - 1]) * u
    if net.gamma[l - 1] and zs:
        z = z + float(net.gamma[l - 1]) * zs[-1]
    return z


def residual_forward(net: ResidualMLP, params, X) -> tuple[jax.Array, ...]:
    """All preactivations (z^{(1)}, ..., z^{(L)}) of one residual network (B.3), each (N, n_ℓ); pure JAX."""
    zs: list[jax.Array] = []
    a = X
    for l, (W, b) in enumerate(params, start=1):
        zs.append(skip_step(net, l, a @ W.T + b, zs))
        if l < net.L:
            a = net.activation.fn(zs[-1])
    return tuple(zs)
