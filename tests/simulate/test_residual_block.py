"""The ξ tuner (B.44)–(B.45): Monte Carlo block correlators (B.42)–(B.43) against closed forms where they exist.

Exact at any width: a one-layer block (z is exactly Gaussian: Ḡ_RR = C_b + C_W⟨σ²⟩_K) and a two-layer ReLU block
(E[ReLU(h)²] = E[h²]/2 for any symmetric h: Ḡ_RR = C_b + C_W(C_b + C_W K/2)/2); Ḡ_Rz = 0 for zero-mean last
weights, = cK for a block with its own skip cz.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX, assert_close
from deepeft.simulate.residual_block import block_correlators, mlp_block
from deepeft.theory.residual import critical_xi
from deepeft.theory.single_input import helper_functions


@pytest.mark.parametrize("act, depth, C_b, C_W", [("relu", 2, 0.1, 2.0), ("tanh", 1, 0.05, 1.5)])
def test_block_correlators_and_xi_match_closed_forms(act, depth, C_b, C_W):
    K, g = 0.8, 0.7
    bc = block_correlators(mlp_block(32, depth, act, C_b, C_W), K, n_samples=3000, seed=1)
    if act == "relu":
        RR = C_b + C_W * (C_b + C_W * K / 2) / 2
    else:
        RR = C_b + C_W * float(helper_functions("tanh", K).g)
    for got, se, want in zip(bc.mean, bc.stderr, (K, RR, 0.0), strict=True):
        assert abs(got - want) < Z_MAX * se
    xi = critical_xi(g, bc.G_zz, bc.G_RR, bc.G_Rz, bc.cov)
    want_xi = math.sqrt((1 - g**2) * K / RR)  # (B.45) with Ḡ_Rz = 0
    print(f"{act} depth {depth}: ξ = {xi.xi:.5f} ± {xi.stderr:.5f}, closed form {want_xi:.5f}")
    assert 0 < xi.stderr < 0.02 and abs(xi.xi - want_xi) < Z_MAX * xi.stderr


def test_block_with_its_own_skip_has_cross_correlator():
    base = mlp_block(16, 2, "relu", 0.0, 2.0)
    K, c = np.array([[1.0, 0.3], [0.3, 0.6]]), 0.5
    bc = block_correlators(lambda key, z: base(key, z) + c * z, K, n_samples=2000, seed=2, n=16)
    Kbar = float(np.mean(np.diag(K)))  # averaged over δ (B.42), (B.43)
    assert abs(bc.G_zz - Kbar) < Z_MAX * bc.stderr[0]
    assert abs(bc.G_Rz - c * Kbar) < Z_MAX * bc.stderr[2]
    s = critical_xi(0.6, bc.G_zz, bc.G_RR, bc.G_Rz)
    assert_close((1 - 0.36) * bc.G_zz, s.xi**2 * bc.G_RR + 2 * 0.6 * s.xi * bc.G_Rz)  # (B.45)


def test_block_correlators_bad_input():
    with pytest.raises(de.DeepEFTInputError, match="width"):
        block_correlators(lambda key, z: z, 1.0)
    with pytest.raises(de.DeepEFTInputError, match="semidefinite"):
        block_correlators(mlp_block(4), [[1.0, 2.0], [2.0, 1.0]])
