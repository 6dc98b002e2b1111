"""Residual MLPs (book App. B): the spec, the recursions (B.11)–(B.26) with the three-point feed, the closed
forms (B.15)–(B.36) and the ξ tuner (B.45).

Three ways: γ = 0 against the plain MLP (exact), multi-input against the single-input recursion and the deep
scan (independent paths), closed forms against the recursions and the digest's numbers; Monte Carlo in
tests/simulate/test_residual_ensemble.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepeft as de
from conftest import assert_close
from deepeft.errors import DeepEFTInputError
from deepeft.theory import residual as R
from deepeft.theory.residual_recursions import (
    intralayer_cross,
    residual_deep_single_input,
    residual_single_input,
    residual_vertex_flow,
)
from deepeft.theory.vertex import pair_derivatives, sigma_power_moments

X = np.array([[1.0, 0.2, -0.4], [0.3, -1.1, 0.5], [-0.7, 0.4, 1.2]])


# ---------------------------------------------------------------------------------------------- spec
def test_spec_fields_and_defaults():
    net = de.ResidualMLP(3, [8] * 4, 1, "tanh", C_b=0.1, C_W=0.5, gamma=0.6)
    assert net.L == 5 and net.n == (3, 8, 8, 8, 8, 1)
    assert net.gamma == (0.0, 0.6, 0.6, 0.6, 0.0)  # no skip at layer 1 nor into the width-1 output
    assert net.xi == (1.0,) * 5 and net.lambda_b == (1.0,) * 5
    for f in ("input_dim", "widths", "output_dim", "activation", "C_b", "C_W", "gamma", "xi", "lambda_b", "lambda_W"):
        assert hasattr(net, f)
    per = de.ResidualMLP(3, [8] * 2, 8, "relu", gamma=[0, 0.5, 0.5], xi=[1, 2, 3])
    assert per.gamma == (0.0, 0.5, 0.5) and per.xi == (1.0, 2.0, 3.0)
    assert net.replace(gamma=0.3).gamma[1] == 0.3 and hash(net) == hash(net.replace())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(widths=[8, 6], gamma=0.5), "equal hidden"),
        (dict(widths=[8, 8], gamma=[0.3, 0.5, 0.0]), "gamma\\[0\\]"),
        (dict(widths=[8, 8], output_dim=2, gamma=[0, 0.5, 0.5]), "equal hidden"),
        (dict(widths=[8, 8], xi=0.0), "xi"),
        (dict(widths=[8, 8], xi=[1, -1, 1]), "xi\\[1\\]"),
        (dict(widths=[8, 8], gamma=-0.1), "gamma"),
    ],
)
def test_spec_bad_input(kwargs, match):
    with pytest.raises(DeepEFTInputError, match=match):
        de.ResidualMLP(3, activation="tanh", **kwargs)


def test_gamma_one_has_no_critical_solution():
    de.ResidualMLP(3, [8] * 3, 1, "relu", gamma=1.0)  # allowed as an architecture
    for f in (lambda: R.residual_critical_point("relu", 1.0), lambda: R.residual_aspect_ratio("tanh", 2, 1.2),
              lambda: R.critical_xi(1.0, 1.0, 1.0)):  # fmt: skip
        with pytest.raises(DeepEFTInputError, match="no critical solution"):
            f()
    with pytest.raises(DeepEFTInputError, match="universality class"):
        R.residual_critical_point("sigmoid", 0.5)


# ------------------------------------------------------------------------------ γ = 0 is the plain MLP
@pytest.mark.parametrize("act, C_b, C_W", [("tanh", 0.1, 1.0), ("relu", 0.0, 2.0)])
def test_gamma_zero_reduces_to_mlp(act, C_b, C_W):
    res = de.ResidualMLP(3, [6] * 3, 2, act, C_b=C_b, C_W=C_W, gamma=0.0, lambda_W=[1, 2, 3, 4])
    mlp = res.mlp
    assert_close(de.kernel(res, X), de.kernel(mlp, X))
    assert_close(de.frozen_ntk(res, X), de.frozen_ntk(mlp, X))
    assert_close(de.kernel(res, X, X[:2]), de.kernel(mlp, X, X[:2]))
    assert_close(de.four_point_vertex(res, X[:2]), de.four_point_vertex(mlp, X[:2]), atol=1e-15)
    # ξ is redundant with ξ²(C_b, C_W, λ_b, λ_W) (B.6)
    xi = [1.0, 1.3, 0.7, 1.1]
    x2 = np.square(xi)
    scaled = de.MLP(3, [6] * 3, 2, act, C_b=C_b * x2, C_W=C_W * x2, lambda_b=x2, lambda_W=x2 * [1, 2, 3, 4])
    assert_close(de.four_point_vertex(res.replace(xi=xi), X[:2]), de.four_point_vertex(scaled, X[:2]), atol=1e-15)
    assert_close(de.frozen_ntk(res.replace(xi=xi), X), de.frozen_ntk(scaled, X))


# ------------------------------------------------------------------ multi-input vs single-input paths
@pytest.mark.parametrize("act, C_W", [("tanh", 0.6), ("relu", 1.2), ("gelu", 0.9)])
def test_multi_input_matches_single_input(act, C_W):
    net = de.ResidualMLP(3, [8] * 4, 8, act, C_b=0.05, C_W=C_W, gamma=[0, 0.6, 0.8, 0.5, 0.7], xi=[1, 1.2, 0.9, 1, 1.1])
    fl = residual_vertex_flow(net, X[:2])
    T = de.frozen_ntk(net, X[:2])
    for a in range(2):
        s = residual_single_input(net, X[a])
        assert_close(fl.K[:, a, a], s.K, "quadrature")
        assert_close(T[:, a, a], s.Theta, "quadrature")
        assert_close(fl.V[:, a, a, a, a], s.V, "quadrature", atol=1e-14)
        assert_close(fl.U[:, a, a, a] * 3, 3 * s.U, "quadrature", atol=1e-14)
    if act == "tanh":  # odd σ: no three-point correlator
        assert np.abs(fl.U).max() < 1e-15
    else:
        assert np.abs(fl.U).max() > 1e-2


def test_deep_scan_matches_single_input():
    for act, g in (("tanh", 0.7), ("relu", 0.6)):
        cp = R.residual_critical_point(act, g)
        L = 30
        net = de.ResidualMLP(1, [4] * (L - 1), 4, act, C_W=cp.C_W, gamma=[0] + [g] * (L - 1))
        s = residual_single_input(net, norm=1.0 / cp.C_W)  # K^{(1)} = 1
        K, V = residual_deep_single_input(act, 1.0, cp.C_W, g, L)
        assert_close(K, s.K, "quadrature")
        assert_close(V, s.V, "quadrature", atol=1e-14)


def test_intralayer_term_against_direct_integrals():
    """C_abcd = ⟨σ_aσ_b(z_cz_d − K_cd)⟩ by integration by parts vs the engine's 2-variable integrals."""
    K = np.array([[1.3, 0.4], [0.4, 0.8]])
    idxs = list(np.ndindex(2, 2, 2, 2))
    terms = tuple(tuple((sum(i == v for i in (a, b)), q * sum(i == v for i in (c, d))) for v in (0, 1))
                  for a, b, c, d in idxs for q in (1, 0))  # fmt: skip
    for act in ("tanh", "relu"):
        C = intralayer_cross(pair_derivatives(act, K, second=False).grad, K)
        m = sigma_power_moments(act, terms, K[None])[0].reshape(-1, 2)  # ⟨σσzz⟩, ⟨σσ⟩ per index tuple
        direct = np.array([m[k, 0] - m[k, 1] * K[c, d] for k, (a, b, c, d) in enumerate(idxs)])
        assert_close(C.ravel(), direct, "quadrature", atol=1e-12)


