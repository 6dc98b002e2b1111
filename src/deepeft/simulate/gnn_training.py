"""Ensembles of graph-convolution networks trained by full-batch gradient descent on node labels (transductive).

Network s starts from ``gcn_init(net, fold_in(PRNGKey(seed), s))`` (:mod:`.gnn`, the same draw as the random
ensembles), runs on the whole graph (all nodes, features X) and is trained on the labelled nodes 𝒜 only:

    ℒ_𝒜(θ) = Σ_{α∈𝒜} ℓ(z^{(L)}_α(θ), y_α),      θ ← θ − η λ ∂ℒ/∂θ   (7.11), (8.6)

with the book's tensorial learning rate: λ_b for biases, λ_W/n_{ℓ−1} for W (and λ_U/n_{ℓ−1} for the neighbour
weight U of the message-passing variant), so that Δz = −η Θ ε + O(η²) with Θ the GCN's NTK (theory/gnn.py).
ℓ from :mod:`deepeft.losses` ("mse" with targets y (N, n_L), or "cross_entropy" with one-hot y). Accuracy on the
other nodes: argmax of z (n_L ≥ 2) or the sign of z against the sign of y (n_L = 1). All networks of the ensemble
run vmapped in one jitted ``lax.fori_loop`` over steps.

References:
  Kipf & Welling, Semi-supervised classification with graph convolutional networks (arXiv:1609.02907).
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (arXiv:2106.10165), (7.11), (8.6).
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
from ..graph import GCN
from ..losses import resolve_loss
from ..statistics import Estimate
from . import forward as fw
from .gnn import gcn_forward, gcn_init

__all__ = ["TrainedGCNEnsemble", "train_gcn_ensemble"]


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedGCNEnsemble:
    """Per-network results of :func:`train_gcn_ensemble`: ``accuracy`` (S,) on the held-out nodes, ``train_loss``
    (S,) at the end, ``outputs`` (S, N, n_L) of every node at the end, ``outputs0`` at initialisation."""

    net: GCN
    train_idx: np.ndarray
    steps: int
    eta: float
    accuracy: np.ndarray
    train_loss: np.ndarray
    outputs: np.ndarray
    outputs0: np.ndarray

    def mean_accuracy(self) -> Estimate:
        """Mean held-out accuracy over networks, with its standard error."""
        a = self.accuracy
        return Estimate(float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)))


def _lambdas(net: GCN) -> tuple:
    """Per-parameter step factors (8.6) per layer: (λ_W/n_{ℓ−1}, [λ_U/n_{ℓ−1},] λ_b), matching :func:`gcn_init`."""
    n = net.n
    out: list[tuple[float, ...]] = []
    for l in range(1, net.L + 1):
        lw = float(net.lambda_W[l - 1]) / n[l - 1]
        lb = float(net.lambda_b[l - 1])
        if net.lambda_U is not None:
            out.append((lw, float(net.lambda_U[l - 1]) / n[l - 1], lb))
        else:
            out.append((lw, lb))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _program(net: GCN, loss, n_lab: int, dtype: str):
    lam = _lambdas(net)

    def out(params, A, X):
        return gcn_forward(net, params, A, X)[0][-1]

    def total(params, A, X, Y, idx):
        z = out(params, A, X)[idx]
        return jnp.sum(jax.vmap(loss)(z, Y[idx]))

    def one(key, A, X, Y, idx, eta, steps):
        p0 = gcn_init(net, key, fw.DTYPES[dtype])
        g = jax.grad(total)

        def step(_, p):
            d = g(p, A, X, Y, idx)
            return tuple(tuple(w - eta * lw * dw for w, dw, lw in zip(pl, dl, ll, strict=True))
                         for pl, dl, ll in zip(p, d, lam, strict=True))

        p = jax.lax.fori_loop(0, steps, step, p0)
        return out(p0, A, X), out(p, A, X), total(p, A, X, Y, idx)

    def run(keys, A, X, Y, idx, eta, steps):
        return jax.vmap(one, in_axes=(0, None, None, None, None, None, None))(keys, A, X, Y, idx, eta, steps)

    return jax.jit(run)


def train_gcn_ensemble(
    net: GCN,
    X,
    Y,
    train_idx,
    n_networks: int,
    *,
    steps: int,
    eta: float,
    seed: int = 0,
    loss="mse",
    dtype="float32",
) -> TrainedGCNEnsemble:
    """Train ``n_networks`` GCNs from random initialisation by ``steps`` full-batch GD steps of size ``eta`` on the
    labelled nodes ``train_idx``; targets Y (N_nodes, n_L) for every node (the held-out rows are only scored).

    A stable step needs η λ_max(Θ_𝒜𝒜) < 2 with Θ the NTK restricted to the labelled nodes (``de.frozen_ntk``).
    """
    if not isinstance(net, GCN):
        raise DeepEFTInputError(f"net must be a deepeft.GCN, got {type(net).__name__}.")
    X = net.check_inputs(X)
    N, nL = net.N_nodes, net.output_dim
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1 and nL == 1:
        Y = Y[:, None]
    if Y.shape != (N, nL) or not np.all(np.isfinite(Y)):
        raise DeepEFTInputError(f"Y must be finite targets of shape (N_nodes, output_dim) = ({N}, {nL}), got {Y.shape}.")
    idx = np.unique(np.asarray(train_idx, dtype=np.int64).ravel())
    if idx.size < 1 or idx.min() < 0 or idx.max() >= N or idx.size >= N:
        raise DeepEFTInputError(
            f"train_idx must list 1..{N - 1} distinct node indices in [0, {N}) (the rest are held out), got {idx.size} "
            f"indices in [{idx.min() if idx.size else '-'}, {idx.max() if idx.size else '-'}]."
        )
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    steps = v.positive_int(steps, "steps", minimum=0)
    eta = v.finite_scalar(eta, "eta", minimum=0.0, strict=True)
    seed = fw.check_seed(seed)
    dtype = fw.check_dtype(dtype)
    _, loss_fn = resolve_loss(loss)
    dt = fw.DTYPES[dtype]
    with x64():
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.PRNGKey(seed), jnp.arange(n_networks, dtype=jnp.uint32))
        run = _program(net, loss_fn, idx.size, dtype)
        z0, z, tl = jax.device_get(run(keys, jnp.asarray(net.A_hat, dt), jnp.asarray(X, dt), jnp.asarray(Y, dt),
                                       jnp.asarray(idx), jnp.asarray(eta, dt), jnp.int32(steps)))
    z0, z = np.asarray(z0, dtype=np.float64), np.asarray(z, dtype=np.float64)
    test = np.setdiff1d(np.arange(N), idx)
    if nL == 1:
        correct = np.sign(z[:, test, 0]) == np.sign(Y[test, 0])
    else:
        correct = np.argmax(z[:, test], axis=-1) == np.argmax(Y[test], axis=-1)
    return TrainedGCNEnsemble(net, idx, steps, eta, correct.mean(axis=1), np.asarray(tl, dtype=np.float64), z, z0)
