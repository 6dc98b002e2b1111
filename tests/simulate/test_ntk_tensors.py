"""Per-network dNTK and ddNTKs by autodiff (PDLT (11.8), (∞.5), (∞.7)) and the one-step expansions (∞.4), (∞.6), (∞.9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft._x64 import x64
from deepeft.simulate.forward import forward_preactivations, sample_params
from deepeft.simulate.ntk import empirical_ntk
from deepeft.simulate.ntk_tensors import empirical_ddntk, empirical_dntk, one_step_prediction
from deepeft.simulate.training import lambda_tree

X = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.2]])
NET = de.MLP(3, [5, 4], 2, activation="tanh", C_b=0.1, C_W=1.2, lambda_b=[0.5, 1.0, 2.0], lambda_W=[1.0, 0.3, 2.0])


@pytest.fixture(scope="module")
def params():
    return sample_params(NET, seed=1, dtype="float64")


@pytest.fixture(scope="module")
def tensors(params):
    return empirical_ddntk(NET, params, X)


def test_shapes_ntk_and_symmetries(params, tensors):
    t = tensors
    n, N = 2, 2
    assert t.dntk.shape == (n,) * 3 + (N,) * 3 and t.dd_I.shape == t.dd_II.shape == (n,) * 4 + (N,) * 4
    # Ĥ of the same call is the NTK (8.7) of simulate.ntk
    np.testing.assert_allclose(t.ntk, empirical_ntk(NET, X, params, dtype="float64", method="autodiff"), atol=1e-13)
    np.testing.assert_array_equal(empirical_dntk(NET, params, X), t.dntk)
    scale = np.abs(t.dntk).max()
    # (11.8): symmetric under (i1,δ1) ↔ (i2,δ2) only
    assert np.abs(t.dntk - t.dntk.transpose(0, 2, 1, 3, 5, 4)).max() < 1e-13 * scale
    assert np.abs(t.dntk - t.dntk.transpose(1, 0, 2, 4, 3, 5)).max() > 1e-2 * scale
    # (∞.5): totally symmetric in the last three pairs
    for perm in [(0, 2, 1, 3), (0, 1, 3, 2), (0, 3, 2, 1)]:
        pp = perm + tuple(q + 4 for q in perm)
        assert np.abs(t.dd_I - t.dd_I.transpose(pp)).max() < 1e-13 * np.abs(t.dd_I).max()
    # (∞.7) (digest erratum): joint swap (1)↔(2) with (3)↔(4) only
    d2 = t.dd_II
    assert np.abs(d2 - d2.transpose(1, 0, 3, 2, 5, 4, 7, 6)).max() < 1e-13 * np.abs(d2).max()
    assert np.abs(d2 - d2.transpose(1, 0, 2, 3, 5, 4, 6, 7)).max() > 1e-2 * np.abs(d2).max()


def test_vanish_at_layer_one(params):
    t = empirical_ddntk(NET, params, X, layer=1)
    assert t.dntk.shape == (5,) * 3 + (2,) * 3
    assert np.abs(t.dntk).max() == 0 and np.abs(t.dd_I).max() == 0 and np.abs(t.dd_II).max() == 0
    assert np.abs(t.ntk).max() > 0


def test_neuron_subset_is_a_slice(params):
    full = empirical_ddntk(NET, params, X, layer=2)
    sel = (3, 1)
    sub = empirical_ddntk(NET, params, X, layer=2, neurons=sel)
    ix = np.ix_(sel, sel, sel, sel)
    np.testing.assert_allclose(sub.dntk, full.dntk[np.ix_(sel, sel, sel)], atol=1e-14)
    np.testing.assert_allclose(sub.dd_I, full.dd_I[ix], atol=1e-14)
    np.testing.assert_allclose(sub.dd_II, full.dd_II[ix], atol=1e-14)
    np.testing.assert_allclose(sub.z, full.z[list(sel)], atol=0)


def _direction(params, layer, j, d):
    """v = λ ∇_θ z^{(ℓ)}_{j;d} as a (W, b) tree (8.6)."""
    with x64():
        p = tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params)
        g = jax.grad(lambda q: forward_preactivations(NET, q, jnp.asarray(X))[layer - 1][d, j])(p)
        return tuple((lw * gW, lb * gb) for (gW, gb), (lw, lb) in zip(g, lambda_tree(NET), strict=True))


def test_dntk_is_the_derivative_of_the_ntk(params, tensors):
    """(11.10): ∇Ĥ_{i1i2;δ1δ2}·v_{j;α} = dĤ_{i1i2j;δ1δ2α} + dĤ_{i2i1j;δ2δ1α}, v = λ∇z_{j;α} (central differences)."""
    h = 1e-4
    for j, a in [(0, 1), (1, 0)]:
        vdir = _direction(params, NET.L, j, a)
        shift = [tuple((W + s * h * np.asarray(dW), b + s * h * np.asarray(db)) for (W, b), (dW, db) in
                       zip(params, vdir, strict=True)) for s in (1, -1)]
        Hp, Hm = (empirical_ntk(NET, X, q, dtype="float64", method="autodiff") for q in shift)
        fd = (Hp - Hm) / (2 * h)
        pred = tensors.dntk[:, :, j, :, :, a] + tensors.dntk[:, :, j, :, :, a].transpose(1, 0, 3, 2)
        err = np.abs(fd - pred).max() / np.abs(pred).max()
        print("finite-difference relative error", err)
        assert err < 1e-6


def _slope(etas, errs):
    return np.polyfit(np.log(etas), np.log(errs), 1)[0]


def test_one_step_expansions_error_scaling(params):
    """One real GD step (MSE): remainders of (∞.4), (∞.6), (∞.9) fall as η⁴, η³, η² (and each truncation
    one order lower, so every term is needed)."""
    Y = np.array([[0.5, -0.3], [0.2, 0.9]])
    etas = np.array([0.08, 0.04, 0.02, 0.01])
    rows = []
    for eta in etas:
        o = one_step_prediction(NET, params, X, Y, eta)
        rows.append([np.abs(o.dz_actual - o.dz_terms[:k].sum(0)).max() for k in (1, 2, 3)]
                    + [np.abs(o.dH_actual - o.dH_terms[:k].sum(0)).max() for k in (1, 2)]
                    + [np.abs(o.ddH_actual - o.ddH_predicted).max()])
    rows = np.array(rows)
    slopes = [_slope(etas, rows[:, c]) for c in range(rows.shape[1])]
    print("slopes (dz: 1,2,3 terms; dH: 1,2 terms; ddH):", np.round(slopes, 3))
    expected = [2, 3, 4, 2, 3, 2]
    for s, e in zip(slopes, expected, strict=True):
        assert abs(s - e) < 0.2


def test_errors(params):
    with pytest.raises(de.DeepEFTInputError, match="layer must be"):
        empirical_dntk(NET, params, X, layer=4)
    with pytest.raises(de.DeepEFTInputError, match="neurons must be distinct"):
        empirical_dntk(NET, params, X, neurons=(0, 0))
    with pytest.raises(de.DeepEFTInputError, match="neurons must be distinct"):
        empirical_dntk(NET, params, X, neurons=(2,))
    with pytest.raises(de.DeepEFTInputError, match="Y must be"):
        one_step_prediction(NET, params, X, np.zeros((3, 2)), 0.1)
