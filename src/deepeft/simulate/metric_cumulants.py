"""Per-network stochastic metrics of an ensemble, and their cumulants: V and the six-point vertex U.

For one input x, network s has in every layer the stochastic metric (4.70)

    Ĝ^{(ℓ)} = C_b^{(ℓ)} + (C_W^{(ℓ)}/n_{ℓ−1}) Σ_j σ(z_j^{(ℓ−1)})²    (Ĝ^{(1)} = C_b + C_W |x|²/n_0, deterministic),

and given layer ℓ − 1 the preactivations of layer ℓ are iid N(0, Ĝ^{(ℓ)}) (4.71). Hence, exactly,
E[Ĝ] = G, n_{ℓ−1} Var(Ĝ) = V (4.76) and n_{ℓ−1}² κ₃(Ĝ) = U, the six-point vertex of Ch. ε, i.e.
E[z_i²z_j²z_k²] − 3E[z_i²z_j²]E[z²] + 2E[z²]³ = U/n² for distinct neurons. We estimate V and U by the unbiased
k-statistics k₂, k₃ of the per-network Ĝ over networks, with delete-one-block jackknife standard errors.

Two samplers (``method``): "weights" runs the networks — those of :func:`~deepeft.simulate.ensemble.sample_ensemble`
with method "weights" (same keys), n_{ℓ−1}·n_ℓ random numbers per layer; "metric" draws the exact conditional chain
(4.70)–(4.71) directly, z^{(ℓ)} = √Ĝ^{(ℓ)} ξ with ξ iid N(0, 1) (the bias is inside Ĝ: b + Wσ given σ is
N(0, Ĝ) per neuron), n_ℓ random numbers per layer — the same law of (Ĝ^{(1)}, …, Ĝ^{(L)}) jointly, at n× fewer random
numbers, so n× more networks for the same time (κ₃'s sampling error needs them: U is the third cumulant).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network_residual import ResidualMLP
from ..statistics import Estimate, block_count, jackknife
from . import forward as fw

__all__ = [
    "MetricCumulants",
    "metric_cumulants",
    "stochastic_metric",
    "stochastic_metric_from_preactivations",
    "stochastic_metric_samples",
]


_BATCH = 256  # networks per jitted call (fixed: one compilation per architecture)


def stochastic_metric(net, l: int, gram, prev_metric=None):
    """The stochastic metric Ĝ^{(ℓ)} of layer ℓ from the previous layer, elementwise (NumPy or JAX, any shape):

        Ĝ^{(ℓ)} = C_b^{(ℓ)} + (C_W^{(ℓ)}/n_{ℓ−1}) gram,   gram = Σ_j σ(z_j^{(ℓ−1)}) σ(z_j^{(ℓ−1)})ᵀ      (4.70)

    (gram = x xᵀ, or Σ_j x_j², at ℓ = 1; the sum of squares Σ_j σ_j² for one input). Given layer ℓ − 1 the
    preactivations of layer ℓ are iid N(0, Ĝ^{(ℓ)}) over neurons (4.71). For a :class:`~deepeft.ResidualMLP`
    (B.3) the block is scaled by ξ² and the skip adds γ² times the previous layer's metric:

        Ĝ^{(ℓ)} = ξ²[C_b + (C_W/n_{ℓ−1}) gram] + γ² M^{(ℓ−1)},   M^{(ℓ−1)} = (1/n_{ℓ−1}) Σ_i z_i^{(ℓ−1)} z_i^{(ℓ−1)ᵀ},

    = E[M^{(ℓ)} | layer ℓ − 1] (App. B, (B.6)–(B.12)); ``prev_metric`` is M^{(ℓ−1)}. Without it (None) the block
    part ξ²[…] alone is returned (for a residual net with γ^{(ℓ)} ≠ 0 that is the σ part common to every neuron,
    not Ĝ); for an :class:`~deepeft.MLP` (γ = 0, ξ = 1) ``prev_metric`` is ignored. The hyperparameters enter as
    Python floats (weakly typed): a float32 ``gram`` gives a float32 Ĝ.

    References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, (4.70)–(4.71), App. B
    (arXiv:2106.10165).
    """
    G = float(net.C_b[l - 1]) + float(net.C_W[l - 1]) / net.n[l - 1] * gram
    if isinstance(net, ResidualMLP):
        if net.xi[l - 1] != 1.0:
            G = float(net.xi[l - 1]) ** 2 * G
        if prev_metric is not None and net.gamma[l - 1]:
            G = G + float(net.gamma[l - 1]) ** 2 * prev_metric
    return G


@functools.lru_cache(maxsize=32)
def _metric_program(net, dtype: str):
    """jit: Ĝ^{(2..L)} of a batch of networks (keys (B,)) on one input (weights method, as sample_ensemble)."""
    dt = fw.DTYPES[dtype]
    L = net.L

    def one(key, X):
        zs = fw.forward_preactivations(net, fw.init_params(net, key, dt), X)
        out = []
        for l in range(2, L + 1):
            s2 = jnp.sum(net.activation.fn(zs[l - 2][0].astype(jnp.float64)) ** 2)
            out.append(stochastic_metric(net, l, s2))
        return jnp.stack(out)

    base = jax.vmap(one, in_axes=(0, None))
    keys = jax.vmap(fw.network_key, in_axes=(None, 0))
    return jax.jit(lambda seed, idx, X: base(keys(seed, idx), X))


_CHAIN_BATCH = 8192  # networks per jitted call of the conditional chain (fixed: one compilation per architecture)
_METHODS = ("weights", "metric")


@functools.lru_cache(maxsize=32)
def _chain_program(net, dtype: str):
    """jit: Ĝ^{(2..L)} of a batch of networks (keys (B,)) drawn from the exact conditional chain (4.70)–(4.71):
    z^{(ℓ)} = √Ĝ^{(ℓ)} ξ, ξ ~ N(0, 1) iid over the n_ℓ neurons, from Ĝ^{(1)} (an argument)."""
    dt = fw.DTYPES[dtype]
    n, L = net.n, net.L

    def one(key, g1):
        xi = jax.random.normal(key, (sum(n[1:L]),), dt)
        g, out, o = g1, [], 0
        for l in range(2, L + 1):  # z in the network dtype (as the weights method), Σσ² accumulated in float64
            z = jnp.sqrt(g).astype(dt) * xi[o : o + n[l - 1]]
            o += n[l - 1]
            g = stochastic_metric(net, l, jnp.sum(net.activation.fn(z).astype(jnp.float64) ** 2))
            out.append(g)
        return jnp.stack(out)

    base = jax.vmap(one, in_axes=(0, None))
    keys = jax.vmap(fw.network_key, in_axes=(None, 0))
    return jax.jit(lambda seed, idx, g1: base(keys(seed, idx), g1))


def stochastic_metric_samples(net, x, n_networks: int, seed: int = 0, *, dtype="float32", method: str = "weights"):
    """Ĝ^{(ℓ)} (4.70) of networks 0..n_networks−1 on one input ``x`` (n0,): array (n_networks, L), float64; Ĝ^{(1)} is
    deterministic. ``method`` "weights": the networks of :func:`~.ensemble.sample_ensemble` with method "weights";
    "metric": the exact conditional chain (4.70)–(4.71), n_{ℓ−1}× fewer random numbers (module docstring)."""
    if method not in _METHODS:
        raise DeepEFTInputError(f"method must be one of {_METHODS}, got {method!r}.")
    net = fw.check_net(net)
    X = np.asarray(x, dtype=np.float64)
    X = net.check_inputs(X[None, :] if X.ndim == 1 else X, "x")
    if X.shape[0] != 1:
        raise DeepEFTInputError(f"stochastic_metric_samples takes one input x of shape (n0,), got {X.shape[0]} inputs.")
    S = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    dtype = fw.check_dtype(dtype)
    out = np.empty((S, net.L))
    out[:, 0] = stochastic_metric(net, 1, float(np.sum(X[0] ** 2)))
    if net.L > 1 and method == "metric":
        with x64():
            chain = _chain_program(net, dtype)
            for start in range(0, S, _CHAIN_BATCH):
                idx = jnp.arange(start, start + _CHAIN_BATCH, dtype=jnp.uint32)
                g = np.asarray(chain(seed, idx, jnp.float64(out[0, 0])))
                out[start : start + _CHAIN_BATCH, 1:] = g[: S - start]
    elif net.L > 1:
        with x64():
            prog = _metric_program(net, dtype)
            Xj = jnp.asarray(X, fw.DTYPES[dtype])
            for start in range(0, S, _BATCH):
                idx = jnp.arange(start, start + _BATCH, dtype=jnp.uint32)
                g = np.asarray(prog(seed, idx, Xj))
                out[start : start + _BATCH, 1:] = g[: S - start]
    return out


def stochastic_metric_from_preactivations(net, x, preactivations) -> np.ndarray:
    """Ĝ^{(ℓ)} (4.70) of every network from its kept preactivations on one input ``x`` (n0,): ``preactivations`` is
    a sequence of the L layers' z^{(ℓ)}, each (S, n_ℓ) (all neurons; e.g. from ``sample_ensemble`` with
    ``keep_preactivations``); returns (S, L), float64, Ĝ^{(1)} = C_b + C_W |x|²/n_0 (deterministic). Given layer
    ℓ − 1, the neurons of layer ℓ are iid N(0, Ĝ^{(ℓ)}) (4.71)."""
    net = fw.check_net(net)
    X = np.asarray(x, dtype=np.float64).reshape(-1)
    zs = [np.asarray(z, dtype=np.float64) for z in preactivations]
    if len(zs) != net.L or any(z.ndim != 2 or z.shape[1] != net.n[l + 1] for l, z in enumerate(zs)):
        raise DeepEFTInputError(
            f"preactivations must be the {net.L} layers' z of shape (networks, n_ℓ) with n_ℓ = {list(net.n[1:])}, got "
            f"shapes {[np.shape(z) for z in zs]}."
        )
    S = zs[0].shape[0]
    out = np.empty((S, net.L))
    out[:, 0] = stochastic_metric(net, 1, float(np.sum(X**2)))
    for l in range(2, net.L + 1):
        out[:, l - 1] = stochastic_metric(net, l, np.sum(net.activation.numpy(zs[l - 2]) ** 2, axis=1))
    return out


def _block_power_sums(g: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per jackknife block b (the blocks of :func:`deepeft.statistics.jackknife`): the count and Σ d, Σ d², Σ d³ of
    d = Ĝ − c (c the full-sample mean, against cancellation), shape (B, 4, L); and c (L,). Every statistic below is a
    function of power sums, so the delete-one-block jackknife over these B rows is the jackknife over networks,
    at O(B) instead of O(B·S) work per replicate."""
    S = g.shape[0]
    B = block_count(S, blocks)
    edges = np.linspace(0, S, B + 1).astype(int)
    c = g.mean(axis=0)
    d = g - c
    count = np.broadcast_to(np.diff(edges)[:, None].astype(np.float64), (B, g.shape[1]))
    sums = [np.add.reduceat(d**k, edges[:-1], axis=0) for k in (1, 2, 3)]
    return np.stack([count, *sums], axis=1), c


