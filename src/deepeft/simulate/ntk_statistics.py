"""Ensemble estimators of the NTK fluctuation tensors A, B, D, F from the exact per-network NTK (§8.2–8.3).

For every network (parameters drawn as in :mod:`.forward`: network s from ``fold_in(PRNGKey(seed), s)``,
the same networks ``sample_ensemble`` and ``empirical_ntk`` use) the NTK of every layer comes from the
forward equation (8.12) (:func:`.ntk.ntk_forward`). Using all neuron pairs i ≠ j of layer ℓ (width n_ℓ),
the decompositions (8.82), (8.37) give unbiased per-network statistics whose ensemble means are

    Cov(Ĥ_{ii;α1α2}, Ĥ_{jj;α3α4})        = A_{(α1α2)(α3α4)}/n_{ℓ−1}
    E[Ĥ_{ij;α1α2} Ĥ_{ij;α3α4}]           = B_{α1α3α2α4}/n_{ℓ−1}          (E[Ĥ_{ij}] = 0 for i ≠ j)
    Cov(z_{i;α1}z_{i;α2}, Ĥ_{jj;α3α4})   = D_{α1α2α3α4}/n_{ℓ−1}
    E[z_{i;α1} z_{j;α2} Ĥ_{ij;α3α4}]     = F_{α1α3α2α4}/n_{ℓ−1}

— exact definitions at finite width (the theory gives them to leading order in 1/n). The estimators
are returned multiplied by n_{ℓ−1}, in the book's index layout (as :func:`deepeft.ntk_fluctuations`).
Standard errors: delete-one-block jackknife over ``blocks`` equal blocks of networks
(:func:`deepeft.statistics.jackknife`), which also removes the O(1/S) bias of the product of means.
Single-input projections (digest): Var Ĥ11 = (A + 2B)/n, Cov(Ĥ11, Ĥ22) = A/n, E[Ĥ12²] = B/n,
E[z1²ΔĤ11] = (D + 2F)/n, E[z1²ΔĤ22] = D/n, E[z1z2Ĥ12] = F/n.
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
from ..network import MLP, check_net
from ..statistics import Estimate, jackknife
from . import forward as fw
from .ntk import ntk_forward

__all__ = ["NTKStatistics", "ntk_statistics", "ntk_statistics_micro_batch", "output_ntk_jacobian"]

_FIELDS = ("m", "u", "tA", "tB", "tD", "tF")
_MB_BUDGET_FLOATS = 2**20  # working set of one micro-batch (≈ 8 MB in float64: cache-sized; larger was slower)


def _layer_stats(z, H):
    """Per-network statistics of one layer: z (N, n), H (n, n, N, N) → dict of arrays (pair averages)."""
    n = z.shape[1]
    hd = jnp.einsum("iiab->iab", H)  # Ĥ_ii (n, N, N)
    zz = jnp.einsum("ai,bi->iab", z, z)  # z_i z_i (n, N, N)
    s_h, s_z = hd.sum(0), zz.sum(0)
    pairs = n * (n - 1)
    tA = (jnp.einsum("ab,cd->abcd", s_h, s_h) - jnp.einsum("iab,icd->abcd", hd, hd)) / pairs
    tD = (jnp.einsum("ab,cd->abcd", s_z, s_h) - jnp.einsum("iab,icd->abcd", zz, hd)) / pairs
    # B[a1,a3,a2,a4] = Σ_{i≠j} Ĥ_{ij;a1a2} Ĥ_{ij;a3a4}
    tB = (jnp.einsum("ijpr,ijqs->pqrs", H, H) - jnp.einsum("ipr,iqs->pqrs", hd, hd)) / pairs
    # F[a1,a3,a2,a4] = Σ_{i≠j} z_{i;a1} z_{j;a2} Ĥ_{ij;a3a4}
    zt = z.T  # (n, N)
    tF = (jnp.einsum("ip,jr,ijqs->pqrs", zt, zt, H) - jnp.einsum("ip,ir,iqs->pqrs", zt, zt, hd)) / pairs
    return {"m": s_h / n, "u": s_z / n, "tA": tA, "tB": tB, "tD": tD, "tF": tF}


def output_ntk_jacobian(net: MLP, params, X, zs):
    """Ĥ^{(L)} (n_L, n_L, N, N) from backpropagated Jacobians G^{(ℓ)}_α = ∂z^{(L)}_α/∂z^{(ℓ)}_α (n_L × n_ℓ):

        Ĥ^{(L)}_{ij;α1α2} = Σ_ℓ [λ_b^{(ℓ)} + λ_W^{(ℓ)} σ^{(ℓ−1)}_{α1}·σ^{(ℓ−1)}_{α2}/n_{ℓ−1}]
                              × Σ_k G^{(ℓ)}_{α1,ik} G^{(ℓ)}_{α2,jk}   (8.5)–(8.7)

    with G^{(ℓ−1)} = G^{(ℓ)} W^{(ℓ)} diag σ′(z^{(ℓ−1)}) (σ^{(0)} = x). Cost per layer N n_L n_ℓ n_{ℓ+1} + N² n_L² n_ℓ — batched
    GEMMs under vmap — instead of the forward equation's 2N² n_ℓ³ for every layer: the route for output-layer
    statistics when n_L ≪ n."""
    n = net.n
    L = net.L
    N = X.shape[0]
    dsig = net.activation.derivative(1)
    acts = [X] + [net.activation.fn(zs[l]) for l in range(L - 1)]
    G = jnp.broadcast_to(jnp.eye(n[L], dtype=X.dtype), (N, n[L], n[L]))
    H = jnp.zeros((n[L], n[L], N, N), X.dtype)
    for l in range(L, 0, -1):
        a = acts[l - 1]
        c = net.lambda_b[l - 1] + net.lambda_W[l - 1] * (a @ a.T) / n[l - 1]
        H = H + jnp.einsum("aik,bjk->ijab", G, G) * c[None, None]
        if l > 1:
            W = params[l - 1][0]
            G = jnp.einsum("aik,kj->aij", G, W) * dsig(zs[l - 2])[:, None, :]
    return H


@functools.lru_cache(maxsize=32)
def _block_program(net: MLP, dt, micro: int, output_only: bool = False):
    """Jitted: (base key, X, first network, count, micro-batches) → the sum over networks first … first + count − 1
    of every layer's statistics (ℓ ≥ 2), or of the output layer's only (Jacobian route).

    Memory is bounded by one micro-batch of ``micro`` networks (their keys are made inside, padding masked). The
    per-network statistics are added to the float64 sums one network at a time in network order, so the
    summation order — and so the result, up to the rounding of the batched per-network kernels — does not depend
    on ``micro``."""

    def one(key, X):
        p = fw.init_params(net, key, dt)
        zs = fw.forward_preactivations(net, p, X)
        if output_only:
            return [_layer_stats(zs[-1], output_ntk_jacobian(net, p, X, zs))]
        Hs = ntk_forward(net, p, X, zs)
        return [_layer_stats(zs[l], Hs[l]) for l in range(1, net.L)]

    def run(base, X, first, count, n_micro):
        def batch(m, acc):
            k = m * micro + jnp.arange(micro, dtype=jnp.uint32)
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base, first + k)
            st = jax.vmap(one, in_axes=(0, None))(keys, X)

            def add(j, acc):  # network order: the same sums whatever the micro-batch
                return jax.tree_util.tree_map(lambda a, s: a + jnp.where(k[j] < count, s[j].astype(a.dtype), 0.0), acc, st)

            return jax.lax.fori_loop(0, micro, add, acc)

        shapes = jax.eval_shape(lambda kk: one(kk, X), base)
        zero = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, jnp.float64), shapes)
        return jax.lax.fori_loop(jnp.uint32(0), n_micro, batch, zero)

    return jax.jit(run)


@dataclasses.dataclass(frozen=True, eq=False)
class NTKStatistics:
    """Ensemble estimates (value ± jackknife SE) of n_{ℓ−1}× the covariances above, layer ℓ at index ℓ − 1
    (layer 1 is deterministic: zeros, SE 0).

    ``A``, ``B``, ``D``, ``F``: Estimates of shape (L, N, N, N, N); ``H``: E[Ĥ_ii] (L, N, N) (layer 1 not
    sampled: NaN); ``metric``: E[z_i z_i] (L, N, N) (NaN at layer 1).
    """

    net: MLP
    X: np.ndarray
    n_networks: int
    seed: int
    A: Estimate
    B: Estimate
    D: Estimate
    F: Estimate
    H: Estimate
    metric: Estimate


def _finish(block_means: dict, n_prev: float, blocks: int) -> dict:
    """Estimates from block means of the per-network statistics of one layer."""
    arrs = [block_means[k] for k in _FIELDS]
    N = arrs[0].shape[-1]

    def stat(m, u, tA, tB, tD, tF):
        mm, uu = m.mean(0), u.mean(0)
        A = tA.mean(0) - np.einsum("ab,cd->abcd", mm, mm)
        D = tD.mean(0) - np.einsum("ab,cd->abcd", uu, mm)
        return np.concatenate([n_prev * np.stack([A, tB.mean(0), D, tF.mean(0)]).ravel(), mm.ravel(), uu.ravel()])

    est = jackknife(stat, *arrs, blocks=blocks)
    k = 4 * N**4
    val, se = np.asarray(est.value), np.asarray(est.stderr)
    out = {name: Estimate(val[i * N**4 : (i + 1) * N**4].reshape((N,) * 4), se[i * N**4 : (i + 1) * N**4].reshape((N,) * 4))
           for i, name in enumerate("ABDF")}
    out["H"] = Estimate(val[k : k + N * N].reshape(N, N), se[k : k + N * N].reshape(N, N))
    out["metric"] = Estimate(val[k + N * N :].reshape(N, N), se[k + N * N :].reshape(N, N))
    return out


def ntk_statistics_micro_batch(net: MLP, N: int, layers: str = "all") -> int:
    """Networks per vmapped micro-batch: a power of two (1..64) keeping the working set near 2^20 floats.

    Per network: the parameters, the preactivations, and the NTK of every layer (forward route, n_ℓ² N² each)
    or the backpropagated Jacobians (N n_L n_ℓ per layer, output route)."""
    n = net.n
    per_net = sum(n[l] * (n[l - 1] + 1) for l in range(1, net.L + 1)) + 4 * N * sum(n[1:])
    if layers == "output":
        per_net += 3 * N * n[-1] * max(n[1:]) + net.L * (N * n[-1]) ** 2
    else:
        per_net += 3 * sum(m * m for m in n[1:]) * N * N
    B = max(1, _MB_BUDGET_FLOATS // per_net)
    return int(min(64, 2 ** int(np.floor(np.log2(B)))))


def ntk_statistics(
    net: MLP,
    X,
    n_networks: int,
    *,
    seed: int = 0,
    blocks: int = 32,
    micro_batch: int | None = None,
    dtype="float64",
    layers: str = "all",
) -> NTKStatistics:
    """Estimate A, B, D, F (and E[Ĥ], E[zz]) of every layer from ``n_networks`` random networks.

    ``n_networks`` is rounded down to a multiple of ``blocks`` (the jackknife's equal blocks of consecutive
    networks). Every hidden/output layer needs n_ℓ ≥ 2 neurons (pairs i ≠ j). Cost per network: the
    forward-equation NTK, Σ_ℓ n_ℓ³N² (see :mod:`.ntk`). ``layers="output"``: only the output layer L, from
    backpropagated Jacobians (:func:`output_ntk_jacobian`: batched GEMMs, N n_L Σ_ℓ n_ℓ n_{ℓ−1} per network,
    cheap when n_L ≪ n; the other layers are NaN).

    ``micro_batch`` (default :func:`ntk_statistics_micro_batch`) networks run as one vmapped kernel; memory is bounded
    by one micro-batch whatever ``n_networks``. Results do not depend on it beyond rounding (the per-network
    statistics are summed in network order): network s is always ``fold_in(PRNGKey(seed), s)``.
    """
    if layers not in ("all", "output"):
        raise DeepEFTInputError(f"layers must be 'all' or 'output', got {layers!r}.")
    net = check_net(net)
    X = net.check_inputs(X, "X")
    n_networks = v.positive_int(n_networks, "n_networks")
    blocks = v.positive_int(blocks, "blocks")
    L, N = net.L, X.shape[0]
    micro = ntk_statistics_micro_batch(net, N, layers) if micro_batch is None else v.positive_int(micro_batch, "micro_batch")
    seed = fw.check_seed(seed)
    dt = fw.DTYPES[fw.check_dtype(dtype)]
    if blocks < 2:
        raise DeepEFTInputError("blocks must be >= 2 (jackknife standard errors).")
    if n_networks < blocks:
        raise DeepEFTInputError(
            f"n_networks = {n_networks} is smaller than blocks = {blocks}: every jackknife block needs at least one "
            "network; use more networks or fewer blocks."
        )
    if n_networks >= 2**32:
        raise DeepEFTInputError(f"n_networks must be below 2**32, got {n_networks}.")
    if min(net.n[1:]) < 2:
        raise DeepEFTInputError(f"every layer needs at least 2 neurons for pair statistics, got widths {net.n[1:]}.")
    per_block = n_networks // blocks
    micro = min(micro, per_block)
    n_micro = -(-per_block // micro)
    total = per_block * blocks
    n = np.asarray(net.n, dtype=np.float64)
    out_only = layers == "output"
    run = _block_program(net, dt, micro, out_only)
    nl = 1 if out_only else L - 1
    means: list[dict[str, list[np.ndarray]]] = [{k: [] for k in _FIELDS} for _ in range(nl)]
    with x64():
        Xj = jnp.asarray(X, dt)
        base = jax.random.PRNGKey(seed)  # network s: fold_in(base, s) = fw.network_key(seed, s)
        for b in range(blocks):
            acc = run(base, Xj, jnp.uint32(b * per_block), jnp.uint32(per_block), jnp.uint32(n_micro))
            for l in range(nl):
                for k in _FIELDS:
                    means[l][k].append(np.asarray(acc[l][k], dtype=np.float64) / per_block)
    shape4 = (L,) + (N,) * 4
    res = {k: (np.zeros(shape4), np.zeros(shape4)) for k in "ABDF"}
    res["H"] = (np.full((L, N, N), np.nan), np.full((L, N, N), np.nan))
    res["metric"] = (np.full((L, N, N), np.nan), np.full((L, N, N), np.nan))
    if out_only:
        for k in "ABDF":
            res[k][0][1:], res[k][1][1:] = np.nan, np.nan
    for l in range(nl):
        li = L - 1 if out_only else l + 1  # array index of the layer: ℓ − 1
        est = _finish({k: np.stack(means[l][k]) for k in _FIELDS}, n[li], blocks)  # n_{ℓ−1} = n[ℓ − 1]
        for k, e in est.items():
            res[k][0][li], res[k][1][li] = e.value, e.stderr
    return NTKStatistics(
        net=net,
        X=X,
        n_networks=total,
        seed=seed,
        **{k: Estimate(*res[k]) for k in ("A", "B", "D", "F", "H", "metric")},
    )
