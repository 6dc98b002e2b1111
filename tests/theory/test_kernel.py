"""Infinite-width kernel K^{(ℓ)} (4.118) and frozen NTK Θ^{(ℓ)} (9.5)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepeft as de
from deepeft import DeepEFTInputError
from deepeft.theory.conventions import from_mean_field, from_neural_tangents, to_neural_tangents
from deepeft.theory.kernel import frozen_ntk, kernel, kernel_and_ntk


# -- independent reference implementations (written from the papers, not the engine) ----------
def _arccos_reference(X, L, C_b, C_W, lam_b, lam_W, slope=0.0):
    """Leaky-ReLU NNGP/NTK via the arc-cosine recursion (Cho & Saul; Jacot et al.), per layer."""
    n0 = X.shape[1]
    G = X @ X.T / n0
    K = C_b + C_W * G
    T = lam_b + lam_W * G
    Ks, Ts = [K], [T]
    for _ in range(1, L):
        d = np.sqrt(np.diag(K))
        c = np.clip(K / np.outer(d, d), -1, 1)
        np.fill_diagonal(c, 1.0)
        th = np.arccos(c)
        J1 = (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)  # E[relu relu]/(d d)
        J0 = (np.pi - th) / (2 * np.pi)
        # leaky: σ = relu(z) − a relu(−z): ⟨σσ⟩ = (1 + a²) J1(θ) dd − 2a J1(π − θ) dd... written out:
        J1m = (np.sin(np.pi - th) + th * np.cos(np.pi - th)) / (2 * np.pi)
        ss = np.outer(d, d) * ((1 + slope**2) * J1 - 2 * slope * J1m)
        J0m = th / (2 * np.pi)
        dd = (1 + slope**2) * J0 + 2 * slope * J0m
        K, T = C_b + C_W * ss, lam_b + lam_W * ss + C_W * dd * T
        Ks.append(K)
        Ts.append(T)
    return np.array(Ks), np.array(Ts)


def _erf_reference(X, L, C_b, C_W, lam_b, lam_W):
    """Erf NNGP/NTK (Williams 1997 arcsine kernel and its derivative)."""
    G = X @ X.T / X.shape[1]
    K, T = C_b + C_W * G, lam_b + lam_W * G
    Ks, Ts = [K], [T]
    for _ in range(1, L):
        d = 1 + 2 * np.diag(K)
        ss = 2 / np.pi * np.arcsin(2 * K / np.sqrt(np.outer(d, d)))
        dd = 4 / np.pi / np.sqrt(np.outer(d, d) - 4 * K * K)
        K, T = C_b + C_W * ss, lam_b + lam_W * ss + C_W * dd * T
        Ks.append(K)
        Ts.append(T)
    return np.array(Ks), np.array(Ts)


def _data(seed=0, N=12, n0=5, degenerate=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n0))
    if degenerate:
        X[1] = 3 * X[0]
        X[2] = -X[0]
    return X


# ⟨σ'σ'⟩ of a kinked σ is not Lipschitz in ρ at ρ = ±1 (∝ arccos ρ), so for exactly parallel or
# antipodal inputs a rounding of K_αβ by 1e-16 moves Θ by ~1e-8: compare those entries at 1e-7.
def _ill_mask(N):
    m = np.zeros((N, N), dtype=bool)
    m[np.ix_([0, 1, 2], [0, 1, 2])] = True
    np.fill_diagonal(m, False)
    return m


_ILL = _ill_mask(12)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_relu_family_matches_arccos_recursion(slope):
    X = _data()
    net = de.MLP(5, [64] * 5, 1, "leaky_relu", slope=slope, C_b=0.1, C_W=1.9, lambda_b=0.7, lambda_W=1.3)
    K, T = kernel_and_ntk(net, X)
    Kr, Tr = _arccos_reference(X, net.L, 0.1, 1.9, 0.7, 1.3, slope)
    ok = ~_ILL
    np.testing.assert_allclose(K[:, ok], Kr[:, ok], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T[:, ok], Tr[:, ok], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(K[:, _ILL], Kr[:, _ILL], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T[:, _ILL], Tr[:, _ILL], rtol=1e-7)


def test_erf_matches_arcsine_recursion():
    X = _data(1)
    net = de.MLP(5, [64] * 6, 1, "erf", C_b=0.05, C_W=1.5, lambda_b=0.3, lambda_W=2.0)
    K, T = kernel_and_ntk(net, X)
    Kr, Tr = _erf_reference(X, net.L, 0.05, 1.5, 0.3, 2.0)
    np.testing.assert_allclose(K, Kr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T, Tr, rtol=1e-12, atol=1e-14)


def test_generic_path_matches_closed_form():
    """The Mehler series path (a custom erf, no closed form) agrees with the erf closed forms."""
    X = _data(2)
    custom = de.activation(lambda z: jax.scipy.special.erf(z), name="erf_custom")
    kw = dict(C_b=0.05, C_W=1.5, lambda_b=0.3, lambda_W=2.0)
    Kc, Tc = kernel_and_ntk(de.MLP(5, [64] * 6, 1, "erf", **kw), X)
    Kg, Tg = kernel_and_ntk(de.MLP(5, [64] * 6, 1, custom, **kw), X)
    np.testing.assert_allclose(Kg, Kc, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(Tg, Tc, rtol=1e-10, atol=1e-13)


def test_generic_kinked_path_matches_relu():
    """A custom ReLU (kink declared, no closed form): Mehler + quadrature fallback vs arc-cosine."""
    X = _data(3, N=8)
    custom = de.activation(lambda z: jnp.maximum(z, 0.0), name="relu_custom", kinks=(0.0,))
    net_c = de.MLP(5, [64] * 3, 1, "relu", C_W=2.0)
    net_g = de.MLP(5, [64] * 3, 1, custom, C_W=2.0)
    Kc, Tc = kernel_and_ntk(net_c, X)
    Kg, Tg = kernel_and_ntk(net_g, X)
    ill = _ill_mask(8)
    np.testing.assert_allclose(Kg[:, ~ill], Kc[:, ~ill], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(Tg[:, ~ill], Tc[:, ~ill], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(Tg[:, ill], Tc[:, ill], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", ["tanh", "relu", "gelu"])
def test_diagonal_equals_single_input_runs(name):
    X = _data(4, N=6)
    net = de.MLP(5, [32] * 4, 1, name, C_b=0.2, C_W=1.3)
    K, T = kernel_and_ntk(net, X)
    for a in range(X.shape[0]):
        K1, T1 = kernel_and_ntk(net, X[a : a + 1])
        np.testing.assert_allclose(K[:, a, a], K1[:, 0, 0], rtol=1e-13)
        np.testing.assert_allclose(T[:, a, a], T1[:, 0, 0], rtol=1e-13)


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_cross_gram_matches_stacked(name):
    X = _data(5, N=10)
    A, B = X[:4], X[4:]
    net = de.MLP(5, [32] * 4, 1, name, C_b=0.1, C_W=1.2, lambda_W=0.5)
    K, T = kernel_and_ntk(net, X)
    Kx, Tx = kernel_and_ntk(net, A, B)
    assert Kx.shape == (net.L, 4, 6)
    np.testing.assert_allclose(Kx, K[:, :4, 4:], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(Tx, T[:, :4, 4:], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(kernel(net, A, B), Kx, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(frozen_ntk(net, A, B), Tx, rtol=1e-13, atol=1e-15)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    name=st.sampled_from(["tanh", "relu", "erf", "sin", "swish"]),
    C_b=st.sampled_from([0.0, 0.3]),
    C_W=st.sampled_from([0.8, 1.0, 2.0]),
)
def test_kernels_symmetric_psd(seed, name, C_b, C_W):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((7, 3))
    X[3] = X[2]  # coincident inputs: singular K
    K, T = kernel_and_ntk(de.MLP(3, [16] * 3, 1, name, C_b=C_b, C_W=C_W), X)
    for M in (*K, *T):
        np.testing.assert_array_equal(M, M.T)
        assert np.linalg.eigvalsh(M).min() >= -1e-12 * np.abs(M).max()


def test_critical_relu_preserves_norm_and_ntk_grows_linearly():
    """Critical ReLU (C_b, C_W) = (0, 2): K_αα constant; Θ_αα = ℓ λ-weighted (§9.2 linear growth)."""
    X = np.ones((1, 4))
    net = de.MLP(4, [8] * 9, 1, "relu", C_b=0.0, C_W=2.0, lambda_b=0.0, lambda_W=1.0)
    K, T = kernel_and_ntk(net, X)
    np.testing.assert_allclose(K[:, 0, 0], 2.0, rtol=1e-14)
    # λ_b = 0, λ_W = 1: Θ^{(ℓ)} = ℓ K*/C_W·… = ℓ (since ⟨σσ⟩ = K/2 = 1, C_W⟨σ'σ'⟩ = 1, Θ^{(1)} = 1)
    np.testing.assert_allclose(T[:, 0, 0], np.arange(1, net.L + 1), rtol=1e-14)


def test_zero_input_rows():
    X = np.zeros((3, 4))
    X[1] = 1.0
    net = de.MLP(4, [8] * 3, 1, "tanh", C_b=0.0, C_W=1.0)
    K, T = kernel_and_ntk(net, X)
    assert np.all(K[:, 0, :] == 0) and np.all(K[:, 2, :] == 0)
    netr = de.MLP(4, [8] * 3, 1, "relu", C_b=0.5, C_W=2.0)
    Kr, _ = kernel_and_ntk(netr, X)
    assert np.all(np.isfinite(Kr))
    np.testing.assert_allclose(Kr[:, 0, 0], Kr[:, 0, 2])


def test_bad_inputs():
    net = de.MLP(4, [8], 1, "tanh")
    with pytest.raises(DeepEFTInputError, match="input_dim"):
        kernel(net, np.ones((3, 5)))
    with pytest.raises(DeepEFTInputError, match="X2"):
        kernel(net, np.ones((3, 4)), np.ones((2, 3)))
    with pytest.raises(DeepEFTInputError, match="NaN"):
        frozen_ntk(net, np.full((2, 4), np.nan))
    with pytest.raises(DeepEFTInputError, match="MLP"):
        kernel("tanh", np.ones((2, 4)))


def test_conventions():
    net = from_neural_tangents(3, [10, 10], 1, "erf", W_std=1.5, b_std=0.1)
    assert net.C_W == (2.25,) * 3 and net.C_b == pytest.approx((0.01,) * 3)
    assert net.lambda_W == net.C_W and net.lambda_b == net.C_b
    assert to_neural_tangents(net)["W_std"] == pytest.approx([1.5] * 3)
    std = from_neural_tangents(3, [10, 20], 1, "relu", W_std=2**0.5, parameterization="standard")
    assert std.lambda_W == (3.0, 10.0, 20.0) and std.lambda_b == (1.0,) * 3
    with pytest.raises(DeepEFTInputError, match="parameterization"):
        from_neural_tangents(3, [10], 1, "relu", parameterization="mup")
    with pytest.raises(DeepEFTInputError, match="lambda_b = C_b"):
        to_neural_tangents(de.MLP(3, [4], 1, "relu", C_W=2.0, lambda_W=1.0))
    mf = from_mean_field(3, [10], 1, "tanh", sigma_w2=1.7, sigma_b2=0.05)
    assert mf.C_W == (1.7, 1.7) and mf.C_b == (0.05, 0.05)
    assert math.isclose(kernel(mf, np.ones((1, 3)))[0, 0, 0], 0.05 + 1.7)
