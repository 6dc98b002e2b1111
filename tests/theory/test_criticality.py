"""Criticality, universality classes and regime diagnostics (book §5.2–§5.3, digest §4)."""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft.errors import DeepEFTInputError, DeepEFTWarning
from deepeft.theory.criticality import criticality, fit_exponent, phase
from deepeft.theory.single_input import helper_functions, single_input_recursion


@pytest.fixture(scope="module")
def gelu():
    return criticality("gelu", exponents=False)


@pytest.fixture(scope="module")
def swish():
    return criticality("swish", exponents=False)


def test_tanh_is_K0_class_with_book_taylor_data():
    c = criticality("tanh")
    assert c.universality_class == "K*=0"
    p = c.critical
    assert (p.C_b, p.C_W, p.K_star, p.stability) == (0.0, 1.0, 0.0, "stable")
    t = c.taylor
    assert abs(t.a1 + 2) < 1e-12 and abs(t.a2 - 17 / 3) < 1e-12 and abs(t.b1 + 2) < 1e-12  # (5.86)–(5.88)
    assert abs(t.p_perp - 1) < 1e-12
    assert abs(t.G1_bare_limit + 1 / 6) < 1e-12  # (5.134)
    assert c.nlo_tuning == (0.0, 2.0 / 3.0)  # (5.142)
    e = c.exponents
    print(e)
    for k, want in {"p0": 1.0, "p_parallel": 2.0, "p_perp": 1.0, "p_V": 1.0}.items():
        assert e.predicted[k] == want
        assert abs(e.fitted[k] - want) < 5e-3, (k, e.fitted[k])
    assert "tanh" in str(c)


def test_sin_taylor_and_erf_critical_C_W():
    s = criticality("sin", exponents=False)
    assert s.universality_class == "K*=0"
    assert (s.taylor.a1, s.taylor.b1) == pytest.approx((-1.0, -1.0)) and s.taylor.a2 == pytest.approx(2 / 3)
    e = criticality("erf", exponents=False)  # σ₁ = 2/√π ⇒ C_W = π/4 (5.90)
    assert e.universality_class == "K*=0" and e.critical.C_W == pytest.approx(math.pi / 4, rel=1e-12)
    sh = criticality("shifted_sigmoid", exponents=False)  # σ − ½: σ₁ = 1/4 ⇒ C_W = 16, a₁ = −1/2
    assert sh.critical.C_W == pytest.approx(16.0) and sh.taylor.a1 == pytest.approx(-0.5)


@pytest.mark.parametrize(
    "name, params, C_W, nu, rho",
    [
        ("relu", {}, 2.0, 5.0, 1 / math.pi),
        ("linear", {}, 1.0, 2.0, 0.0),
        ("leaky_relu", {"slope": 0.2}, 2 / 1.04, 6 * (1 + 0.2**4) / 1.04**2 - 1, 0.64 / (1.04 * math.pi)),
    ],
)
def test_scale_invariant_line(name, params, C_W, nu, rho):
    c = criticality(name, exponents=False, **params)
    assert c.universality_class == "scale-invariant"
    (p,) = c.points
    assert p.K_star is None and p.stability == "line" and p.C_b == 0.0
    assert p.C_W == pytest.approx(C_W, rel=1e-14)
    assert c.constants["nu"] == pytest.approx(nu, rel=1e-13)
    assert c.constants["rho"] == pytest.approx(rho, rel=1e-13, abs=1e-16)
    np.testing.assert_allclose(c.ratio, 1.0, atol=1e-12)
    assert c.nlo_tuning == (0.0, 0.0)


def test_relu_exponents_fitted():
    e = criticality("relu").exponents
    for k, want in {"p0": 0.0, "p_parallel": 0.0, "p_perp": 0.0, "p_V": -1.0}.items():
        assert abs(e.fitted[k] - want) < 1e-6, (k, e.fitted[k])


