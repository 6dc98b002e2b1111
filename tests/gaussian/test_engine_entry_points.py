"""The engine's public entry points that the recursions use (one numerics layer, issue 10 item 2)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import deepeft as de
from deepeft._x64 import x64
from deepeft.gaussian import engine


@pytest.mark.parametrize("name", de.available_activations())
def test_breakpoints_are_kinks_and_jumps(name):
    act = de.activation(name)
    assert engine.breakpoints(act) == act.breakpoints == tuple(sorted(set(act.kinks) | set(act.jumps)))


def _block(N=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, 4))
    K = 0.1 + X @ X.T / 4
    return np.diagonal(K).copy(), K


@pytest.mark.parametrize("name", ["relu", "erf", "leaky_relu", "linear", "sin"])
def test_closed_two_point_jax_equals_engine(name):
    """The traced closed forms (fast arcsine) equal the NumPy two-point maps off the diagonal to 1e-14."""
    act = de.activation(name)
    pairs = ((0, 0), (1, 1))
    assert engine.fused_mode(act, pairs) == "closed"
    Kaa, K = _block()
    with x64():
        got = [np.asarray(m) for m in jax.jit(lambda a, k: engine.closed_two_point_jax(act, pairs, a, a, k))(Kaa, K)]
    ref = engine.two_point_maps(act, K, pairs)
    off = ~np.eye(len(Kaa), dtype=bool)
    for g, r in zip(got, ref, strict=True):
        assert np.max(np.abs(g - r)[off]) <= 1e-14 * np.max(np.abs(r))


@pytest.mark.parametrize("name", ["tanh", "gelu", "swish"])
def test_mehler_plan_and_sum_equal_engine(name):
    """A Mehler plan summed by the traced Horner loop equals the engine's two-point maps to 1e-13."""
    act = de.activation(name)
    pairs = ((0, 0), (1, 1))
    assert engine.fused_mode(act, pairs) == "mehler"
    Kaa, K = _block(seed=1)
    plan = engine.mehler_plan(act, pairs, Kaa, engine.rho_max(Kaa, Kaa, K, True), 1e-13)
    assert plan is not None and plan.A.shape[1] in engine.FUSED_T
    with x64():
        got = [np.asarray(m) for m in jax.jit(engine.mehler_two_point_jax)(Kaa, K, plan.A, np.int32(plan.n_blocks))]
    ref = engine.two_point_maps(act, K, pairs)
    off = ~np.eye(len(Kaa), dtype=bool)
    for g, r in zip(got, ref, strict=True):
        assert np.max(np.abs(g - r)[off]) <= 1e-13 * np.max(np.abs(r))
    for d in (0, 1):  # the plan's diagonal = the exact 1-D integrals
        np.testing.assert_allclose(plan.diag[(d, d)], engine.one_point_core(act, (d, d), Kaa), rtol=1e-13)
