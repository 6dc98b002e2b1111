"""``de.advise(net)`` (issue 15 item 4): verdicts on critical vs non-critical tanh/ReLU nets, every number equal to
the theory function it comes from, r* against the digest's numbers (A.73), the JSON form, the HTML page, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import deepeft as de
from deepeft.advice import ASPECT_RATIO_FACTOR
from deepeft.theory.criticality import phase
from deepeft.theory.single_input import single_input

pytestmark = pytest.mark.filterwarnings("ignore::deepeft.DeepEFTWarning")


def _net(act, C_W, *, C_b=0.0, L=6, n=64, n_out=1):
    return de.MLP(4, [n] * (L - 1), n_out, act, C_b=C_b, C_W=C_W)


def _topics(a):
    return [w.topic for w in a.warnings]


@pytest.mark.parametrize("act, C_W", [("tanh", 1.0), ("relu", 2.0)])
def test_critical_nets_are_critical_and_numbers_come_from_theory(act, C_W):
    net = _net(act, C_W, L=6, n=64)
    a = de.advise(net)
    assert a.verdict == "critical" and a.at_critical_point
    assert "criticality" not in _topics(a)
    cp = de.criticality(act, exponents=False).critical
    assert (a.critical_point.C_b, a.critical_point.C_W) == (cp.C_b, cp.C_W)
    rec = single_input(net)
    L = net.L  # χ's of the last step between hidden layers, L − 2 → L − 1 (index L − 3; regime_step)
    assert a.chi_parallel == rec.chi_parallel[L - 3] and a.chi_perp == rec.chi_perp[L - 3]
    ph = phase(net)
    assert a.regime == ph.regime and a.K_out == ph.K_out and a.chi_parallel == ph.chi_parallel
    assert a.normalized_vertex_out == pytest.approx(float(rec.normalized_vertex()[-1]), rel=1e-14)
    lr = de.learning_rates(net)
    np.testing.assert_array_equal(a.learning_rates.lambda_b, lr.lambda_b)
    np.testing.assert_array_equal(a.learning_rates.lambda_W, lr.lambda_W)
    d = a.to_dict()
    assert d["criticality"]["chi_parallel"] == a.chi_parallel
    np.testing.assert_allclose(d["curves"]["K"], rec.K, rtol=1e-14)


def test_relu_depth_scale_is_the_closed_form():
    """Scale-invariant σ: χ_∥ = χ_⊥ = A₂C_W for every K (5.62), so ξ = 1/|log(C_W/2)| for ReLU exactly."""
    for C_W in (1.0, 2.1, 3.0):
        a = de.advise(_net("relu", C_W, L=8))
        assert a.chi_parallel == pytest.approx(C_W / 2, rel=1e-12)
        assert a.depth_scale_parallel == pytest.approx(1 / abs(math.log(C_W / 2)), rel=1e-10)
        assert a.depth_scale_perp == pytest.approx(1 / abs(math.log(C_W / 2)), rel=1e-10)
    a = de.advise(_net("relu", 2.0, L=8))
    assert a.depth_scale_parallel == math.inf and a.to_dict()["criticality"]["depth_scale_parallel"] is None


@pytest.mark.parametrize("act, C_W, C_W_star, regime", [
    ("tanh", 1.5, 1.0, "collapsing kernel"),
    ("relu", 1.0, 2.0, "collapsing kernel"),
    ("relu", 3.0, 2.0, "exploding kernel"),
])
def test_non_critical_nets_say_what_to_change(act, C_W, C_W_star, regime):
    a = de.advise(_net(act, C_W, L=30))
    assert not a.at_critical_point and a.verdict.startswith("not critical") and regime in a.verdict
    msg = next(w.message for w in a.warnings if w.topic == "criticality")
    assert f"C_W = {C_W:g} is not critical for {act}; use C_b = 0, C_W = {C_W_star:g}" in msg
    assert "phase" in _topics(a)  # phase()'s own diagnosis is passed on


def test_near_critical_and_bias_off_criticality():
    a = de.advise(_net("relu", 2.02, L=10))  # χ = 1.01: ξ ≈ 100 layers ≫ L
    assert a.verdict.startswith("near-critical") and not a.at_critical_point
    assert "criticality" in _topics(a)
    b = de.advise(_net("tanh", 1.0, C_b=0.3, L=30))  # tanh with C_b > 0 flows to K* > 0: not critical
    assert not b.at_critical_point
    assert "C_b = 0.3, C_W = 1 is not critical for tanh; use C_b = 0, C_W = 1" in b.warnings[0].message


def test_rtol_decides_at_critical_point():
    net = _net("relu", 2.0 * (1 + 1e-3), L=4)
    assert not de.advise(net).at_critical_point
    assert de.advise(net, rtol=1e-2).at_critical_point


def test_only_hidden_layers_matter_for_criticality():
    """Layer 1's C_W only sets K^(1) (5.2); the output layer's only rescales K^(L) (e.g. a zero-initialised head)."""
    net = de.MLP(4, [32] * 5, 1, "tanh", C_b=0.0, C_W=[3.0] + [1.0] * 4 + [0.0])
    a = de.advise(net)
    assert a.at_critical_point and a.verdict == "critical"
    assert not de.advise(net.replace(C_W=[1.0] * 3 + [1.2] + [1.0] * 2)).at_critical_point


def _phase_quiet(net):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", de.DeepEFTWarning)
        return phase(net)


@pytest.mark.parametrize("net", [
    pytest.param(lambda: de.MLP(4, [32] * 7, 1, "tanh", C_W=[1.0] + [1.4] * 6 + [3.0]), id="mlp-tanh-own-readout"),
    pytest.param(lambda: de.MLP(4, [32] * 7, 1, "relu", C_W=[2.0] * 7 + [1.0]), id="mlp-relu-readout-1"),
    pytest.param(lambda: de.MLP(4, [32] * 29, 1, "tanh", C_b=0.2, C_W=0.7), id="mlp-tanh-ordered"),
    pytest.param(lambda: de.MLP(4, [32], 1, "relu", C_W=[2.0, 0.5]), id="mlp-L2"),
    pytest.param(lambda: de.ResidualMLP(4, [32] * 7, 1, "tanh", C_W=[1.0] + [0.5] * 6 + [1.0], gamma=0.5**0.5),
                 id="res-tanh-critical"),
    pytest.param(lambda: de.ResidualMLP(4, [32] * 29, 1, "relu", C_W=2.0, gamma=0.6), id="res-relu-exploding"),
    pytest.param(lambda: de.ResidualMLP(4, [32] * 7, 32, "relu", C_W=[2.0] + [1.28] * 6 + [0.3],
                                        gamma=[0.0] + [0.6] * 7), id="res-relu-output-skip"),
])
def test_advise_and_phase_report_the_same_numbers(net):
    """One definition of where a network sits: advise's χ's, e-folds, K_out, V/(nK²), regime and phase warnings are
    phase()'s (PhaseReport) for MLPs and ResidualMLPs, also when the output layer has its own C_W (and γ)."""
    net = net()
    a, ph = de.advise(net), _phase_quiet(net)
    for f in ("chi_parallel", "chi_perp", "efolds_parallel", "efolds_perp", "K_out", "normalized_vertex_out",
              "regime"):
        assert getattr(a, f) == getattr(ph, f), f
    assert [w.message for w in a.warnings if w.topic == "phase"] == list(ph.warnings)
    i = ph.step - 1  # the classifying step, in the recursion's arrays
    assert ph.step == (net.L - 2 if net.L >= 3 else 1)
    assert (a.flow.chi_parallel[i], a.flow.chi_perp[i]) == (a.chi_parallel, a.chi_perp)
    assert a.efolds_parallel == pytest.approx(max(net.L - 1, 1) * math.log(a.chi_parallel), rel=1e-14)


