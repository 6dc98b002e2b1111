"""GCN node kernel, output NTK and four-point vertex (theory/gnn.py) against ensembles of random GCNs.

Tolerance rule (docs/gnn.md): the ensemble measures the exact finite-width E[metric], E[Ĝ], n_{ℓ−1}Cov(Ĝ) and
the NTK mean; the GCN theory gives them at leading order in 1/n. At n = 64, L = 3 and 3000 networks the
O(ℓ/n) corrections are below the statistical resolution (measured max|z| ≈ 2.4 over all entries), so no
allowance: |z| = |sim − theory|/SE < Z_MAX for every entry. The checks can fail: the MLP theory (Â = I) on
the same data fails them with |z| ≫ Z_MAX.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX

SBM = nx.to_numpy_array(nx.stochastic_block_model([3, 3], [[0.8, 0.3], [0.3, 0.8]], seed=1))
X = np.random.default_rng(3).normal(size=(6, 3))


def _z(est, theory):
    return np.abs(est.value - theory) / np.maximum(est.stderr, 1e-300)


def _ensemble(ntk):
    assert nx.is_connected(nx.from_numpy_array(SBM))
    A = de.normalize_adjacency(SBM, "sym")
    net = de.GCN(A, 3, [64, 64], 2, "relu", C_b=0.1, C_W=2.0, lambda_b=0.5, lambda_W=1.0)
    return net, de.sample_ensemble(net, X, 3000, seed=1, ntk=ntk, vertex=True)


@pytest.fixture(scope="module")
def case():
    return _ensemble(ntk=False)


def test_node_kernel_vs_ensemble(case):
    net, ens = case
    K = de.kernel(net, X)
    K_mlp = de.kernel(net.mlp, X)
    for l in range(net.L):
        z = _z(ens.metric[l], K[l])
        print(f"ℓ={l + 1}: max|z_K| = {z.max():.2f}")
        assert z.max() < Z_MAX
    for l in range(1, net.L):
        assert _z(ens.stochastic_metric[l], K[l]).max() < Z_MAX
        assert _z(ens.stochastic_metric[l], K_mlp[l]).max() > Z_MAX  # without Â: fails


@pytest.mark.slow
def test_output_ntk_vs_ensemble():
    net, ens = _ensemble(ntk=True)
    T = de.frozen_ntk(net, X)[-1]
    zT = _z(ens.ntk, T)
    print(f"output NTK: max|z| = {zT.max():.2f}")
    assert zT.max() < Z_MAX
    assert _z(ens.ntk, de.frozen_ntk(net.mlp, X)[-1]).max() > Z_MAX


@pytest.mark.slow
def test_node_vertex_vs_ensemble(case):
    net, ens = case
    V = de.four_point_vertex(net, X)
    V_wrong = V.copy()
    V_wrong[2] = de.four_point_vertex(net.mlp, X)[2]  # the MLP's last-layer vertex
    for l in range(1, net.L):
        z = _z(ens.vertex[l], V[l])
        print(f"ℓ={l + 1}: max|z_V| = {z.max():.2f}, max V = {np.abs(V[l]).max():.3f}")
        assert z.max() < Z_MAX
    assert _z(ens.vertex[2], V_wrong[2]).max() > Z_MAX


def test_graph_ensemble_bad_input(case):
    net, _ = case
    with pytest.raises(de.DeepEFTInputError, match="one row of features per node"):
        de.sample_ensemble(net, X[:5], 10)
    res = de.GCN(net.A_hat, 3, [8, 8], 1, gamma=0.5)
    with pytest.raises(de.DeepEFTInputError, match="vertex=True needs gamma = 0"):
        de.sample_ensemble(res, X, 10, vertex=True)