def test_gelu_half_stable_book_digits_and_footnote_21_erratum(gelu):
    assert gelu.universality_class == "half-stable"
    zero = [p for p in gelu.points if p.K_star == 0.0][0]
    assert (zero.C_b, zero.C_W, zero.stability) == (0.0, pytest.approx(4.0), "unstable")  # (0, 4)
    assert zero.a1_tilde == pytest.approx(6 / math.pi, rel=1e-12)  # (−a₁) = −6/π
    p = gelu.critical
    assert abs(p.K_star - (3 + math.sqrt(17)) / 2) < 1e-9  # (5.105)
    assert round(p.C_b, 8) == 0.17292239 and round(p.C_W, 8) == 1.98305826
    assert abs(-p.a1_tilde - 1.43626419e-4) < 1e-12
    assert p.attracting_side == "above"
    # footnote 21 says ≈ 3.2; the root of K = C_b + C_W g(K) below K* is 3.0350 (erratum)
    assert abs(p.trivial_fixed_point - 3.0350) < 5e-5
    Ks = p.trivial_fixed_point
    assert abs(p.C_b + p.C_W * helper_functions("gelu", Ks).g - Ks) < 1e-12


def test_swish_half_stable_book_digits_and_footnote_20(swish):
    assert swish.universality_class == "half-stable"
    p = swish.critical
    assert abs(p.K_star - 14.32017362) < 5e-9  # (5.101)
    assert round(p.C_b, 8) == 0.55514317 and round(p.C_W, 8) == 1.98800468
    assert abs(-p.a1_tilde - (-2.84979219e-6)) < 1e-14
    assert p.attracting_side == "below"
    assert abs(p.trivial_fixed_point - 14.593) < 5e-4  # book: ≈ 14.5
    zero = [q for q in swish.points if q.K_star == 0.0][0]
    assert zero.stability == "unstable" and zero.C_W == pytest.approx(4.0)


def test_half_stable_drift_directions(gelu, swish):
    """Only the direction of the ~1e-5-per-layer drift near K* is tested (digest §6)."""
    for crit, attract in [(gelu, "above"), (swish, "below")]:
        p = crit.critical
        step = 0.3 * abs(p.trivial_fixed_point - p.K_star)  # stay between K* and the trivial fixed point
        for side in (+1, -1):
            r = single_input_recursion(crit.activation, p.K_star + side * step, 400, C_b=p.C_b, C_W=p.C_W)
            moved = r.K[-1] - r.K[0]
            towards = np.sign(moved) == -side
            assert towards == ((side > 0) == (attract == "above")), (crit.activation, side, moved)


def test_gelu_exponents_fitted_from_deep_recursion():
    """[derived] half-stable exponents p₀ = 1, p_∥ = 2, p_⊥ = 2h(K*)/ã₁ (≈ −65 for GELU), p_V = −1."""
    e = criticality("gelu").exponents  # 10⁵ layers: beyond ℓ* = |ã₂|/ã₁² ≈ 1e4
    print(e)
    assert e.asymptotic and e.depth == 100_000
    assert abs(e.fitted["p0"] - 1.0) < 0.01
    assert abs(e.fitted["p_parallel"] - 2.0) < 0.03
    assert abs(e.fitted["p_V"] + 1.0) < 0.03
    assert abs(e.fitted["p_perp"] / e.predicted["p_perp"] - 1) < 0.01


def test_no_criticality_sigmoid_softplus_monomials_perceptron():
    sg = criticality("sigmoid", exponents=False)
    assert sg.universality_class == "none" and not sg.points
    (rej,) = sg.rejected
    assert rej.K_star == 0.0 and rej.C_b == pytest.approx(-4.0) and not rej.physical  # −(σ₀/σ₁)²
    assert "C_b" in sg.reason

    sp = criticality("softplus", exponents=False)
    assert sp.universality_class == "none" and not sp.points
    K = np.array([1e-7, 1.0, 10.0, 50.0])
    ratio = helper_functions("softplus", K).ratio
    np.testing.assert_allclose(ratio, [0.59, 0.65, 0.79, 0.89], atol=6e-3)  # digest table
    # erratum (5.81): g′(0) = σ₁² + σ₀σ₂ ⇒ ratio(0) = σ₁²/(σ₁² + σ₀σ₂) = 0.5906 (the printed 2σ₀σ₂ gives 0.419)
    s0, s1, s2 = math.log(2), 0.5, 0.25
    assert abs(ratio[0] - s1**2 / (s1**2 + s0 * s2)) < 1e-6
    assert abs(ratio[0] - s1**2 / (s1**2 + 2 * s0 * s2)) > 0.1

    for p in (2, 3):
        m = criticality("monomial", power=p, exponents=False)
        assert m.universality_class == "none"
        np.testing.assert_allclose(m.ratio, p / (2 * p - 1), rtol=1e-12)  # (5.78)
        assert "p/(2p−1)" in m.reason

    pc = criticality("perceptron")
    assert pc.universality_class == "none" and "δ" in pc.reason


