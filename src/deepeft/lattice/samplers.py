"""Samplers for the stochastic neural network (paper §3, eqs. (4), (9)–(11); App. 8.3).

Two independent ways to draw pre-activations z^l ∈ R^N of a random MLP with J_D = 0:

* :func:`sample_full_weights` — the network itself (4): explicit W^l ~ N(0, σ_w²/N_{l−1}) (fan-in,
  erratum E8 for the printed σ_w²/N_l in (6)) and b^l ~ N(0, σ_b²); any activation φ; several inputs.
* :func:`sample_conditional` — the exact Markov chain behind the lattice model (9):
  z^l | z^{l−1} ~ N(0, Σ^l ⊗ I_N), Σ^l_{ij} = σ_w² N⁻¹ φ(z^{l−1}_i)·φ(z^{l−1}_j) + σ_b²,
  Σ^0_{ij} = σ_w² n_0⁻¹ x_i·x_j + σ_b². No weight matrices: O(L·N·M) instead of O(L·N²·M).
  With ``ring=True`` it samples the ring (11) (z^L ≡ z^{−1}) by Metropolis-within-Gibbs, starting
  from the bulk of an open chain.

Layers are indexed l = 0..L−1 (z^0 is the first pre-activation, from the input). Both samplers
record, per layer and input, the norm r^l = |z^l|, the norms r^l_± of the positive/negative
components (18), the number k^l of NEGATIVE components (erratum E4: the appendix Jacobian needs
k to count the negative ones), optionally the overlaps z_i·z_j and the full z. Randomness: network m
uses ``fold_in(key(seed), m)`` and layer l ``fold_in(·, l)``, so results do not depend on ``chunk``.
JAX: ``lax.scan`` over layers, ``vmap`` over networks, networks streamed in chunks (bounded memory).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .energy import ring_energy_jax as _ring_energy

__all__ = ["LatticeSample", "sample_conditional", "sample_full_weights"]


@dataclasses.dataclass(frozen=True)
class LatticeSample:
    """Per-layer records of M sampled networks (arrays indexed [network, layer, input]).

    r, r_plus, r_minus: |z^l|, |z^l_+|, |z^l_−| (18); k: number of negative components (E4);
    gram: z_i·z_j (M, L, P, P) when P > 1 inputs, else None; z: (M, L, P, N) when recorded.
    """

    r: np.ndarray
    r_plus: np.ndarray
    r_minus: np.ndarray
    k: np.ndarray
    gram: np.ndarray | None
    z: np.ndarray | None
    sigma_w2: float
    sigma_b2: float
    N: int
    activation: Activation
    ring: bool = False
    acceptance: float | None = None

    @property
    def M(self) -> int:
        return self.r.shape[0]

    @property
    def L(self) -> int:
        return self.r.shape[1]


# -- shared validation -----------------------------------------------------------------------


def _common(act, sigma_w2, sigma_b2, N, L, n_networks, X, dtype, chunk):
    act = act if isinstance(act, Activation) else _activation(act)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2")
    N = v.positive_int(N, "N")
    L = v.positive_int(L, "L")
    M = v.positive_int(n_networks, "n_networks")
    if X is None:
        X = np.ones((1, N))  # one input with |x|²/n_0 = 1
    X = v.inputs(X)
    if dtype not in ("float32", "float64"):
        raise DeepEFTInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    chunk = M if chunk is None else min(v.positive_int(chunk, "chunk"), M)
    return act, sw, sb, N, L, M, X, dtype, chunk


def _records(z, want_z):
    """Per-layer observables of z (P, N): r, r_+, r_−, k (negatives, E4), gram, optionally z."""
    zp = jnp.maximum(z, 0.0)
    zm = jnp.minimum(z, 0.0)
    out = {
        "r": jnp.sqrt(jnp.sum(z * z, -1)),
        "r_plus": jnp.sqrt(jnp.sum(zp * zp, -1)),
        "r_minus": jnp.sqrt(jnp.sum(zm * zm, -1)),
        "k": jnp.sum(z < 0, -1).astype(jnp.int32),
        "gram": z @ z.T,
    }
    if want_z:
        out["z"] = z
    return out


def _run_chunks(fn, keys, chunk):
    """Apply the jitted per-chunk sampler to all network keys; concatenate as NumPy."""
    parts = []
    M = keys.shape[0]
    for s in range(0, M, chunk):
        kc = keys[s : s + chunk]
        if kc.shape[0] < chunk:  # pad to keep one compiled shape
            kc = jnp.concatenate([kc, jnp.broadcast_to(kc[:1], (chunk - kc.shape[0],) + kc.shape[1:])])
        res = jax.device_get(fn(kc))
        parts.append({k: v[: min(chunk, M - s)] for k, v in res.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _package(rec, act, sw, sb, N, P, ring=False, acceptance=None):
    return LatticeSample(
        r=rec["r"], r_plus=rec["r_plus"], r_minus=rec["r_minus"], k=rec["k"],
        gram=rec["gram"] if P > 1 else None, z=rec.get("z"),
        sigma_w2=sw, sigma_b2=sb, N=N, activation=act, ring=ring, acceptance=acceptance,
    )


def _ctx(dtype):
    return x64() if dtype == "float64" else _null()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _network_keys(seed, M):
    seed = v.positive_int(seed, "seed", minimum=0)
    base = jax.random.key(seed)
    return jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.arange(M))


# -- exact conditional sampler ---------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("act", "N", "L", "want_z", "ftype"))
def _conditional_chunk(keys, S0, sw, sb, *, act, N, L, want_z, ftype):
    P = S0.shape[0]

    def one(key):
        def step(S, l):
            chol = jnp.linalg.cholesky(S)  # (9): z^l_α ~ N(0, Σ^l) iid over neurons α
            eps = jax.random.normal(jax.random.fold_in(key, l), (P, N), ftype)
            z = chol @ eps
            h = act.fn(z)
            S_next = sw * (h @ h.T) / N + sb
            return S_next, _records(z, want_z)

        _, rec = jax.lax.scan(step, S0, jnp.arange(L))
        return rec

    return jax.vmap(one)(keys)


def sample_conditional(
    activation="linear", sigma_w2=0.9, sigma_b2=0.01, *, N=200, L=1024, n_networks=200, seed=0,
    X=None, ring=False, sweeps=200, record_z=False, dtype="float32", chunk=None,
) -> LatticeSample:
    """Exact ancestral sampling of the lattice model (9): z^l | z^{l−1} ~ N(0, Σ^l ⊗ I) (open chain).

    ``X`` (P, n_0): the inputs (default one input with |x|²/n_0 = 1); only Σ^0 = σ_w² XXᵀ/n_0 + σ_b²
    enters. ``ring=True``: the ring (11), single input, sampled by :func:`_ring_gibbs` (``sweeps``
    checkerboard Metropolis-within-Gibbs sweeps from an open-chain start). ``chunk``: networks per
    compiled call (bounded memory). ``dtype='float64'`` runs in double precision (without flipping
    JAX's global flag).
    """
    act, sw, sb, N, L, M, X, dtype, chunk = _common(activation, sigma_w2, sigma_b2, N, L, n_networks, X, dtype, chunk)
    if ring:
        if X.shape[0] != 1:
            raise DeepEFTInputError("ring=True samples the single-input ring (11); pass one input (X of shape (1, n0)).")
        if L < 4 or L % 2:
            raise DeepEFTInputError(f"ring=True needs an even L >= 4 (checkerboard updates), got L = {L}.")
        sweeps = v.positive_int(sweeps, "sweeps")
    S0 = sw * (X @ X.T) / X.shape[1] + sb
    if sb == 0.0 and np.linalg.eigvalsh(S0).min() <= 0:
        raise DeepEFTInputError(
            "Σ^0 = σ_w² XXᵀ/n0 + σ_b² is singular (duplicate inputs with σ_b² = 0); use distinct inputs or σ_b² > 0."
        )
    with _ctx(dtype):
        ftype = jnp.float64 if dtype == "float64" else jnp.float32
        keys = _network_keys(seed, M)
        fn = functools.partial(
            _conditional_chunk, S0=jnp.asarray(S0, ftype), sw=jnp.asarray(sw, ftype), sb=jnp.asarray(sb, ftype),
            act=act, N=N, L=L, want_z=bool(record_z), ftype=ftype,
        )
        if not ring:
            rec = _run_chunks(fn, keys, chunk)
            return _package(rec, act, sw, sb, N, X.shape[0])
        gib = functools.partial(_ring_chunk, sw=jnp.asarray(sw, ftype), sb=jnp.asarray(sb, ftype), act=act, N=N,
                                sweeps=sweeps, want_z=bool(record_z))

        start = functools.partial(fn, L=2 * L, want_z=True)

        def ring_fn(k):  # start: the bulk (last L layers) of an open chain of length 2L
            z0 = start(jax.vmap(lambda kk: jax.random.fold_in(kk, 1))(k))["z"][:, L:, 0, :]
            return gib(k, z0)

        rec = _run_chunks(ring_fn, keys, chunk)
        acc = float(np.mean(rec.pop("acceptance")))
        return _package(rec, act, sw, sb, N, 1, ring=True, acceptance=acc)


# -- ring (11): Metropolis-within-Gibbs ------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("act", "N", "sweeps", "want_z"))
def _ring_chunk(keys, z0, sw, sb, *, act, N, sweeps, want_z):
    """Checkerboard Metropolis-within-Gibbs for the ring (11), z^L ≡ z^{−1}.

    Site l is proposed from its prior conditional z' ~ N(0, Σ^l I) (Σ^l from z^{l−1}) and accepted with
    the ratio of likelihoods N(z^{l+1}; 0, Σ(z')) / N(z^{l+1}; 0, Σ(z^l)) — detailed balance for
    p(z^l | z^{l−1}, z^{l+1}) ∝ N(z^l; 0, Σ^l) N(z^{l+1}; 0, Σ^{l+1}(z^l)). Even sites, then odd sites, then
    4 global scale moves z → λz (ln λ ~ N(0, (2/√(NL))²), accepted with exp(−ΔE) λ^{NL}, E the ring energy
    (11)): single-site moves alone relax the slow uniform mode (precision ∝ Δ_w²) very slowly.
    """
    L = z0.shape[1]
    par = jnp.arange(L) % 2

    def one(key, z):
        def sigma(zz):  # Σ^{l+1} produced by each site's z^l: (L,)
            h = act.fn(zz)
            return sw * jnp.sum(h * h, -1) / N + sb

        def half(carry, inp):
            z, acc = carry
            k, p = inp
            S = sigma(z)
            S_in = jnp.roll(S, 1)  # Σ^l from z^{l−1}
            k1, k2 = jax.random.split(k)
            prop = jnp.sqrt(S_in)[:, None] * jax.random.normal(k1, z.shape, z.dtype)
            S_prop = sigma(prop)
            nxt2 = jnp.sum(jnp.roll(z, -1, axis=0) ** 2, -1)  # |z^{l+1}|²
            logr = (-0.5 * N * jnp.log(S_prop) - 0.5 * nxt2 / S_prop) - (-0.5 * N * jnp.log(S) - 0.5 * nxt2 / S)
            u = jax.random.uniform(k2, (L,), z.dtype)
            ok = (jnp.log(u) < logr) & (par == p)
            z = jnp.where(ok[:, None], prop, z)
            return (z, acc + jnp.sum(ok)), None

        def scale_move(carry, k):  # global z → λz, ln λ ~ N(0, s²): Jacobian λ^{NL}
            z, acc = carry
            k1, k2 = jax.random.split(k)
            t = step * jax.random.normal(k1, (), z.dtype)
            logr = -_ring_energy(jnp.exp(t) * z, act, sw, sb) + _ring_energy(z, act, sw, sb) + N * L * t
            ok = jnp.log(jax.random.uniform(k2, (), z.dtype)) < logr
            return (jnp.where(ok, jnp.exp(t) * z, z), acc), None

        def sweep(carry, k):
            k0, k1, k2 = jax.random.split(k, 3)
            carry, _ = half(carry, (k0, 0))
            carry, _ = half(carry, (k1, 1))
            carry, _ = jax.lax.scan(scale_move, carry, jax.random.split(k2, 4))
            return carry, None

        step = 2.0 / jnp.sqrt(jnp.asarray(N * L, z.dtype))
        ks = jax.random.split(jax.random.fold_in(key, 2), sweeps)
        (z, acc), _ = jax.lax.scan(sweep, (z, jnp.zeros((), jnp.int32)), ks)
        rec = jax.vmap(lambda zz: _records(zz[None, :], want_z))(z)  # (L, 1, ...) like the open chain
        rec["acceptance"] = acc / (sweeps * L)
        return rec

    return jax.vmap(one)(keys, z0)


# -- full-weight sampler ---------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("act", "N", "L", "want_z", "ftype"))
def _full_chunk(keys, X, sw, sb, *, act, N, L, want_z, ftype):
    n0 = X.shape[1]

    def one(key):
        k0 = jax.random.fold_in(key, 0)
        W0 = jax.random.normal(jax.random.fold_in(k0, 0), (N, n0), ftype) * jnp.sqrt(sw / n0)
        b0 = jax.random.normal(jax.random.fold_in(k0, 1), (N,), ftype) * jnp.sqrt(sb)
        z0 = X @ W0.T + b0  # (P, N): z^0 = W^0 x + b^0  (4)

        def step(z, l):
            kl = jax.random.fold_in(key, l)
            W = jax.random.normal(jax.random.fold_in(kl, 0), (N, N), ftype) * jnp.sqrt(sw / N)
            b = jax.random.normal(jax.random.fold_in(kl, 1), (N,), ftype) * jnp.sqrt(sb)
            zn = act.fn(z) @ W.T + b  # z^l = W^l φ(z^{l−1}) + b^l  (4)
            return zn, _records(zn, want_z)

        _, rec = jax.lax.scan(step, z0, jnp.arange(1, L))
        first = _records(z0, want_z)
        return {k: jnp.concatenate([first[k][None], rec[k]]) for k in rec}

    return jax.vmap(one)(keys)


def sample_full_weights(
    activation="linear", sigma_w2=0.9, sigma_b2=0.01, *, N=200, L=1024, n_networks=200, seed=0,
    X=None, record_z=False, dtype="float32", chunk=None,
) -> LatticeSample:
    """Random networks with explicit weights (4): W^l ~ N(0, σ_w²/N_{l−1}), b^l ~ N(0, σ_b²), open chain.

    Same records and arguments as :func:`sample_conditional` (whose distribution it must match);
    every layer has width N, inputs X (P, n_0) (default one input of ones, |x|²/n_0 = 1).
    Cost O(L·N²·M): W is drawn layer by layer inside ``lax.scan`` (memory O(chunk·N²)).
    """
    act, sw, sb, N, L, M, X, dtype, chunk = _common(activation, sigma_w2, sigma_b2, N, L, n_networks, X, dtype, chunk)
    with _ctx(dtype):
        ftype = jnp.float64 if dtype == "float64" else jnp.float32
        keys = _network_keys(seed, M)
        fn = functools.partial(_full_chunk, X=jnp.asarray(X, ftype), sw=jnp.asarray(sw, ftype), sb=jnp.asarray(sb, ftype),
                               act=act, N=N, L=L, want_z=bool(record_z), ftype=ftype)
        rec = _run_chunks(fn, keys, chunk)
    return _package(rec, act, sw, sb, N, X.shape[0])
