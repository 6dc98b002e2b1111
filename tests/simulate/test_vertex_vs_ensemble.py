"""Theory (4.115), (4.119) against Monte Carlo ensembles of random networks (deepeft.simulate).

Tolerance rule (documented in docs/vertex.md): the ensemble estimates the exact finite-width
E[Ĝ^{(ℓ)}] and n_{ℓ−1}Cov(Ĝ^{(ℓ)}) (4.72), (4.76); theory gives them to O(1/n²) resp. O(1/n) relative:

    G = K + G^{1}/n_{ℓ−1} + O((ℓ/n)²):  |z_G| = |Ĝ_sim − (K + G^{1}/n)| / √(SE² + (2((ℓ−1)/n)² K_max)²) < Z_MAX (conftest)
    V = V^{0} + O(ℓ/n) V^{0}:          |z_V| = |V_sim − V| / √(SE² + (2((ℓ−1)/n) V_max)²) < Z_MAX (tests/conftest.py)

(K_max, V_max: the largest |entry| in that layer). The leading corrections grow like ℓ/n (digest §5:
keep ℓ/n ≲ 0.05). Every index pattern of V is checked, not only the diagonal. The NLO metric must
also be *visible*: with K alone (no G^{1}/n) the same data give |z| > 4 somewhere.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.simulate.ensemble import sample_ensemble
from deepeft.theory.vertex import vertex_flow

X = np.array([[1.0, 0.2, -0.4, 0.9], [0.3, -1.1, 0.5, 0.2], [-0.7, 0.4, 1.2, -0.3]])
CUSTOM = de.activation(lambda z: jnp.tanh(z) + 0.2 * z**2 / (1 + z**2), name="tanh_bump")
CASES = {"relu": ("relu", 0.0, 2.0), "tanh": ("tanh", 0.0, 1.0), "custom": (CUSTOM, 0.1, 1.3)}


def _zscores(net, n_networks, seed=1):
    ens = sample_ensemble(net, X, n_networks, seed=seed, method="metric", dtype="float64")
    fl = vertex_flow(net, X, nlo=True)
    out = []
    for l in range(1, net.L):  # layers ℓ = 2..L (ℓ = 1 is deterministic)
        ell, n = l + 1, net.n[l]
        sm = ens.stochastic_metric[l]
        bias_G = 2 * ((ell - 1) / n) ** 2 * np.abs(fl.K[l]).max()
        zG = (sm.value - fl.metric()[l]) / np.sqrt(sm.stderr**2 + bias_G**2)
        zK = sm.z(fl.K[l])
        vs = ens.vertex[l]
        bias_V = 2 * (ell - 1) / n * np.abs(fl.V[l]).max()
        zV = (vs.value - fl.V[l]) / np.sqrt(vs.stderr**2 + bias_V**2)
        out.append((ell, np.abs(zG).max(), np.abs(zK).max(), np.abs(zV).max(), np.abs(vs.z(fl.V[l])).max()))
    return out


def _check(name, width, n_networks, expect_visible_g1):
    act, C_b, C_W = CASES[name]
    net = de.MLP(4, [width] * 3, width, act, C_b=C_b, C_W=C_W)
    rows = _zscores(net, n_networks)
    for ell, zG, zK, zV, zV_raw in rows:
        print(f"{name} n={width} ℓ={ell}: max|z_G| {zG:.2f} (K only: {zK:.2f}), max|z_V| {zV:.2f} (no bias term: {zV_raw:.2f})")
        assert zG < Z_MAX and zV < Z_MAX
    if expect_visible_g1:
        assert max(r[2] for r in rows) > 4.0  # G^{1}/n is resolved by the data


@pytest.mark.parametrize("name, visible", [("relu", True), ("tanh", True), ("custom", False)])
def test_metric_and_vertex_match_ensemble(name, visible):
    _check(name, 64, 20_000, visible)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["relu", "tanh", "custom"])
def test_metric_and_vertex_match_ensemble_wide(name):
    """n = 256 (bias allowance 4× smaller); 1e5 networks with DEEPEFT_FULL=1, else 2e4."""
    _check(name, 256, 100_000 if os.environ.get("DEEPEFT_FULL") else 20_000, False)