def test_custom_callables_classified():
    c = criticality(lambda z: jnp.tanh(2.0 * z), exponents=False)
    assert c.universality_class == "K*=0" and c.critical.C_W == pytest.approx(0.25, rel=1e-12)
    r = criticality(lambda z: jnp.maximum(z, 0.0), exponents=False)  # a ReLU the registry does not know
    assert r.universality_class == "scale-invariant" and r.critical.C_W == pytest.approx(2.0, rel=1e-12)
    elu = criticality("elu", exponents=False)  # kink in σ″ at 0: K* = 0 with one-sided slopes
    assert elu.universality_class == "K*=0" and elu.taylor is None and "not analytic" in elu.reason


def test_input_validation():
    with pytest.raises(DeepEFTInputError, match="constant"):
        criticality(lambda z: 0.0 * z + 1.0)
    with pytest.raises(DeepEFTInputError, match="non-finite"):
        criticality(lambda z: 1.0 / z)
    with pytest.raises(DeepEFTInputError, match="K_range"):
        criticality("tanh", K_range=(1.0, 0.5))
    with pytest.raises(DeepEFTInputError, match="fit_depth"):
        criticality("tanh", fit_depth=0)
    with pytest.raises(DeepEFTInputError, match="Did you mean"):
        criticality("gelux")


def test_fit_exponent_recovers_known_power_with_log_corrections():
    ell = np.arange(1, 20_001, dtype=float)
    O = ell**-1.5 * (2.0 + 3.0 * np.log(ell) / ell - 1.0 / ell)
    assert abs(fit_exponent(ell, O, 200, 20_000) - 1.5) < 1e-6


# ---------------------------------------------------------------------------------------------
# phase(): regime diagnostics and warnings
# ---------------------------------------------------------------------------------------------


def test_phase_critical_networks_are_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepEFTWarning)
        rep = phase(de.MLP(3, [256] * 20, activation="tanh", C_W=1.0))
        assert rep.regime == "critical"
        assert rep.aspect_ratio == pytest.approx(21 / 256)
        assert rep.normalized_vertex_out == pytest.approx(rep.recursion.normalized_vertex()[-1])
        assert 0.5 < rep.normalized_vertex_out / (2 / 3 * 21 / 256) < 1.5  # (5.131) at moderate depth
        rep = phase(de.MLP(3, [256] * 20, activation="relu", C_W=2.0))
        assert rep.regime == "critical" and rep.efolds_parallel == pytest.approx(0.0, abs=1e-10)
        assert rep.normalized_vertex_out == pytest.approx(5 * 20 / 256, rel=1e-10)  # (5.130): 5(ℓ−1)/n


def _phase_messages(net):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rep = phase(net)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DeepEFTWarning)]
    assert list(rep.warnings) == msgs
    return rep, " | ".join(msgs)


def test_phase_warns_in_exponential_phases():
    rep, msg = _phase_messages(de.MLP(3, [128] * 40, activation="relu", C_W=2.5))
    assert "exploding kernel" in rep.regime and "grows exponentially" in msg and "explode" in msg
    rep, msg = _phase_messages(de.MLP(3, [128] * 40, activation="tanh", C_W=0.5))
    assert "ordered" in rep.regime and "collapsing kernel" in rep.regime and "gradients vanish" in msg
    rep, msg = _phase_messages(de.MLP(3, [128] * 40, activation="tanh", C_W=3.0))  # trivial K* > 0, χ_⊥ > 1
    assert "chaotic" in rep.regime and "decorrelate exponentially" in msg
    rep, msg = _phase_messages(de.MLP(3, [16] * 40, activation="relu", C_W=2.0))
    assert rep.regime == "critical" and "too deep for its width" in msg
    assert rep.normalized_vertex_out == pytest.approx(5 * 40 / 16, rel=1e-10)


def test_regime_step_and_efolds():
    """The classifying step is the last one between hidden layers, L − 2 → L − 1 (ℓ = 1 for L ≤ 2), and the
    e-folds are (L − 1)·log χ: δK^{(L)} = Π_{ℓ=1}^{L−1} χ_∥^{(ℓ)} δK^{(1)} (5.47) has L − 1 factors."""
    from deepeft.theory.criticality import efolds, regime_step

    assert [regime_step(L) for L in (1, 2, 3, 4, 30)] == [1, 1, 1, 2, 28]
    assert efolds(0.5, 8) == 7 * math.log(0.5) and efolds(1.5, 1) == math.log(1.5)
    assert efolds(0.0, 8) == -math.inf and efolds(1.0, 50) == 0.0


