"""Model complexity (Ch. ε): counting of reals (ε.14), the ReLU six-point vertex (ε.20)–(ε.21) — closed form,
exact finite-width recursion and ensembles — and the ensemble measurement of U for another activation."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX, assert_close
from deepeft.simulate.metric_cumulants import metric_cumulants
from deepeft.theory import complexity as cx


def test_count_reals():
    assert cx.count_reals(10, n_out=3, N_A=8) == 3 * 8 + 2 * 55  # (ε.14)
    assert cx.count_reals(1) == 1 + 2
    assert [cx.coupling_index_count(k) for k in (0, 1, 2)] == [2, 4, 6]  # (ε.14), (ε.15), (ε.23)
    with pytest.raises(de.DeepEFTInputError, match="N_A"):
        cx.count_reals(5, N_A=6)


def test_relu_six_point_closed_form_and_asymptotics():
    L = 400
    lo = cx.six_point_vertex_relu(L)
    ell = np.arange(1, L + 1)
    assert_close(lo.U, cx.six_point_relu_critical(ell), atol=1e-9)
    assert_close(lo.V, 5.0 * (ell - 1))  # (5.109) for ReLU at criticality
    # (ε.21): U/(n²K³) = 75ℓ²/n² + O(ℓ/n²)
    assert lo.normalized(n=100)[-1] * 100**2 / L**2 == pytest.approx(75.0, rel=3 / L)
    # off criticality K⁺ = τK, the recursion scales as τ^{3(ℓ−1)} × the critical one
    off = cx.six_point_vertex_relu(6, C_W=1.5)
    tau = 0.75
    assert_close(off.U, cx.six_point_relu_critical(np.arange(1, 7)) * tau ** (3 * np.arange(6)))
    # the exact finite-width recursion tends to (ε.20) as n → ∞, with an O(ℓ/n) relative difference
    ex = cx.six_point_vertex_relu(8, n=10**6)
    np.testing.assert_allclose(ex.U[1:], lo.U[1:8], rtol=1e-4)


def test_relu_six_point_vs_ensemble():
    """ReLU, n = 32, L = 5, 12 000 networks: the exact finite-width recursion agrees (|z| < 5); the leading order
    (ε.20) is off by its O(ℓ/n) remainder (the same data reject it at the deepest layer)."""
    n, L = 32, 5
    net = de.MLP(input_dim=4, widths=[n] * (L - 1), output_dim=n, activation="relu", C_W=2.0)
    x = np.ones(4)  # K^(1) = C_W |x|²/n0 = 2
    mc = metric_cumulants(net, x, 12_000, seed=1)
    ex = cx.six_point_vertex_relu(L, n=n, K1=2.0)
    assert np.all(np.abs(mc.U.z(ex.U)) < Z_MAX), mc.U.z(ex.U)
    assert np.all(np.abs(mc.V.z(ex.V)) < Z_MAX)
    assert np.all(np.abs(mc.G.z(ex.K)) < Z_MAX)
    lo = cx.six_point_vertex_relu(L, K1=2.0)
    assert mc.V.z(lo.V)[-1] > 3.0  # the data resolve the 1/n correction to V


def test_relu_six_point_vs_conditional_chain():
    """The exact conditional chain (method="metric", z^(ℓ) = √Ĝ^(ℓ) ξ) against the exact recursion, and against the
    weight-sampled networks of the other test: same law, so |z| < 5 everywhere; 200 000 chain networks resolve U to
    ≈ 1–3 % (the check can fail: U × 1.1 is rejected)."""
    n, L = 32, 5
    net = de.MLP(input_dim=4, widths=[n] * (L - 1), output_dim=n, activation="relu", C_W=2.0)
    x = np.ones(4)
    mc = metric_cumulants(net, x, 200_000, seed=3, method="metric")
    ex = cx.six_point_vertex_relu(L, n=n, K1=2.0)
    assert np.all(np.abs(mc.U.z(ex.U)[1:]) < Z_MAX) and np.all(np.abs(mc.V.z(ex.V)[1:]) < Z_MAX)
    assert np.all(np.abs(mc.G.z(ex.K)[1:]) < Z_MAX)
    assert np.max(np.abs(mc.U.z(1.1 * ex.U)[1:])) > Z_MAX
    w = metric_cumulants(net, x, 4_000, seed=1)
    zd = (mc.U.value - w.U.value)[1:] / np.hypot(mc.U.stderr, w.U.stderr)[1:]
    assert np.all(np.abs(zd) < Z_MAX)
    with pytest.raises(de.DeepEFTInputError, match="method"):
        metric_cumulants(net, x, 100, method="chain")


def test_six_point_vertex_of_tanh_from_ensembles():
    """tanh has no closed form: U is measured. Checks that can fail: U = 0 exactly at ℓ = 1, and at ℓ = 2
    U = n²κ₃(Ĝ^(2)) = C_W³ κ₃(tanh(z)²) for z ~ N(0, K^(1)) (iid first-layer neurons), by 1-D quadrature."""
    n = 16
    net = de.MLP(input_dim=2, widths=[n, n], output_dim=n, activation="tanh", C_W=1.0)
    x = np.array([1.0, 1.0])
    mc = metric_cumulants(net, x, 8_000, seed=2)
    assert mc.U.value[0] == 0.0 and mc.U.stderr[0] == 0.0
    zq, wq = np.polynomial.hermite_e.hermegauss(120)
    wq = wq / wq.sum()
    t2 = np.tanh(zq) ** 2  # K^(1) = 1
    m1, m2, m3 = (np.dot(wq, t2**k) for k in (1, 2, 3))
    k3 = m3 - 3 * m2 * m1 + 2 * m1**3
    assert abs(mc.U.z(k3)[1]) < Z_MAX
    assert mc.U.value[2] > mc.U.value[1] > 0  # grows with depth


def test_metric_cumulants_bad_input():
    net = de.MLP(input_dim=2, widths=[4], output_dim=2, activation="tanh")
    with pytest.raises(de.DeepEFTInputError, match="one input"):
        metric_cumulants(net, np.ones((2, 2)), 100)
    with pytest.raises(de.DeepEFTInputError, match="n_networks"):
        metric_cumulants(net, np.ones(2), 1)
    with pytest.raises(de.DeepEFTInputError, match="n_0|n0|input"):
        metric_cumulants(net, np.ones(3), 100)
    with pytest.raises(de.DeepEFTInputError, match="n=64"):
        cx.six_point_vertex_relu(3).normalized()