@pytest.mark.parametrize("act, n_out, r_star", [
    ("tanh", 2, 3 / 13), ("linear", 2, 1 / 13), ("relu", 2, 2 / 65),
    ("tanh", 10, 0.12), ("linear", 10, 0.04), ("relu", 10, 0.016),
    ("tanh", 100, 0.01875), ("relu", 100, 0.0025),
])
def test_optimal_aspect_ratio_matches_digest_numbers(act, n_out, r_star):
    """r* = [4/(20 + 3n_L)]/ν (A.73), digest numbers (pdlt-chinf-end.md §5)."""
    C_W = de.criticality(act, exponents=False).critical.C_W
    a = de.advise(_net(act, C_W, L=3, n_out=n_out))
    assert a.optimal_aspect_ratio == pytest.approx(r_star, rel=1e-9)


def test_aspect_ratio_warnings_both_sides():
    deep = de.advise(_net("tanh", 1.0, L=40, n=20))  # r = 2 ≫ r* = 4/23/(2/3) ≈ 0.26
    msg = next(w.message for w in deep.warnings if w.topic == "aspect ratio")
    r_star = deep.optimal_aspect_ratio
    assert deep.aspect_ratio > ASPECT_RATIO_FACTOR * r_star and "≫ r*" in msg
    assert f"widen to n ≥ {math.ceil(40 / r_star)}" in msg
    wide = de.advise(_net("tanh", 1.0, L=3, n=1000))  # r = 0.003 ≪ r*
    assert any("≪ r*" in w.message for w in wide.warnings if w.topic == "aspect ratio")
    ok_L = max(2, round(r_star * 200))  # r = r* at width 200
    good = de.advise(_net("tanh", 1.0, L=ok_L, n=200))
    assert "aspect ratio" not in _topics(good)


