"""Monte Carlo correlators of a residual block (book §B.4, (B.40)–(B.43)) for the ξ tuner (B.45).

A block R(z; θ) is measured on preactivations z of width n drawn iid N(0, K) per neuron (the infinite-width law
of the layer that feeds it; inputs δ ∈ D with the N × N kernel K):

    Ḡ_zz = (1/|D|n) Σ_{i,δ} E[z_{i;δ}²],  Ḡ_RR = (1/|D|n) Σ_{i,δ} E[R_{i;δ}²],  Ḡ_Rz = (1/|D|n) Σ_{i,δ} E[R_{i;δ}z_{i;δ}]

(B.42)–(B.43), with (B.43) averaged over δ as (B.42) is (the printed (B.43) misses the 1/|D| Σ_δ). Each sample
draws a fresh block and a fresh z; per-sample averages over (i, δ) are independent, so the covariance of the
three means is their sample covariance / S. :func:`deepeft.theory.residual.critical_xi` turns them into ξ.

Built-in block: ``mlp_block(n, depth, activation, C_b, C_W)`` — an MLP-L_R-layer block
R = b_{L_R} + W_{L_R}σ(… σ(b_1 + W_1σ(z)) …) with W ~ N(0, C_W/n) (depth = L_R ≥ 1).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, §B.4 (arXiv:2106.10165).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from . import forward as fw

__all__ = ["BlockCorrelators", "block_correlators", "mlp_block"]


@dataclasses.dataclass(frozen=True, eq=False)
class BlockCorrelators:
    """Ḡ_zz, Ḡ_RR, Ḡ_Rz (B.42)–(B.43) as ``mean`` (3,) in that order, ``cov`` (3, 3) the covariance of the means."""

    mean: np.ndarray
    cov: np.ndarray
    n_samples: int

    @property
    def G_zz(self) -> float:
        return float(self.mean[0])

    @property
    def G_RR(self) -> float:
        return float(self.mean[1])

    @property
    def G_Rz(self) -> float:
        return float(self.mean[2])

    @property
    def stderr(self) -> np.ndarray:
        return np.sqrt(np.diagonal(self.cov))


def mlp_block(n: int, depth: int = 2, activation="relu", C_b: float = 0.0, C_W: float = 2.0) -> Callable:
    """An MLP-``depth``-layer residual block of width n: ``block(key, z)`` → R, z (N, n) → R (N, n) (pure JAX)."""
    n = v.positive_int(n, "n")
    depth = v.positive_int(depth, "depth")
    act = _activation(activation)
    sb = float(np.sqrt(v.finite_scalar(C_b, "C_b")))
    sw = float(np.sqrt(v.finite_scalar(C_W, "C_W") / n))

    def block(key, z):
        a = z
        for k in jax.random.split(key, depth):
            kw, kb = jax.random.split(k)
            h = act.fn(a) @ (sw * jax.random.normal(kw, (n, n), z.dtype)).T + sb * jax.random.normal(kb, (n,), z.dtype)
            a = h
        return a

    block.width = n  # type: ignore[attr-defined]
    return block


def block_correlators(block: Callable, K, n_samples: int = 4096, seed: int = 0, *, n: int | None = None,
                      dtype="float64", batch: int = 256) -> BlockCorrelators:  # fmt: skip
    """Measure Ḡ_zz, Ḡ_RR, Ḡ_Rz of ``block`` (a JAX function ``block(key, z)`` of z (N, n)) over ``n_samples``
    independent (block, z) draws, z_i ~ N(0, K) iid over neurons i; K (N, N) or a scalar (one input)."""
    K = np.atleast_2d(np.asarray(K, dtype=np.float64))
    if K.shape[0] != K.shape[1] or not np.all(np.isfinite(K)) or np.any(np.linalg.eigvalsh(0.5 * (K + K.T)) < -1e-12):
        raise DeepEFTInputError(f"K must be a finite positive semidefinite N × N kernel (or a variance > 0), got {K!r}.")
    n = getattr(block, "width", None) if n is None else n
    if n is None:
        raise DeepEFTInputError("pass the block's width n (blocks from mlp_block carry it).")
    n = v.positive_int(n, "n")
    n_samples = v.positive_int(n_samples, "n_samples", minimum=2)
    seed = fw.check_seed(seed)
    dt = fw.DTYPES[fw.check_dtype(dtype)]
    lam, U = np.linalg.eigh(0.5 * (K + K.T))
    root = U * np.sqrt(np.maximum(lam, 0.0))
    run = _sampler(block, K.shape[0], n, dt, int(batch))
    sums, outer = np.zeros(3), np.zeros((3, 3))
    with x64():
        base, R = jax.random.PRNGKey(seed), jnp.asarray(root, dt)
        for start in range(0, n_samples, batch):
            s1, s2 = jax.device_get(run(base, R, jnp.uint32(start), jnp.uint32(n_samples)))
            sums += s1
            outer += s2
    m = sums / n_samples
    cov = (outer - n_samples * np.outer(m, m)) / (n_samples - 1) / n_samples
    return BlockCorrelators(m, cov, n_samples)


@functools.lru_cache(maxsize=16)
def _sampler(block, N: int, n: int, dt, B: int):
    def one(key, root):
        kz, kb = jax.random.split(key)
        z = root @ jax.random.normal(kz, (N, n), dt)  # (N, n): z_i ~ N(0, K) iid over neurons
        R = block(kb, z)
        return jnp.stack([jnp.mean(z * z), jnp.mean(R * R), jnp.mean(R * z)]).astype(jnp.float64)

    def run(base, root, start, total):
        idx = start + jnp.arange(B, dtype=jnp.uint32)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base, idx)
        t = jax.vmap(lambda k: one(k, root))(keys)
        w = (idx < total).astype(jnp.float64)
        return jnp.einsum("b,bk->k", w, t), jnp.einsum("b,bk,bm->km", w, t, t)

    return jax.jit(run)
