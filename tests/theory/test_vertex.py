"""Multi-input four-point vertex (4.119) and NLO metric (4.115): independent routes, book constants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deepeft as de
from deepeft.gaussian.engine import Factor, expect, two_point_maps
from deepeft.theory.nlo_metric import nlo_metric
from deepeft.theory.single_input import single_input, single_input_recursion
from deepeft.theory.vertex import (
    connected_four_point,
    excess_kurtosis,
    four_point_vertex,
    four_sigma,
    jacobian_contract,
    pair_derivatives,
    product_expect,
    vertex_flow,
)

RNG = np.random.default_rng(12345)
X3 = np.array([[1.0, 0.2, -0.4, 0.9], [0.3, -1.1, 0.5, 0.2], [-0.7, 0.4, 1.2, -0.3]])


def _random_sym_vertex(N, rng):
    """A random tensor with V's symmetries (12)↔(21), (34)↔(43), (12)↔(34)."""
    A = rng.normal(size=(N,) * 4)
    A = A + A.transpose(1, 0, 2, 3)
    A = A + A.transpose(0, 1, 3, 2)
    return A + A.transpose(2, 3, 0, 1)


def _layer_kernel(act, C_W, C_b, layer=3):
    net = de.MLP(4, [50] * 4, 1, act, C_b=C_b, C_W=C_W)
    return vertex_flow(net, X3).K[layer - 1]


# ---------------------------------------------------------------------------------------------
# Single input: the multi-input path at N = 1 equals the single-input recursions (5.109)/(5.110)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "act, C_b, C_W",
    [("relu", 0.0, 2.0), ("tanh", 0.0, 1.0), ("gelu", 0.17292239, 1.98305826), ("erf", 0.1, 1.3)],
)
def test_single_input_equals_recursion_5_109_5_110(act, C_b, C_W):
    net = de.MLP(3, [40, 80, 20, 60, 30], 1, act, C_b=C_b, C_W=C_W)  # unequal widths
    x = np.array([[0.8, -1.1, 0.5]])
    fl = vertex_flow(net, x, nlo=True)
    si = single_input(net, x[0])
    assert fl.V.shape == (net.L, 1, 1, 1, 1) and fl.G1.shape == (net.L, 1, 1)
    np.testing.assert_allclose(fl.K[:, 0, 0], si.K, rtol=1e-12)
    np.testing.assert_allclose(fl.V[:, 0, 0, 0, 0], si.V, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fl.G1[:, 0, 0], si.G1, rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# Book constants (digest §4–§5)
# ---------------------------------------------------------------------------------------------
def test_relu_vertex_5_l_minus_1_multi_input_diagonal():
    net = de.MLP(4, [64] * 6, 1, "relu", C_b=0.0, C_W=2.0)
    fl = vertex_flow(net, X3, nlo=True)
    ell = np.arange(1, net.L + 1)
    for a in range(3):
        Kd = fl.K[:, a, a]
        np.testing.assert_allclose(Kd, Kd[0], rtol=1e-12)  # K* preserved at criticality
        np.testing.assert_allclose(fl.V[:, a, a, a, a], 5 * (ell - 1) * Kd**2, rtol=1e-10)  # (5.120)
        np.testing.assert_allclose(fl.G1[:, a, a], 0.0, atol=1e-10)  # G^{1} ≡ 0 for one ReLU input


def test_linear_vertex_closed_form():
    """σ(z) = z, C_W = 1, C_b = 0: K^{(ℓ)} = K, V^{(ℓ)}_{(12)(34)} = (ℓ−1)(K13K24 + K14K23) [derived], diagonal 2(ℓ−1)K²."""
    net = de.MLP(4, [30] * 5, 1, "linear", C_b=0.0, C_W=1.0)
    fl = vertex_flow(net, X3, nlo=True)
    K = fl.K[0]
    pair = np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K)
    for l in range(net.L):
        np.testing.assert_allclose(fl.V[l], l * pair, rtol=1e-8, atol=1e-10 * np.abs(pair).max())
        np.testing.assert_allclose(fl.G1[l], 0.0, atol=1e-9)


