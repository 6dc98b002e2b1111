"""Running couplings (4.100)–(4.103): closed forms, the Ch. 1 action, the running equation, exact deep linear nets."""

import numpy as np
import pytest

import deepeft as de
from conftest import assert_close
from deepeft.gaussian.action import NearlyGaussianAction
from deepeft.theory import deep_linear
from deepeft.theory.couplings import coupling_tensors, running_couplings


def _net(act, n, L, C_W, C_b=0.0):
    return de.MLP(input_dim=3, widths=[n] * (L - 1), output_dim=n, activation=act, C_b=C_b, C_W=C_W)


def test_relu_closed_form():
    """Scale-invariant at criticality: K = K*, G1 = 0, V = 5(ℓ−1)K² (5.120) ⇒ closed forms of (4.102), (4.103)."""
    n, L = 64, 5
    x = np.array([1.0, -2.0, 0.5])
    rc = running_couplings(_net("relu", n, L, 2.0), x, m=(1, 3, 7))
    K = 2.0 * np.mean(x**2)
    ell = np.arange(1, L + 1)
    r = 5.0 * (ell - 1) / n
    assert_close(rc.G, K)
    assert_close(rc.inv_g, K * (1.0 - 0.5 * (np.array([1, 3, 7])[None, :] + 2) * r[:, None]), "quadrature")
    assert_close(rc.v, r / K**2, "quadrature", atol=1e-15)
    assert_close(rc.dimensionless_v, r, "quadrature", atol=1e-15)
    assert_close(rc.slope, -0.5 * r * K, "quadrature", atol=1e-15)


def test_action_reproduces_metric_and_vertex():
    """The m-neuron action (4.97) with (4.102), (4.103), written in the Ch. 1 form (1.71), gives back E[zz] = G
    through (1.74) (that is (4.101)) and E[zzzz]_c = (V/n)(δδ + δδ + δδ) through (1.78), up to the next order:
    with r = V/(nG²), a = (m+2)r/2 [derived]: E[zz]/G − 1 = −3a² + O(r³), E[zzzz]_c/(V/n) − 1 = −4a + O(r²)."""
    m, n = 3, 256
    rc = running_couplings(_net("tanh", n, 4, 1.0), np.ones(3), m=(m,))
    act = NearlyGaussianAction(*coupling_tensors(rc.inv_g[-1, 0], rc.v[-1], m), 1.0)
    G, Vn = rc.G[-1], rc.V[-1] / n
    a = 0.5 * (m + 2) * Vn / G**2
    _, T = coupling_tensors(1.0, -1.0, m)
    two, four = act.two_point(), act.connected_four_point()
    assert_close(two, two[0, 0] * np.eye(m))
    assert_close(four, four[0, 0, 1, 1] * T)
    assert (two[0, 0] / G - 1) / a**2 == pytest.approx(-3.0, rel=0.03)
    assert (four[0, 0, 1, 1] / Vn - 1) / a == pytest.approx(-4.0, rel=0.03)


def test_running_equation_is_solved_to_next_order():
    """(4.102) solves (4.100) (book: "it's easy to check"): the residual for fixed m, m' is O(1/n²)."""
    res = [running_couplings(_net("tanh", n, 4, 1.0), np.ones(3), m=(1,)).running_residual(1, 5)[-1]
           for n in (200, 400, 800)]
    assert abs(res[0]) > 0
    assert res[0] / res[1] == pytest.approx(4.0, rel=0.05)
    assert res[1] / res[2] == pytest.approx(4.0, rel=0.03)


def test_deep_linear_exact_finite_width():
    """Independent path: the exact finite-width moments of a deep linear net (3.15), (3.28) through the inverse map
    (1/g_m = G − ((m+2)/2) C/G, C the exact connected coefficient) against (4.102)/(4.103) from the recursions:
    they differ at O(1/n²)."""
    L, m = 4, 2
    diffs = []
    for n in (50, 100, 200):
        net = _net("linear", n, L, 1.0)
        rc = running_couplings(net, np.ones(3), m=(m,))
        G = deep_linear.G2m(net, 1, np.ones(3))
        C = deep_linear.connected4(net, np.ones(3))
        _, T = coupling_tensors(1.0, -1.0, m)
        fit = NearlyGaussianAction.from_correlators(G[-1] * np.eye(m), C[-1] * T)
        assert_close(rc.G, G)  # G1 = 0 for linear nets
        diffs.append((np.trace(fit.K) / m - rc.inv_g[-1, 0], -fit.V[0, 0, 0, 0] / 3 - rc.v[-1]))
    d = np.abs(np.array(diffs))
    assert np.all(d[:-1] / d[1:] == pytest.approx(4.0, rel=0.1))


def test_quartic_flow_tanh_asymptotics():
    """n·vG²/ℓ → 2/3 for tanh (5.131); the spec's (V/K²)/ℓ = 0.664 at ℓ = 1e3 (n → ∞ so G → K)."""
    n = 10**7
    rc = running_couplings(_net("tanh", n, 1000, 1.0), np.ones(3) / np.sqrt(1.0), m=(1,))
    assert rc.dimensionless_v[-1] * n / 1000 == pytest.approx(0.664, abs=2e-3)


def test_bad_input():
    net = _net("tanh", 8, 3, 1.0)
    with pytest.raises(de.DeepEFTInputError, match="m"):
        running_couplings(net, np.ones(3), m=0)
    with pytest.raises(de.DeepEFTInputError, match="wider"):
        running_couplings(_net("tanh", 1, 60, 1.0), np.ones(3))
