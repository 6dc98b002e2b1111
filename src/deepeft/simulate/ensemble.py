"""Monte Carlo ensembles of random MLPs, streamed in chunks, with estimators and standard errors.

``sample_ensemble(net, X, n_networks, seed)`` draws networks s = 0..n_networks−1 (network s from
``fold_in(PRNGKey(seed), s)``, see :mod:`.forward`), runs them on the inputs X (N, n_0) and
accumulates per-layer sufficient statistics in float64. Nothing of size n_networks is ever stored:
memory is bounded by the micro-batch, whatever the number of networks.

Estimators (layer ℓ at index ℓ − 1; n_{ℓ−1} is the previous width, n_0 the input dimension):

* ``metric``            E[(1/n_ℓ) Σ_i z_{i;α} z_{i;β}] = G^{(ℓ)}_{αβ} (4.73)                       (L, N, N)
* ``stochastic_metric`` E[Ĝ^{(ℓ)}_{αβ}] = G^{(ℓ)} (4.72), Ĝ^{(ℓ)} = C_b + C_W (1/n_{ℓ−1}) Σ_j σ_{j;α}σ_{j;β}
  of layer ℓ−1 (4.70) (Ĝ^{(1)} uses σ^{(0)} = x and is deterministic) — same mean as ``metric``,
  smaller variance (it is E[metric | layer ℓ−1])                                             (L, N, N)
* ``vertex``            V^{(ℓ)}_{(α1α2)(α3α4)} = n_{ℓ−1} Cov(Ĝ^{(ℓ)}_{α1α2}, Ĝ^{(ℓ)}_{α3α4}) — the definition
  (4.76) estimated by the unbiased sample covariance of (4.70) over networks; exact at finite
  width (no 1/n expansion); V^{(1)} = 0 exactly                                           (L, N, N, N, N)
* directly observable single-input vertex estimators (4.77) for each input α:
  ``vertex_kurtosis`` = (n_{ℓ−1}/3)(E[z⁴] − 3E[z²]²) and ``vertex_pairs`` = n_{ℓ−1} Cov(z_i², z_j²), i ≠ j,
  (both = V^{(ℓ)}_{(αα)(αα)}); the product of means is bias-corrected (E[z²]² → m̄² − SE²)     (L, N)
* single-neuron moments ``z2`` = E[z²], ``z4`` = E[z⁴], ``kurtosis`` = E[z⁴]/E[z²]² − 3        (L, N)
* ``ntk`` (``ntk=True``): E[(1/n_ℓ) Σ_i Ĥ^{(ℓ)}_{ii;αβ}], the neuron-diagonal NTK (8.12); → Θ^{(ℓ)}   (L, N, N)

Standard errors: see :mod:`.estimators` (delta method over independent networks).

Sampling methods
----------------
* ``"weights"`` (default): draw W, b and run the network (2.5) — the literal experiment.
* ``"metric"``: draw each layer from its exact conditional law given the previous layer,
  z^{(ℓ+1)}_{i;·} | z^{(ℓ)} ~ N(0, Ĝ^{(ℓ+1)}) independently over i (4.70)–(4.71): the weight part
  W σ has, given σ, iid rows N(0, (C_W/n_ℓ) σᵀσ), sampled as √(C_W/n_ℓ) Ξ R with Ξ standard normal
  (n_{ℓ+1} × N) and RᵀR = σᵀσ: R = Lᵀ from the Cholesky factor of the N × N Gram matrix when every
  Gram matrix of the micro-batch is positive definite, else R = Λ^{1/2}Uᵀ from its eigendecomposition
  (robust to rank deficiency, ~3× slower). Exact in distribution for all layers jointly, with n_ℓ/N
  times fewer random numbers. (Layers with n_ℓ ≤ N use explicit weights.)
  Networks are not reproducible as parameter sets and there is no NTK in this mode.

Determinism
-----------
The kernel processes a fixed micro-batch of B networks; a chunk is a ``lax.fori_loop`` over
chunk_size/B micro-batches whose float64 accumulators are carried from chunk to chunk, so the
summation order is the same for every chunk_size (a multiple of B): same (seed, B, dtype, method)
⇒ bit-identical results. B has a default that depends only on the architecture and N. The number
of micro-batches is a runtime argument, so ONE compiled program per configuration serves the
pilot micro-batch (which fixes the shift of the power sums), every chunk and the remainder.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .. import dispatch
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP
from ..network_residual import ResidualMLP
from ..statistics import Estimate
from ..theory.criticality import warn_on_exponential_kernel
from . import estimators as est
from . import forward as fw
from .metric_cumulants import stochastic_metric
from .ntk import ntk_forward

__all__ = ["EnsembleResult", "default_micro_batch", "neuron_moments", "sample_ensemble"]

_METHODS = ("weights", "metric")
_AUTO_VERTEX_MAX_N = 8
_VERTEX_MAX_BYTES = 2**31
_MB_BUDGET_FLOATS = 2**24  # per micro-batch working set, ≈ 64 MB in float32


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything that fixes the compiled kernel (hashable: used as a jit cache key)."""

    net: MLP
    N: int
    method: str
    dtype: str
    B: int
    vertex: bool
    ntk: bool


