"""NTK fluctuation tensors A, B, D, F (8.77), (8.79), (8.89), (8.97): closed forms, independent routes,
symmetries, bad input. (Ensemble agreement: tests/simulate/test_ntk_vs_ensemble.py.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deepeft as de
from deepeft.gaussian.engine import Factor, expect, two_point_maps
from deepeft.theory.ntk_fluctuations import (
    ntk_four_point,
    ntk_step,
    pair_z_coefficients,
)
from deepeft.theory.vertex import jacobian_contract, pair_derivatives, vertex_flow

X3 = np.array([[1.0, 0.2, -0.4, 0.9], [0.3, -1.1, 0.5, 0.2], [-0.7, 0.4, 1.2, -0.3]])


def _layer_kernel(act, C_W, C_b, layer=3):
    net = de.MLP(4, [50] * 4, 1, act, C_b=C_b, C_W=C_W)
    return vertex_flow(net, X3).K[layer - 1]


# ---------------------------------------------------------------------------------------------
# Scale-invariant closed forms (9.44)–(9.51) with the exact A: the multi-input recursions, diagonal
# entries of every input, are exact polynomials in ℓ (K = K* at every layer).
# ---------------------------------------------------------------------------------------------
def _scale_invariant_closed(ell, a_plus, a_minus, K, lb, lw):
    A2 = (a_plus**2 + a_minus**2) / 2
    A4 = (a_plus**4 + a_minus**4) / 2
    r = A4 / A2**2
    c = lb + lw * A2 * K
    D = ell * (ell - 1) / 2 * (lb * (r - 1) * K + lw * A2 * (4 * r - 2) * K**2)
    F = ell * (ell - 1) / 2 * r * K * c
    B = ell * (ell - 1) * (2 * ell - 1) / 6 * r * c**2
    A = (
        lb**2 * (r - 1) * ell * (ell - 1) * (2 * ell - 1) / 6
        + lb * lw * A2 * K * (r - 1) * ell**2 * (ell - 1)
        + lw**2 * K**2 * ((5 * A4 / 3 - A2**2) * ell**3 + (A2**2 - 2 * A4) * ell**2 + (A4 / 3) * ell)
    )
    return c * ell, A, B, D, F


@pytest.mark.parametrize("a_plus, a_minus, lb, lw", [(1.0, 0.0, 0.5, 1.5), (1.0, -0.3, 1.0, 0.0), (0.8, 0.25, 0.0, 2.0)])
def test_scale_invariant_closed_forms_9_44_to_9_51(a_plus, a_minus, lb, lw):
    act = de.activation("scale_invariant", a_plus=a_plus, a_minus=a_minus)
    A2 = (a_plus**2 + a_minus**2) / 2
    net = de.MLP(3, [30] * 5, 1, act, C_b=0.0, C_W=1 / A2, lambda_b=lb, lambda_W=lw)
    X = np.array([[1.0, 0.2, -0.4], [0.3, -1.1, 0.5]])
    fl = de.ntk_fluctuations(net, X)
    ell = np.arange(1, net.L + 1)
    for a in range(2):
        K = fl.K[0, a, a]
        Th, A, B, D, F = _scale_invariant_closed(ell, a_plus, a_minus, K, lb, lw)
        np.testing.assert_allclose(fl.Theta[:, a, a], Th, rtol=1e-12)
        scale = max(np.abs(A).max(), np.abs(B).max(), 1e-300)
        np.testing.assert_allclose(fl.A[:, a, a, a, a], A, rtol=1e-8, atol=1e-10 * scale)
        np.testing.assert_allclose(fl.B[:, a, a, a, a], B, rtol=1e-8, atol=1e-10 * scale)
        np.testing.assert_allclose(fl.D[:, a, a, a, a], D, rtol=1e-8, atol=1e-10 * scale)
        np.testing.assert_allclose(fl.F[:, a, a, a, a], F, rtol=1e-8, atol=1e-10 * scale)


# ---------------------------------------------------------------------------------------------
# Second layer (8.32), (8.33), (8.38), (8.39), integrated literally by the engine, index by index
# ---------------------------------------------------------------------------------------------
def _expect4(act, derivs, idx, K):
    """⟨Π_p σ^{(derivs_p)}(z_{idx_p})⟩ by engine.expect, merging coincident indices into one variable."""
    var = sorted(set(idx))
    fs = tuple(Factor(tuple(d for d, i in zip(derivs, idx, strict=True) if i == v)) for v in var)
    return float(expect(act, fs, K[np.ix_(var, var)], rtol=1e-10))


@pytest.mark.parametrize("act, C_b, C_W", [("tanh", 0.1, 1.2), ("relu", 0.2, 1.8)])
def test_second_layer_closed_forms(act, C_b, C_W):
    lb, lw = 0.7, 1.3
    net = de.MLP(4, [20], 1, act, C_b=C_b, C_W=C_W, lambda_b=lb, lambda_W=lw)
    fl = de.ntk_fluctuations(net, X3)
    K1, H1 = fl.K[0], fl.Theta[0]
    S, P = two_point_maps(act, K1, ((0, 0), (1, 1)))
    rng = np.random.default_rng(5)
    tuples = [tuple(t) for t in rng.integers(0, 3, size=(5, 4))] + [(0, 0, 0, 0), (0, 1, 2, 0), (2, 2, 1, 1)]
    for a1, a2, a3, a4 in tuples:
        s4 = _expect4(act, (0, 0, 0, 0), (a1, a2, a3, a4), K1)
        s2p2 = _expect4(act, (0, 0, 1, 1), (a1, a2, a3, a4), K1)  # ⟨σ1σ2σ′3σ′4⟩
        p2s2 = _expect4(act, (1, 1, 0, 0), (a1, a2, a3, a4), K1)  # ⟨σ′1σ′2σ3σ4⟩
        p4 = _expect4(act, (1, 1, 1, 1), (a1, a2, a3, a4), K1)
        om12 = lw * S[a1, a2] + C_W * H1[a1, a2] * P[a1, a2]
        om34 = lw * S[a3, a4] + C_W * H1[a3, a4] * P[a3, a4]
        omom = lw**2 * s4 + lw * C_W * (H1[a3, a4] * s2p2 + H1[a1, a2] * p2s2) + C_W**2 * H1[a1, a2] * H1[a3, a4] * p4
        A2 = omom - om12 * om34  # (8.32)
        D2 = C_W * (lw * s4 + C_W * H1[a3, a4] * s2p2 - S[a1, a2] * om34)  # (8.38)
        # B_{α1α3α2α4} (8.33), F_{α1α3α2α4} (8.39) stored at [α1, α3, α2, α4]
        B2 = C_W**2 * H1[a1, a2] * H1[a3, a4] * p4
        F2 = C_W**2 * H1[a3, a4] * s2p2
        tol = {"rtol": 2e-7, "atol": 1e-9}
        np.testing.assert_allclose(fl.A[1, a1, a2, a3, a4], A2, **tol)
        np.testing.assert_allclose(fl.D[1, a1, a2, a3, a4], D2, **tol)
        np.testing.assert_allclose(fl.B[1, a1, a3, a2, a4], B2, **tol)
        np.testing.assert_allclose(fl.F[1, a1, a3, a2, a4], F2, **tol)
    assert np.all(fl.A[0] == 0) and np.all(fl.B[0] == 0) and np.all(fl.D[0] == 0) and np.all(fl.F[0] == 0)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_four_point_tensors_match_engine(act):
    K = _layer_kernel(act, 1.5, 0.1)
    S4, M4, Q4 = ntk_four_point(act, K)
    for t in itertools.product(range(3), repeat=4):
        if t[0] > t[1]:
            continue
        np.testing.assert_allclose(M4[t], _expect4(act, (0, 0, 1, 1), t, K), rtol=1e-7, atol=1e-10)
    for t in [(0, 1, 2, 2), (1, 1, 1, 1), (0, 2, 0, 2)]:
        np.testing.assert_allclose(S4[t], _expect4(act, (0,) * 4, t, K), rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(Q4[t], _expect4(act, (1,) * 4, t, K), rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# (8.56): the Jacobian / regression routes equal the raised-index forms of the book
# ---------------------------------------------------------------------------------------------
def _zz_moments(act, K, derivs):
    """T[a,b,c,d] = ⟨σ^{(d)}_a σ^{(d)}_b (z_c z_d − K_cd)⟩ by engine.expect."""
    N = K.shape[0]
    T = np.zeros((N,) * 4)
    for a, b, c, d in itertools.product(range(N), repeat=4):
        var = sorted({a, b, c, d})
        fs = tuple(Factor((derivs,) * ((a == v) + (b == v)), (c == v) + (d == v)) for v in var)
        T[a, b, c, d] = expect(act, fs, K[np.ix_(var, var)], rtol=1e-10)
    P = two_point_maps(act, K, ((derivs, derivs),))[0]
    return T - P[:, :, None, None] * K[None, None]


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_mixed_jacobian_contract_equals_raised_form(act):
    K = _layer_kernel(act, 1.4, 0.1)
    rng = np.random.default_rng(11)
    V = rng.normal(size=(3,) * 4)
    V = V + V.transpose(1, 0, 2, 3) + V.transpose(0, 1, 3, 2) + V.transpose(1, 0, 3, 2)  # symmetric in pairs only
    Ki = np.linalg.inv(K)
    Vup = np.einsum("ai,bj,ck,dl,ijkl->abcd", Ki, Ki, Ki, Ki, V)
    T0, T1 = _zz_moments(act, K, 0), _zz_moments(act, K, 1)
    raised = 0.25 * np.einsum("ijkl,abij,cdkl->abcd", Vup, T0, T1)
    g0 = pair_derivatives(act, K, second=False).grad
    g1 = pair_derivatives(act, K, second=False, deriv=1).grad
    np.testing.assert_allclose(jacobian_contract(g0, V, g1), raised, rtol=1e-6, atol=1e-8 * np.abs(raised).max())


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_pair_z_coefficients_equal_regression_literal(act):
    """Σ_β ⟨σ_a σ′_b z_β⟩ K^{βγ} over all N = 3 samples (3-variable integrals) vs the sparse 2×2 route."""
    K = _layer_kernel(act, 1.6, 0.05)
    m1, m2 = pair_z_coefficients(act, K)
    Ki = np.linalg.inv(K)
    for a, b in itertools.product(range(3), repeat=2):
        mom = np.zeros(3)
        for beta in range(3):
            var = sorted({a, b, beta})
            fs = tuple(Factor(tuple([0] * (a == v) + [1] * (b == v)), int(beta == v)) for v in var)
            mom[beta] = expect(act, fs, K[np.ix_(var, var)], rtol=1e-10)
        lit = mom @ Ki
        sparse = np.zeros(3)
        sparse[a] += m1[a, b]
        sparse[b] += m2[a, b]
        np.testing.assert_allclose(sparse, lit, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Symmetries (8.32) fn 5, (8.33) discussion, fn 6; F only F_{α1α3α2α4} = F_{α2α4α1α3} (digest)
# ---------------------------------------------------------------------------------------------
def test_symmetries_and_duplicate_inputs():
    net = de.MLP(4, [25, 30, 35, 20], 2, "tanh", C_b=0.1, C_W=1.3, lambda_b=0.4, lambda_W=[1.0, 2.0, 0.5, 1.5, 1.0])
    X = np.vstack([X3, X3[1:2]])  # a duplicate input
    fl = de.ntk_fluctuations(net, X)
    A, B, D, F = fl.A, fl.B, fl.D, fl.F
    assert A.shape == (5, 4, 4, 4, 4)
    for T, perms in [
        (A, [(0, 2, 1, 3, 4), (0, 1, 2, 4, 3), (0, 3, 4, 1, 2)]),
        (B, [(0, 3, 4, 1, 2), (0, 2, 1, 4, 3)]),  # (α1α2)↔(α3α4), (α1α3)↔(α2α4) in stored order [α1,α3,α2,α4]
        (D, [(0, 2, 1, 3, 4), (0, 1, 2, 4, 3)]),
        (F, [(0, 3, 4, 1, 2)]),
    ]:
        for p in perms:
            np.testing.assert_allclose(T, T.transpose(p), rtol=1e-9, atol=1e-12 * np.abs(T).max())
    # symmetries that do NOT hold deeper than layer 2 (the book): B under α1↔α2 alone, D under (12)↔(34),
    # F under α1↔α2 alone
    l = 3
    assert np.abs(B[l] - B[l].transpose(2, 1, 0, 3)).max() > 1e-3 * np.abs(B[l]).max()
    assert np.abs(D[l] - D[l].transpose(2, 3, 0, 1)).max() > 1e-3 * np.abs(D[l]).max()
    assert np.abs(F[l] - F[l].transpose(2, 1, 0, 3)).max() > 1e-3 * np.abs(F[l]).max()
    # the duplicate input 3 equals input 1 in every tensor
    np.testing.assert_array_equal(A[:, 3], A[:, 1])
    np.testing.assert_array_equal(F[:, :, :, 3], F[:, :, :, 1])
    # the mean NTK is the frozen NTK (9.5)
    np.testing.assert_allclose(fl.Theta, de.frozen_ntk(net, X), rtol=1e-12)


def test_projections_single_input_book_combinations():
    net = de.MLP(3, [30] * 3, 1, "relu", C_W=2.0)
    fl = de.ntk_fluctuations(net, np.array([[1.0, -0.5, 0.3]]))
    pr = fl.projections(0)
    n = fl.n_prev
    np.testing.assert_allclose(pr["var_H11"], (fl.A[:, 0, 0, 0, 0] + 2 * fl.B[:, 0, 0, 0, 0]) / n)
    np.testing.assert_allclose(pr["z2_dH11"], (fl.D[:, 0, 0, 0, 0] + 2 * fl.F[:, 0, 0, 0, 0]) / n)
    np.testing.assert_allclose(pr["mean_H12_sq"], fl.B[:, 0, 0, 0, 0] / n)


def test_ntk_step_without_history_is_second_layer_form():
    """first=True drops every inherited term: equal to the full step when A = B = D = F = V = 0."""
    K = _layer_kernel("tanh", 1.2, 0.1)
    H = np.abs(K) + 0.3
    Z = np.zeros((3,) * 4)
    a = ntk_step("tanh", K, H, Z, Z, Z, Z, Z, C_W=1.2, lambda_W=0.8, ratio=1.3, first=True)
    b = ntk_step("tanh", K, H, Z, Z, Z, Z, Z, C_W=1.2, lambda_W=0.8, ratio=1.3, first=False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-15)


def test_invalid_inputs():
    with pytest.raises(de.DeepEFTInputError, match="jump"):
        de.ntk_fluctuations(de.MLP(3, [10], 1, "perceptron"), np.ones((1, 3)))
    with pytest.raises(de.DeepEFTInputError, match="MLP"):
        de.ntk_fluctuations("relu", np.ones((1, 3)))
    with pytest.raises(de.DeepEFTInputError):
        de.ntk_fluctuations(de.MLP(3, [10], 1, "relu"), np.ones((2, 4)))
    with pytest.raises(de.DeepEFTInputError):
        de.ntk_fluctuations(de.MLP(3, [10], 1, "relu"), np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(de.DeepEFTInputError, match="parallel"):
        de.ntk_fluctuations(de.MLP(3, [10, 10], 1, "relu"), np.array([[1.0, 0.5, 0.0], [2.0, 1.0, 0.0]]))
    with pytest.raises(de.DeepEFTInputError, match="resolution"):
        de.ntk_fluctuations(de.MLP(3, [10], 1, "relu"), np.ones((1, 3)), resolution=0.0)


def test_pair_z_coefficients_singular_block_is_a_clear_error():
    """Two coincident inputs (singular 2×2 block) used to reach np.linalg.inv (LinAlgError or garbage)."""
    K = np.array([[1.0, 1.0, 0.3], [1.0, 1.0, 0.3], [0.3, 0.3, 2.0]])
    with pytest.raises(de.DeepEFTInputError, match="inputs 0 and 1 have a singular 2×2 kernel block"):
        pair_z_coefficients("tanh", K)
    with pytest.raises(de.DeepEFTInputError, match="zero variance"):
        pair_z_coefficients("tanh", np.diag([1.0, 0.0]))