@pytest.mark.parametrize("act, C_W", [("tanh", 0.5), ("relu", 2.5), ("gelu", 1.7)])
def test_phase_reads_the_last_step_between_hidden_layers(act, C_W):
    """χ's of phase() are (5.50)–(5.51) at K^{(L−2)} with the hidden C_W^{(L−1)}, by an independent path
    (helper_functions at the recursion's K), and the e-folds are (L − 1)·log χ; the output layer's C_W is not used."""
    L = 9
    net = de.MLP(3, [64] * (L - 1), 1, act, C_b=0.1, C_W=[1.0] + [C_W] * (L - 2) + [7.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepEFTWarning)
        rep = phase(net, norm=0.8)
    hf = helper_functions(act, rep.recursion.K[L - 3], C_W)  # K^{(L−2)}, C_W^{(L−1)}
    assert rep.step == L - 2
    assert rep.chi_parallel == pytest.approx(float(hf.chi_parallel), rel=1e-12)
    assert rep.chi_perp == pytest.approx(float(hf.chi_perp), rel=1e-12)
    assert rep.efolds_parallel == pytest.approx((L - 1) * math.log(rep.chi_parallel), rel=1e-14)
    assert rep.efolds_perp == pytest.approx((L - 1) * math.log(rep.chi_perp), rel=1e-14)


@pytest.mark.parametrize("act, C_W_hidden, C_W_out", [("relu", 2.0, 1.0), ("relu", 2.0, 0.0), ("tanh", 1.0, 0.25)])
def test_output_layer_C_W_does_not_set_the_regime(act, C_W_hidden, C_W_out):
    """A critical network with its own readout variance stays critical: the step into the output (χ = C_W^{(L)}A₂ = ½
    for ReLU with a C_W = 1 readout; 0 for a zero-initialised head) is applied once and only rescales K^{(L)}. Before
    the classifying step was the hidden one, this ReLU net read (L − 1)·log ½ = −8.3 < −log 100: "collapsing"."""
    L = 13
    net = de.MLP(3, [256] * (L - 1), 1, act, C_W=[C_W_hidden] * (L - 1) + [C_W_out])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepEFTWarning)  # critical: not a word
        rep = phase(net)
    assert rep.regime == "critical" and rep.warnings == ()
    assert rep.chi_parallel == rep.recursion.chi_parallel[L - 3] and rep.chi_perp == rep.recursion.chi_perp[L - 3]
    if act == "relu":
        assert rep.chi_parallel == pytest.approx(1.0, abs=1e-12) and rep.efolds_perp == pytest.approx(0.0, abs=1e-10)
        assert rep.recursion.chi_parallel[L - 2] == pytest.approx(C_W_out / 2, abs=1e-12)  # the output step: not used
    # and the converse: a critical readout does not rescue off-critical hidden layers (χ = ½ per hidden step)
    off = net.replace(C_W=[C_W_hidden / 2] * (L - 1) + [C_W_hidden]) if act == "relu" else None
    if off is not None:
        rep, msg = _phase_messages(off)
        assert "collapsing kernel" in rep.regime and "ordered" in rep.regime
        assert rep.efolds_parallel == pytest.approx((L - 1) * math.log(0.5), rel=1e-12)
        assert "at the last step between hidden layers ((L − 1)·log χ_∥ = -8.32)" in msg


def test_phase_of_shallow_networks_uses_the_first_step():
    """L ≤ 2 has no step between hidden layers: the first (and only) step stands in, e-folds max(L − 1, 1)·log χ."""
    net = de.MLP(3, [32], 1, "relu", C_W=[2.0, 3.0])
    rep = phase(net)
    assert rep.step == 1 and rep.chi_parallel == pytest.approx(1.5, rel=1e-12)
    assert rep.efolds_parallel == pytest.approx(math.log(1.5), rel=1e-12) and rep.regime == "critical"


def test_plots_build_book_figures(tmp_path):
    from deepeft.plots.criticality import book_figures

    figs = book_figures(tmp_path)
    assert set(figs) == {"fig5_1", "fig5_2", "fig5_3"}
    for name in figs:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
