"""Full-batch GD of GCN ensembles (simulate/gnn_training.py): one step is Δz = −η Ĥ ε with the empirical NTK Ĥ
(autodiff, λ-weighted (8.6)) of the same network — an independent path; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

import deepeft as de
from deepeft.simulate.gnn import gcn_forward, gcn_init
from deepeft.simulate.gnn_training import train_gcn_ensemble

G = nx.path_graph(7)
A = de.normalize_adjacency(nx.to_numpy_array(G), "rw")
X = np.random.default_rng(0).normal(size=(7, 3))
Y = np.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0])
TRAIN = np.array([0, 1, 5, 6])


@pytest.mark.parametrize(
    "kw", [pytest.param({"C_W": 2.0}, marks=pytest.mark.slow), {"C_W": 1.0, "C_U": 1.0, "lambda_U": 0.5, "gamma": 0.3}]
)
def test_one_gd_step_is_minus_eta_ntk_times_error(kw):
    net = de.GCN(A, 3, [16, 16], 1, "tanh", C_b=0.1, lambda_b=0.7, lambda_W=1.3, **kw)
    eta = 1e-5
    r = train_gcn_ensemble(net, X, Y, TRAIN, 2, steps=1, eta=eta, seed=3, dtype="float64")
    from deepeft._x64 import x64

    with x64():
        p = gcn_init(net, jax.random.fold_in(jax.random.PRNGKey(3), 0), jnp.float64)
        f = lambda p: gcn_forward(net, p, jnp.asarray(A), jnp.asarray(X))[0][-1][:, 0]  # noqa: E731
        J = jax.jacrev(f)(p)
        H = 0.0
        for l, Jl in enumerate(J):
            lw = [net.lambda_W[l] / net.n[l]] + ([net.lambda_U[l] / net.n[l]] if net.message_passing else [])
            for lam, Jw in zip(lw, Jl[:-1], strict=True):
                H = H + lam * jnp.einsum("aij,bij->ab", Jw, Jw)
            H = H + net.lambda_b[l] * jnp.einsum("ai,bi->ab", Jl[-1], Jl[-1])
        z0 = np.asarray(f(p))
    eps = np.zeros(7)
    eps[TRAIN] = z0[TRAIN] - Y[TRAIN]
    np.testing.assert_allclose(r.outputs0[0, :, 0], z0, rtol=1e-12)
    dz = r.outputs[0, :, 0] - z0
    np.testing.assert_allclose(dz, -eta * np.asarray(H) @ eps, rtol=1e-4, atol=1e-12)  # O(η²) remainder


@pytest.mark.slow
def test_training_learns_and_scores_held_out_nodes():
    net = de.GCN(A, 3, [32, 32], 1, "tanh", C_b=0.1, C_W=1.0)
    T = de.frozen_ntk(net, X)[-1][np.ix_(TRAIN, TRAIN)]
    r = train_gcn_ensemble(net, X, Y, TRAIN, 8, steps=200, eta=1.0 / np.linalg.eigvalsh(T).max(), seed=0)
    assert np.all(r.train_loss < 0.5 * 0.5 * TRAIN.size)  # below half the loss of the zero function
    acc = r.mean_accuracy()
    assert r.accuracy.shape == (8,) and 0.0 <= acc.value <= 1.0 and acc.stderr >= 0


def test_training_bad_input():
    net = de.GCN(A, 3, [8], 1)
    with pytest.raises(de.DeepEFTInputError, match="Y must be"):
        train_gcn_ensemble(net, X, Y[:5], TRAIN, 2, steps=1, eta=0.1)
    with pytest.raises(de.DeepEFTInputError, match="train_idx"):
        train_gcn_ensemble(net, X, Y, np.arange(7), 2, steps=1, eta=0.1)
    with pytest.raises(de.DeepEFTInputError, match="eta"):
        train_gcn_ensemble(net, X, Y, TRAIN, 2, steps=1, eta=0.0)