def test_finite_width_size_tracks_nu_r_at_criticality():
    """At criticality V/(nK²) ≈ ν·L/n at large depth (A.68)–(A.70); ReLU: ν = 5, exactly (L−1)·5/n."""
    a = de.advise(_net("relu", 2.0, L=20, n=100))
    assert a.nu == pytest.approx(5.0, rel=1e-12)
    assert a.normalized_vertex_out == pytest.approx(5.0 * 19 / 100, rel=1e-10)


def test_no_critical_point_sigmoid():
    a = de.advise(_net("sigmoid", 1.0, L=12))
    assert a.critical_point is None and a.universality_class == "none" and a.optimal_aspect_ratio is None
    assert "no critical initialization" in a.warnings[0].message and not a.at_critical_point
    assert a.to_dict()["critical_point"] is None


_KEYS = {
    "network": {"source", "gamma", "L", "n", "activation", "activation_params", "C_b", "C_W"},
    "criticality": {"verdict", "at_critical_point", "regime", "chi_parallel", "chi_perp", "depth_scale_parallel",
                    "depth_scale_perp", "efolds_parallel", "efolds_perp", "K_out", "input_norm"},
    "aspect_ratio": {"r", "depth", "width", "output_dim", "r_star", "nu"},
    "finite_width": {"normalized_vertex_out", "excess_kurtosis_out"},
    "curves": {"layer", "K", "chi_parallel", "chi_perp", "normalized_vertex"},
}


@pytest.mark.parametrize("act, C_W", [("tanh", 1.0), ("relu", 2.0), ("relu", 3.0), ("sigmoid", 1.0)])
def test_to_dict_schema_is_strict_json(act, C_W):
    d = de.advise(_net(act, C_W, L=5)).to_dict()
    assert set(d) == {"network", "universality_class", "class_reason", "critical_point", "criticality",
                      "aspect_ratio", "finite_width", "learning_rates", "warnings", "curves"}
    for k, keys in _KEYS.items():
        assert set(d[k]) == keys, k
    assert all(set(w) == {"topic", "message"} for w in d["warnings"])
    assert all(len(v) == 5 for v in d["curves"].values())
    json.dumps(d, allow_nan=False)  # no NaN/inf anywhere


def test_str_table_and_html(tmp_path):
    a = de.advise(_net("tanh", 1.5, L=12))
    text = str(a)
    assert "universality class" in text and "K*=0" in text and "use C_b = 0, C_W = 1" in text
    p = a.to_html(tmp_path / "advice.html")
    page = (tmp_path / "advice.html").read_text()
    assert p.endswith("advice.html") and "data:image/png;base64," in page and "use C_b = 0, C_W = 1" in page
    with pytest.raises(de.DeepEFTInputError, match=r"\.html"):
        a.to_html(tmp_path / "advice.png")
    with pytest.raises(de.DeepEFTInputError, match="does not exist"):
        a.to_html(tmp_path / "nope" / "advice.html")


def test_bad_input():
    with pytest.raises(de.DeepEFTInputError, match="de.MLP"):
        de.advise("relu")
    with pytest.raises(de.DeepEFTInputError, match="rtol"):
        de.advise(_net("relu", 2.0), rtol=-1.0)
    with pytest.raises(de.DeepEFTInputError, match="Did you mean"):
        de.advise(de.MLP(4, [8], 1, "tnah"))


def test_imported_weights_use_sampling_tolerance():
    """An ImportedModel (de.from_arrays here; de.from_torch alike) is judged with 3 standard errors of the measured
    C_W = n_in·Var(W) per layer, 3√(2/(n_in n_out)); the same spec typed by hand needs rtol."""
    rng = np.random.default_rng(0)
    dims = [5, 200, 200, 200, 1]
    Ws = [rng.standard_normal((dims[i + 1], dims[i])) * math.sqrt(2.0 / dims[i]) for i in range(4)]
    model = de.from_arrays(Ws, [np.zeros(d) for d in dims[1:]], "relu")
    a = de.advise(model)
    assert a.source.startswith("imported") and a.at_critical_point and a.verdict == "critical"
    rel = abs(np.asarray(model.net.C_W[1:]) / 2.0 - 1.0)
    assert rel.max() > 1e-6  # the measured values are not exactly critical ...
    assert not de.advise(model.net).at_critical_point  # ... so the hand-typed spec is not "at" the point
    far = de.from_arrays([W * 1.2 for W in Ws], [np.zeros(d) for d in dims[1:]], "relu")  # C_W = 2.88
    assert not de.advise(far).at_critical_point