def test_tanh_book_numbers():
    """tanh at criticality, K^{(1)} = 1: V/K² = 0.627, 1.213, 2.408, 5.52 (ℓ = 2, 3, 5, 10);
    G^{1} = −0.031, −0.068, −0.107, −0.143 (ℓ = 3, 5, 10, 30) (digest §5)."""
    net = de.MLP(1, [100] * 29, 1, "tanh", C_b=0.0, C_W=1.0)
    fl = vertex_flow(net, np.ones((1, 1)), nlo=True)
    V, K, G1 = fl.V[:, 0, 0, 0, 0], fl.K[:, 0, 0], fl.G1[:, 0, 0]
    for ell, target in zip((2, 3, 5, 10), (0.627, 1.213, 2.408, 5.52), strict=True):
        assert V[ell - 1] / K[ell - 1] ** 2 == pytest.approx(target, abs=6e-3)
    for ell, target in zip((3, 5, 10, 30), (-0.031, -0.068, -0.107, -0.143), strict=True):
        assert G1[ell - 1] == pytest.approx(target, abs=6e-4)


# ---------------------------------------------------------------------------------------------
# The Jacobian route equals the book's raised-index form (4.119) / literal (4.115)
# ---------------------------------------------------------------------------------------------
def _zz_moments_engine(act, K):
    """A[a,b,c,d] = ⟨σ_a σ_b (z_c z_d − K_cd)⟩_K for all index tuples, by the engine with marginalization."""
    N = K.shape[0]
    groups: dict = {}
    for a, b, c, d in itertools.product(range(N), repeat=4):
        if a > b or c > d:
            continue
        var = sorted({a, b, c, d})
        facs = tuple(Factor((0,) * ((a == v) + (b == v)), (c == v) + (d == v)) for v in var)
        groups.setdefault(facs, []).append(((a, b, c, d), var))
    A = np.zeros((N,) * 4)
    for facs, items in groups.items():
        Ks = np.stack([K[np.ix_(var, var)] for _, var in items])
        vals = expect(act, facs, Ks, rtol=1e-11)
        for ((a, b, c, d), _), val in zip(items, vals, strict=True):
            A[a, b, c, d] = A[b, a, c, d] = A[a, b, d, c] = A[b, a, d, c] = val
    P = two_point_maps(act, K, ((0, 0),))[0]
    return A - P[:, :, None, None] * K[None, None, :, :]


@pytest.mark.parametrize("act, C_b, C_W", [("tanh", 0.1, 1.2), ("relu", 0.2, 1.8)])
def test_jacobian_route_equals_raised_index_form(act, C_b, C_W):
    K = _layer_kernel(act, C_W, C_b)
    V = _random_sym_vertex(3, np.random.default_rng(7))
    A = _zz_moments_engine(act, K)
    Ki = np.linalg.inv(K)
    Vup = np.einsum("ai,bj,ck,dl,ijkl->abcd", Ki, Ki, Ki, Ki, V)  # (4.120)
    raised = 0.25 * np.einsum("ijkl,abij,cdkl->abcd", Vup, A, A)  # (4.119) second term / (C_W² n_ℓ/n_{ℓ−1})
    pd = pair_derivatives(act, K)
    np.testing.assert_allclose(jacobian_contract(pd.grad, V), raised, rtol=1e-7, atol=1e-9 * np.abs(raised).max())


