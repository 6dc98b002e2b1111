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
    with pytest.raises(de.DeepEFTInputError, match="method="):
        de.sample_ensemble(net, X, 10, method="metric")


# ---------------------------------------------------------------------------------------------- message passing, γ ≠ 0
def _mp_residual(n_networks, ntk=False, **kw):
    A = de.normalize_adjacency(SBM, "sym")
    kw = {"C_W": 1.0, "C_U": 1.0, "gamma": 0.6} | kw
    net = de.GCN(A, 3, [64, 64], 2, "relu", C_b=0.1, lambda_b=0.5, **kw)
    return net, de.sample_ensemble(net, X, n_networks, seed=4, ntk=ntk, vertex=True)


@pytest.fixture(scope="module")
def mp_case():
    return _mp_residual(2000)


def test_message_passing_residual_kernel_and_vertex_vs_ensemble(mp_case, monkeypatch):
    """z⁺ = σW + ÂσU + b + γz: K, E[Ĝ] and the residual vertex (pair-average estimator) within Z_MAX; the plain-GCN
    theory (C_U dropped) and the vertex without its γ² intralayer terms fail."""
    from deepeft.theory import gnn

    net, ens = mp_case
    K = de.kernel(net, X)
    V = de.four_point_vertex(net, X)
    K_gcn = de.kernel(de.GCN(net.A_hat, 3, [64, 64], 2, "relu", C_b=0.1, C_W=1.0, gamma=0.6), X)
    monkeypatch.setattr(gnn, "intralayer_cross", lambda grad, K: np.zeros((K.shape[0],) * 4))
    V_no_cross = gnn.node_vertex(net, X).V
    for l in range(1, net.L):
        zK, zG, zV = (_z(ens.metric[l], K[l]).max(), _z(ens.stochastic_metric[l], K[l]).max(), _z(ens.vertex[l], V[l]).max())
        print(f"ℓ={l + 1}: max|z| K {zK:.2f}, E[Ĝ] {zG:.2f}, V {zV:.2f}")
        assert max(zK, zG, zV) < Z_MAX
        assert _z(ens.metric[l], K_gcn[l]).max() > Z_MAX
    assert max(_z(ens.vertex[l], V_no_cross[l]).max() for l in (1, 2)) > Z_MAX


@pytest.mark.slow
@pytest.mark.parametrize("kw", [{"gamma": 0.0, "lambda_U": 0.7}, {"C_W": 2.0, "C_U": None, "gamma": 0.5}])
def test_message_passing_ntk_and_residual_gcn_vertex_vs_ensemble(kw):
    net, ens = _mp_residual(3000, ntk=True, **kw)
    K, T = de.kernels(net, X)
    V = de.four_point_vertex(net, X)
    zT = _z(ens.ntk, T[-1]).max()
    zV = max(_z(ens.vertex[l], V[l]).max() for l in (1, 2))
    print(f"{net!r}: output NTK max|z| = {zT:.2f}, V max|z| = {zV:.2f}")
    assert zT < Z_MAX and zV < Z_MAX


@pytest.mark.slow
def test_nlo_metric_vs_ensemble():
    """E[metric] = K + G^{1}/n (4.104) over nodes: at n = 8 the NLO term is resolved (LO fails, NLO passes)."""
    A = de.normalize_adjacency(SBM, "sym")
    net = de.GCN(A, 3, [8] * 3, 8, "relu", C_b=0.1, C_W=1.0, C_U=1.0)
    ens = de.sample_ensemble(net, X, 80_000, seed=2, vertex=False)
    fl = de.vertex_flow(net, X, nlo=True)
    z_lo = max(_z(ens.metric[l], fl.K[l]).max() for l in (2, 3))
    z_nlo = max(_z(ens.metric[l], fl.K[l] + fl.G1[l] / 8).max() for l in range(1, 4))
    print(f"max|z| LO {z_lo:.2f}, NLO {z_nlo:.2f}")
    assert z_nlo < Z_MAX < z_lo


@pytest.mark.slow
def test_collapse_fluctuations_vs_ensemble():
    """Var(Δ̂) of one network's node distance = 2Δ²/n_ℓ + V_eeee/n_{ℓ−1} (gnn.collapse_fluctuations) against the
    spread over 10⁴ random GCNs; allowance: the next order of the same expansion, rel_var·theory (rel_var = the
    O(1/n) relative variance itself). The Gaussian-only 2Δ²/n (no vertex) fails at layers 2–4."""
    import jax
    import jax.numpy as jnp

    from deepeft._x64 import x64
    from deepeft.simulate.gnn import gcn_forward, gcn_init
    from deepeft.theory import gnn

    A = de.normalize_adjacency(nx.to_numpy_array(nx.path_graph(4)), "rw")
    Xp = X[:4]
    n = 64
    net = de.GCN(A, 3, [n] * 3, n, "relu", C_b=0.1, C_W=2.0)
    fl = gnn.collapse_fluctuations(de.vertex_flow(net, Xp))
    S = 10_000
    with x64():
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.PRNGKey(0), jnp.arange(S, dtype=jnp.uint32))

        def one(k):
            zs = gcn_forward(net, gcn_init(net, k, jnp.float64), jnp.asarray(A), jnp.asarray(Xp))[0]
            return jnp.stack([z @ z.T / z.shape[1] for z in zs])

        M = np.asarray(jax.jit(jax.vmap(one))(keys))
    ia, ib = fl.pairs.T
    D = M[:, :, ia, ia] + M[:, :, ib, ib] - 2 * M[:, :, ia, ib]
    var = D.var(0, ddof=1)
    se = np.sqrt((((D - D.mean(0)) ** 4).mean(0) - var**2) / S)
    th = fl.rel_var * fl.delta**2
    allow = Z_MAX * se + fl.rel_var * th
    print("noise/signal", fl.noise_to_signal.round(3), "max |Δvar|/allowance", (np.abs(var - th) / allow).max(1).round(2))
    assert np.all(np.abs(var - th) <= allow)
    gauss = 2 * fl.delta**2 / n
    assert np.all((np.abs(var - gauss) / allow)[1:].max(1) > 1)
    assert fl.depth is None and np.all(np.diff(fl.noise_to_signal) > 0)
    np.testing.assert_allclose(fl.growth / n, fl.noise_to_signal**2, rtol=1e-12)  # equal widths
    assert fl.depth_at_width(n) is None and fl.depth_at_width(fl.growth[2] * 0.99) == 3
