"""Per-network stochastic metrics of an ensemble, and their cumulants: V and the six-point vertex U.

For one input x, network s has in every layer the stochastic metric (4.70)

    Ĝ^{(ℓ)} = C_b^{(ℓ)} + (C_W^{(ℓ)}/n_{ℓ−1}) Σ_j σ(z_j^{(ℓ−1)})²    (Ĝ^{(1)} = C_b + C_W |x|²/n_0, deterministic),

and given layer ℓ − 1 the preactivations of layer ℓ are iid N(0, Ĝ^{(ℓ)}) (4.71). Hence, exactly,
E[Ĝ] = G, n_{ℓ−1} Var(Ĝ) = V (4.76) and n_{ℓ−1}² κ₃(Ĝ) = U, the six-point vertex of Ch. ε, i.e.
E[z_i²z_j²z_k²] − 3E[z_i²z_j²]E[z²] + 2E[z²]³ = U/n² for distinct neurons. We estimate V and U by the unbiased
k-statistics k₂, k₃ of the per-network Ĝ over networks, with delete-one-block jackknife standard errors.

The networks are those of :func:`~deepeft.simulate.ensemble.sample_ensemble` with method "weights" (same keys).
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
from ..statistics import Estimate, jackknife
from . import forward as fw

__all__ = ["MetricCumulants", "metric_cumulants", "stochastic_metric_from_preactivations", "stochastic_metric_samples"]


_BATCH = 256  # networks per jitted call (fixed: one compilation per architecture)


@functools.lru_cache(maxsize=32)
def _metric_program(net, dtype: str):
    """jit: Ĝ^{(2..L)} of a batch of networks (keys (B,)) on one input (weights method, as sample_ensemble)."""
    dt = fw.DTYPES[dtype]
    n, L = net.n, net.L

    def one(key, X):
        zs = fw.forward_preactivations(net, fw.init_params(net, key, dt), X)
        out = []
        for l in range(2, L + 1):
            s2 = jnp.sum(net.activation.fn(zs[l - 2][0].astype(jnp.float64)) ** 2)
            out.append(net.C_b[l - 1] + net.C_W[l - 1] / n[l - 1] * s2)
        return jnp.stack(out)

    base = jax.vmap(one, in_axes=(0, None))
    keys = jax.vmap(fw.network_key, in_axes=(None, 0))
    return jax.jit(lambda seed, idx, X: base(keys(seed, idx), X))


def stochastic_metric_samples(net, x, n_networks: int, seed: int = 0, *, dtype="float32"):
    """Ĝ^{(ℓ)} (4.70) of networks 0..n_networks−1 (the networks of :func:`~.ensemble.sample_ensemble` with
    method "weights") on one input ``x`` (n0,): array (n_networks, L), float64; Ĝ^{(1)} is deterministic."""
    net = fw.check_net(net)
    X = np.asarray(x, dtype=np.float64)
    X = net.check_inputs(X[None, :] if X.ndim == 1 else X, "x")
    if X.shape[0] != 1:
        raise DeepEFTInputError(f"stochastic_metric_samples takes one input x of shape (n0,), got {X.shape[0]} inputs.")
    S = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    dtype = fw.check_dtype(dtype)
    out = np.empty((S, net.L))
    out[:, 0] = net.C_b[0] + net.C_W[0] * float(np.mean(X[0] ** 2))
    if net.L > 1:
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
    out[:, 0] = net.C_b[0] + net.C_W[0] * float(np.mean(X**2))
    for l in range(2, net.L + 1):
        out[:, l - 1] = net.C_b[l - 1] + net.C_W[l - 1] / net.n[l - 1] * np.sum(net.activation.numpy(zs[l - 2]) ** 2, axis=1)
    return out


def _k2(g: np.ndarray) -> np.ndarray:
    return g.var(axis=0, ddof=1)


def _k3(g: np.ndarray) -> np.ndarray:
    S = g.shape[0]
    d = g - g.mean(axis=0)
    return S * S / ((S - 1) * (S - 2)) * np.mean(d**3, axis=0)


@dataclasses.dataclass(frozen=True, eq=False)
class MetricCumulants:
    """Per layer (index ℓ − 1): ``G`` = E[Ĝ], ``V`` = n_{ℓ−1}k₂(Ĝ), ``U`` = n_{ℓ−1}²k₃(Ĝ) as Estimates
    (V = U = 0 exactly at ℓ = 1); ``U_normalized`` = U/(n²G³) = k₃/G³ (ε.21); ``samples`` the per-network Ĝ (S, L)."""

    G: Estimate
    V: Estimate
    U: Estimate
    U_normalized: Estimate
    samples: np.ndarray


def metric_cumulants(net, x, n_networks: int, seed: int = 0, *, blocks: int = 32, dtype="float32") -> MetricCumulants:
    """Measure G, V and the six-point vertex U (Ch. ε) per layer from ``n_networks`` networks on one input."""
    g = stochastic_metric_samples(net, x, n_networks, seed, dtype=dtype)
    n_prev = np.asarray((np.inf,) + net.n[1:-1], dtype=np.float64)
    scale2 = np.where(np.isfinite(n_prev), n_prev, 0.0)
    G = jackknife(lambda a: a.mean(axis=0), g, blocks=blocks)
    V = jackknife(lambda a: scale2 * _k2(a), g, blocks=blocks)
    U = jackknife(lambda a: scale2**2 * _k3(a), g, blocks=blocks)
    norm = jackknife(lambda a: _k3(a) / a.mean(axis=0) ** 3, g, blocks=blocks)
    return MetricCumulants(G, V, U, norm, g)
