"""Single-input NTK recursions (9.13)–(9.16): vs the multi-input path at N = 1, scale-invariant closed
forms (9.44)–(9.51) (exact A), K* = 0 asymptotics (9.71)–(9.86) and the normalised ℓ/n ratios."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft.theory.ntk_single_input import (
    k_star_zero_asymptotics,
    ntk_single_input,
    scale_invariant_closed_forms,
)


@pytest.mark.parametrize("act, C_b, C_W", [("relu", 0.0, 2.0), ("tanh", 0.1, 1.2), ("gelu", 0.05, 1.5)])
def test_single_input_equals_multi_input_at_N1(act, C_b, C_W):
    """Independent route: (9.13)–(9.16) with helper functions vs (8.77)–(8.97) at N = 1, per-layer λ's, unequal widths."""
    lb = [0.5, 0.3, 0.2, 0.4, 0.7]
    lw = [1.5, 1.0, 2.0, 0.5, 1.0]
    net = de.MLP(3, [30, 50, 40, 60], 1, act, C_b=C_b, C_W=C_W, lambda_b=lb, lambda_W=lw)
    x = np.array([0.8, -1.1, 0.5])
    s = ntk_single_input(net, x)
    m = de.ntk_fluctuations(net, x[None])
    np.testing.assert_allclose(s.Theta, m.Theta[:, 0, 0], rtol=1e-12)
    for k in "ABDF":
        ref = getattr(m, k)[:, 0, 0, 0, 0]
        np.testing.assert_allclose(getattr(s, k), ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max(), err_msg=k)


@pytest.mark.parametrize("a_plus, a_minus, lb, lw", [(1.0, 0.0, 1.0, 1.0), (1.0, -0.4, 0.3, 2.0), (0.7, 0.2, 0.0, 1.0)])
def test_scale_invariant_closed_forms_exact(a_plus, a_minus, lb, lw):
    act = de.activation("scale_invariant", a_plus=a_plus, a_minus=a_minus)
    A2 = (a_plus**2 + a_minus**2) / 2
    net = de.MLP(2, [64] * 199, 1, act, C_b=0.0, C_W=1 / A2, lambda_b=lb, lambda_W=lw)
    s = ntk_single_input(net, norm=1.3)
    K = net.C_W[0] * 1.3
    cf = scale_invariant_closed_forms(s.layers, a_plus=a_plus, a_minus=a_minus, K_star=K, lambda_b=lb, lambda_W=lw)
    for k in ("Theta", "V", "A", "B", "D", "F"):
        np.testing.assert_allclose(getattr(s, k), cf[k], rtol=1e-11, atol=1e-13 * np.abs(cf[k]).max(), err_msg=k)


