"""dNTK–preactivation tensors P, Q (11.49), (11.52): second-layer closed forms by literal engine quadrature,
the deep-linear exact result, symmetry, permutation equivariance, sub-block consistency, bad input.
(Ensemble agreement: tests/simulate when the estimators of simulate/ntk_tensors.py are available.)"""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from deepeft.gaussian.engine import Factor, expect

X3 = np.array([[1.0, 0.2, -0.4, 0.9], [0.3, -1.1, 0.5, 0.2], [-0.7, 0.4, 1.2, -0.3]])
X2 = X3[:2]  # two inputs keep the compiled shapes few (each N compiles its own batched programs)


def _tanh_net():
    """The network of the ddNTK tests (same K, Θ at every layer: the compiled integrals are shared)."""
    return de.MLP(4, [40, 30], 1, "tanh", C_b=0.1, C_W=[1.0, 1.3, 1.1], lambda_b=[0.7, 0.4, 0.9], lambda_W=[1.0, 0.5, 1.3])


@pytest.fixture(scope="module")
def tanh2():
    net = _tanh_net()
    return net, de.dntk(net, X2)


def _expect4(act, derivs, idx, K):
    """⟨Π_p σ^{(derivs_p)}(z_{idx_p})⟩ by engine.expect, merging coincident indices into one variable."""
    var = sorted(set(idx))
    fs = tuple(Factor(tuple(d for d, i in zip(derivs, idx, strict=True) if i == v)) for v in var)
    return float(expect(act, fs, K[np.ix_(var, var)], rtol=1e-10))


# ---------------------------------------------------------------------------------------------
# Second layer (11.31)–(11.32), integrated literally by the engine, index by index
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["tanh", "gelu"])
def test_second_layer_closed_forms_11_31_11_32(act, tanh2):
    if act == "tanh":
        N, (net, d) = 2, tanh2  # layer 2 of the shared network: C_W^{(2)} = 1.3, λ_W^{(2)} = 0.5
    else:  # one input keeps GELU's compiled integrals few
        N, net = 1, de.MLP(4, [20], 1, act, C_b=0.1, C_W=1.3, lambda_b=0.6, lambda_W=0.8)
        d = de.dntk(net, X2[:N])
    C_W, lw = net.C_W[1], net.lambda_W[1]
    K1, H1 = d.K[0], d.Theta[0]
    assert np.all(d.P[0] == 0) and np.all(d.Q[0] == 0)
    rng = np.random.default_rng(3)
    tuples = [tuple(t) for t in rng.integers(0, N, size=(6, 4))] + [(0, 0, 0, 0), (0, 1, 1, 0), (1, 0, 1, 0)]
    tuples = [t for t in tuples if max(t) < N]
    for a0, a1, a2, a3 in tuples:
        x = _expect4(act, (2, 1, 1, 0), (a0, a1, a2, a3), K1)  # ⟨σ″0σ′1σ′2σ3⟩
        y = _expect4(act, (1, 0, 1, 0), (a0, a1, a2, a3), K1)  # ⟨σ′0σ1σ′2σ3⟩
        P2 = C_W**2 * H1[a0, a1] * H1[a0, a2] * x
        Q2 = P2 + lw * C_W * H1[a0, a2] * y
        np.testing.assert_allclose(d.P[1, a0, a1, a2, a3], P2, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(d.Q[1, a0, a1, a2, a3], Q2, rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Symmetry, equivariance, consistency
# ---------------------------------------------------------------------------------------------
def test_p_symmetric_in_middle_indices_q_not(tanh2):
    _, d = tanh2
    scale = np.abs(d.P).max()
    assert scale > 0
    np.testing.assert_allclose(d.P, d.P.transpose(0, 1, 3, 2, 4), atol=1e-12 * scale)
    # Q has no symmetry (footnote 3 of §11.2): the swap of its middle indices changes it
    assert np.abs(d.Q - d.Q.transpose(0, 1, 3, 2, 4)).max() > 1e-3 * np.abs(d.Q).max()


def test_permutation_equivariance_and_duplicates(tanh2):
    net, d = tanh2
    p = np.array([1, 0])
    dp = de.dntk(net, X2[p])
    ix = (slice(None),) + np.ix_(p, p, p, p)
    np.testing.assert_allclose(dp.P, d.P[ix], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dp.Q, d.Q[ix], rtol=1e-9, atol=1e-12)
    # a duplicated input gives the tensors at the repeated index (the 2×2 block is singular there)
    dd = de.dntk(net, X2[[0, 1, 0]])
    q = np.array([0, 1, 0])
    ix = (slice(None),) + np.ix_(q, q, q, q)
    np.testing.assert_allclose(dd.P, d.P[ix], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dd.Q, d.Q[ix], rtol=1e-9, atol=1e-12)
    assert dd.K.shape == (net.L, 3, 3) and dd.ntk.F.shape == (net.L, 3, 3, 3, 3)


def test_single_input_blocks_equal_one_input_runs(tanh2):
    net, d = tanh2
    for a in range(2):
        one = de.dntk(net, X2[a : a + 1])
        np.testing.assert_allclose(d.P[:, a, a, a, a], one.P[:, 0, 0, 0, 0], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(d.Q[:, a, a, a, a], one.Q[:, 0, 0, 0, 0], rtol=1e-9, atol=1e-13)


def test_width_ratio_enters_inherited_terms(tanh2):
    """r = n_ℓ/n_{ℓ−1} multiplies only the inherited terms: changing n_2 leaves P, Q of layers 1, 2 and changes
    layer 3 (K, Θ, hence every integral, do not depend on the widths)."""
    net, a = tanh2
    wide = de.MLP(4, [40, 80], 1, "tanh", C_b=0.1, C_W=list(net.C_W), lambda_b=list(net.lambda_b), lambda_W=list(net.lambda_W))
    b = de.dntk(wide, X2)
    np.testing.assert_allclose(a.P[:2], b.P[:2], rtol=1e-12)
    np.testing.assert_allclose(a.Q[:2], b.Q[:2], rtol=1e-12)
    assert not np.allclose(a.P[2], b.P[2]) and not np.allclose(a.Q[2], b.Q[2])


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "perceptron"])
def test_kinked_activation_refused(act):
    net = de.MLP(4, [10], 1, act)
    with pytest.raises(de.DeepEFTInputError, match="smooth activation.*delta function.*gelu"):
        de.dntk(net, X3)


def test_bad_input():
    net = de.MLP(4, [10], 1, "tanh")
    with pytest.raises(de.DeepEFTInputError, match="MLP"):
        de.dntk("tanh", X3)
    with pytest.raises(de.DeepEFTInputError):
        de.dntk(net, X3[:, :3])  # wrong n_0
    bad = X3.copy()
    bad[0, 0] = np.nan
    with pytest.raises(de.DeepEFTInputError):
        de.dntk(net, bad)
    with pytest.raises(de.DeepEFTInputError, match="resolution"):
        de.dntk(net, X3, resolution=0.0)