@pytest.mark.parametrize("act, C_b, C_W", [("tanh", 0.1, 1.2), ("relu", 0.2, 1.8)])
def test_nlo_step_equals_literal_4_115(act, C_b, C_W):
    """The simplified J·G¹ + ½ D²:V equals the book's three-term bracket of (4.115), integrated literally."""
    from deepeft.theory.nlo_metric import nlo_step

    K = _layer_kernel(act, C_W, C_b)
    N = 3
    rng = np.random.default_rng(3)
    V = _random_sym_vertex(N, rng)
    G1 = rng.normal(size=(N, N))
    G1 = G1 + G1.T
    Ki = np.linalg.inv(K)
    # ⟨σ_a σ_b z_i z_j z_k z_l⟩ by the batched product rule (≤ 6 indices over 3 samples: ≤ 3 variables)
    S6 = np.zeros((N, N) + (N,) * 4)
    items = []
    for a, b in itertools.combinations_with_replacement(range(N), 2):
        for idx in itertools.combinations_with_replacement(range(N), 4):
            items.append((a, b, idx))
    terms = tuple(tuple(((a == v) + (b == v), sum(i == v for i in idx)) for v in range(N)) for a, b, idx in items)
    vals = product_expect(act, terms, K[None], resolution=1.5)[0]
    for (a, b, idx), val in zip(items, vals, strict=True):
        for p in set(itertools.permutations(idx)):
            S6[(a, b) + p] = S6[(b, a) + p] = val
    S2 = _zz_moments_engine(act, K)  # ⟨σσ(z_i z_j − K_ij)⟩
    P = two_point_maps(act, K, ((0, 0),))[0]
    M2 = S2 + P[:, :, None, None] * K  # ⟨σσ z_i z_j⟩
    # ⟨σσ(z_i z_j − K_ij)(z_k z_l − K_kl)⟩
    C4 = S6 - np.einsum("abij,kl->abijkl", M2, K) - np.einsum("ij,abkl->abijkl", K, M2) + np.einsum("ab,ij,kl->abijkl", P, K, K)
    Vup = np.einsum("ai,bj,ck,dl,ijkl->abcd", Ki, Ki, Ki, Ki, V)
    t1 = 0.5 * np.einsum("ik,jl,kl,abij->ab", Ki, Ki, G1, S2)
    t2 = 0.125 * np.einsum("ijkl,abijkl->ab", Vup, C4)
    W = np.einsum("ikjl,kl->ij", Vup, K)  # V^{(β1β3)(β2β4)} K_β3β4
    t3 = 0.25 * np.einsum("ij,abij->ab", W, -2 * M2 + P[:, :, None, None] * K)
    literal = C_W * (t1 + t2 + t3)
    ours = nlo_step(pair_derivatives(act, K), G1, V, C_W, 1.0)
    np.testing.assert_allclose(ours, literal, rtol=2e-7, atol=1e-8 * np.abs(literal).max())


# ---------------------------------------------------------------------------------------------
# Pair derivatives: Price's theorem (smooth σ) and finite differences (kinked σ)
# ---------------------------------------------------------------------------------------------
def test_pair_derivatives_match_price_for_smooth_sigma():
    K = _layer_kernel("tanh", 1.2, 0.1, layer=2)
    pd = pair_derivatives("tanh", K)
    pairs = ((0, 0), (1, 1), (2, 0), (2, 2), (3, 1), (4, 0))
    m = dict(zip(pairs, two_point_maps("tanh", K, pairs), strict=True))
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(pd.f, m[(0, 0)], rtol=1e-11)
    np.testing.assert_allclose(pd.grad[2][off], m[(1, 1)][off], rtol=1e-9)  # ∂/∂K_ab = ⟨σ′σ′⟩
    np.testing.assert_allclose(pd.grad[0][off], 0.5 * m[(2, 0)][off], rtol=1e-8, atol=1e-12)  # ½⟨σ″σ⟩
    np.testing.assert_allclose(pd.hess[2, 2][off], m[(2, 2)][off], rtol=1e-7)  # ⟨σ″σ″⟩
    np.testing.assert_allclose(pd.hess[0, 2][off], 0.5 * m[(3, 1)][off], rtol=1e-7, atol=1e-11)  # ½⟨σ‴σ′⟩
    np.testing.assert_allclose(pd.hess[0, 0][off], 0.25 * m[(4, 0)][off], rtol=1e-6, atol=1e-10)  # ¼⟨σ⁗σ⟩
    np.testing.assert_allclose(pd.hess[0, 1][off], 0.25 * m[(2, 2)][off], rtol=1e-7)  # ¼⟨σ″_aσ″_b⟩


