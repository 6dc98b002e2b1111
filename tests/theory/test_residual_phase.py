"""``de.criticality`` and ``de.phase`` accept a ResidualMLP (issue 15), routed by deepeft.dispatch to the residual
critical point: γ = 0 equals the MLP's result; γ > 0 matches C_b = 0, C_W(γ) = (1 − γ²)/A₂ or (1 − γ²)/σ₁²
(B.20)–(B.21), ν(γ) (B.29)/(B.35), and χ_∥ = χ_⊥ = 1 along a critical scale-invariant residual flow (B.15)–(B.16)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import deepeft as de
from deepeft.errors import DeepEFTInputError, DeepEFTWarning


def _res(act, gamma, C_W, L=6, n=16, **kw):
    return de.ResidualMLP(3, [n] * (L - 1), 1, act, C_b=0.0, C_W=C_W, gamma=gamma, **kw)


@pytest.mark.parametrize("act, C_W", [("tanh", 1.0), ("relu", 2.0)])
def test_gamma_zero_equals_the_mlp(act, C_W):
    net = _res(act, 0.0, C_W)
    c_res, c_mlp = de.criticality(net).critical, de.criticality(net.mlp).critical
    assert (c_res.C_b, c_res.C_W, c_res.K_star) == (c_mlp.C_b, c_mlp.C_W, c_mlp.K_star)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepEFTWarning)
        p_res, p_mlp = de.phase(net, norm=0.7), de.phase(net.mlp, norm=0.7)
    assert p_res.regime == p_mlp.regime
    for f in ("chi_parallel", "chi_perp", "K_out", "normalized_vertex_out", "efolds_parallel", "efolds_perp"):
        assert getattr(p_res, f) == pytest.approx(getattr(p_mlp, f), rel=1e-10, abs=1e-13), f


@pytest.mark.parametrize("act, C_W0, params", [("tanh", 1.0, {}), ("relu", 2.0, {}),
                                               ("leaky_relu", 1 / 0.625, {"slope": 0.5})])
@pytest.mark.parametrize("gamma", [0.3, math.sqrt(0.5), 0.9])
def test_critical_point_is_B20_B21(act, C_W0, params, gamma):
    net = _res(de.activation(act, **params), gamma, 1.0)
    crit = de.criticality(net)
    cp = crit.critical
    assert cp.C_b == 0.0 and cp.C_W == pytest.approx((1 - gamma**2) * C_W0, rel=1e-12)  # (B.20)–(B.21)
    assert crit.constants["gamma"] == gamma and crit.exponents is None
    if act == "tanh":
        assert crit.constants["nu"] == pytest.approx(2 / 3 * (1 - gamma**4), rel=1e-12)  # (B.35)
        assert cp.K_star == 0.0
    else:
        A2 = crit.constants["A2"]
        nu0 = 3 * crit.constants["A4"] / A2**2 - 1
        u = 1 - gamma**2
        assert crit.constants["nu"] == pytest.approx(u * (u * nu0 + 4 * gamma**2), rel=1e-12)  # (B.29)
        assert cp.K_star is None and cp.stability == "line"


def test_phase_at_and_off_the_residual_critical_point():
    g = 0.6
    crit = _res("relu", g, 1.0, L=8, n=128)
    net = crit.replace(C_W=de.criticality(crit).critical.C_W)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepEFTWarning)  # critical: no warning
        ph = de.phase(net)
    assert ph.regime == "critical"
    assert ph.chi_parallel == pytest.approx(1.0, abs=1e-12) and ph.chi_perp == pytest.approx(1.0, abs=1e-12)  # (B.15)–(B.16)
    r = de.theory.residual_recursions.residual_single_input(net)
    assert ph.normalized_vertex_out == pytest.approx(r.V[-1] / (128 * r.K[-1] ** 2), rel=1e-14)
    hot = _res("relu", g, 2.0, L=30, n=1000)  # C_W = 2 > C_W(γ) = 1.28: χ_∥ = χ_⊥ = γ² + C_W A₂ = 1.36 (B.15)–(B.16)
    with pytest.warns(DeepEFTWarning) as caught:
        ph = de.phase(hot)
    said = " ".join(str(w.message) for w in caught)
    assert "grows exponentially" in said and "gradients explode" in said
    assert "exploding kernel" in ph.regime and "chaotic" in ph.regime
    assert ph.chi_parallel == pytest.approx(g**2 + 1.0, rel=1e-12) and ph.chi_perp == pytest.approx(g**2 + 1.0, rel=1e-12)
    assert np.all(np.isfinite(ph.recursion.K))


@pytest.mark.parametrize("net, match", [
    (lambda: de.ResidualMLP(3, [8] * 4, 1, "tanh", gamma=[0, 0.5, 0.3, 0.5, 0]), "different γ"),
    (lambda: _res("tanh", 1.0, 1.0), "no critical solution"),
    (lambda: _res("gelu", 0.5, 1.0), "universality class"),
])
def test_residual_criticality_refusals(net, match):
    with pytest.raises(DeepEFTInputError, match=match):
        de.criticality(net())
