"""Graph-convolution networks: spec, node kernel / NTK / vertex recursions, collapse (docs/gnn.md).

Independent paths: Â = I against the MLP recursions (same numbers to rounding); the linear GCN against its
closed forms K^(ℓ) = C_W^ℓ Â^ℓ G Â^ℓᵀ and V^(ℓ) = (ℓ−1)(K13K24 + K14K23); symmetric vs random-walk Â for a
homogeneous σ (identical correlations); the measured collapse rate against the spectral-gap prediction.
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import deepeft as de
from deepeft.theory import gnn

RNG = np.random.default_rng(7)
X6 = RNG.normal(size=(6, 3))
RING6 = nx.to_numpy_array(nx.cycle_graph(6)) + np.eye(6, k=2) + np.eye(6, k=-2)  # a connected 6-node graph


def _gcn(A, act="tanh", widths=(32, 32, 32), **kw):
    kw = {"C_b": 0.1, "C_W": 1.5} | kw
    return de.GCN(A, X6.shape[1], list(widths), 1, act, **kw)


# ---------------------------------------------------------------------------------------------- spec
def test_normalize_adjacency_sym_rw_dense_and_sparse():
    A = RING6
    S = de.normalize_adjacency(A, "sym")
    R = de.normalize_adjacency(sp.csr_matrix(A), "rw")
    assert sp.issparse(R) and isinstance(S, np.ndarray)
    At = A + np.eye(6)
    d = At.sum(1)
    np.testing.assert_allclose(S, At / np.sqrt(np.outer(d, d)), rtol=1e-14)
    np.testing.assert_allclose(R.toarray().sum(1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(de.normalize_adjacency(A, "sym", self_loops=False), A / np.sqrt(np.outer(A.sum(1), A.sum(1))))
    assert gnn.spectral_gap(S)[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "A, kw, match",
    [
        (np.ones((3, 4)), {}, "square"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), {}, "NaN or inf"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), {}, "negative"),
        (np.array([[0.0, 1.0], [0.0, 0.0]]), {}, "kind='rw'"),
        (np.eye(2), {"kind": "sim"}, "Did you mean 'sym'"),
    ],
)
def test_normalize_adjacency_bad_input(A, kw, match):
    with pytest.raises(de.DeepEFTInputError, match=match):
        de.normalize_adjacency(A, **kw)


def test_disconnected_graph_warns_about_oversmoothing():
    A = np.kron(np.eye(2), np.ones((3, 3)) - np.eye(3))  # two triangles
    with pytest.warns(de.DeepEFTWarning, match="2 connected components.*rank"):
        Ah = de.normalize_adjacency(A)
    with pytest.warns(de.DeepEFTWarning, match="oversmoothing"):
        _gcn(Ah)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _gcn(np.eye(6))  # Â = I is "no graph": no warning


def test_gcn_bad_input():
    net = _gcn(de.normalize_adjacency(RING6))
    with pytest.raises(de.DeepEFTInputError, match=r"one row of features per node.*\(6, 3\)"):
        de.kernel(net, RNG.normal(size=(5, 3)))
    with pytest.raises(de.DeepEFTInputError, match="input_dim is 3"):
        de.kernel(net, RNG.normal(size=(6, 4)))
    with pytest.raises(de.DeepEFTInputError, match="no X2"):
        de.kernel(net, X6, X6)
    with pytest.raises(de.DeepEFTInputError, match="square"):
        de.GCN(np.ones((6, 5)), 3, [8], 1)
    with pytest.raises(de.DeepEFTInputError, match="NaN or inf"):
        de.GCN(np.full((6, 6), np.inf), 3, [8], 1)
    with pytest.raises(de.DeepEFTInputError, match="equal hidden widths"):
        de.GCN(RING6, 3, [8, 16], 1, gamma=0.5)
    with pytest.raises(de.DeepEFTInputError, match="gamma=0"):
        de.vertex_flow(_gcn(RING6[:4, :4], gamma=0.3, widths=(8, 8)), X6[:4], nlo=True)
    with pytest.raises(de.DeepEFTInputError, match="pass\\s+C_U too"):
        de.GCN(RING6, 3, [8], 1, lambda_U=1.0)
    with pytest.raises(de.DeepEFTInputError, match="C_U"):
        de.GCN(RING6, 3, [8], 1, C_U=-1.0)


# ---------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize(
    "act, C_b, C_W", [("relu", 0.1, 2.0), ("tanh", 0.1, 1.5), pytest.param("gelu", 0.0, 1.2, marks=pytest.mark.slow)]
)
def test_identity_graph_is_the_mlp(act, C_b, C_W):
    net = _gcn(np.eye(6), act, C_b=C_b, C_W=C_W, lambda_b=0.5, lambda_W=2.0)
    g, m = de.kernels(net, X6), de.kernels(net.mlp, X6)
    np.testing.assert_allclose(g.K, m.K, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.Theta, m.Theta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["relu", pytest.param("tanh", marks=pytest.mark.slow)])
def test_identity_graph_vertex_is_the_mlp_vertex(act):
    X = X6[:4]
    net = de.GCN(np.eye(4), 3, [32] * 3, 1, act, C_b=0.1, C_W=1.5)
    np.testing.assert_allclose(de.four_point_vertex(net, X), de.four_point_vertex(net.mlp, X), rtol=1e-12, atol=1e-15)


def test_linear_gcn_closed_forms():
    """σ = z, C_b = 0: K^(ℓ) = C_W^ℓ Â^ℓ (XXᵀ/n0) Â^ℓᵀ, Θ^(ℓ) = ℓ λ_W/C_W K^(ℓ), V^(ℓ) = (ℓ−1)(K13K24 + K14K23)."""
    A = de.normalize_adjacency(RING6[:5, :5] + np.eye(5, k=4) + np.eye(5, k=-4))
    X = X6[:5]
    net = de.GCN(A, 3, [16] * 3, 1, "linear", C_b=0.0, C_W=1.3, lambda_b=0.0, lambda_W=0.7)
    K, T = de.kernels(net, X)
    V = de.four_point_vertex(net, X)
    G = X @ X.T / 3
    for l in range(1, 5):
        Al = np.linalg.matrix_power(A, l)
        Kl = 1.3**l * Al @ G @ Al.T
        np.testing.assert_allclose(K[l - 1], Kl, rtol=1e-12)
        np.testing.assert_allclose(T[l - 1], l * 0.7 / 1.3 * Kl, rtol=1e-12)
        wick = np.einsum("ac,bd->abcd", Kl, Kl) + np.einsum("ad,bc->abcd", Kl, Kl)
        np.testing.assert_allclose(V[l - 1], (l - 1) * wick, rtol=1e-7, atol=1e-12)  # the batched quadrature's tolerance


@pytest.mark.slow
def test_kernel_symmetric_psd_and_vertex_symmetries():
    A = de.normalize_adjacency(RING6)
    net = _gcn(A, "relu", widths=(32, 16), C_W=2.0)
    K, T = de.kernels(net, X6)
    for M in (K, T):
        np.testing.assert_allclose(M, np.swapaxes(M, 1, 2), atol=1e-14)
        assert np.linalg.eigvalsh(M).min() > -1e-12
    V = de.four_point_vertex(net, X6[:, :])[2]
    np.testing.assert_allclose(V, V.transpose(1, 0, 2, 3), atol=1e-13)
    np.testing.assert_allclose(V, V.transpose(2, 3, 0, 1), atol=1e-13)
    # an Â that is not I changes V: the mixing is there
    V_I = de.four_point_vertex(_gcn(np.eye(6), "relu", widths=(32, 16), C_W=2.0), X6)[2]
    assert np.abs(V - V_I).max() > 0.1 * np.abs(V).max()


def test_sym_equals_rw_for_homogeneous_activation():
    """ReLU, C_b = 0: K_sym = S K_rw S with S = D^{1/2} and features D^{-1/2}X, so the correlations agree exactly."""
    A = RING6.copy()
    A[0, 3] = A[3, 0] = 1.0  # irregular degrees (on a regular graph sym = rw trivially)
    d = (A + np.eye(6)).sum(1)
    ks = de.kernel(_gcn(de.normalize_adjacency(A, "sym"), "relu", C_b=0.0, C_W=2.0), X6)
    kr = de.kernel(_gcn(de.normalize_adjacency(A, "rw"), "relu", C_b=0.0, C_W=2.0), X6 / np.sqrt(d)[:, None])

    def corr(K):
        s = np.sqrt(np.diagonal(K, axis1=1, axis2=2))
        return K / (s[:, :, None] * s[:, None, :])

    np.testing.assert_allclose(corr(ks), corr(kr), rtol=1e-12)


def test_dense_and_sparse_a_hat_agree():
    A = de.normalize_adjacency(sp.csr_matrix(nx.to_scipy_sparse_array(nx.path_graph(30))))
    X = RNG.normal(size=(30, 2))
    net_s = de.GCN(A, 2, [8] * 3, 1, "relu", C_W=2.0, C_b=0.1)
    net_d = de.GCN(A.toarray(), 2, [8] * 3, 1, "relu", C_W=2.0, C_b=0.1)
    assert net_s.A_sparse is not None
    np.testing.assert_allclose(de.kernel(net_s, X), de.kernel(net_d, X), rtol=1e-13)


# ---------------------------------------------------------------------------------------------- collapse
def test_collapse_measures():
    K = np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert gnn.mean_decorrelation(K) == pytest.approx(0.0, abs=1e-15)
    assert gnn.rank_one_distance(K) == pytest.approx(0.0, abs=1e-7)
    assert gnn.mean_decorrelation(np.eye(3)) == pytest.approx(1.0)
    assert gnn.rank_one_distance(np.eye(4)) == pytest.approx(np.sqrt(3 / 4))
    with pytest.raises(de.DeepEFTInputError, match="N >= 2"):
        gnn.mean_decorrelation(np.ones((1, 1)))


CYCLE10 = nx.to_numpy_array(nx.cycle_graph(10))  # λ₂(rw with self-loops) = (1 + 2cos(2π/10))/3 ≈ 0.873
X10 = RNG.normal(size=(10, 3))


@pytest.mark.parametrize(
    "act, C_b, C_W, gamma",
    [("relu", 0.0, 2.0, 0.0), ("linear", 0.0, 1.0, 0.0), ("tanh", 0.2, 1.0, 0.0), ("tanh", 0.3, 0.8, 0.5)],
)
def test_collapse_rate_matches_spectral_gap_prediction(act, C_b, C_W, gamma):
    """ln(1 − ρ̄) falls by ln r per layer, r = (χ_⊥λ₂² + γ²)k/k⁺ (docs/gnn.md); λ₂ → 0.9λ₂ fails."""
    A = de.normalize_adjacency(CYCLE10, "rw")
    lam2 = gnn.spectral_gap(A)[1]
    assert lam2 == pytest.approx((1 + 2 * np.cos(2 * np.pi / 10)) / 3, rel=1e-12)
    L = 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", de.DeepEFTWarning)  # ReLU with C_W < 2: the kernel itself shrinks
        K = de.kernel(de.GCN(A, 3, [8] * (L - 1), 1, act, C_b=C_b, C_W=C_W, gamma=gamma), X10)[: L - 1]
    c = gnn.mean_decorrelation(K)  # hidden layers only (the readout has no skip)
    slope = np.log(c[-1] / c[-11]) / 10
    k1 = float(np.mean(np.diagonal(K[0])))

    def log_rate(lam):
        return np.mean(np.log(gnn.collapse_rate(act, C_W, C_b, gamma, lam, depth=L - 1, k1=k1).r[-10:]))

    assert c[-1] < 1e-3 * c[0]
    assert slope == pytest.approx(log_rate(lam2), rel=0.01)  # ReLU: 0.2 % (its (1 − ρ)^{3/2} term fades slowly)
    assert abs(slope - log_rate(0.9 * lam2)) > 0.1 * abs(slope)


def test_no_collapse_in_the_chaotic_phase():
    """tanh with χ_⊥λ₂² > 1 at the fixed point: 1 − ρ̄ settles at a finite value (GNNs do not always oversmooth)."""
    A = de.normalize_adjacency(CYCLE10, "rw")
    lam2 = gnn.spectral_gap(A)[1]
    pred = gnn.collapse_rate("tanh", 6.0, 0.0, 0.0, lam2, depth=60)
    assert pred.r_inf > 1 and np.isinf(pred.xi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", de.DeepEFTWarning)
        K = de.kernel(de.GCN(A, 3, [8] * 59, 1, "tanh", C_b=0.0, C_W=6.0), X10)
    c = gnn.mean_decorrelation(K[:-1])
    assert c[-1] > 0.05 and abs(c[-1] - c[-20]) < 0.02 * c[-1]  # settled (the ordered phase falls by 10⁻³: above)


# ---------------------------------------------------------------------------------------------- message passing
def test_message_passing_reductions():
    """z⁺ = σW + ÂσU + b: C_U = 0 is the MLP (any Â), C_W = 0 is the GCN with C_W → C_U; K, Θ to rounding."""
    A = de.normalize_adjacency(RING6)
    kw = {"C_b": 0.1, "lambda_b": 0.5}
    mlp_like = de.GCN(A, 3, [16] * 3, 1, "relu", C_W=2.0, C_U=0.0, lambda_W=2.0, lambda_U=0.0, **kw)
    m = de.kernels(mlp_like.mlp, X6)
    g = de.kernels(mlp_like, X6)
    np.testing.assert_allclose(g.K, m.K, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.Theta, m.Theta, rtol=1e-12, atol=1e-14)
    mp = de.GCN(A, 3, [16] * 3, 1, "relu", C_W=0.0, C_U=2.0, lambda_W=0.0, lambda_U=2.0, gamma=0.4, **kw)
    gcn = de.GCN(A, 3, [16] * 3, 1, "relu", C_W=2.0, lambda_W=2.0, gamma=0.4, **kw)
    a, b = de.kernels(mp, X6), de.kernels(gcn, X6)
    np.testing.assert_allclose(a.K, b.K, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.Theta, b.Theta, rtol=1e-12, atol=1e-14)
    # both terms on: not the sum of the parts' kernels (the map is linear in ⟨σσ⟩ only one layer deep)
    both = de.kernel(de.GCN(A, 3, [16] * 3, 1, "relu", C_W=1.0, C_U=1.0, **kw), X6)
    assert np.abs(both - de.kernel(mlp_like, X6)).max() > 1e-3


@pytest.mark.slow
def test_message_passing_vertex_reductions():
    """The same reductions for V (γ ≠ 0 included) and G^{1}."""
    X = X6[:4]
    A4 = de.normalize_adjacency(nx.to_numpy_array(nx.path_graph(4)))
    kw = {"C_b": 0.1}
    mp = de.GCN(A4, 3, [16] * 3, 1, "tanh", C_W=0.0, C_U=1.5, gamma=0.4, **kw)
    gcn = de.GCN(A4, 3, [16] * 3, 1, "tanh", C_W=1.5, gamma=0.4, **kw)
    np.testing.assert_allclose(de.four_point_vertex(mp, X), de.four_point_vertex(gcn, X), rtol=1e-10, atol=1e-13)
    mp0, gcn0 = (de.GCN(A4, 3, [16] * 3, 1, "tanh", **kw, **c) for c in ({"C_W": 0.0, "C_U": 1.5}, {"C_W": 1.5}))
    f1, f2 = de.vertex_flow(mp0, X, nlo=True), de.vertex_flow(gcn0, X, nlo=True)
    np.testing.assert_allclose(f1.G1, f2.G1, rtol=1e-10, atol=1e-13)
    mlp0 = de.GCN(A4, 3, [16] * 3, 1, "tanh", C_W=1.5, C_U=0.0, **kw)
    f3, f4 = de.vertex_flow(mlp0, X, nlo=True), de.vertex_flow(mlp0.mlp, X, nlo=True)
    np.testing.assert_allclose(f3.V, f4.V, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(f3.G1, f4.G1, rtol=1e-10, atol=1e-13)


def test_residual_identity_graph_vertex_is_the_residual_mlp_vertex():
    """Â = I, γ ≠ 0: the GCN vertex (with the three-point feed) is the residual MLP's (B.24) — ReLU, not odd."""
    X = X6[:4]
    net = de.GCN(np.eye(4), 3, [32] * 3, 1, "relu", C_b=0.1, C_W=1.5, gamma=0.6)
    res = de.ResidualMLP(3, [32] * 3, 1, "relu", C_b=0.1, C_W=1.5, gamma=[0.0, 0.6, 0.6, 0.0])
    np.testing.assert_allclose(de.kernel(net, X), de.kernel(res, X), rtol=1e-12)
    np.testing.assert_allclose(de.four_point_vertex(net, X), de.four_point_vertex(res, X), rtol=1e-9, atol=1e-12)
