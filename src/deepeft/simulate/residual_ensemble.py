"""Monte Carlo ensembles of random residual MLPs (book (B.3)), with estimators and standard errors.

Network s is drawn exactly as an :class:`~deepeft.MLP` with the same widths and variances would be
(:func:`deepeft.simulate.forward.init_params`, key fold_in(PRNGKey(seed), s)); the forward pass adds the
residual hyperparameters:

    z^{(1)} = ξ^{(1)}[b^{(1)} + W^{(1)}x],   z^{(ℓ+1)} = ξ^{(ℓ+1)}[b^{(ℓ+1)} + W^{(ℓ+1)}σ(z^{(ℓ)})] + γ^{(ℓ+1)}z^{(ℓ)}   (B.3)

Estimators (layer ℓ at index ℓ − 1, float64 sums over networks, delta-method standard errors):

* ``metric``   E[M^{(ℓ)}], M_{αβ} = (1/n_ℓ)Σ_i z_{i;α}z_{i;β}                                           (B.7)
* ``stochastic_metric``  E[Ĝ^{(ℓ)}] with Ĝ^{(ℓ+1)} = ξ²[C_b + C_W(1/n_ℓ)σσᵀ] + γ²M^{(ℓ)} = E[M^{(ℓ+1)} | layer ℓ]
  (:func:`deepeft.simulate.metric_cumulants.stochastic_metric`, shared with the MLP ensembles)
* ``vertex``  V^{(ℓ)}_{(α1α2)(α3α4)} = n_{ℓ−1}(E[z_{i;α1}z_{i;α2}z_{j;α3}z_{j;α4}] − E[z_{i;α1}z_{i;α2}]E[z_{j;α3}z_{j;α4}]),
  i ≠ j — the definition (B.23). Given layer ℓ − 1 the neurons of layer ℓ are independent, with conditional second
  moments A_i = E[z_i z_iᵀ | layer ℓ − 1] = ξ²[C_b + C_W σσᵀ/n_{ℓ−1}] + γ² z⁻_i z⁻_iᵀ (z⁻ = z^{(ℓ−1)}), so
  E[z_i⊗z_i⊗z_j⊗z_j | ℓ − 1] = A_i⊗A_j for i ≠ j: per network the pair average P = (n²Ĝ⊗Ĝ − Σ_i A_i⊗A_i)/(n(n − 1))
  (Ĝ = mean of A_i, the stochastic metric below) and V = n_{ℓ−1}(P̄ − Ḡ⊗Ḡ + Cov(Ĝ)/S) (the product of means
  bias-corrected). Exact at finite width (no 1/n expansion); the layer-ℓ draws are integrated out (Rao–Blackwell),
  which at γ = 0 is the MLP's n Cov(Ĝ) (4.76) and at n = 128 cuts the standard error 1.5–4.5× against the pair
  average of z_i z_i z_j z_j itself. NaN where n_ℓ = 1.
Method "metric" draws each layer from its exact conditional law given the previous one (as :mod:`.ensemble`).

* ``z2``, ``z4``, ``kurtosis``, ``vertex_kurtosis`` (single-neuron moments, as in :mod:`.ensemble`),
  ``vertex_pairs`` = V_{(αα)(αα)} from ``vertex``; ``ntk`` (``ntk=True``): E[(1/n_ℓ)Σ_i Ĥ_{ii}], from the forward
  equation Ĥ^{(ℓ+1)} = ξ²[λ_b + λ_W σσᵀ/n_ℓ]δ + A Ĥ Aᵀ, A_{ik;α} = ξW_{ik}σ′(z_{k;α}) + γδ_{ik} [derived from (B.3), (8.12)]
  (:func:`deepeft.simulate.ntk.ntk_forward`, the MLP's forward equation, which reads ξ and γ from a ResidualMLP).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .. import dispatch
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network_residual import ResidualMLP, check_residual
from ..statistics import Estimate
from . import estimators as est
from . import forward as fw
from .ensemble import EnsembleResult, neuron_moments
from .forward import residual_forward  # the forward pass (B.3) lives with the MLP one; re-exported here
from .metric_cumulants import stochastic_metric
from .ntk import ntk_forward

__all__ = ["residual_forward", "residual_ntk_forward", "sample_residual_ensemble"]


def residual_ntk_forward(net: ResidualMLP, params, X, zs) -> tuple[jax.Array, ...]:
    """(Ĥ^{(1)}, ..., Ĥ^{(L)}) (n_ℓ, n_ℓ, N, N) of one residual network by the forward equation (module doc), from its
    preactivations ``zs`` (:func:`residual_forward`): :func:`deepeft.simulate.ntk.ntk_forward`, which reads ξ and γ
    from the ResidualMLP (the MLP's (8.12) is its case γ = 0, ξ = 1)."""
    return ntk_forward(net, params, X, zs)


def _metric_forward(net: ResidualMLP, key, X, dt) -> tuple[jax.Array, ...]:
    """Preactivations drawn layer by layer from the exact conditional law (method "metric", as in
    :mod:`.ensemble`): given layer ℓ, b + Wσ has iid rows N(0, C_b + (C_W/n_ℓ)σσᵀ) over neurons, sampled as
    √C_b β + √(C_W/n_ℓ) R Ξ with R Rᵀ = σσᵀ (N × N, from eigh) — N n_{ℓ+1} random numbers instead of n_{ℓ+1} n_ℓ."""
    n, N = net.n, X.shape[0]
    zs: list[jax.Array] = []
    a = X
    keys = jax.random.split(key, net.L)
    for l in range(1, net.L + 1):
        xi = jax.random.normal(keys[l - 1], (N + 1, n[l]), dt)
        lam, U = jnp.linalg.eigh(a @ a.T)
        R = U * jnp.sqrt(jnp.maximum(lam, 0.0))[None, :]
        u = float(np.sqrt(net.C_b[l - 1])) * xi[N][None, :] + float(np.sqrt(net.C_W[l - 1] / n[l - 1])) * (R @ xi[:N])
        zs.append(fw.skip_step(net, l, u, zs))
        if l < net.L:
            a = net.activation.fn(zs[-1])
    return tuple(zs)


def _one_network(net: ResidualMLP, dt, ntk: bool, vertex: bool, key, X, method: str = "weights"):
    if method == "metric":
        zs, params = _metric_forward(net, key, X, dt), None
    else:
        params = fw.init_params(net, key, dt)  # type: ignore[arg-type]  # same fields as an MLP
        zs = residual_forward(net, params, X)
    n = net.n
    out: dict[str, list] = {"M": [], "G": [], "q": [], "P": [], "H": []}
    a = X
    for l in range(1, net.L + 1):
        z = zs[l - 1].astype(jnp.float64)
        M = z @ z.T / n[l]
        out["M"].append(M)
        gram = (a @ a.T).astype(jnp.float64)
        Mp = out["M"][-2] if l > 1 else None  # M^{(ℓ−1)}
        G = stochastic_metric(net, l, gram, Mp)  # ξ²[C_b + C_W σσᵀ/n] + γ²M^{(ℓ−1)} = E[M^{(ℓ)} | layer ℓ − 1]
        out["G"].append(G)
        out["q"].append(jnp.stack([jnp.mean(z * z, -1), jnp.mean(z**4, -1)], -1))
        if vertex:  # Σ_{i≠j} A_i ⊗ A_j / (m(m − 1)), A_i = E[z_i z_iᵀ | layer ℓ − 1] = G_σ + γ² z⁻_i z⁻_iᵀ (module doc)
            m = n[l]
            P = G[:, :, None, None] * G[None, None]  # Ā = G; layer 1 (or γ = 0): every A_i = G
            if Mp is not None and net.gamma[l - 1]:
                zp = zs[l - 2].astype(jnp.float64)
                g2 = float(net.gamma[l - 1]) ** 2
                Gs = stochastic_metric(net, l, gram)  # the σ part G_σ (no skip term), common to every neuron
                sq = m * Gs[:, :, None, None] * Gs[None, None] + g2 * m * (Gs[:, :, None, None] * Mp[None, None]
                                                                           + Mp[:, :, None, None] * Gs[None, None])
                sq = sq + g2 * g2 * jnp.einsum("ai,bi,ci,di->abcd", zp, zp, zp, zp)  # Σ_i A_i ⊗ A_i
                P = (m * m * P - sq) / max(m * (m - 1), 1)
            out["P"].append(P)
        if l < net.L:
            a = net.activation.fn(zs[l - 1])
    if ntk:
        Hs = residual_ntk_forward(net, params, X, zs)
        out["H"] = [jnp.einsum("iiab->ab", H).astype(jnp.float64) / H.shape[0] for H in Hs]
    return {k: jnp.stack(val) for k, val in out.items() if val}


@functools.lru_cache(maxsize=16)
def _batch_sums(net: ResidualMLP, N: int, dtype: str, B: int, ntk: bool, vertex: bool, method: str):
    """jit: power sums over one micro-batch of B networks (indices start..start+B−1, masked beyond n_total)."""
    dt = fw.DTYPES[dtype]

    def run(base_key, X, start, n_total):
        idx, keys = fw.micro_batch_keys(base_key, start, B)
        st = jax.vmap(lambda k: _one_network(net, dt, ntk, vertex, k, X, method))(keys)
        valid = idx < n_total
        s = {"count": jnp.sum(valid.astype(jnp.float64))}  # unshifted sums (:mod:`.estimators`, shift 0)
        M = st["M"].reshape(B, net.L, -1)
        if vertex:
            _, s["GG"], s["P1"], s["P2"], s["PGa"], s["PGb"] = est.pair_vertex_sums(
                st["G"].reshape(B, net.L, N * N), st["P"].reshape(B, net.L, N * N, N * N), valid)
        s["M1"], s["MM"] = est.vector_moment_sums(est.shifted(M, 0.0, valid))
        s["G1"], s["G2"] = est.moment_sums(est.shifted(st["G"], 0.0, valid))
        s["q1"], s["q2"] = est.vector_moment_sums(est.shifted(st["q"], 0.0, valid))
        if ntk:
            s["H1"], s["H2"] = est.moment_sums(est.shifted(st["H"], 0.0, valid))
        return s

    return jax.jit(run)


def _finalize(net: ResidualMLP, X: np.ndarray, acc: dict, vertex: bool, ntk: bool) -> dict:
    S = float(acc["count"])
    L, N = net.L, X.shape[0]
    n_prev = np.asarray(net.n[:-1], dtype=np.float64)
    mu, cov_mu = est.mean_vector_and_cov(S, 0.0, acc["M1"], acc["MM"])  # (L, P), covariance of the mean (L, P, P)
    out: dict = {}
    out["metric"] = Estimate(mu.reshape(L, N, N), np.sqrt(np.maximum(np.diagonal(cov_mu, 0, 1, 2), 0)).reshape(L, N, N))
    out["stochastic_metric"] = Estimate(*est.mean_and_se(S, 0.0, acc["G1"], acc["G2"]))
    out["vertex"] = None
    if vertex:  # V = n_{ℓ−1}(P̄ − Ḡ⊗Ḡ + Cov(Ĝ)/S): P and Ĝ = Ā are the conditional means given layer ℓ − 1
        pair = est.pair_vertex(S, acc["G1"].reshape(L, -1), acc["GG"], acc["P1"], acc["P2"], acc["PGa"], acc["PGb"])
        V, Vse = est.layer_vertex(n_prev, *pair)  # layer 1 is exactly Gaussian: V^(1) = 0
        single = np.asarray(net.n[1:]) == 1
        V[single], Vse[single] = np.nan, np.nan  # no neuron pairs i ≠ j
        out["vertex"] = Estimate(V, Vse)
    qm, C = est.mean_vector_and_cov(S, 0.0, acc["q1"], acc["q2"])  # (L, N, 2): E[z²], E[z⁴]
    out.update(neuron_moments(qm, C, n_prev))
    if out["vertex"] is not None:
        i = np.arange(N)
        out["vertex_pairs"] = Estimate(out["vertex"].value[:, i, i, i, i], out["vertex"].stderr[:, i, i, i, i])
    else:
        out["vertex_pairs"] = Estimate(np.full((L, N), np.nan), np.full((L, N), np.nan))
    out["ntk"] = Estimate(*est.mean_and_se(S, 0.0, acc["H1"], acc["H2"])) if ntk else None
    return out


@dispatch.register("sample_ensemble", ResidualMLP)
def sample_residual_ensemble(
    net: ResidualMLP,
    X,
    n_networks: int,
    seed: int = 0,
    *,
    chunk_size: int | None = None,
    keep_preactivations=None,
    progress: bool | None = None,
    dtype="float32",
    vertex: bool | None = None,
    ntk: bool = False,
    micro_batch: int | None = None,
    method: str = "weights",
):
    """Ensemble estimates of a residual MLP (see module doc); an :class:`~deepeft.simulate.ensemble.EnsembleResult`
    (``preactivations`` None; ``chunk_size`` and ``progress`` are accepted for the signature of
    :func:`~deepeft.simulate.ensemble.sample_ensemble` and ignored: micro-batches are summed in order). Reached
    through :func:`deepeft.sample_ensemble`. ``method``: "weights" (draw W, b; network s is the MLP's network s with
    the skips added) or "metric" (exact conditional sampling, faster)."""
    net = check_residual(net)
    if keep_preactivations is not None:
        raise DeepEFTInputError("keep_preactivations is not supported for a ResidualMLP; sample it with None.")
    X = net.check_inputs(X)
    N = X.shape[0]
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    dtype = fw.check_dtype(dtype)
    vertex = N <= 8 if vertex is None else bool(vertex)
    if vertex and 5 * net.L * N**4 * 8 > 2**31:
        raise DeepEFTInputError(f"vertex=True with N = {N} inputs needs too much memory (grows as N^4); pass fewer inputs.")
    ntk = bool(ntk)
    if method not in ("weights", "metric"):
        raise DeepEFTInputError(f"method must be 'weights' or 'metric', got {method!r}.")
    if ntk and method != "weights":
        raise DeepEFTInputError("ntk=True needs the network weights: use method='weights'.")
    if micro_batch is None:
        per_net = 4 * N * sum(net.n[1:]) + sum(net.n[l] * net.n[l - 1] for l in range(1, net.L + 1))
        per_net += (net.L * N**4 * (max(net.n[1:]) + 2) if vertex else 0) + (3 * max(net.n[1:]) ** 2 * N * N if ntk else 0)
        micro_batch = int(min(512, 2 ** int(np.floor(np.log2(max(1, 2**24 // per_net))))))
    B = v.positive_int(micro_batch, "micro_batch")
    run = _batch_sums(net, N, dtype, B, ntk, vertex, method)
    acc: dict = {}
    with x64():
        Xj = jnp.asarray(X, fw.DTYPES[dtype])
        base = jax.random.PRNGKey(seed)
        for start in range(0, n_networks, B):
            s = jax.device_get(run(base, Xj, jnp.uint32(start), jnp.uint32(n_networks)))
            for k, val in s.items():
                acc[k] = acc.get(k, 0.0) + np.asarray(val, dtype=np.float64)
    out = _finalize(net, X, acc, vertex, ntk)
    return EnsembleResult(
        net=net,  # type: ignore[arg-type]  # EnsembleResult is shared with the MLP ensembles
        X=X, n_networks=n_networks, seed=seed, dtype=dtype, method=method, micro_batch=B,
        preactivations=None, **out,
    )  # fmt: skip
