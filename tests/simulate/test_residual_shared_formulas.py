"""The MLP and the residual MLP share one stochastic metric Ĝ (4.70)/(B.3) and one NTK forward equation (8.12).

* :func:`deepeft.simulate.metric_cumulants.stochastic_metric` against Monte Carlo over (W, b) of the definition
  E[M^{(ℓ)} | layer ℓ − 1] (z-score), and an MLP against the ResidualMLP with γ = 0, ξ = 1 (exact);
* :func:`deepeft.simulate.ntk.ntk_forward` on that ResidualMLP and the MLP (bit-identical), and its default ``zs``
  for a ResidualMLP (the residual preactivations (B.3));
* regression: ``sample_ensemble`` of a ResidualMLP (methods "metric" and "weights") against numbers stored from the
  code before the two formulas were shared (rounding level: C_W·gram/n and C_W/n·gram differ in the last bit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import deepeft as de
from conftest import Z_MAX
from deepeft._x64 import x64
from deepeft.simulate import forward as fw
from deepeft.simulate.metric_cumulants import stochastic_metric
from deepeft.simulate.ntk import ntk_forward
from deepeft.simulate.residual_ensemble import residual_forward, residual_ntk_forward

X = np.array([[0.3, -1.0, 0.5], [1.2, 0.1, -0.4], [0.2, 0.7, 1.1]])


def test_stochastic_metric_is_the_conditional_metric_of_a_residual_layer():
    """Ĝ^{(ℓ)} = ξ²[C_b + C_W σσᵀ/n] + γ²M^{(ℓ−1)} = E[M^{(ℓ)} | z^{(ℓ−1)}] (B.3): Monte Carlo over the layer's (W, b)."""
    net = de.ResidualMLP(3, [4, 4], 1, "tanh", C_b=0.3, C_W=1.4, gamma=[0, 0.8, 0], xi=[1.0, 1.3, 1.0])
    rng = np.random.default_rng(0)
    zp = rng.normal(size=(3, 4))  # z^{(1)} (N, n_1), fixed
    s = np.tanh(zp)
    S, n = 40_000, 4
    W = rng.normal(0, np.sqrt(net.C_W[1] / n), size=(S, n, n))
    b = rng.normal(0, np.sqrt(net.C_b[1]), size=(S, 1, n))
    z = net.xi[1] * (np.einsum("aj,sij->sai", s, W) + b) + net.gamma[1] * zp  # (B.3), (S, N, n_2)
    M = np.einsum("sai,sbi->sab", z, z) / n
    G = stochastic_metric(net, 2, s @ s.T, zp @ zp.T / n)
    zscore = (M.mean(0) - G) / (M.std(0, ddof=1) / np.sqrt(S))
    print(f"max |z| of E[M^(2) | z^(1)] against Ĝ^(2): {np.abs(zscore).max():.2f}")
    assert np.abs(zscore).max() < Z_MAX
    block = stochastic_metric(net, 2, s @ s.T)  # no prev_metric: the block part alone
    np.testing.assert_allclose(G - block, net.gamma[1] ** 2 * zp @ zp.T / n, rtol=1e-13)
    wrong = stochastic_metric(net.mlp, 2, s @ s.T)  # without ξ², γ² the same data must reject it
    assert np.abs((M.mean(0) - wrong) / (M.std(0, ddof=1) / np.sqrt(S))).max() > 10 * Z_MAX


def test_mlp_is_the_residual_mlp_with_gamma_0_and_xi_1():
    mlp = de.MLP(3, [6, 6], 2, "tanh", C_b=0.1, C_W=1.3, lambda_b=0.5, lambda_W=2.0)
    res = de.ResidualMLP(3, [6, 6], 2, "tanh", C_b=0.1, C_W=1.3, lambda_b=0.5, lambda_W=2.0)
    gram = X @ X.T
    for l in (1, 2, 3):
        assert np.array_equal(stochastic_metric(mlp, l, gram), stochastic_metric(res, l, gram, gram / 3))
    with x64():
        p = fw.init_params(mlp, jax.random.PRNGKey(4), jnp.float32)
        Xj = jnp.asarray(X, jnp.float32)
        H_mlp = jax.jit(lambda p, X: ntk_forward(mlp, p, X))(p, Xj)
        H_res = jax.jit(lambda p, X: ntk_forward(res, p, X))(p, Xj)
    for a, b in zip(H_mlp, H_res, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_ntk_forward_computes_the_residual_preactivations():
    net = de.ResidualMLP(3, [4, 4, 4], 4, "relu", C_b=0.1, C_W=1.0, gamma=[0, 0.7, 0.6, 0.5], xi=[1.1, 0.9, 1.2, 1.0])
    with x64():
        p = fw.init_params(net, jax.random.PRNGKey(1), jnp.float64)
        Xj = jnp.asarray(X)
        a = ntk_forward(net, p, Xj)
        b = residual_ntk_forward(net, p, Xj, residual_forward(net, p, Xj))
        c = ntk_forward(net.mlp, p, Xj)  # the skips change the kernel: γ, ξ are read from the ResidualMLP
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(np.asarray(a[-1]), np.asarray(c[-1]), rtol=1e-3)


# Stored from sample_ensemble before the refactor (commit 64e7cdb), float64, seed 3, 300 networks (regression).
_NET = dict(input_dim=3, widths=[5, 5, 5], output_dim=5, activation="relu", C_b=0.0, C_W=1.2,
            gamma=[0, 0.5, 0.6, 0.4], xi=[1.0, 0.8, 1.1, 0.7])  # fmt: skip
_STORED = {
    ("metric", "G01"): [0.024, 0.08102223951316896, 0.12697220108452378, 0.08033714610941983],
    ("metric", "G22"): [0.6959999999999998, 0.4445640363287691, 0.5007806685641324, 0.23070171615180668],
    ("metric", "V0011"): [-0.03500904651229156, -0.10379498004954858, 0.00919751553558678],
    ("metric", "V0102"): [-0.0013543900925934, 0.03380099319807566, 0.03906370381637804],
    ("weights", "V0011"): [-0.0105767514145616, 0.13693232675850303, 0.07446081535361886],
    ("weights", "V0102"): [-0.00292525577354064, 0.07594861689253155, 0.03949538618875405],
    ("weights", "H01"): [1.0199999999999998, 1.153124937184041, 2.258206146122497, 1.2922049861310876],
    ("weights", "H22"): [1.5799999999999996, 1.8264939338430919, 3.520645287995668, 2.2479919860698785],
}


def test_residual_ensemble_regression_against_stored_numbers():
    net = de.ResidualMLP(**_NET)
    for method in ("metric", "weights"):
        r = de.sample_ensemble(net, X, 300, seed=3, method=method, dtype="float64", vertex=True, ntk=method == "weights")
        got = {"G01": r.stochastic_metric.value[:, 0, 1], "G22": r.stochastic_metric.value[:, 2, 2],
               "V0011": r.vertex.value[1:, 0, 0, 1, 1], "V0102": r.vertex.value[1:, 0, 1, 0, 2]}  # fmt: skip
        if r.ntk is not None:
            got.update(H01=r.ntk.value[:, 0, 1], H22=r.ntk.value[:, 2, 2])
        for (m, key), want in _STORED.items():
            if m == method:
                np.testing.assert_allclose(got[key], want, rtol=1e-12, atol=1e-15, err_msg=f"{method} {key}")
