"""A, B, D, F (8.77), (8.79), (8.89), (8.97) against ensembles of random networks (exact per-network NTK).

Tolerance rule: the ensemble estimates the exact finite-width covariances n_{ℓ−1}Cov(·) (module doc of
:mod:`deepeft.simulate.ntk_statistics`); the theory is their leading order.
* Layer 2 is exact at any width (layer 1 is Gaussian and deterministic NTK; the covariances over the
  n_1 independent neurons are exactly (8.32)–(8.39)/n_1): |z| = |T_sim − T|/SE ≤ 4.5, no allowance.
* Deeper layers: O(ℓ/n) relative corrections, allowed as in the vertex tests:
  |z| = |T_sim − T|/√(SE² + (2((ℓ−1)/n_{ℓ−1}) T_max)²) ≤ 4.5 (T_max: the largest |entry| of that tensor and layer).
Every index pattern (N = 2 inputs: 16 entries per tensor) is checked. A theory perturbed by a few
percent (or with the inherited terms dropped) must fail the same rule.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import deepeft as de

X = np.array([[1.0, 0.2, -0.4], [0.3, -1.1, 0.5]])
CASES = {"relu": ("relu", 0.0, 2.0), "tanh_off": ("tanh", 0.1, 1.2)}


def _zmax(st, th, scale=1.0, layers=None):
    out = {}
    for l in layers or range(1, th.net.L):
        ell, n = l + 1, th.n_prev[l]
        for k in "ABDF":
            e, T = getattr(st, k)[l], scale * getattr(th, k)[l]
            allow = 0.0 if ell == 2 else 2 * (ell - 1) / n * np.abs(T).max()
            out[(ell, k)] = float(np.max(np.abs(e.value - T) / np.sqrt(e.stderr**2 + allow**2)))
    return out


def _run(name, width, n_networks, seed=3):
    act, C_b, C_W = CASES[name]
    net = de.MLP(3, [width] * 2, width, act, C_b=C_b, C_W=C_W, lambda_b=0.5, lambda_W=1.5)
    st = de.ntk_statistics(net, X, n_networks, seed=seed, micro_batch=32)
    th = de.ntk_fluctuations(net, X)
    return st, th


@pytest.mark.parametrize("name", list(CASES))
def test_ntk_fluctuations_match_ensemble(name):
    st, th = _run(name, 40, 2048)
    z = _zmax(st, th)
    print(name, {k: round(v, 2) for k, v in z.items()})
    assert max(z.values()) < 4.5
    # the check can fail: 4 % on the exact layer 2, dropping the inherited terms at layer 3
    z_pert = _zmax(st, th, scale=1.04, layers=[1])
    assert max(z_pert.values()) > 4.5, z_pert
    A, B, D, F = de.theory.ntk_fluctuations.ntk_step(
        th.net.activation, th.K[1], th.Theta[1], th.V[1], th.A[1], th.B[1], th.D[1], th.F[1],
        C_W=th.net.C_W[2], lambda_W=th.net.lambda_W[2], ratio=1.0, first=True,
    )
    z_drop = {}
    for k, T in zip("ABDF", (A, B, D, F), strict=True):
        e = getattr(st, k)[2]
        allow = 2 * 2 / 40 * np.abs(T).max()
        z_drop[k] = float(np.max(np.abs(e.value - T) / np.sqrt(e.stderr**2 + allow**2)))
    print("layer 3 without the inherited terms:", z_drop)
    assert max(z_drop.values()) > 4.5


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DEEPEFT_FULL"), reason="full-size run only (DEEPEFT_FULL=1); CI runs the n = 40 version")
@pytest.mark.parametrize("name", list(CASES))
def test_ntk_fluctuations_match_ensemble_wide(name):
    """n = 96, 8192 networks: the allowance is 2.4× smaller (≈ 1 min on 2 cores: full-size runs only; the reduced-size
    evidence in CI is :func:`test_ntk_fluctuations_match_ensemble`)."""
    st, th = _run(name, 96, 8192, seed=4)
    z = _zmax(st, th)
    print(name, {k: round(v, 2) for k, v in z.items()})
    assert max(z.values()) < 4.5


def test_output_jacobian_route_equals_forward_equation():
    """layers="output" (backpropagated Jacobians) gives the forward-equation (8.12) statistics of layer L
    for the same networks to rounding; per-layer λ's, unequal widths."""
    X3 = np.random.default_rng(0).normal(size=(3, 5))
    net = de.MLP(5, [12, 10, 14], 4, "tanh", C_W=1.3, C_b=0.1, lambda_b=[0.5, 1, 2, 0.3], lambda_W=[1, 2, 0.5, 1])
    a = de.ntk_statistics(net, X3, 128, seed=2, blocks=8, micro_batch=8)
    b = de.ntk_statistics(net, X3, 128, seed=2, blocks=8, micro_batch=8, layers="output")
    for k in "ABDF":
        ea, eb = getattr(a, k), getattr(b, k)
        np.testing.assert_allclose(eb.value[-1], ea.value[-1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(eb.stderr[-1], ea.stderr[-1], rtol=1e-8, atol=1e-12)
        assert np.all(np.isnan(eb.value[1:-1]))
    np.testing.assert_allclose(b.H.value[-1], a.H.value[-1], rtol=1e-12)
    with pytest.raises(de.DeepEFTInputError, match="layers"):
        de.ntk_statistics(net, X3, 128, layers="hidden")


def test_ntk_statistics_rejects_too_few_networks_and_unknown_dtype():
    """n_networks < blocks used to run `blocks` networks silently (more than asked); an unknown dtype used to
    fall back to float32 silently. Both are now errors that say what to change."""
    X3 = np.random.default_rng(0).normal(size=(2, 3))
    net = de.MLP(3, [4], 2, "tanh")
    with pytest.raises(de.DeepEFTInputError, match="smaller than blocks"):
        de.ntk_statistics(net, X3, 5, blocks=8)
    with pytest.raises(de.DeepEFTInputError, match="dtype"):
        de.ntk_statistics(net, X3, 16, blocks=4, dtype="float16")
    with pytest.raises(de.DeepEFTInputError, match="seed"):
        de.ntk_statistics(net, X3, 16, blocks=4, seed=-1)
