"""Residual-MLP ensembles (B.3) against the residual theory (B.11)–(B.26) with the three-point feed.

Tolerance rule as in tests/simulate/test_vertex_vs_ensemble.py (docs/vertex.md): theory is leading order in
1/n, so |z| = |sim − theory| / √(SE² + (2((ℓ−1)/n) max|theory_ℓ|)²) < Z_MAX. The same data must reject the
printed (B.24) for ReLU (the check can fail).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX, assert_close
from deepeft._x64 import x64
from deepeft.simulate import forward as fw
from deepeft.simulate.residual_ensemble import residual_forward, residual_ntk_forward
from deepeft.theory.residual_recursions import residual_vertex_flow

X = np.array([[1.0, 0.2, -0.4], [0.3, -1.1, 0.5]])


def _max_z(est, theory, n):
    out = []
    for l in range(1, theory.shape[0]):
        allow = 2 * l / n * np.abs(theory[l]).max()
        out.append(float(np.abs((est.value[l] - theory[l]) / np.sqrt(est.stderr[l] ** 2 + allow**2)).max()))
    return max(out)


def test_forward_matches_numpy_loop():
    net = de.ResidualMLP(3, [5] * 3, 5, "tanh", C_b=0.2, C_W=0.8, gamma=[0, 0.6, 0.7, 0.5], xi=[1.0, 1.2, 0.8, 1.1])
    params = de.sample_params(net.mlp, seed=3, index=7, dtype="float64")
    with x64():
        zs = residual_forward(net, tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params), jnp.asarray(X))
    z_prev, a = None, X
    for l, (W, b) in enumerate(params, start=1):
        z = net.xi[l - 1] * (a @ W.T + b) + (net.gamma[l - 1] * z_prev if z_prev is not None else 0.0)
        assert_close(np.asarray(zs[l - 1]), z)
        z_prev, a = z, np.tanh(z)


def test_ntk_forward_matches_autodiff():
    net = de.ResidualMLP(3, [4] * 3, 4, "relu", C_b=0.1, C_W=1.0, gamma=[0, 0.7, 0.6, 0.5], xi=[1.1, 0.9, 1.2, 1.0],
                         lambda_b=[1, 2, 1, 3], lambda_W=[2, 1, 3, 1])  # fmt: skip
    with x64():
        params = fw.init_params(net, jax.random.PRNGKey(0), jnp.float64)
        Xj = jnp.asarray(X)
        zs = residual_forward(net, params, Xj)
        H = residual_ntk_forward(net, params, Xj, zs)[-1]
        J = jax.jacobian(lambda p: residual_forward(net, p, Xj)[-1])(params)
        brute = 0.0
        for l, (JW, Jb) in enumerate(J, start=1):  # λ_b for biases, λ_W/n_{ℓ−1} for weights (8.6)
            brute += net.lambda_b[l - 1] * jnp.einsum("aik,bjk->ijab", Jb, Jb)
            brute += net.lambda_W[l - 1] / net.n[l - 1] * jnp.einsum("aikm,bjkm->ijab", JW, JW)
    assert_close(np.asarray(H), np.asarray(brute))


def test_relu_vertex_needs_the_three_point_feed():
    n, g = 128, math.sqrt(0.5)
    net = de.ResidualMLP(3, [n] * 3, n, "relu", C_W=2 * (1 - g**2), gamma=g)
    ens = de.sample_ensemble(net, X, 4000, seed=0, method="metric")
    V = residual_vertex_flow(net, X).V
    V_book = residual_vertex_flow(net, X, three_point=False).V
    z, z_book = _max_z(ens.vertex, V, n), _max_z(ens.vertex, V_book, n)
    print(f"ReLU γ² = 0.5, n = {n}: max|z| with three-point feed {z:.2f}, printed (B.24) {z_book:.2f}")
    assert z < Z_MAX < z_book
    assert _max_z(ens.metric, de.kernel(net, X), n) < Z_MAX


def test_tanh_vertex_and_ntk_match_ensemble():
    n, g = 48, math.sqrt(0.5)
    net = de.ResidualMLP(3, [n] * 3, n, "tanh", C_b=0.05, C_W=1 - g**2, gamma=g, xi=1.1)
    ens = de.sample_ensemble(net, X, 3000, seed=1, method="metric")
    V = de.four_point_vertex(net, X)
    z = _max_z(ens.vertex, V, n)
    print(f"tanh γ² = 0.5, n = {n}: max|z_V| {z:.2f}")
    assert z < Z_MAX
    assert _max_z(ens.stochastic_metric, de.kernel(net, X), n) < Z_MAX
    small = de.ResidualMLP(3, [16] * 2, 16, "tanh", C_b=0.05, C_W=1 - g**2, gamma=g, xi=1.1)  # weights method, NTK
    e2 = de.sample_ensemble(small, X, 600, seed=2, ntk=True)
    zT = _max_z(e2.ntk, de.frozen_ntk(small, X), 16)
    print(f"tanh NTK, n = 16: max|z_Θ| {zT:.2f}")
    assert zT < Z_MAX


def test_residual_ensemble_bad_input():
    net = de.ResidualMLP(3, [4] * 2, 4, "relu", gamma=0.5)
    with pytest.raises(de.DeepEFTInputError, match="keep_preactivations"):
        de.sample_ensemble(net, X, 10, keep_preactivations=2)
    with pytest.raises(de.DeepEFTInputError, match="weights"):
        de.sample_ensemble(net, X, 10, ntk=True, method="metric")


def test_vertex_at_layer_two_is_exact_and_rao_blackwellized():
    """V^{(2)} is exact at any width (layer 1 is Gaussian): no allowance. The estimator on the conditional moments
    A_i = E[z_i z_i | layer 1] resolves it to ≈ 1.3 % with 20 000 networks (ReLU γ² = 0.5); the pair average of
    z_i²z_j² itself needed ≈ 2.1 % (4.6 % at 4000 networks, measured before the change)."""
    n, g = 64, math.sqrt(0.5)
    net = de.ResidualMLP(3, [n], n, "relu", C_W=[1.0, 2 * (1 - g**2)], gamma=[0.0, g])
    ens = de.sample_ensemble(net, X[:1], 20_000, seed=4, method="metric")
    V = residual_vertex_flow(net, X[:1]).V[1, 0, 0, 0, 0]
    est, se = ens.vertex.value[1, 0, 0, 0, 0], ens.vertex.stderr[1, 0, 0, 0, 0]
    print(f"V^(2) = {est:.4f} ± {se:.4f} (theory {V:.4f}, z = {(est - V) / se:.2f}, relative SE {se / V:.3%})")
    assert abs(est - V) < Z_MAX * se
    assert se / V < 0.016