def test_three_point_source_against_direct_integrals():
    """U^{(2)}_{(ab)c} = γ C_W⟨σ_aσ_b z_c⟩_{K^{(1)}} (Stein form) vs direct integrals."""
    g, CW = 0.6, 1.1
    net = de.ResidualMLP(3, [5, 5], 5, "relu", C_b=0.2, C_W=CW, gamma=[0, g, g])
    fl = residual_vertex_flow(net, X[:2])
    idxs = list(np.ndindex(2, 2, 2))
    terms = tuple(tuple((sum(i == v for i in (a, b)), int(c == v)) for v in (0, 1)) for a, b, c in idxs)
    direct = sigma_power_moments("relu", terms, fl.K[0][None])[0]
    assert_close(fl.U[1].ravel(), g * CW * direct, "quadrature", atol=1e-12)


def test_book_recursion_single_input_form():
    """three_point=False is (B.26) as printed; with it the multi-input path equals the single-input one."""
    net = de.ResidualMLP(3, [6] * 3, 6, "relu", C_W=1.0, gamma=math.sqrt(0.5))
    fl = residual_vertex_flow(net, X[:1], three_point=False)
    s = residual_single_input(net, X[0], three_point=False)
    assert_close(fl.V[:, 0, 0, 0, 0], s.V, "quadrature")
    K = s.K[0]  # ReLU at C_W(γ) = 2(1 − γ²): K fixed, V⁺ = V + ν(γ)K² from ℓ = 2 on (B.28)
    assert_close(np.diff(s.V[:3]), [1.25 * K**2 + 1.0 * K**2] * 2, "quadrature")


