"""χ_⊥ measured from realised layer Jacobians (simulate/susceptibility.py) vs (5.50) and vs a hand computation."""

import numpy as np
import pytest

import deepeft as de
from conftest import TOL, Z_MAX
from deepeft.theory.single_input import helper_functions


def _net(act="tanh", C_W=1.3, C_b=0.1, width=32):
    return de.MLP(3, [width, width], width, activation=act, C_b=C_b, C_W=C_W)


def test_first_layer_matches_5_50():
    """z^{(1)} is Gaussian at any width: E[χ̂_⊥^{(1)}] = C_W⟨σ′σ′⟩_{K^{(1)}} exactly (z-score)."""
    net, x = _net(), np.array([0.5, -1.0, 0.8])
    K1 = 0.1 + 1.3 * float(x @ x) / 3
    est = de.empirical_chi_perp(net, x, 2048, seed=3)
    z = est.z(helper_functions("tanh", K1, 1.3).chi_perp)
    assert est.shape == (2,) and abs(z[0]) < Z_MAX, z


def test_equals_hand_computation_on_the_same_networks():
    """Network i is sample_params(net, seed, i): ‖W^{(ℓ+1)} diag σ′(z^{(ℓ)})‖²_F / n_{ℓ+1} by NumPy, per network."""
    net, x = _net(width=8), np.array([0.3, 0.2, -0.9])
    est = de.empirical_chi_perp(net, x, 3, seed=5)
    per = []
    for i in range(3):
        p = de.sample_params(net, seed=5, index=i, dtype="float64")
        zs = de.preactivations(net, x[None], params=p, dtype="float64")
        per.append([np.sum(p[l + 1][0] ** 2 * (1 - np.tanh(zs[l][0]) ** 2) ** 2) / p[l + 1][0].shape[0] for l in range(2)])
    per = np.array(per)
    np.testing.assert_allclose(est.value, per.mean(0), rtol=TOL[np.float64]["exact"])
    np.testing.assert_allclose(est.stderr, per.std(0, ddof=1) / np.sqrt(3), rtol=1e-10)


def test_chunk_size_does_not_change_the_result():
    net, x = _net(width=8), np.ones(3)
    a = de.empirical_chi_perp(net, x, 50, seed=1, chunk_size=7)
    b = de.empirical_chi_perp(net, x, 50, seed=1)
    np.testing.assert_array_equal(a.value, b.value)


@pytest.mark.parametrize("call, msg", [
    (lambda: de.empirical_chi_perp(de.MLP(3, [], 2), np.ones(3), 10), "hidden layer"),
    (lambda: de.empirical_chi_perp(_net(), np.ones((2, 3)), 10), "one input"),
    (lambda: de.empirical_chi_perp(_net(), np.ones(3), 1), "≥ 2"),
    (lambda: de.empirical_chi_perp(_net(), np.ones(4), 10), "4"),
])
def test_bad_input(call, msg):
    with pytest.raises(de.DeepEFTInputError, match=msg):
        call()