def test_relu_normalised_ratios_digest():
    """ReLU, λ_b = 0: F/(nKΘ) = (ℓ−1)/n, D/(nKΘ) = 3(ℓ−1)/n, B/(nΘ²) → 2ℓ/(3n), A/(nΘ²) → 7ℓ/(3n)."""
    net = de.MLP(2, [100] * 999, 1, "relu", C_W=2.0, lambda_b=0.0, lambda_W=1.0)
    s = ntk_single_input(net, norm=1.0)
    r = s.normalized()
    ell = s.layers
    np.testing.assert_allclose(r["F"], (ell - 1) / 100, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(r["D"], 3 * (ell - 1) / 100, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(r["B"][-1] / (2 * ell[-1] / 300), 1, atol=2e-3)
    np.testing.assert_allclose(r["A"][-1] / (7 * ell[-1] / 300), 1, atol=2e-3)


def _tanh_like(act, L, lb_t=1.0, lw_t=1.0):
    ak = k_star_zero_asymptotics(act, np.arange(1, L + 1), lambda_b_tilde=lb_t, lambda_W_tilde=lw_t)
    pp = ak["p_perp"]
    ell = np.arange(1, L + 1)
    net = de.MLP(
        1,
        [100] * (L - 1),
        1,
        act,
        C_b=0.0,
        C_W=1 / ak["sigma1"] ** 2,
        lambda_b=lb_t * ell ** (-pp),
        lambda_W=lw_t * ell ** (1 - pp),
    )  # (9.70)
    return ntk_single_input(net, norm=1.0), ak


# Measured deviations of the recursion from (9.71)–(9.86), λ̃_b = λ̃_W = 1 (tanh | sin): at ℓ = 100
# K 2.4 | 1.6 %, Θ 0.8 | 1.9 %, F 1.9 | 0.4 %, D 2.6 | 2.3 %, B 4.2 | 4.8 %, A 9.1 | 7.7 % — the digest's "1–3 %"
# holds for K, Θ, F, D, not for the raw B and A; every one shrinks ~ (log ℓ)/ℓ (A: 2.2 % at 10³, 0.44 % at 10⁴).
BOUNDS = {
    100: {"K": 0.03, "Theta": 0.025, "B": 0.055, "F": 0.025, "D": 0.03, "A": 0.10},
    1000: {"K": 0.004, "Theta": 0.005, "B": 0.014, "F": 0.006, "D": 0.01, "A": 0.027},
    10000: {"K": 5e-4, "Theta": 1e-3, "B": 3e-3, "F": 1.2e-3, "D": 2.2e-3, "A": 5.5e-3},
}


@pytest.mark.parametrize("act", ["tanh", "sin"])
def test_k_star_zero_asymptotics(act):
    s, ak = _tanh_like(act, 10_000, 1.0, 1.0)
    prev = None
    for ell, bounds in BOUNDS.items():
        dev = {k: abs(getattr(s, k)[ell - 1] / ak[k][ell - 1] - 1) for k in bounds}
        print(act, ell, {k: round(v, 5) for k, v in dev.items()})
        for k, b in bounds.items():
            assert dev[k] < b, (ell, k, dev[k])
            if prev is not None:
                assert dev[k] < prev[k]  # tighter at larger ℓ
        prev = dev
    # a 3 % perturbation of the asymptotic coefficients is resolved at ℓ = 10⁴
    assert all(abs(getattr(s, k)[-1] / (1.03 * ak[k][-1]) - 1) > 0.02 for k in ("Theta", "A", "B", "D", "F"))


def test_tanh_normalised_ratios_and_deep_run():
    """Normalised ratios (digest, p⊥ = 1): F/(nKΘ) → ℓ/(4n), B/(nΘ²) → ℓ/(3n), D/(nKΘ) → −(2/9)(λ̃_b/c)ℓ/n,
    A/(nΘ²) → (4/27)(λ̃_b/c)²ℓ/n, V/(nK²) → (2/3)ℓ/n, c = λ̃_b + λ̃_W/2; 10⁵ layers stay finite."""
    s, _ak = _tanh_like("tanh", 100_000, 0.8, 1.4)
    r = s.normalized(n=1.0)
    ell = 100_000
    c = 0.8 + 0.7
    lim = {"F": ell / 4, "B": ell / 3, "D": -(2 / 9) * (0.8 / c) * ell, "A": (4 / 27) * (0.8 / c) ** 2 * ell, "V": 2 / 3 * ell}
    for k, v in lim.items():
        assert abs(r[k][-1] / v - 1) < 1e-3, (k, r[k][-1] / v)
    assert all(np.all(np.isfinite(getattr(s, k))) for k in ("K", "Theta", "A", "B", "D", "F"))


def test_invalid():
    with pytest.raises(de.DeepEFTInputError, match="jump"):
        ntk_single_input(de.MLP(1, [5], 1, "perceptron"))
    with pytest.raises(de.DeepEFTInputError, match="K\\* = 0"):
        k_star_zero_asymptotics("relu", [1, 2])
    with pytest.raises(de.DeepEFTInputError, match="MLP"):
        ntk_single_input("tanh")


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu", "erf", "elu", "hardtanh"])
def test_extra_moments_match_expect1d(act):
    """⟨σσσ′σ′⟩, ⟨σ′⁴⟩ of the engine's trajectory rule (closed form, jitted fixed-node rule, or per-K rule for a
    breakpoint c ≠ 0) vs the adaptive 1-D quadrature, K over 5 decades."""
    from deepeft.gaussian.engine import one_point_trajectory
    from deepeft.gaussian.gauss1d import expect1d

    if act == "hardtanh":
        a = de.activation(lambda z: jnp.clip(z, -1.0, 1.0), name="hardtanh", kinks=(-1.0, 1.0))
    else:
        a = de.activation(act)
    K = np.geomspace(1e-4, 30.0, 40)
    s = a.numpy
    bp = a.breakpoints
    ref = np.array([expect1d(lambda z: s(z) ** 2 * s(z, 1) ** 2, K, bp), expect1d(lambda z: s(z, 1) ** 4, K, bp)])
    np.testing.assert_allclose(one_point_trajectory(a, ((0, 0, 1, 1), (1, 1, 1, 1)), K), ref, rtol=1e-10)
    if a.smooth:  # σ″, σ‴ and z-weighted terms (the dNTK/ddNTK moments) through the same engine rule
        ref2 = np.array([expect1d(lambda z: s(z, 2) ** 2, K), expect1d(lambda z: z * s(z, 3) * s(z, 1) ** 3, K)])
        got = one_point_trajectory(a, ((2, 2), de.Factor((1, 1, 1, 3), 1)), K)
        np.testing.assert_allclose(got, ref2, rtol=1e-10, atol=1e-13 * np.abs(ref2).max())
    else:
        with pytest.raises(de.DeepEFTInputError, match="needs a smooth activation"):
            one_point_trajectory(a, ((2, 2),), K)