# ---------------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("g2", [0.0, 0.3, 0.5, 0.8])
def test_nu_closed_forms(g2):
    g = math.sqrt(g2)
    assert_close(R.residual_nu("relu", g), (1 - g2) * (5 - g2))  # (B.29) with 3A₄/A₂² − 1 = 5
    assert_close(R.residual_nu("linear", g), 2 * (1 - g2**2))
    assert_close(R.residual_nu("tanh", g), 2 / 3 * (1 - g2**2))  # (B.35)
    assert_close(R.residual_critical_point("relu", g).C_W, 2 * (1 - g2))  # (B.20)
    assert_close(R.residual_critical_point("tanh", g).C_W, 1 - g2)  # (B.21)
    assert_close(R.residual_nu("tanh", g, three_point=True), R.residual_nu("tanh", g))
    assert_close(R.residual_nu("relu", g, three_point=True), (1 - g2) * (5 - g2) + 16 / math.pi * g * (1 - g) * (1 + g) ** 2)
    for act in ("tanh", "relu"):  # χ_∥ = χ_⊥ = 1 at the critical point (B.19)
        cp = R.residual_critical_point(act, g)
        K = 1.0 if act == "relu" else 1e-4
        chi_par, chi_perp = R.residual_susceptibilities(act, K, cp.C_W, g)
        tol = 1e-12 if act == "relu" else 1e-3  # K* = 0: χ = 1 + O(K)
        assert abs(chi_par - 1) < tol and abs(chi_perp - 1) < tol


@pytest.mark.parametrize("act, g2", [("relu", 0.5), ("relu", 0.8), ("leaky_relu", 0.5)])
def test_three_point_nu_is_the_deep_slope(act, g2):
    cp = R.residual_critical_point(act, math.sqrt(g2))
    K, V = residual_deep_single_input(act, 1.0, cp.C_W, math.sqrt(g2), 20_000)
    slope = V[-1] - V[-2]  # K is fixed on the scale-invariant line
    assert_close(slope, cp.nu_three_point, "solve")
    assert abs(slope - cp.nu) > 0.5  # the printed (B.29) misses the three-point feed


def test_aspect_ratio_numbers_of_the_digest():
    for nL, vals in {2: (3 / 13, 1 / 13, 2 / 65), 10: (0.12, 0.04, 0.016)}.items():
        for act, want in zip(("tanh", "linear", "relu"), vals, strict=True):
            assert_close(R.residual_aspect_ratio(act, nL), want)
    assert_close(R.residual_aspect_ratio("tanh", 100), 0.01875)
    assert_close(R.residual_aspect_ratio("relu", 100), 0.0025)
    assert_close(R.residual_aspect_ratio("tanh", 10, math.sqrt(0.5)), 0.16)  # (B.36)
    assert_close(R.residual_gamma_for_aspect_ratio("tanh", 10, 1.0) ** 4, 0.88, "solve")
    assert R.residual_gamma_for_aspect_ratio("relu", 10, 0.01) == 0.0  # r < r*(0): no skip helps
    for act, r in (("relu", 0.5), ("tanh", 3.0), ("linear", 0.2)):
        g = R.residual_gamma_for_aspect_ratio(act, 4, r)
        assert 0 < g < 1
        assert_close(R.residual_aspect_ratio(act, 4, g), r, "solve")


def test_critical_xi_solves_b45():
    g, zz, RR, Rz = 0.6, 1.3, 0.9, 0.2
    s = R.critical_xi(g, zz, RR, Rz)
    assert_close((1 - g**2) * zz, s.xi**2 * RR + 2 * g * s.xi * Rz)  # (B.45)
    assert_close(R.critical_xi(g, zz, RR).xi, math.sqrt((1 - g**2) * zz / RR))
    cov = np.diag([1e-4, 4e-4, 1e-4])
    se = R.critical_xi(g, zz, RR, Rz, cov).stderr
    rng = np.random.default_rng(0)  # delta method vs the spread of ξ over perturbed correlators
    draws = rng.multivariate_normal([zz, RR, Rz], cov, size=20_000)
    spread = np.std([R.critical_xi(g, *t).xi for t in draws[:4000]])
    assert abs(se / spread - 1) < 0.05


def test_residual_and_information_r_star_are_one_formula():
    """de.residual_aspect_ratio and de.optimal_aspect_ratio share deepeft.theory.aspect_ratio: equal for every γ."""
    for act in ("tanh", "relu", "linear"):
        for nL in (1, 2, 10):
            for g in (0.0, 0.4, math.sqrt(0.5)):
                assert R.residual_aspect_ratio(act, nL, g) == de.optimal_aspect_ratio(act, nL, g)