def _moments(P: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, k₂, k₃) per layer from block power sums (rows of :func:`_block_power_sums`): the unbiased k-statistics
    k₂ = S/(S−1)·m₂, k₃ = S²/((S−1)(S−2))·m₃ of the networks' Ĝ."""
    N, s1, s2, s3 = P.sum(axis=0)
    mu = s1 / N
    m2 = s2 / N - mu**2
    m3 = s3 / N - 3 * mu * s2 / N + 2 * mu**3
    return c + mu, N / (N - 1) * m2, N * N / ((N - 1) * (N - 2)) * m3


@dataclasses.dataclass(frozen=True, eq=False)
class MetricCumulants:
    """Per layer (index ℓ − 1): ``G`` = E[Ĝ], ``V`` = n_{ℓ−1}k₂(Ĝ), ``U`` = n_{ℓ−1}²k₃(Ĝ) as Estimates
    (V = U = 0 exactly at ℓ = 1); ``U_normalized`` = U/(n²G³) = k₃/G³ (ε.21); ``samples`` the per-network Ĝ (S, L)."""

    G: Estimate
    V: Estimate
    U: Estimate
    U_normalized: Estimate
    samples: np.ndarray


def metric_cumulants(net, x, n_networks: int, seed: int = 0, *, blocks: int = 32, dtype="float32",
                     method: str = "weights") -> MetricCumulants:
    """Measure G, V and the six-point vertex U (Ch. ε) per layer from ``n_networks`` networks on one input; ``method``
    "weights" (run the networks) or "metric" (the exact conditional chain (4.70)–(4.71), module docstring)."""
    g = stochastic_metric_samples(net, x, n_networks, seed, dtype=dtype, method=method)
    n_prev = np.asarray((np.inf,) + net.n[1:-1], dtype=np.float64)
    scale2 = np.where(np.isfinite(n_prev), n_prev, 0.0)
    P, c = _block_power_sums(g, blocks)
    L = g.shape[1]

    def stat(rows):
        mean, k2, k3 = _moments(rows, c)
        return np.concatenate([mean, scale2 * k2, scale2**2 * k3, k3 / mean**3])

    est = jackknife(stat, P, blocks=P.shape[0])  # one row per block: the delete-one-block jackknife over networks
    G, V, U, norm = (Estimate(est.value[k * L : (k + 1) * L], est.stderr[k * L : (k + 1) * L]) for k in range(4))
    return MetricCumulants(G, V, U, norm, g)