@dataclasses.dataclass(frozen=True, eq=False)
class EnsembleResult:
    """Ensemble estimates with standard errors; arrays are indexed [layer ℓ−1, ...] (see module doc)."""

    net: MLP
    X: np.ndarray
    n_networks: int
    seed: int
    dtype: str
    method: str
    micro_batch: int
    metric: Estimate
    stochastic_metric: Estimate
    vertex: Estimate | None
    z2: Estimate
    z4: Estimate
    kurtosis: Estimate
    vertex_kurtosis: Estimate
    vertex_pairs: Estimate
    ntk: Estimate | None
    preactivations: tuple[np.ndarray, ...] | None

    @property
    def L(self) -> int:
        return self.net.L

    def __repr__(self):
        return (
            f"EnsembleResult({self.net!r}, N={self.X.shape[0]}, n_networks={self.n_networks}, seed={self.seed}, "
            f"dtype={self.dtype}, method={self.method!r}, vertex={'yes' if self.vertex is not None else 'no'}, "
            f"ntk={'yes' if self.ntk is not None else 'no'})"
        )


def default_micro_batch(net: MLP, N: int, *, method: str = "weights", ntk: bool = False) -> int:
    """Default number B of networks per vmapped kernel call: a power of two (1..1024) keeping the
    working set near 2^24 floats. Depends only on the architecture, N, method and ntk."""
    n = net.n
    per_net = 4 * N * sum(n[1:]) + 16 * net.L * N * N
    if method == "weights":
        per_net += sum(n[l] * n[l - 1] for l in range(1, net.L + 1))
    if ntk:
        per_net += 3 * max(m * m for m in n[1:]) * N * N
    B = max(1, _MB_BUDGET_FLOATS // per_net)
    return int(min(1024, 2 ** int(math.floor(math.log2(B)))))


# ---------------------------------------------------------------------------------------------
# Kernel: one network → preactivations → per-network statistics
# ---------------------------------------------------------------------------------------------


def _root_apply(gram, Xi):
    """R Ξ with R Rᵀ = gram (batched N × N PSD Gram matrices): the Cholesky factor when every Gram of
    the micro-batch is positive definite, otherwise (rank deficiency) R = U Λ^{1/2} from eigh."""

    def eig():
        lam, U = jnp.linalg.eigh(gram)  # σσᵀ = U Λ Uᵀ
        return (U * jnp.sqrt(jnp.maximum(lam, 0.0))[..., None, :]) @ Xi

    chol = jnp.linalg.cholesky(gram)  # NaN where not positive definite
    return jax.lax.cond(jnp.all(jnp.isfinite(chol)), lambda: chol @ Xi, eig)


def _preacts_metric(net: MLP, keys, X, dt):
    """A micro-batch of networks (keys (B,)) drawn layer by layer from the exact conditional laws
    z^{(ℓ)} | z^{(ℓ−1)} (4.70)–(4.71) (see module doc); returns (zs, grams), grams[ℓ−1] = σσᵀ of layer ℓ−1.

    Per network, one standard-normal draw holds, layer by layer, Ξ (min(n_{ℓ−1}, N) × n_ℓ) and b (n_ℓ).
    """
    n, N, B = net.n, X.shape[0], keys.shape[0]
    sizes = [(min(n[l - 1], N), n[l]) for l in range(1, net.L + 1)]
    xi = jax.vmap(lambda k: jax.random.normal(k, (sum(m * k_ + k_ for m, k_ in sizes),), dt))(keys)
    zs, grams, a, o = [], [], jnp.broadcast_to(X, (B,) + X.shape), 0
    for l, (m, k) in enumerate(sizes, start=1):
        Xi = xi[:, o : o + m * k].reshape(B, m, k)
        b = float(np.sqrt(net.C_b[l - 1])) * xi[:, None, o + m * k : o + m * k + k]
        o += m * k + k
        scale = float(np.sqrt(net.C_W[l - 1] / n[l - 1]))
        gram = jnp.einsum("bai,bci->bac", a, a)
        z = scale * (_root_apply(gram, Xi) if n[l - 1] > N else a @ Xi) + b
        zs.append(z)
        grams.append(gram)
        a = net.activation.fn(z)
    return tuple(zs), tuple(grams)


def _batch_preacts(cfg: _Config, keys, X):
    """(zs, grams, Hs) of a micro-batch of networks, each with a leading network axis; grams (σσᵀ of
    the previous layer, metric method only) and Hs (the NTK, ``cfg.ntk`` only) may be None."""
    dt = fw.DTYPES[cfg.dtype]
    if cfg.method == "metric":
        zs, grams = _preacts_metric(cfg.net, keys, X, dt)
        return zs, grams, None

    def one(key):
        params = fw.init_params(cfg.net, key, dt)
        zs = fw.forward_preactivations(cfg.net, params, X)
        return zs, (ntk_forward(cfg.net, params, X, zs) if cfg.ntk else None)

    zs, Hs = jax.vmap(one)(keys)
    return zs, None, Hs


def _batch_stats(cfg: _Config, keys, X) -> dict:
    """Per-network statistics of a micro-batch, (B, L, ...) (see module doc for their meaning)."""
    net, n = cfg.net, cfg.net.n
    zs, grams, Hs = _batch_preacts(cfg, keys, X)
    B, N = keys.shape[0], cfg.N
    M, q, G = [], [], []
    a = X
    for l in range(1, net.L + 1):
        z = zs[l - 1]
        M.append(jnp.einsum("bai,bci->bac", z, z) / n[l])
        m2 = jnp.mean(z * z, axis=-1)
        m4 = jnp.mean(z**4, axis=-1)
        # (1/(n(n−1))) Σ_{i≠j} z_i² z_j²  (0 when n_ℓ = 1; reported as NaN)
        p = (n[l] * m2 * m2 - m4) / (n[l] - 1) if n[l] > 1 else jnp.zeros_like(m2)
        q.append(jnp.stack([m2, m4, p], axis=-1))
        if grams is None:
            gram = jnp.einsum("...ai,...ci->...ac", a, a)  # layer 1: x xᵀ, shared by all networks
            a = net.activation.fn(z)
        else:
            gram = grams[l - 1]
        Ghat = stochastic_metric(net, l, gram)  # Ĝ^{(ℓ)} (4.70)
        G.append(jnp.broadcast_to(Ghat, (B, N, N)))
    out = {"M": jnp.stack(M, 1), "q": jnp.stack(q, 1), "G": jnp.stack(G, 1)}
    if cfg.ntk:
        out["H"] = jnp.stack([jnp.einsum("biiac->bac", H) / H.shape[1] for H in Hs], 1)
    return out


def _zero_acc(cfg: _Config) -> dict:
    L, N = cfg.net.L, cfg.N
    P = N * N
    f = functools.partial(np.zeros, dtype=np.float64)
    acc = {"count": f(()), "M1": f((L, N, N)), "M2": f((L, N, N)), "q1": f((L, N, 3)), "q2": f((L, N, 3, 3))}
    acc["G1"] = f((L, P))
    acc["G2"] = f((L, P, P)) if cfg.vertex else f((L, P))
    if cfg.vertex:
        acc["G3"], acc["G4"] = f((L, P, P)), f((L, P, P))
    if cfg.ntk:
        acc["H1"], acc["H2"] = f((L, N, N)), f((L, N, N))
    return acc


def _zero_shift(cfg: _Config) -> dict:
    L, N = cfg.net.L, cfg.N
    s = {"M": np.zeros((L, N, N)), "q": np.zeros((L, N, 3)), "G": np.zeros((L, N * N))}
    if cfg.ntk:
        s["H"] = np.zeros((L, N, N))
    return s


def _accumulate(cfg: _Config, acc: dict, st: dict, valid, shift: dict) -> dict:
    """Add one micro-batch (B networks, ``valid`` masks padding) to the float64 power sums (:mod:`.estimators`)."""
    B, L = cfg.B, cfg.net.L
    sums = {"count": jnp.sum(valid.astype(jnp.float64))}
    sums["M1"], sums["M2"] = est.moment_sums(est.shifted(st["M"], shift["M"], valid))
    sums["q1"], sums["q2"] = est.vector_moment_sums(est.shifted(st["q"], shift["q"], valid))
    dG = est.shifted(st["G"].reshape(B, L, -1), shift["G"], valid)
    if cfg.vertex:
        sums["G1"], sums["G2"], sums["G3"], sums["G4"] = est.covariance_sums(dG)
    else:
        sums["G1"], sums["G2"] = est.moment_sums(dG)
    if cfg.ntk:
        sums["H1"], sums["H2"] = est.moment_sums(est.shifted(st["H"], shift["H"], valid))
    return est.add_sums(acc, **sums)


@functools.lru_cache(maxsize=32)
def _chunk_fn(cfg: _Config):
    """jit: loop over ``n_micro`` (dynamic) micro-batches starting at network ``start``, carrying the
    sums. One compiled program serves the pilot, every chunk and the remainder (no unrolling)."""

    def run(acc, shift, base_key, X, start, n_total, n_micro):
        def body(k, acc):
            idx, keys = fw.micro_batch_keys(base_key, start + k.astype(jnp.uint32) * jnp.uint32(cfg.B), cfg.B)
            return _accumulate(cfg, acc, _batch_stats(cfg, keys, X), idx < n_total, shift)

        return jax.lax.fori_loop(jnp.int32(0), n_micro, body, acc)

    return jax.jit(run)


@functools.lru_cache(maxsize=32)
def _keep_fn(cfg: _Config, m: int):
    """jit: preactivations of one micro-batch, first ``m`` neurons of every layer."""

    def run(base_key, X, start):
        _, keys = fw.micro_batch_keys(base_key, start, cfg.B)
        zs = _batch_preacts(cfg, keys, X)[0]
        return tuple(z[:, :, :m] for z in zs)

    return jax.jit(run)


# ---------------------------------------------------------------------------------------------
# Finalisation: sums → Estimates
# ---------------------------------------------------------------------------------------------


def _finalize(cfg: _Config, acc: dict, shift: dict, X: np.ndarray):
    net, N, L = cfg.net, cfg.N, cfg.net.L
    S = float(acc["count"])
    n_prev = np.asarray(net.n[:-1], dtype=np.float64)  # n_{ℓ−1}, ℓ = 1..L
    n_cur = np.asarray(net.n[1:])
    out: dict[str, Estimate | None] = {}
    out["metric"] = Estimate(*est.mean_and_se(S, shift["M"], acc["M1"], acc["M2"]))

    # stochastic metric (4.70)/(4.72); layer 1 deterministic: C_b + C_W x·x/n_0
    G1 = stochastic_metric(net, 1, X @ X.T)
    G2diag = np.diagonal(acc["G2"], axis1=-2, axis2=-1) if cfg.vertex else acc["G2"]
    g, gse = est.mean_and_se(S, shift["G"], acc["G1"], G2diag)
    g, gse = g.reshape(L, N, N), gse.reshape(L, N, N)
    g[0], gse[0] = G1, 0.0
    out["stochastic_metric"] = Estimate(g, gse)

    if cfg.vertex:  # (4.76): V = n_{ℓ−1} Cov(Ĝ, Ĝ)
        out["vertex"] = Estimate(*est.layer_vertex(n_prev, *est.covariance(S, acc["G1"], acc["G2"], acc["G3"], acc["G4"])))
    else:
        out["vertex"] = None

    # single-neuron moments and (4.77) single-input vertex estimators, delta method
    qm, C = est.mean_vector_and_cov(S, shift["q"], acc["q1"], acc["q2"])
    m2, p = qm[..., 0], qm[..., 2]
    out.update(neuron_moments(qm, C, n_prev))
    m2sq = m2**2 - C[..., 0, 0]  # unbiased estimate of E[z²]²
    nn, zero = n_prev[:, None], np.zeros_like(m2)
    vp_val, vp_se = nn * (p - m2sq), est.delta_se([-2 * nn * m2, zero, nn + zero], C)
    single = n_cur == 1  # no neuron pairs i ≠ j in a width-1 layer
    vp_val[single], vp_se[single] = np.nan, np.nan
    out["vertex_pairs"] = Estimate(vp_val, vp_se)

    out["ntk"] = None
    if cfg.ntk:  # layer 1 is deterministic (8.23): λ_b + λ_W x·x/n_0
        h, hse = est.mean_and_se(S, shift["H"], acc["H1"], acc["H2"])
        h[0], hse[0] = net.lambda_b[0] + net.lambda_W[0] * (X @ X.T) / net.n[0], 0.0
        out["ntk"] = Estimate(h, hse)
    return out


def neuron_moments(qm, C, n_prev) -> dict[str, Estimate]:
    """``z2``, ``z4``, ``kurtosis`` = E[z⁴]/E[z²]² − 3 and ``vertex_kurtosis`` = (n_{ℓ−1}/3)(E[z⁴] − 3E[z²]²) (4.77)
    with delta-method SEs, from the means qm (L, N, k ≥ 2) of (z², z⁴, …) per layer and input and the covariance
    of those means C (L, N, k, k); E[z²]² is bias-corrected (m̄² − SE²). Shared by the MLP and residual ensembles."""
    m2, m4 = qm[..., 0], qm[..., 1]
    C2 = C[..., :2, :2]
    c00, zero, nn = C2[..., 0, 0], np.zeros_like(m2), np.asarray(n_prev, dtype=np.float64)[:, None]
    return {
        "z2": Estimate(m2, np.sqrt(np.maximum(c00, 0.0))),
        "z4": Estimate(m4, np.sqrt(np.maximum(C2[..., 1, 1], 0.0))),
        "kurtosis": Estimate(m4 / m2**2 - 3.0, est.delta_se([-2 * m4 / m2**3, 1 / m2**2], C2)),
        "vertex_kurtosis": Estimate(nn / 3 * (m4 - 3 * (m2**2 - c00)), est.delta_se([-2 * nn * m2, nn / 3 + zero], C2)),
    }


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def _check_keep(keep, n_networks, net):
    if keep is None:
        return None
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        k, m = int(keep), max(net.n[1:])
    else:
        try:
            k, m = keep
        except (TypeError, ValueError):
            raise DeepEFTInputError(
                "keep_preactivations must be None, an int (networks to keep) or a pair "
                f"(networks, neurons per layer), got {keep!r}."
            ) from None
    k = v.positive_int(k, "keep_preactivations (networks)")
    m = v.positive_int(m, "keep_preactivations (neurons)")
    if k > n_networks:
        raise DeepEFTInputError(f"keep_preactivations asks for {k} networks but n_networks = {n_networks}.")
    return k, m


PROGRESS_ENV = "DEEPEFT_PROGRESS"  # "0": no automatic progress bar (set inside experiment tasks)


def _run(cfg: _Config, X, n_networks, seed, chunk_size, progress):
    Xj = jnp.asarray(X, fw.DTYPES[cfg.dtype])
    base = jax.random.PRNGKey(seed)
    n_tot = jnp.uint32(n_networks)
    run = _chunk_fn(cfg)

    def call(acc, shift, start, n_micro):
        return run(acc, shift, base, Xj, jnp.uint32(start), n_tot, jnp.int32(n_micro))

    # pilot: the mean of micro-batch 0 is the shift of the power sums (fixed, chunk-independent)
    pilot = jax.device_get(call(_zero_acc(cfg), _zero_shift(cfg), 0, 1))
    shift = est.pilot_shift(pilot, _zero_shift(cfg))
    acc = _zero_acc(cfg)
    n_full = n_networks // chunk_size
    n_rest = -(-(n_networks - n_full * chunk_size) // cfg.B)
    bar = None
    auto = progress is None
    if auto:
        progress = os.environ.get(PROGRESS_ENV, "1") != "0" and sys.stderr is not None and sys.stderr.isatty()
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_networks, unit="net", desc="sample_ensemble", delay=1.0 if auto else 0.0)
    for c in range(n_full):
        acc = call(acc, shift, c * chunk_size, chunk_size // cfg.B)
        if bar is not None:
            jax.block_until_ready(acc["count"])
            bar.update(chunk_size)
    start = n_full * chunk_size
    if n_rest:
        acc = call(acc, shift, start, n_rest)
    if bar is not None:
        bar.update(n_networks - start)
        bar.close()
    acc = {k: np.asarray(a, dtype=np.float64) for k, a in jax.device_get(acc).items()}
    if acc["count"] != n_networks:  # pragma: no cover - internal consistency
        raise RuntimeError(f"accumulated {acc['count']} networks, expected {n_networks}")
    return acc, shift


def _kept(cfg: _Config, X, seed, k, m):
    Xj = jnp.asarray(X, fw.DTYPES[cfg.dtype])
    base = jax.random.PRNGKey(seed)
    mm = min(m, max(cfg.net.n[1:]))
    f = _keep_fn(cfg, mm)
    parts = [jax.device_get(f(base, Xj, jnp.uint32(s))) for s in range(0, k, cfg.B)]
    return tuple(np.concatenate([p[l] for p in parts])[:k] for l in range(cfg.net.L))


@warn_on_exponential_kernel(lambda res, a, kw: res.metric.value)
def sample_ensemble(
    net: MLP | ResidualMLP,
    X,
    n_networks: int,
    seed: int = 0,
    *,
    chunk_size: int | None = None,
    dtype="float32",
    keep_preactivations=None,
    vertex: bool | None = None,
    ntk: bool = False,
    method: str = "weights",
    micro_batch: int | None = None,
    progress: bool | None = None,
) -> EnsembleResult:
    """Sample ``n_networks`` random networks on inputs X (N, n_0) and estimate, per layer, the metric,
    four-point vertex, single-neuron moments (and optionally the NTK) with standard errors.

    Parameters
    ----------
    net : the architecture (:class:`deepeft.MLP`).
    X : inputs, shape (N, n_0).
    n_networks : ensemble size S ≥ 2 (standard errors need at least two networks).
    seed : network s is drawn from fold_in(PRNGKey(seed), s) — see :func:`~.forward.sample_params`.
    chunk_size : networks per jitted call (a multiple of ``micro_batch``); affects speed and progress
        granularity only — results are bit-identical for every chunk_size.
    dtype : "float32" (default) or "float64" for the networks; accumulation is always float64.
    keep_preactivations : None, k, or (k, m): also return the preactivations of networks 0..k−1,
        first m neurons of every layer, as a tuple of L arrays (k, N, min(m, n_ℓ)) (e.g. histograms).
    vertex : estimate the full V^{(ℓ)} (L, N, N, N, N) via (4.76); default: when N ≤ 8.
    ntk : also estimate the neuron-diagonal mean NTK (8.12) (method "weights" only; costs n_ℓ³N² per layer).
    method : "weights" (run the networks) or "metric" (exact conditional sampling (4.70)–(4.71); faster).
    micro_batch : networks per vmapped kernel call B (default :func:`default_micro_batch`); part of
        the definition of the summation order, so keep it fixed to reproduce results bit for bit.
    progress : show a tqdm progress bar on stderr. Default (None): when stderr is a terminal and the run
        takes over a second, unless the environment sets ``DEEPEFT_PROGRESS=0`` (experiment tasks do).
    """
    impl = dispatch.lookup("sample_ensemble", net)  # e.g. ResidualMLP: simulate/residual_ensemble.py (B.3)
    if impl is not None:
        return impl(net, X, n_networks, seed, chunk_size=chunk_size, dtype=dtype, keep_preactivations=keep_preactivations,
                    vertex=vertex, ntk=ntk, method=method, micro_batch=micro_batch, progress=progress)  # fmt: skip
    net = fw.check_net(net)
    X = net.check_inputs(X)
    N = X.shape[0]
    if isinstance(n_networks, (int, np.integer)) and not isinstance(n_networks, bool) and n_networks < 2:
        raise DeepEFTInputError(
            f"n_networks must be >= 2 (an integer: standard errors need two networks), got {n_networks}; "
            "for a single network use deepeft.simulate.forward.preactivations(net, X, seed=..., index=...)."
        )
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    if n_networks > 2**32 - 2**20:
        raise DeepEFTInputError(f"n_networks must be below 2**32 - 2**20, got {n_networks}.")
    dtype = fw.check_dtype(dtype)
    if method not in _METHODS:
        raise DeepEFTInputError(f"method must be one of {_METHODS}, got {method!r}.")
    ntk = bool(ntk)
    if ntk and method != "weights":
        raise DeepEFTInputError("ntk=True needs the network weights: use method='weights'.")
    if vertex is None:
        vertex = N <= _AUTO_VERTEX_MAX_N
    vertex = bool(vertex)
    if vertex and 3 * net.L * N**4 * 8 > _VERTEX_MAX_BYTES:
        raise DeepEFTInputError(
            f"vertex=True with N = {N} inputs needs {3 * net.L * N**4 * 8 / 2**30:.1f} GiB of accumulators "
            "(grows as N^4); pass fewer inputs (e.g. X[:8]) or vertex=False."
        )
    B = default_micro_batch(net, N, method=method, ntk=ntk) if micro_batch is None else v.positive_int(micro_batch, "micro_batch")
    if chunk_size is None:
        chunk_size = B * max(1, min(64, 2**20 // (B * max(1, N * sum(net.n[1:])))))
    chunk_size = v.positive_int(chunk_size, "chunk_size")
    if chunk_size % B:
        raise DeepEFTInputError(
            f"chunk_size must be a multiple of micro_batch = {B}; use e.g. chunk_size={max(B, chunk_size // B * B)}."
        )
    keep = _check_keep(keep_preactivations, n_networks, net)
    cfg = _Config(net, N, method, dtype, B, vertex, ntk)
    with x64():
        acc, shift = _run(cfg, X, n_networks, seed, chunk_size, progress)
        kept = _kept(cfg, X, seed, *keep) if keep else None
    out = _finalize(cfg, acc, shift, X)
    return EnsembleResult(
        net=net,
        X=X,
        n_networks=n_networks,
        seed=seed,
        dtype=dtype,
        method=method,
        micro_batch=B,
        preactivations=kept,
        **out,
    )
