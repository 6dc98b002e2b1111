"""Monte Carlo ensembles of random graph-convolution networks (:class:`deepeft.graph.GCN`), batched and jitted.

Network s of an ensemble with ``seed`` is drawn from ``fold_in(PRNGKey(seed), s)`` (as MLP ensembles,
:func:`deepeft.simulate.forward.network_key`); its parameters are scaled slices of one standard-normal draw,
layer by layer (W^{(ℓ)} (n_{ℓ−1} × n_ℓ), [U^{(ℓ)} (n_{ℓ−1} × n_ℓ),] b^{(ℓ)}), W ~ N(0, C_W/n_{ℓ−1}), U ~ N(0, C_U/n_{ℓ−1}),
b ~ N(0, C_b) (2.19)–(2.20). The forward pass is z^{(1)} = Â X W + b, z^{(ℓ+1)} = Â σ(z^{(ℓ)}) W + b + γ z^{(ℓ)}
(γ on hidden-to-hidden layers), or for the message-passing variant z^{(ℓ+1)} = σW + ÂσU + b + γz, vmapped
over a micro-batch of networks; statistics are accumulated in float64 as shifted power sums over networks
(shift = the first micro-batch's mean) inside one jitted ``lax.fori_loop``.

Estimators (layer ℓ at index ℓ − 1; standard errors over independent networks, :mod:`.estimators`):

* ``metric``            E[(1/n_ℓ) Σ_i z_{i;α} z_{i;β}] → K^{(ℓ)} at infinite width                       (L, N, N)
* ``stochastic_metric`` E[Ĝ^{(ℓ)}], Ĝ^{(ℓ+1)} = C_b + c_self Σ̂ + c_nbr Â Σ̂ Âᵀ + γ² M^{(ℓ)}, Σ̂ = (1/n_ℓ) Σ_j σ_j σ_jᵀ,
  M^{(ℓ)} = (1/n_ℓ) z zᵀ: E[M^{(ℓ+1)} | layer ℓ] (c_self, c_nbr: ``GCN.mixing``; layer 1 is deterministic)   (L, N, N)
* ``vertex``            γ = 0: n_{ℓ−1} Cov(Ĝ^{(ℓ)}_{α1α2}, Ĝ^{(ℓ)}_{α3α4}) (4.76). γ ≠ 0 (z^{(ℓ)} itself enters
  z^{(ℓ+1)}): the definition n_{ℓ−1}(E[z_{i;1}z_{i;2}z_{j;3}z_{j;4}] − E[z_{i;1}z_{i;2}]E[z_{j;3}z_{j;4}]), i ≠ j, from
  the per-network pair average P = (n²M⊗M − Σ_i z_i⊗z_i⊗z_i⊗z_i)/(n(n − 1)): V = n_{ℓ−1}(P̄ − M̄⊗M̄ + Cov(M̄)) with a
  delta-method SE (as :mod:`.residual_ensemble`)                                                 (L, N, N, N, N)
* ``ntk``               (``ntk=True``) E[(1/n_L) Σ_i Ĥ_{ii;αβ}] of the output layer, by autodiff        (N, N)

Independent of :mod:`deepeft.theory` (the comparison is the evidence).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .. import dispatch
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..graph import GCN
from ..statistics import Estimate
from . import estimators as est
from . import forward as fw

__all__ = ["GraphEnsembleResult", "gcn_forward", "gcn_init", "sample_graph_ensemble"]

_VERTEX_MAX_BYTES = 2**31
_MB_BUDGET_FLOATS = 2**24


@dataclasses.dataclass(frozen=True, eq=False)
class GraphEnsembleResult:
    """Estimates over an ensemble of random GCNs (module doc); arrays indexed [layer ℓ − 1, node, ...]."""

    net: GCN
    X: np.ndarray
    n_networks: int
    seed: int
    dtype: str
    metric: Estimate
    stochastic_metric: Estimate | None
    vertex: Estimate | None
    ntk: Estimate | None

    @property
    def L(self) -> int:
        return self.net.L


def _layout(n, mp: bool = False):
    """Offsets (W start, [U start,] b start, end) of layer ℓ's parameters in the network's one normal draw."""
    out, o = [], 0
    k = 2 if mp else 1
    for l in range(1, len(n)):
        w = n[l - 1] * n[l]
        out.append((o, *(o + w * j for j in range(1, k + 1)), o + k * w + n[l]))
        o += k * w + n[l]
    return tuple(out)


def _init(n, key, dtype, sW, sb, sU=None):
    mp = sU is not None
    lay = _layout(n, mp)
    xi = jax.random.normal(key, (lay[-1][-1],), dtype)
    out = []
    for l, offs in enumerate(lay, start=1):
        W = sW[l - 1] * xi[offs[0] : offs[1]].reshape(n[l - 1], n[l])
        b = sb[l - 1] * xi[offs[-2] : offs[-1]]
        out.append((W, sU[l - 1] * xi[offs[1] : offs[2]].reshape(n[l - 1], n[l]), b) if mp else (W, b))
    return tuple(out)


def gcn_init(net: GCN, key, dtype=jnp.float32):
    """((W^{(1)}, b^{(1)}), …): W^{(ℓ)} (n_{ℓ−1}, n_ℓ) ~ N(0, C_W/n_{ℓ−1}), b^{(ℓ)} (n_ℓ,) ~ N(0, C_b), from one draw;
    ((W, U, b), …) with U ~ N(0, C_U/n_{ℓ−1}) for the message-passing variant."""
    h = _hyper(net, dtype)
    return _init(net.n, key, dtype, h["sW"], h["sb"], h.get("sU"))


def _forward(act, skip, g, params, A, X):
    zs, acts = [], []
    a, z = X, None
    for l, p in enumerate(params):
        acts.append(a)
        if len(p) == 3:  # message passing: σW + ÂσU + b
            W, U, b = p
            zn = a @ W + A @ (a @ U) + b
        else:
            W, b = p
            zn = A @ (a @ W) + b
        z = zn + g[l] * z if skip[l] else zn
        zs.append(z)
        a = act.fn(z)
    return tuple(zs), tuple(acts)


def gcn_forward(net: GCN, params, A, X):
    """All preactivations (z^{(1)}, …, z^{(L)}), each (N_nodes, n_ℓ), and the inputs σ(z^{(ℓ−1)}) of every layer
    (params from :func:`gcn_init`)."""
    g = net.gammas()
    return _forward(net.activation, tuple(bool(x) for x in g != 0), jnp.asarray(g, A.dtype), params, A, X)


def _hyper(net: GCN, dtype) -> dict:
    """The hyperparameters as arrays (traced: one compiled ensemble program serves every C_W, C_b, γ, λ)."""
    n = np.asarray(net.n[:-1], dtype=np.float64)
    p = net.arrays()
    h = {"sW": np.sqrt(p["C_W"] / n), "sb": np.sqrt(p["C_b"]), "C_b": p["C_b"], "gamma": p["gamma"],
         "lambda_b": p["lambda_b"], "lambda_W": p["lambda_W"], "C_self": p["C_self"], "C_nbr": p["C_nbr"]}
    if net.C_U is not None and net.lambda_U is not None:
        h["sU"] = np.sqrt(np.asarray(net.C_U) / n)
        h["lambda_U"] = np.asarray(net.lambda_U, dtype=np.float64)
    return {k: jnp.asarray(val, dtype) for k, val in h.items()}


@dataclasses.dataclass(frozen=True)
class _Cfg:
    """What fixes the compiled program: the architecture, not the hyperparameters (those are traced)."""

    n: tuple[int, ...]
    act: object
    skip: tuple[bool, ...]
    N: int
    dtype: str
    B: int
    vertex: bool
    ntk: bool
    mp: bool = False
    pair_vertex: bool = False  # γ ≠ 0: the vertex from the pair average P (module doc)


def _stats(cfg: _Cfg, h, keys, A, X):
    """Per-network statistics of a micro-batch: M (B, L, N, N), G (B, L, N·N) and H (B, N, N)."""
    n = cfg.n
    L = len(n) - 1
    dt = fw.DTYPES[cfg.dtype]

    def one(key):
        params = _init(n, key, dt, h["sW"], h["sb"], h["sU"] if cfg.mp else None)
        zs, acts = _forward(cfg.act, cfg.skip, h["gamma"], params, A, X)
        Ms = [(z @ z.T) / n[l + 1] for l, z in enumerate(zs)]
        G = []
        for l, a in enumerate(acts):
            Aa = A @ a
            Gl = h["C_b"][l] + h["C_nbr"][l] / n[l] * (Aa @ Aa.T)  # Ĝ^{(ℓ)} = C_b + 𝓜(σσᵀ/n) (+ γ²M^{(ℓ−1)})
            if cfg.mp:
                Gl = Gl + h["C_self"][l] / n[l] * (a @ a.T)
            if cfg.skip[l]:
                Gl = Gl + h["gamma"][l] ** 2 * Ms[l - 1]
            G.append(Gl)
        out = {"M": jnp.stack(Ms), "G": jnp.stack(G).reshape(L, -1)}
        if cfg.pair_vertex:
            out["P"] = jnp.stack([est.pair_average(z)[1] for z in zs]).reshape(L, cfg.N * cfg.N, cfg.N * cfg.N)
            out["Mr"] = jnp.stack(Ms).astype(jnp.float64).reshape(L, -1)
        if cfg.ntk:
            out["H"] = _output_ntk(cfg, h, params, A, X)
        return out

    return jax.vmap(one)(keys)


def _output_ntk(cfg: _Cfg, h, params, A, X):
    """(1/n_L) Σ_i Ĥ_{ii;αβ} of the output layer: Σ_θ λ_θ ∂z_{i;α}/∂θ ∂z_{i;β}/∂θ, λ_W/n_{ℓ−1} and λ_b (8.6)."""
    n = cfg.n

    def f(p):
        return _forward(cfg.act, cfg.skip, h["gamma"], p, A, X)[0][-1]  # (N, n_L)

    J = jax.jacrev(f)(params)
    H = 0.0
    for l, Jl in enumerate(J):
        JW, Jb = Jl[0], Jl[-1]
        H = H + h["lambda_W"][l] / n[l] * jnp.einsum("aijk,bijk->ab", JW, JW)
        if len(Jl) == 3:  # the neighbour weight U
            H = H + h["lambda_U"][l] / n[l] * jnp.einsum("aijk,bijk->ab", Jl[1], Jl[1])
        H = H + h["lambda_b"][l] * jnp.einsum("aik,bik->ab", Jb, Jb)
    return H / n[-1]


def _acc_update(cfg: _Cfg, acc, st, valid, shift):
    """Add one micro-batch to the float64 power sums (:mod:`.estimators`; as :mod:`.ensemble`)."""
    sums = {"count": jnp.sum(valid.astype(jnp.float64))}
    for name in ("M", "H") if cfg.ntk else ("M",):
        sums[name + "1"], sums[name + "2"] = est.moment_sums(est.shifted(st[name], shift[name], valid))
    dG = est.shifted(st["G"], shift["G"], valid)
    if cfg.pair_vertex:
        sums["G1"], sums["G2"] = est.moment_sums(dG)
        sums.update(zip(_PAIR_SUMS, est.pair_vertex_sums(st["Mr"], st["P"], valid), strict=True))
    elif cfg.vertex:
        sums["G1"], sums["G2"], sums["G3"], sums["G4"] = est.covariance_sums(dG)
    else:
        sums["G1"], sums["G2"] = est.moment_sums(dG)
    return est.add_sums(acc, **sums)


#: accumulator names of the sums of :func:`.estimators.pair_vertex`, in its argument order
_PAIR_SUMS = ("Mr1", "MM", "P1", "P2", "PMa", "PMb")


def _zeros(cfg: _Cfg):
    L, N = len(cfg.n) - 1, cfg.N
    P = N * N
    acc = {"count": np.zeros(()), "M1": np.zeros((L, N, N)), "M2": np.zeros((L, N, N)), "G1": np.zeros((L, P))}
    full = cfg.vertex and not cfg.pair_vertex
    acc["G2"] = np.zeros((L, P, P)) if full else np.zeros((L, P))
    if full:
        acc["G3"], acc["G4"] = np.zeros((L, P, P)), np.zeros((L, P, P))
    if cfg.pair_vertex:
        acc["Mr1"] = np.zeros((L, P))
        for k in _PAIR_SUMS[1:]:
            acc[k] = np.zeros((L, P, P))
    if cfg.ntk:
        acc["H1"], acc["H2"] = np.zeros((N, N)), np.zeros((N, N))
    return acc


@functools.lru_cache(maxsize=16)
def _run_fn(cfg: _Cfg):
    def run(acc, shift, h, base, A, X, start, n_total, n_micro):
        def body(k, acc):
            idx, keys = fw.micro_batch_keys(base, start + k.astype(jnp.uint32) * jnp.uint32(cfg.B), cfg.B)
            return _acc_update(cfg, acc, _stats(cfg, h, keys, A, X), idx < n_total, shift)

        return jax.lax.fori_loop(jnp.int32(0), n_micro, body, acc)

    return jax.jit(run)


def sample_graph_ensemble(
    net: GCN,
    X,
    n_networks: int,
    seed: int = 0,
    *,
    dtype="float32",
    vertex: bool | None = None,
    ntk: bool = False,
    micro_batch: int | None = None,
    chunk_size: int | None = None,
    keep_preactivations=None,
    method: str = "weights",
    progress: bool | None = None,
) -> GraphEnsembleResult:
    """Sample ``n_networks`` random GCNs on node features X (N_nodes, n_0); per-layer node metric, stochastic
    metric and four-point vertex (γ = 0), and the output-layer NTK (``ntk=True``), with standard errors.

    ``vertex`` defaults to N_nodes ≤ 8 (the accumulators grow as N⁴). Reached through
    :func:`deepeft.sample_ensemble`, which dispatches a GCN here; ``chunk_size`` and ``progress`` are accepted for
    its signature and have no effect (one jitted loop over micro-batches).
    """
    if not isinstance(net, GCN):
        raise DeepEFTInputError(f"net must be a deepeft.GCN, got {type(net).__name__}.")
    if method != "weights" or keep_preactivations is not None:
        raise DeepEFTInputError(
            "GCN ensembles run the networks (method='weights') and keep no preactivations; drop method= and "
            "keep_preactivations= (use deepeft.simulate.gnn.gcn_forward for single networks)."
        )
    X = net.check_inputs(X)
    N = net.N_nodes
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    dtype = fw.check_dtype(dtype)
    vertex = (N <= 8) if vertex is None else bool(vertex)
    pair = vertex and net.gamma != 0.0  # with a skip, z^(ℓ+1) given layer ℓ has mean γz^(ℓ): (4.76) does not apply
    if vertex and (6 if pair else 3) * net.L * N**4 * 8 > _VERTEX_MAX_BYTES:
        raise DeepEFTInputError(f"vertex=True with {N} nodes needs {3 * net.L * N**4 * 8 / 2**30:.1f} GiB; pass vertex=False.")
    per_net = 4 * N * sum(net.n[1:]) + 16 * net.L * N * N + sum(a * b for a, b in zip(net.n[:-1], net.n[1:], strict=True))
    per_net *= 2 if net.message_passing else 1
    if pair:
        per_net += 2 * net.L * N**4 * (max(net.n[1:]) + 2)
    if ntk:
        per_net += 4 * N * N * sum(a * b for a, b in zip(net.n[:-1], net.n[1:], strict=True)) // max(1, N)
    B = int(min(256, 2 ** int(np.floor(np.log2(max(1, _MB_BUDGET_FLOATS // per_net))))))
    B = B if micro_batch is None else v.positive_int(micro_batch, "micro_batch")
    skip = tuple(bool(x) for x in net.gammas() != 0)
    cfg = _Cfg(net.n, net.activation, skip, N, dtype, B, vertex, bool(ntk), net.message_passing, pair)
    dt = fw.DTYPES[dtype]
    with x64():
        A, Xj = jnp.asarray(net.A_hat, dt), jnp.asarray(X, dt)
        h = _hyper(net, dt)
        base = jax.random.PRNGKey(seed)
        run = _run_fn(cfg)
        zero_shift = {"M": np.zeros((net.L, N, N)), "G": np.zeros((net.L, N * N))}
        if ntk:
            zero_shift["H"] = np.zeros((N, N))
        pilot = jax.device_get(run(_zeros(cfg), zero_shift, h, base, A, Xj, jnp.uint32(0), jnp.uint32(n_networks), jnp.int32(1)))
        shift = est.pilot_shift(pilot, zero_shift)
        n_micro = -(-n_networks // B)
        acc = run(_zeros(cfg), shift, h, base, A, Xj, jnp.uint32(0), jnp.uint32(n_networks), jnp.int32(n_micro))
        acc = {k: np.asarray(a, dtype=np.float64) for k, a in jax.device_get(acc).items()}
    S = float(acc["count"])
    L = net.L
    metric = Estimate(*est.mean_and_se(S, shift["M"], acc["M1"], acc["M2"]))
    n_prev = np.asarray(net.n[:-1], dtype=np.float64)
    G2d = np.diagonal(acc["G2"], axis1=-2, axis2=-1) if vertex and not pair else acc["G2"]
    g, gse = est.mean_and_se(S, shift["G"], acc["G1"], G2d)
    g, gse = g.reshape(L, N, N), gse.reshape(L, N, N)
    Vest = None
    if pair:
        Vest = Estimate(*est.layer_vertex(n_prev, *est.pair_vertex(S, *(acc[k] for k in _PAIR_SUMS))))
    elif vertex:
        Vest = Estimate(*est.layer_vertex(n_prev, *est.covariance(S, acc["G1"], acc["G2"], acc["G3"], acc["G4"])))
    H = Estimate(*est.mean_and_se(S, shift["H"], acc["H1"], acc["H2"])) if ntk else None
    return GraphEnsembleResult(
        net=net,
        X=X,
        n_networks=n_networks,
        seed=seed,
        dtype=dtype,
        metric=metric,
        stochastic_metric=Estimate(g, gse),
        vertex=Vest,
        ntk=H,
    )


dispatch.register("sample_ensemble", GCN)(sample_graph_ensemble)
