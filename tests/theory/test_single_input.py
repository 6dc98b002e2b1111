"""Single-input recursions (book §5.4): helper functions, deep recursions, NLO metric, widths.

Independent paths: closed forms (scale-invariant, sin), expect1d quadrature of the book's other
formulas, mpmath, a Monte Carlo of the second layer, and a plain Python loop over layers.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError, DeepEFTWarning
from deepeft.gaussian.gauss1d import expect1d
from deepeft.theory.single_input import helper_functions, single_input, single_input_recursion

KS = np.array([1e-3, 0.05, 0.3, 1.0, 2.5, 7.0])


# ---------------------------------------------------------------------------------------------
# Helper functions g, χ_∥, χ_⊥, h, j, source
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0])
def test_scale_invariant_closed_forms_5_60_5_62_5_113(slope):
    act = de.activation("leaky_relu", slope=slope)
    A2, A4 = (1 + slope**2) / 2, (1 + slope**4) / 2
    C_W = 1.7
    hf = helper_functions(act, KS, C_W)
    np.testing.assert_allclose(hf.g, A2 * KS, rtol=1e-13)
    np.testing.assert_allclose(hf.chi_parallel, A2 * C_W, rtol=1e-13)
    np.testing.assert_allclose(hf.chi_perp, A2 * C_W, rtol=1e-13)
    np.testing.assert_allclose(hf.h, 0.0, atol=1e-12)
    np.testing.assert_allclose(hf.j / KS, 0.0, atol=1e-12)
    np.testing.assert_allclose(hf.source, C_W**2 * (3 * A4 - A2**2) * KS**2, rtol=1e-12)


def test_sin_closed_forms():
    C_W = 1.3
    hf = helper_functions("sin", KS, C_W)
    e2 = np.exp(-2 * KS)
    np.testing.assert_allclose(hf.g, (1 - e2) / 2, rtol=1e-13)  # digest §4
    np.testing.assert_allclose(hf.chi_parallel, C_W * e2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hf.chi_perp, C_W * (1 + e2) / 2, rtol=1e-13)
    np.testing.assert_allclose(hf.h, -C_W * e2 / 2, rtol=1e-10)  # ½ dχ_⊥/dK
    np.testing.assert_allclose(hf.j, -8 * C_W * KS**2 * e2, rtol=1e-9, atol=1e-15)  # 4C_W K² g″
    sin4 = 3 / 8 - e2 / 2 + np.exp(-8 * KS) / 8
    np.testing.assert_allclose(hf.source, C_W**2 * (sin4 - ((1 - e2) / 2) ** 2), rtol=1e-11)


@pytest.mark.parametrize("name", ["tanh", "gelu", "swish", "softplus", "erf"])
def test_helpers_match_expect1d_of_the_book_alternative_forms(name):
    """(5.50) first form C_W/(2K²)⟨σσ(z²−K)⟩ and (5.52) via d/dK (5.53), through expect1d."""
    act = de.activation(name)
    s = lambda z: act.numpy(z)  # noqa: E731
    ds = lambda z: act.numpy(z, 1)  # noqa: E731
    C_W = 1.9
    hf = helper_functions(act, KS, C_W)
    g = np.array([expect1d(lambda z: s(z) ** 2, k) for k in KS])
    chi_par = np.array([C_W / (2 * k**2) * expect1d(lambda z, k=k: s(z) ** 2 * (z * z - k), k) for k in KS])
    chi_perp = np.array([C_W * expect1d(lambda z: ds(z) ** 2, k) for k in KS])
    four = np.array([expect1d(lambda z: s(z) ** 4, k) for k in KS])
    np.testing.assert_allclose(hf.g, g, rtol=1e-12)
    np.testing.assert_allclose(hf.chi_parallel, chi_par, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(hf.chi_perp, chi_perp, rtol=1e-12)
    np.testing.assert_allclose(hf.source, C_W**2 * (four - g**2), rtol=1e-11)
    # h = ½ dχ_⊥/dK and j = 4 C_W K² g″ (central differences)
    eps = 1e-4 * KS
    hp, hm = helper_functions(act, KS + eps, C_W), helper_functions(act, KS - eps, C_W)
    np.testing.assert_allclose(hf.h, (hp.chi_perp - hm.chi_perp) / (4 * eps), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hf.chi_parallel, C_W * (hp.g - hm.g) / (2 * eps), rtol=1e-7)
    g2 = (hp.g - 2 * hf.g + hm.g) / eps**2
    sel = KS > 0.01
    np.testing.assert_allclose(hf.j[sel], 4 * C_W * KS[sel] ** 2 * g2[sel], rtol=2e-4, atol=1e-8)


def test_tanh_helpers_against_mpmath():
    K = 0.7
    mp.mp.dps = 30
    dens = lambda z: mp.exp(-z * z / (2 * K)) / mp.sqrt(2 * mp.pi * K)  # noqa: E731
    g = mp.quad(lambda z: dens(z) * mp.tanh(z) ** 2, [-mp.inf, 0, mp.inf])
    dd = mp.quad(lambda z: dens(z) * mp.sech(z) ** 4, [-mp.inf, 0, mp.inf])
    s4 = mp.quad(lambda z: dens(z) * mp.tanh(z) ** 4, [-mp.inf, 0, mp.inf])
    hf = helper_functions("tanh", K)
    assert abs(hf.g - float(g)) < 1e-15
    assert abs(hf.chi_perp - float(dd)) < 1e-15
    assert abs(hf.source - float(s4 - g**2)) < 1e-15


def test_tanh_small_K_expansions_5_121_to_5_123():
    K = np.array([1e-4, 3e-4, 1e-3])
    hf = helper_functions("tanh", K, 1.0)
    checks = [
        (hf.chi_parallel, 1 - 4 * K + 17 * K**2, 90 * K**3),  # (5.121), a₂ = 17/3
        (hf.chi_perp, 1 - 2 * K, 8 * K**2),  # (5.85), b₁ = −2
        (hf.source, 2 * K**2 - 16 * K**3, 120 * K**4),  # (5.122)
        (hf.j / (8 * K**2), -2 + 17 * K, 130 * K**2),  # (5.123)
    ]
    for got, want, tol in checks:
        assert np.all(np.abs(got - want) <= tol), (got, want)


def test_helper_input_validation():
    with pytest.raises(DeepEFTInputError, match="> 0"):
        helper_functions("tanh", [1.0, 0.0])
    with pytest.raises(DeepEFTInputError, match="C_W"):
        helper_functions("tanh", 1.0, C_W=-1.0)
    with pytest.raises(DeepEFTInputError, match="unknown activation"):
        helper_functions("tanhh", 1.0)


# ---------------------------------------------------------------------------------------------
# Deep recursions: book numbers (digest §5)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tanh_deep():
    return single_input_recursion("tanh", 1.0, 10_000)


def test_tanh_vertex_and_bare_nlo_metric_book_numbers(tanh_deep):
    r = tanh_deep
    ell = np.array([2, 3, 5, 10, 30, 100])
    vk2 = r.V[ell - 1] / r.K[ell - 1] ** 2
    assert np.all(np.abs(vk2 - [0.627, 1.213, 2.408, 5.52, 18.5, 64.8]) <= [5e-4] * 3 + [5e-3] + [0.05] * 2), vk2
    ell = np.array([3, 5, 10, 30, 100])
    np.testing.assert_allclose(r.G1[ell - 1], [-0.031, -0.068, -0.107, -0.143, -0.159], atol=5e-4)
    assert r.V[0] == 0 and r.G1[0] == 0 and r.G1[1] == 0


def test_tanh_slow_convergence_book_numbers(tanh_deep):
    r = tanh_deep
    ell = np.array([100, 1000, 10_000])
    lk = ell * r.K[ell - 1]
    assert np.all(np.abs(lk - [0.512, 0.5017, 0.5002]) <= [5e-4, 5e-5, 5e-5]), lk
    vk = r.V[ell - 1] / r.K[ell - 1] ** 2 / ell
    assert np.all(np.abs(vk - [0.648, 0.664, 0.6664]) <= [5e-4, 5e-4, 5e-5]), vk
    # V/(nK²) = (2/3) ℓ/n (5.131) and G¹ → −1/(3(−a₁)) = −1/6 (5.134)
    assert abs(r.normalized_vertex(n=1000)[-1] - (2 / 3) * 10) < 0.01
    assert abs(r.G1[-1] + 1 / 6) < 2e-4
    np.testing.assert_allclose(r.excess_kurtosis(n=64), 3 * r.V / (64 * r.K**2))


def test_sin_asymptotics():
    r = single_input_recursion("sin", 1.0, 20_000)
    ell = np.array([2000, 20_000])
    # K ≈ 1/ℓ, V ≈ 2/(3ℓ) with log ℓ/ℓ² corrections (5.94), (5.127)
    lk, lv = ell * r.K[ell - 1], ell * r.V[ell - 1]
    print("sin ℓK", lk, "ℓV", lv)
    assert np.all(np.abs(lk - 1.0) <= [3e-3, 5e-4]), lk
    assert np.all(np.abs(lv - 2 / 3) <= [6e-3, 1e-3]), lv


@pytest.mark.parametrize("name, params, nu", [("relu", {}, 5.0), ("linear", {}, 2.0), ("leaky_relu", {"slope": 0.3}, None)])
def test_scale_invariant_vertex_is_exactly_linear_5_120(name, params, nu):
    act = de.activation(name, **params)
    A2, A4 = (act.a_plus**2 + act.a_minus**2) / 2, (act.a_plus**4 + act.a_minus**4) / 2
    nu = 3 * A4 / A2**2 - 1 if nu is None else nu
    Kstar = 0.8
    r = single_input_recursion(act, Kstar, 50, C_W=1 / A2)
    ell = r.layers
    np.testing.assert_allclose(r.K, Kstar, rtol=1e-13)
    np.testing.assert_allclose(r.V, (ell - 1) * nu * Kstar**2, rtol=1e-12)
    np.testing.assert_allclose(r.G1, 0.0, atol=1e-10)  # (5.117), up to quadrature roundoff in j


def test_semicritical_relu_kernel_grows_linearly_and_vertex_ratio():
    r = single_input_recursion("relu", 1.0, 3000, C_b=0.5, C_W=2.0)
    np.testing.assert_allclose(r.K, 1.0 + 0.5 * (r.layers - 1), rtol=1e-11)  # ~2e-16 drift per layer
    # [derived] V/K² → (3A₄/A₂² − 1) ℓ/3 = 5ℓ/3
    ell = r.layers[-1]
    assert abs(r.V[-1] / r.K[-1] ** 2 / ell - 5 / 3) < 5e-3


def test_renormalized_nlo_metric_erratum_5_143():
    """c_W¹ = (2/3) c_W⁰ (5.142): ℓ G¹ → 89/72 (tanh), 20/9 (sin); the printed (5.143) gives 13/12, 2/3."""
    from deepeft.theory.criticality import criticality

    for name, want, book in [("tanh", 89 / 72, 13 / 12), ("sin", 20 / 9, 2 / 3)]:
        tay = criticality(name, exponents=False).taylor
        assert abs(tay.G1_renormalized_coefficient - want) < 1e-12
        assert abs(tay.G1_renormalized_coefficient_book - book) < 1e-12
        r = single_input_recursion(name, 1.0, 50_000, c_W1=2 / 3)
        ell = r.layers.astype(float)
        lg = ell * r.G1
        sel = ell >= 1000
        L = np.log(ell[sel])
        A = np.stack([np.ones(sel.sum()), L / ell[sel], 1 / ell[sel], L**2 / ell[sel] ** 2], 1)
        coef = np.linalg.lstsq(A, lg[sel], rcond=None)[0]
        print(name, "ℓG¹(5e4) =", lg[-1], "extrapolated", coef[0], "want", want)
        assert abs(coef[0] - want) < 2e-3 * want
        assert abs(coef[0] - book) > 0.1


# ---------------------------------------------------------------------------------------------
# Independent paths: plain loop over layers (NumPy helper path), Monte Carlo, widths
# ---------------------------------------------------------------------------------------------


def _python_loop(act, K1, Cb, CW, widths, cb1, cW1):
    L = len(CW)
    K, V, G = [K1], [0.0], [0.0]
    n = [None, *widths]
    for ell in range(1, L):
        hf = helper_functions(act, K[-1], CW[ell])
        ratio = n[ell] / n[ell - 1] if ell >= 2 else 1.0
        K.append(Cb[ell] + CW[ell] * float(hf.g))
        nlo = float(hf.chi_parallel) * G[-1] + float(hf.j) * V[-1] / (8 * K[-2] ** 2)
        G.append(cb1[ell] + cW1[ell] * float(hf.g) + ratio * nlo)
        V.append(ratio * float(hf.chi_parallel) ** 2 * V[-1] + float(hf.source))
    return np.array(K), np.array(V), np.array(G)


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_scan_matches_layer_by_layer_quadrature_with_per_layer_hyperparameters_and_widths(name):
    L = 7
    Cb = [0.0, 0.1, 0.05, 0.2, 0.0, 0.1, 0.3]
    CW = [1.0, 1.2, 0.9, 1.5, 1.1, 2.0, 1.3]
    widths = [30, 60, 45, 90, 20, 50]
    cb1 = [0.0, 0.1, 0.0, -0.2, 0.3, 0.0, 0.1]
    cW1 = [0.0, 0.5, 0.2, 0.0, -0.1, 0.4, 0.0]
    act = de.activation(name)
    r = single_input_recursion(act, 0.9, L, C_b=Cb, C_W=CW, widths=widths, c_b1=cb1, c_W1=cW1)
    K, V, G = _python_loop(act, 0.9, Cb, CW, widths, cb1, cW1)
    np.testing.assert_allclose(r.K, K, rtol=1e-13)
    np.testing.assert_allclose(r.V, V, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(r.G1, G, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(r.metric(), r.K + r.G1 / np.array([np.inf, *widths]))


def test_unequal_widths_scale_invariant_derived_formula():
    """[derived] V^{(ℓ)}/n_{ℓ−1} = (3A₄/A₂² − 1) K*² Σ_{ℓ'<ℓ} 1/n_{ℓ'} at scale-invariant criticality."""
    widths = [100, 300, 50, 200, 80]
    r = single_input_recursion("relu", 1.3, 6, C_W=2.0, widths=widths)
    got = r.normalized_vertex() * r.K**2
    want = 5.0 * 1.3**2 * np.concatenate([[0.0], np.cumsum(1.0 / np.array(widths))])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # equal widths: widths=n and n= agree
    a = single_input_recursion("tanh", 1.0, 5, widths=64).normalized_vertex()
    b = single_input_recursion("tanh", 1.0, 5).normalized_vertex(n=64)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_second_layer_vertex_against_monte_carlo():
    """V^{(2)}/n₁ = Var[Ĝ^{(2)}] exactly (4.40); sample first-layer preactivations z ~ N(0, K¹)."""
    rng = np.random.default_rng(7)
    K1, C_b, C_W, n1, S = 0.8, 0.1, 1.4, 4, 400_000
    z = rng.normal(0.0, math.sqrt(K1), size=(S, n1))
    G = C_b + C_W * np.mean(np.tanh(z) ** 2, axis=1)
    var = G.var(ddof=1)
    se = var * math.sqrt(2.0 / (S - 1)) * math.sqrt(1 + 0.5 * (np.mean((G - G.mean()) ** 4) / var**2 - 3))
    r = single_input_recursion("tanh", K1, 2, C_b=C_b, C_W=C_W, widths=[n1])
    zscore = (var - r.V[1] / n1) / se
    print("second-layer Var[Ĝ]: MC", var, "theory", r.V[1] / n1, "z =", zscore)
    assert abs(zscore) < Z_MAX
    assert abs(G.mean() - r.K[1]) < 5 * G.std() / math.sqrt(S)


def test_width_ratio_placement_4_119_against_monte_carlo():
    """Var[Ĝ^{(3)}] = V^{(3)}/n₂ with V^{(3)} = source + (n₂/n₁)χ_∥²V^{(2)}: sample layer 2 of real networks
    (n₁ = 25 → n₂ = 100). Tolerance: Z_MAX standard errors plus the O(1/n₁) next-order correction; the
    reversed ratio n₁/n₂ would be off by a factor ≈ 2."""
    rng = np.random.default_rng(11)
    K1, C_b, C_W, n1, n2, S = 1.0, 0.0, 1.0, 25, 100, 20_000
    G = np.empty(S)
    for c in range(0, S, 2000):
        m = min(2000, S - c)
        s1 = np.tanh(rng.normal(0.0, math.sqrt(K1), size=(m, n1)))
        W = rng.normal(0.0, math.sqrt(C_W / n1), size=(m, n2, n1))
        z2 = np.einsum("sij,sj->si", W, s1)  # C_b = 0: no bias
        G[c : c + m] = C_b + C_W * np.mean(np.tanh(z2) ** 2, axis=1)
    var = G.var(ddof=1)
    kurt = np.mean((G - G.mean()) ** 4) / var**2
    se = var * math.sqrt((kurt - 1) / S)
    r = single_input_recursion("tanh", K1, 3, C_b=C_b, C_W=C_W, widths=[n1, n2])
    theory = r.V[2] / n2
    reversed_ratio = (r.source[1] + (n1 / n2) * r.chi_parallel[1] ** 2 * r.V[1]) / n2
    print(f"Var[Ĝ3]: MC {var:.6g} ± {se:.2g}, theory {theory:.6g} (z = {(var - theory) / se:.2f}), reversed {reversed_ratio:.6g}")
    assert abs(var - theory) < Z_MAX * se + 1.5 * theory / n1
    assert abs(var - reversed_ratio) > 0.3 * theory


def test_custom_activation_with_a_kink_away_from_zero():
    """Kinks at c ≠ 0 move with K in x = z/√K: the scan rebuilds the split rule per layer."""
    act = de.activation(lambda z: jnp.where(z >= 0.5, z - 0.5, 0.1 * (z - 0.5)), kinks=(0.5,), name="shifted_leaky")
    r = single_input_recursion(act, 1.0, 6, C_b=0.1, C_W=1.5)
    K, V, G = _python_loop(act, 1.0, [0.1] * 6, [1.5] * 6, [1] * 5, [0.0] * 6, [0.0] * 6)
    np.testing.assert_allclose(r.K, K, rtol=1e-13)
    np.testing.assert_allclose(r.V, V, rtol=1e-12)
    hf = helper_functions(act, 1.0, 1.5)
    ref = expect1d(lambda z: act.numpy(z) ** 2, 1.0, kinks=(0.5,))
    assert abs(hf.g - ref) < 1e-14


def test_single_input_from_network_uses_5_2():
    net = de.MLP(input_dim=4, widths=[32, 32, 32], activation="tanh", C_b=0.1, C_W=[1.5, 1.0, 1.0, 1.0])
    x = np.array([1.0, -2.0, 0.5, 0.0])
    r = single_input(net, x)
    assert r.L == net.L == 4
    assert abs(r.K[0] - (0.1 + 1.5 * np.mean(x**2))) < 1e-15
    assert r.widths == (32, 32, 32)
    assert np.isfinite(r.normalized_vertex()).all()
    r2 = single_input(net, norm=np.mean(x**2))
    np.testing.assert_allclose(r.K, r2.K)


def test_recursion_validation_and_overflow_warning():
    with pytest.raises(DeepEFTInputError, match="depth must be >= 1"):
        single_input_recursion("tanh", 1.0, 0)
    with pytest.raises(DeepEFTInputError, match="K1"):
        single_input_recursion("tanh", 0.0, 3)
    with pytest.raises(DeepEFTInputError, match="L − 1 = 2"):
        single_input_recursion("tanh", 1.0, 3, widths=[10, 10, 10])
    with pytest.raises(DeepEFTInputError, match="C_W must be finite"):
        single_input_recursion("tanh", 1.0, 3, C_W=float("nan"))
    with pytest.raises(DeepEFTInputError, match="without widths"):
        single_input_recursion("tanh", 1.0, 3).normalized_vertex()
    with pytest.warns(DeepEFTWarning, match="overflows"):
        r = single_input_recursion("relu", 1.0, 2500, C_W=4.0)
    assert not np.isfinite(r.K[-1]) or r.K[-1] > 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single_input_recursion("relu", 1.0, 100, C_W=2.0)


def test_deep_recursion_is_fast():
    import time

    single_input_recursion("tanh", 1.0, 100_000)  # warm-up (compile)
    t = time.perf_counter()
    r = single_input_recursion("tanh", 1.0, 100_000)
    dt = time.perf_counter() - t
    print(f"tanh 1e5 layers: {dt:.3f} s")
    assert abs(1e5 * r.K[-1] - 0.5) < 1e-4
    assert dt < 5.0  # target < 1 s on an idle machine (benchmarks/bench_recursions.py); generous under load


def test_single_input_fast_path_agrees_with_the_multi_input_path():
    """DESIGN: the single-input scan and the multi-input engine (theory.kernel / theory.vertex) must agree."""
    from deepeft.theory.kernel import kernel
    from deepeft.theory.vertex import vertex_flow

    net = de.MLP(3, [20, 40, 30], activation="tanh", C_b=0.1, C_W=[1.2, 1.0, 1.5, 0.9])
    x = np.array([[0.3, -1.0, 2.0]])
    r = single_input(net, x[0])
    vf = vertex_flow(net, x, nlo=True)
    np.testing.assert_allclose(r.K, kernel(net, x)[:, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(r.V, vf.V[:, 0, 0, 0, 0], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(r.G1, vf.G1[:, 0, 0], rtol=1e-9, atol=1e-14)


def test_nlo_metric_stays_finite_when_the_kernel_underflows():
    """Ordered phase (SWISH, C_W = 1.5 < C_W*): K decays below 1e-154, where K² underflows; G¹'s source
    j·V/(8K²) must be evaluated as (V/K)/K (it was NaN for 2635 of 3000 layers)."""
    from deepeft.theory.single_input import single_input_recursion

    r = single_input_recursion("swish", 1.0, 3000, widths=50, C_W=1.5)
    assert np.all(np.isfinite(r.G1)) and np.all(np.isfinite(r.metric()))
    assert r.K[400] < 1e-154 and 0 < r.G1[360] < 1e-150