def test_pair_derivatives_relu_finite_differences():
    """Kinked σ: no σ″ anywhere; derivatives agree with central differences of the arc-cosine kernel."""
    K = _layer_kernel("relu", 1.8, 0.2, layer=2)
    pd = pair_derivatives("relu", K)
    h = 1e-4

    def f(Kaa, Kbb, Kab):
        return expect("relu", (Factor((0,)), Factor((0,))), np.array([[Kaa, Kab], [Kab, Kbb]]))

    for a, b in [(0, 1), (1, 2), (2, 0)]:
        p0 = np.array([K[a, a], K[b, b], K[a, b]])
        for i in range(3):
            e = np.eye(3)[i] * h
            fd = (f(*(p0 + e)) - f(*(p0 - e))) / (2 * h)
            assert pd.grad[i, a, b] == pytest.approx(fd, rel=1e-6, abs=1e-9)
            for j in range(3):
                ej = np.eye(3)[j] * h
                fd2 = (f(*(p0 + e + ej)) - f(*(p0 + e - ej)) - f(*(p0 - e + ej)) + f(*(p0 - e - ej))) / (4 * h * h)
                assert pd.hess[i, j, a, b] == pytest.approx(fd2, rel=2e-4, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# The product rule against the engine, and limits of the 4-variable integrals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_product_expect_matches_engine(act):
    rng = np.random.default_rng(5)
    A = rng.normal(size=(3, 3, 5))
    K3 = A @ A.transpose(0, 2, 1) / 5
    ours = product_expect(act, (((2, 1), (1, 0), (1, 2)),), K3)[:, 0]
    ref = expect(act, (Factor((0, 0), 1), Factor((0,)), Factor((0,), 2)), K3, rtol=1e-11)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_four_sigma_limits(act):
    """Block-diagonal K factorises ⟨σσσσ⟩; nearly coincident samples approach the merged pattern."""
    B = np.array([[1.0, 0.4], [0.4, 0.8]])
    C = np.array([[0.6, -0.2], [-0.2, 1.1]])
    K = np.zeros((4, 4))
    K[:2, :2], K[2:, 2:] = B, C
    S = four_sigma(act, K)
    P = two_point_maps(act, K, ((0, 0),))[0]
    assert S[0, 1, 2, 3] == pytest.approx(P[0, 1] * P[2, 3], rel=1e-7, abs=1e-10)
    assert S[0, 2, 1, 3] == pytest.approx(S[0, 1, 2, 3], rel=1e-14)  # fully symmetric
    eps = 1e-7
    Kc = np.array([[1.0, 1.0 - eps, 0.3, 0.2], [1.0 - eps, 1.0, 0.3, 0.2], [0.3, 0.3, 0.9, -0.1], [0.2, 0.2, -0.1, 0.7]])
    Sc = four_sigma(act, Kc)
    assert Sc[0, 1, 2, 3] == pytest.approx(Sc[0, 0, 2, 3], rel=1e-5, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# Structure, observables, validation
# ---------------------------------------------------------------------------------------------
def test_symmetries_shapes_and_duplicate_inputs():
    net = de.MLP(4, [32, 32, 32], 1, "tanh", C_b=0.05, C_W=1.5)
    X = np.vstack([X3, X3[1:2]])  # a duplicated input
    V = four_point_vertex(net, X)
    assert V.shape == (net.L, 4, 4, 4, 4)
    assert np.all(V[0] == 0)
    np.testing.assert_allclose(V, V.transpose(0, 2, 1, 3, 4), atol=1e-15)
    np.testing.assert_allclose(V, V.transpose(0, 1, 2, 4, 3), atol=1e-15)
    np.testing.assert_allclose(V, V.transpose(0, 3, 4, 1, 2), atol=1e-15)
    np.testing.assert_allclose(V[:, 3], V[:, 1], atol=1e-15)  # duplicate row copies
    np.testing.assert_allclose(V[:, :3, :3, :3, :3], four_point_vertex(net, X3), rtol=1e-12, atol=1e-15)
    G1 = nlo_metric(net, X)
    assert G1.shape == (net.L, 4, 4) and np.all(G1[:2] == 0)
    np.testing.assert_allclose(G1, G1.transpose(0, 2, 1), atol=1e-15)


def test_connected_four_point_and_kurtosis():
    net = de.MLP(4, [32, 64], 1, "tanh", C_W=1.0)
    fl = vertex_flow(net, X3)
    n_prev = fl.n_prev
    C = connected_four_point(fl.V, n_prev)
    assert C.shape == (net.L, 3, 3, 3, 3, 3)
    V = fl.V[2]
    a, b, c, d = 0, 1, 2, 1
    assert C[2, 0, a, b, c, d] == pytest.approx(V[a, b, c, d] / 64)  # layer ℓ = 3: n_{ℓ−1} = n_2 = 64
    assert C[2, 1, a, b, c, d] == pytest.approx(V[a, c, b, d] / 64)
    assert C[2, 2, a, b, c, d] == pytest.approx(V[a, d, b, c] / 64)
    # all neurons equal: E[z⁴]_conn = 3V/n; excess kurtosis 3V/(nK²)
    kurt = excess_kurtosis(fl.V, fl.K, n_prev)
    i = np.arange(3)
    np.testing.assert_allclose(kurt[2], C[2].sum(0)[i, i, i, i] / fl.K[2, i, i] ** 2, rtol=1e-12)


def test_invalid_inputs():
    net = de.MLP(4, [16, 16], 1, "relu", C_b=0.0, C_W=2.0)
    with pytest.raises(de.DeepEFTInputError, match="zero variance"):
        four_point_vertex(net, np.vstack([X3, np.zeros(4)]))
    with pytest.raises(de.DeepEFTInputError, match="parallel"):
        four_point_vertex(net, np.vstack([X3[:1], 2 * X3[:1]]))
    with pytest.raises(de.DeepEFTInputError, match="MLP"):
        four_point_vertex("relu", X3)
    with pytest.raises(de.DeepEFTInputError):
        four_point_vertex(net, X3[:, :3])
    with pytest.raises(de.DeepEFTInputError, match="resolution"):
        four_point_vertex(net, X3, resolution=0.0)
    with pytest.raises(de.DeepEFTInputError, match="n_prev"):
        connected_four_point(np.zeros((2, 2, 2, 2)), 0)


def test_single_input_recursion_helper_consistency():
    """single_input_recursion (another module) and vertex_flow agree for a width-1 input set at depth 30."""
    si = single_input_recursion("sin", 0.7, 30, C_b=0.0, C_W=1.0)
    net = de.MLP(1, [64] * 29, 1, "sin", C_b=0.0, C_W=1.0)
    fl = vertex_flow(net, np.array([[np.sqrt(0.7)]]), nlo=True)
    np.testing.assert_allclose(fl.V[:, 0, 0, 0, 0], si.V, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fl.G1[:, 0, 0], si.G1, rtol=1e-9, atol=1e-13)


def test_unique_rows_keeps_first_occurrence_order():
    from deepeft.theory.vertex import unique_rows

    X = np.array([[2.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    Xu, inv = unique_rows(X)
    np.testing.assert_array_equal(Xu, [[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    np.testing.assert_array_equal(Xu[inv], X)
